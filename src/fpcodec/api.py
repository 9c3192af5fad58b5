"""The Python API, mirroring the command line: encode, decode, info, predict."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from fpcodec.codec.errors import InputError, UsageError
from fpcodec.codec.limits import DEFAULT_KEYFRAME_INTERVAL, MAX_FRAMES, SPEED_PRESETS
from fpcodec.codec.numbastart import import_numba

if TYPE_CHECKING:
    import numpy as np
    from tqdm import tqdm

    from fpcodec.codec.container import StreamHeader
    from fpcodec.codec.sinks import Sink

# Heavy modules (numpy kernels compiled by numba, torch for trained predictors) are
# imported inside the functions that need them: `fpcodec info` of a file coded with
# `last` then never loads torch, and `import fpcodec` stays cheap.

MAX_ERROR_CAP = 64

PathLike = str | os.PathLike


@dataclass(frozen=True)
class EncodeResult:
    frames: int
    width: int
    height: int
    bytes: int
    source_bytes: int
    seconds: float
    predictor: str

    @property
    def bpp(self) -> float:
        return 8.0 * self.bytes / max(1, self.frames * self.width * self.height)

    @property
    def ratio(self) -> float:
        """Output size relative to the source file (below 1 is smaller)."""
        return self.bytes / max(1, self.source_bytes)

    @property
    def fps(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


@dataclass(frozen=True)
class DecodeResult:
    frames: int
    width: int
    height: int
    seconds: float
    quantised_frames: int  # GIF output only: frames that needed more than 255 colours
    padded_to: tuple[int, int] | None = None  # lossy video: the even size it was padded to

    @property
    def fps(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


def _open_input(path: PathLike) -> BinaryIO:
    """An .fpc input, read front to back once: `-` is standard input, and a pipe
    works as well as a file."""
    if os.fspath(path) == "-":
        return contextlib.nullcontext(sys.stdin.buffer)  # type: ignore[return-value]
    try:
        return open(path, "rb")
    except OSError as e:
        raise InputError(f"cannot open {path}: {e.strerror or e}") from None


def _is_stdout(path: PathLike) -> bool:
    return os.fspath(path) == "-"


@contextlib.contextmanager
def _to_stdout(suffix: str = "") -> Iterator[Path]:
    """A private temporary path whose contents go to standard output on success
    (the writers seek, and a pipe cannot)."""
    with tempfile.TemporaryDirectory(prefix="fpcodec-out.") as d:
        tmp = Path(d) / f"out{suffix}"
        yield tmp
        out = sys.stdout.buffer
        with open(tmp, "rb") as f:
            shutil.copyfileobj(f, out, 1 << 20)
        out.flush()


def _output_file(output: PathLike, inputs: list[Path], force: bool, suffix: str = ""):
    from fpcodec.codec.atomic import atomic_file

    if _is_stdout(output):
        return _to_stdout(suffix)
    return atomic_file(Path(output), inputs, force)


def _inputs(input: PathLike) -> list[Path]:
    """The inputs an output must never replace (none for standard input)."""
    return [] if os.fspath(input) == "-" else [Path(input)]


def _bar(total: int | None, desc: str, enabled: bool) -> tqdm:
    from tqdm import tqdm

    from fpcodec.codec.atomic import raise_if_terminated

    class FrameBar(tqdm):
        # Each frame is also where a terminating signal that could not be raised
        # when it came (codec/atomic.py) stops the run.
        def update(self, n: float | None = 1) -> bool | None:
            raise_if_terminated()
            return super().update(n)

    # tqdm's default lock is a multiprocessing one, whose creation fixes the process's
    # start method for good: a program calling decode() could no longer choose its own
    FrameBar.set_lock(threading.RLock())
    return FrameBar(
        total=total, desc=desc, unit="frame", disable=not enabled, leave=False, dynamic_ncols=True
    )


def encode(
    input: PathLike,
    output: PathLike,
    *,
    predictor: str | None = None,
    weights: PathLike | None = None,
    max_error: int = 0,
    quality: int = 0,
    keyframe_interval: int = DEFAULT_KEYFRAME_INTERVAL,
    entropy: str = "arith",
    palette: bool = True,
    speed: str = "slow",
    force: bool = False,
    progress: bool = False,
) -> EncodeResult:
    """Encode an image/video file to .fpc. Lossless unless max_error or quality is set.

    input and output may be "-": standard input and output. output must otherwise be
    a .fpc name, so that a slip such as encode("a.gif", "b.gif") cannot destroy b.gif.
    palette: for GIF sources, code the GIF's own frames (palette, LZW phrases) where
    that reproduces them exactly; False codes every frame as pixels.
    speed: the lossy encoder's search preset, "slow" (default) or "fast"
    (codec/lossy/presets.py); it changes the bytes, never what a decoder needs.
    force: replace an existing output (never an input).
    """
    check_encode_output(output)
    if not 0 <= max_error <= MAX_ERROR_CAP:
        raise UsageError(f"--max-error must be within 0..{MAX_ERROR_CAP}, not {max_error}")
    if not 0 <= quality <= 100:
        raise UsageError(f"--quality must be within 1..100, not {quality}")
    if quality and max_error:
        raise UsageError("--quality and --max-error cannot be combined")
    if speed not in SPEED_PRESETS:
        raise UsageError(f"--speed must be one of {', '.join(SPEED_PRESETS)}, not {speed!r}")
    if not 0 <= keyframe_interval <= MAX_FRAMES:
        raise UsageError(
            f"--keyframe-interval must be within 0..{MAX_FRAMES} (0: only the first frame), "
            f"not {keyframe_interval}"
        )
    if entropy not in ("arith", "zstd"):
        raise UsageError("--entropy must be arith or zstd")
    import_numba()
    from fpcodec.codec.container import StreamHeader
    from fpcodec.codec.encoder import Encoder
    from fpcodec.codec.source import open_source
    from fpcodec.models.registry import check_frame_size, create_predictor, default_predictor

    name = predictor or default_predictor(quality)
    pred = create_predictor(name, weights)
    t0 = time.perf_counter()
    with open_source(input) as src:
        info = src.info
        check_frame_size(name, info.width, info.height, InputError, " (use --predictor last)")
        header = StreamHeader(
            width=info.width,
            height=info.height,
            loop=info.loop,
            max_error=max_error,
            quality=quality,
            keyframe_interval=keyframe_interval,
            entropy=entropy,
            source_kind=info.kind,
            predictor=pred.name,
            predictor_sha256=pred.weights_sha256,
        )
        with _output_file(output, _inputs(input), force) as tmp, open(tmp, "wb") as f:
            enc = Encoder(f, header, pred, info.gif_screen, palette, speed)
            with _bar(info.frame_count, "encode", progress) as bar:
                for frame in src.frames(gif=palette):
                    # handed over: nothing here holds the frame while it is coded
                    held, duration, gif = [frame.rgba], frame.duration_ms, frame.gif
                    del frame
                    enc.add(held, duration, gif)
                    bar.update()
            if enc.frames == 0:
                raise InputError("input has no frames")
            enc.close()
            f.flush()
            nbytes = f.tell()
    return EncodeResult(
        frames=enc.frames,
        width=info.width,
        height=info.height,
        bytes=nbytes,
        source_bytes=src.nbytes,
        seconds=time.perf_counter() - t0,
        predictor=pred.identity,
    )


def check_encode_output(output: PathLike) -> None:
    """encode writes .fpc bytes: to a .fpc name or to standard output, nowhere else."""
    name = os.fspath(output)
    if name != "-" and not name.lower().endswith(".fpc"):
        raise UsageError(
            f"encode writes .fpc files; {name!r} is not a .fpc name "
            "(encode takes one input: IN [OUT.fpc], '-' for standard output)"
        )


def _open_sink(
    kind: str,
    tmp: Path,
    f,
    header: StreamHeader,
    crf: int | None,
    lossless: bool,
) -> Sink:
    from fpcodec.codec.sinks import ApngSink, FrameDirSink, GifSink, VideoSink, WebpSink

    w, h = header.width, header.height
    if kind == ".gif":
        return GifSink(f, w, h, header.loop, header.has_alpha)
    if kind == ".png":
        return ApngSink(f, w, h, header.frame_count, header.loop, header.has_alpha)
    if kind == ".webp":
        return WebpSink(f, w, h, header.loop, header.has_alpha)
    if kind == "dir":
        return FrameDirSink(tmp, header.has_alpha)
    return VideoSink(str(tmp), kind, w, h, crf, lossless, header.has_alpha)


def decode(
    input: PathLike,
    output: PathLike,
    *,
    weights: PathLike | None = None,
    force: bool = False,
    progress: bool = False,
    to: str | None = None,
    crf: int | None = None,
    lossless_video: bool = False,
    large_frames: bool = False,
) -> DecodeResult:
    """Decode an .fpc file; the output format follows the output path (see sinks.py)
    or `to` ("gif", "webp", "png", "mp4", ...; needed when output is "-", standard
    output). input "-" is standard input. crf: quality of lossy video outputs (H.264
    / VP9 constant-rate factor, lower is better); lossless_video: FFV1 in .mkv.
    large_frames: decode a frame predictor's file above its memory cap."""
    import_numba()
    from fpcodec.codec.atomic import atomic_dir
    from fpcodec.codec.decoder import Decoder
    from fpcodec.codec.sinks import MAX_CRF, VIDEO_SUFFIXES, output_kind, writing_beside

    kind = output_kind(os.fspath(output), to)
    if kind == "dir" and _is_stdout(output):
        raise UsageError("PNG frames need a directory, not standard output")
    if (crf is not None or lossless_video) and kind not in VIDEO_SUFFIXES:
        raise UsageError("--crf and --lossless apply to video outputs (.mp4 .mkv .mov .webm)")
    if crf is not None and lossless_video:
        raise UsageError("--crf and --lossless cannot be combined")
    if crf is not None and not 0 <= crf <= MAX_CRF:
        raise UsageError(f"--crf must be within 0..{MAX_CRF}, not {crf}")
    if lossless_video and kind != ".mkv":
        raise UsageError("--lossless video is FFV1 in Matroska: name a .mkv output")
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        dec = Decoder(stack.enter_context(_open_input(input)), weights, large_frames=large_frames)
        h = dec.header
        if kind == "dir":
            tmp = stack.enter_context(atomic_dir(Path(output), _inputs(input), force))
        else:
            suffix = kind if kind in VIDEO_SUFFIXES else ""
            tmp = stack.enter_context(_output_file(output, _inputs(input), force, suffix))
        writes_path = kind == "dir" or kind in VIDEO_SUFFIXES
        f = None if writes_path else stack.enter_context(open(tmp, "wb"))
        sink = _open_sink(kind, tmp, f, h, crf, lossless_video)
        n = 0
        with (
            _bar(h.frame_count, "decode", progress) as bar,
            writing_beside(sink, h.width, h.height) as write,
        ):
            for frame in dec:
                write(frame.rgba, frame.duration_ms)
                n += 1
                bar.update()
        sink.close()
    padded = getattr(sink, "size", None) if getattr(sink, "padded", False) else None
    return DecodeResult(
        n, h.width, h.height, time.perf_counter() - t0, sink.quantised_frames, padded
    )


