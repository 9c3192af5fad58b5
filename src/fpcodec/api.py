"""The Python API, mirroring the command line: encode, decode, info, predict."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from fpcodec.bench.metrics import perceptual_distance
from fpcodec.codec.atomic import atomic_dir, atomic_file
from fpcodec.codec.container import CODINGS, FRAME_TYPES, ContainerReader, StreamHeader
from fpcodec.codec.decoder import Decoder
from fpcodec.codec.encoder import DEFAULT_KEYFRAME_INTERVAL, Encoder
from fpcodec.codec.errors import FpcError, InputError
from fpcodec.codec.limits import MAX_FRAMES
from fpcodec.codec.sinks import (
    VIDEO_SUFFIXES,
    ApngSink,
    FrameDirSink,
    GifSink,
    Sink,
    VideoSink,
    WebpSink,
    frame_name,
    output_kind,
)
from fpcodec.codec.source import open_source
from fpcodec.models.registry import DEFAULT_PREDICTOR, create_predictor

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

    @property
    def fps(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


def _open_input(path: Path):
    try:
        return open(path, "rb")
    except OSError as e:
        raise InputError(f"cannot open {path}: {e.strerror or e}") from None


def _bar(total: int | None, desc: str, enabled: bool) -> tqdm:
    return tqdm(
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
    force: bool = False,
    progress: bool = False,
) -> EncodeResult:
    """Encode an image/video file to .fpc. Lossless unless max_error or quality is set.

    palette: for GIF sources, code the GIF's own frames (palette, LZW phrases) where
    that reproduces them exactly; False codes every frame as pixels.
    """
    if not 0 <= max_error <= MAX_ERROR_CAP:
        raise FpcError(f"--max-error must be within 0..{MAX_ERROR_CAP}")
    if not 0 <= quality <= 100:
        raise FpcError("--quality must be within 1..100")
    if quality and max_error:
        raise FpcError("--quality and --max-error cannot be combined")
    if not 0 <= keyframe_interval <= MAX_FRAMES:
        raise FpcError("--keyframe-interval must be >= 0 (0: only the first frame)")
    if entropy not in ("arith", "zstd"):
        raise FpcError("--entropy must be arith or zstd")
    inp, out = Path(input), Path(output)
    pred = create_predictor(predictor or DEFAULT_PREDICTOR, weights)
    t0 = time.perf_counter()
    with open_source(inp) as src:
        info = src.info
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
        with atomic_file(out, [inp], force) as tmp, open(tmp, "wb") as f:
            enc = Encoder(f, header, pred, info.gif_screen, palette)
            with _bar(info.frame_count, "encode", progress) as bar:
                for frame in src.frames():
                    enc.add(frame.rgba, frame.duration_ms, frame.gif)
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
        source_bytes=inp.stat().st_size,
        seconds=time.perf_counter() - t0,
        predictor=pred.identity,
    )


def _open_sink(kind: str, tmp: Path, f, header: StreamHeader) -> Sink:
    w, h = header.width, header.height
    if kind == ".gif":
        return GifSink(f, w, h, header.loop, header.has_alpha)
    if kind == ".png":
        return ApngSink(f, w, h, header.frame_count, header.loop, header.has_alpha)
    if kind == ".webp":
        return WebpSink(f, w, h, header.loop, header.has_alpha)
    if kind == "dir":
        return FrameDirSink(tmp, header.has_alpha)
    return VideoSink(str(tmp), kind, w, h)


def decode(
    input: PathLike,
    output: PathLike,
    *,
    weights: PathLike | None = None,
    force: bool = False,
    progress: bool = False,
) -> DecodeResult:
    """Decode an .fpc file; the output format follows the output path (see sinks.py)."""
    inp = Path(input)
    kind = output_kind(os.fspath(output))
    out = Path(output)
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        dec = Decoder(stack.enter_context(_open_input(inp)), weights)
        h = dec.header
        if kind == "dir":
            tmp = stack.enter_context(atomic_dir(out, [inp], force))
        else:
            tmp = stack.enter_context(atomic_file(out, [inp], force))
        writes_path = kind == "dir" or kind in VIDEO_SUFFIXES
        f = None if writes_path else stack.enter_context(open(tmp, "wb"))
        sink = _open_sink(kind, tmp, f, h)
        n = 0
        with _bar(h.frame_count, "decode", progress) as bar:
            for frame in dec:
                sink.add(frame.rgba, frame.duration_ms)
                n += 1
                bar.update()
        sink.close()
    return DecodeResult(n, h.width, h.height, time.perf_counter() - t0, sink.quantised_frames)


def decode_frames(
    input: PathLike, weights: PathLike | None = None, *, float_path: bool = False
) -> tuple[StreamHeader, list[np.ndarray], list[int]]:
    """Decode a whole file into memory: (header, RGBA frames, durations). For tests and tools.

    float_path: also accept files of a `NAME+float` predictor (the benchmark's float
    reference, refused otherwise: not portable)."""
    with _open_input(Path(input)) as f:
        dec = Decoder(f, weights, float_path)
        frames, durations = [], []
        for fr in dec:
            frames.append(fr.rgba)
            durations.append(fr.duration_ms)
        return dec.header, frames, durations


def info(input: PathLike) -> dict[str, Any]:
    """Describe an .fpc file without decoding its frames."""
    inp = Path(input)
    with _open_input(inp) as f:
        reader = ContainerReader(f)
        h = reader.header
        by_type: dict[str, dict[str, int]] = {}
        by_coding: dict[str, int] = {}
        duration = 0
        frames = 0
        for chunk in reader.frames():
            t = by_type.setdefault(FRAME_TYPES[chunk.frame_type], {"frames": 0, "bytes": 0})
            t["frames"] += 1
            t["bytes"] += chunk.size
            by_coding[CODINGS[chunk.coding]] = by_coding.get(CODINGS[chunk.coding], 0) + 1
            duration += chunk.duration_ms
            frames += 1
    size = reader.stream_bytes  # the stream's own bytes (nothing may follow them)
    assert size is not None
    header = asdict(h)
    header["predictor_sha256"] = h.predictor_sha256.hex()
    mode = "lossy" if h.quality else ("near-lossless" if h.max_error else "lossless")
    return {
        "file": str(inp),
        "bytes": size,
        "format_version": f"1.{reader.minor}",
        "width": h.width,
        "height": h.height,
        "frames": frames,
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
        "bits_per_pixel": 8.0 * size / max(1, frames * h.width * h.height),
    }


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

    pred_000001.png is the prediction of frame 1 from frame 0, and so on.
    """
    from PIL import Image

    inp, out = Path(input), Path(outdir)
    pred = create_predictor(predictor or DEFAULT_PREDICTOR, weights)
    dists: list[float] = []
    base: list[float] = []
    with open_source(inp) as src, atomic_dir(out, [inp], force) as tmp:
        info = src.info
        pred.reset(info.height, info.width)
        prev = None
        with _bar(info.frame_count, "predict", progress) as bar:
            for t, frame in enumerate(src.frames()):
                rgb = np.ascontiguousarray(frame.rgba[..., :3])
                if prev is not None:
                    p = pred.predict().rgb
                    Image.fromarray(p).save(tmp / frame_name(t).replace("frame_", "pred_"))
                    visible = frame.rgba[..., 3] != 0
                    dists.append(perceptual_distance(p, rgb, visible))
                    base.append(perceptual_distance(prev, rgb, visible))
                pred.observe(rgb)
                prev = rgb
                bar.update()
    return PredictResult(
        len(dists), float(np.mean(dists)) if dists else 0.0, float(np.mean(base)) if base else 0.0
    )