def decode_frames(
    input: PathLike,
    weights: PathLike | None = None,
    *,
    float_path: bool = False,
    large_frames: bool = False,
) -> tuple[StreamHeader, list[np.ndarray], list[int]]:
    """Decode a whole file into memory: (header, RGBA frames, durations). For tests and tools.

    float_path: also accept files of a `NAME+float` predictor (the benchmark's float
    reference, refused otherwise: not portable). large_frames: as for decode()."""
    import_numba()
    from fpcodec.codec.decoder import Decoder

    with _open_input(input) as f:
        dec = Decoder(f, weights, float_path, large_frames)
        frames, durations = [], []
        for fr in dec:
            frames.append(fr.rgba)
            durations.append(fr.duration_ms)
        return dec.header, frames, durations


def info(input: PathLike, frames: bool = False) -> dict[str, Any]:
    """Describe an .fpc file without decoding its frames ("-": standard input).

    frames: also list every frame (index, type, coding, bytes, duration) under
    "frame_list", to see where the bytes go."""
    from fpcodec.codec.container import CODINGS, FRAME_TYPES, ContainerReader

    name = "-" if os.fspath(input) == "-" else str(Path(input))
    per_frame: list[dict[str, Any]] = []
    with _open_input(input) as f:
        reader = ContainerReader(f)
        h = reader.header
        by_type: dict[str, dict[str, int]] = {}
        by_coding: dict[str, int] = {}
        duration = 0
        count = 0
        for chunk in reader.frames():
            t = by_type.setdefault(FRAME_TYPES[chunk.frame_type], {"frames": 0, "bytes": 0})
            t["frames"] += 1
            t["bytes"] += chunk.size
            by_coding[CODINGS[chunk.coding]] = by_coding.get(CODINGS[chunk.coding], 0) + 1
            duration += chunk.duration_ms
            count += 1
            if frames:
                per_frame.append(
                    {
                        "index": chunk.index,
                        "type": FRAME_TYPES[chunk.frame_type],
                        "coding": CODINGS[chunk.coding],
                        "bytes": chunk.size,
                        "duration_ms": chunk.duration_ms,
                    }
                )
    size = reader.stream_bytes  # the stream's own bytes (nothing may follow them)
    assert size is not None
    mode = "lossy" if h.quality else ("near-lossless" if h.max_error else "lossless")
    out = {
        "file": name,
        "bytes": size,
        "format_version": f"1.{reader.minor}",
        "width": h.width,
        "height": h.height,
        "frames": count,
        "duration_ms": duration,
        "loop": h.loop,
        "has_alpha": h.has_alpha,
        "mode": mode,
        "max_error": h.max_error,
        "quality": h.quality,
        "keyframe_interval": h.keyframe_interval,
        "entropy": h.entropy,
        "predictor": h.predictor,
        "predictor_sha256": h.predictor_sha256.hex(),
        "source_kind": h.source_kind,
        "frame_types": by_type,
        "codings": by_coding,
        "bits_per_pixel": 8.0 * size / max(1, count * h.width * h.height),
    }
    if frames:
        out["frame_list"] = per_frame
    return out


@dataclass(frozen=True)
class PredictResult:
    frames: int
    distance: float  # mean perceptual distance of the predictions to the true frames
    last_distance: float  # the same for the last-frame baseline


def predict(
    input: PathLike,
    outdir: PathLike,
    *,
    predictor: str | None = None,
    weights: PathLike | None = None,
    force: bool = False,
    progress: bool = False,
) -> PredictResult:
    """Write one-step-ahead predictions (from the true previous frames) as PNGs.

    pred_000001.png is the prediction of frame 1 from frame 0, and so on. Where the
    frame has transparency the PNG carries the frame's own alpha (the codec codes
    alpha losslessly beside the prediction), so transparent areas stay transparent.
    """
    import numpy as np
    from PIL import Image

    from fpcodec.bench.metrics import perceptual_distance
    from fpcodec.codec.atomic import atomic_dir
    from fpcodec.codec.sinks import frame_name
    from fpcodec.codec.source import open_source
    from fpcodec.models.registry import (
        DEFAULT_LOSSLESS_PREDICTOR,
        check_frame_size,
        create_predictor,
    )

    out = Path(outdir)
    name = predictor or DEFAULT_LOSSLESS_PREDICTOR
    pred = create_predictor(name, weights)
    dists: list[float] = []
    base: list[float] = []
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(open_source(input))
        info = src.info
        check_frame_size(name, info.width, info.height, InputError)
        tmp = stack.enter_context(atomic_dir(out, _inputs(input), force))
        pred.reset(info.height, info.width)
        prev = None
        with _bar(info.frame_count, "predict", progress) as bar:
            for t, frame in enumerate(src.frames(gif=False)):
                rgb = np.ascontiguousarray(frame.rgba[..., :3])
                if prev is not None:
                    p = pred.predict().rgb
                    alpha = frame.rgba[..., 3]
                    if (alpha != 255).any():
                        img = Image.fromarray(np.dstack([p, alpha]), "RGBA")
                    else:
                        img = Image.fromarray(p)
                    img.save(tmp / frame_name(t).replace("frame_", "pred_"))
                    visible = frame.rgba[..., 3] != 0
                    dists.append(perceptual_distance(p, rgb, visible))
                    base.append(perceptual_distance(prev, rgb, visible))
                pred.observe(rgb)
                prev = rgb
                bar.update()
    return PredictResult(
        len(dists), float(np.mean(dists)) if dists else 0.0, float(np.mean(base)) if base else 0.0
    )
