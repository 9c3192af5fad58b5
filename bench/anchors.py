"""The classic codecs fpcodec is measured against, all driven from Python.

Each anchor turns a clip's RGBA frames (and, for GIF sources, the GIF file) into
bytes and decodes those bytes back with the format's own decoder, so every
number comes from real files. An anchor whose tool is missing reports why and is
skipped: gifsicle and aomenc are system packages (Debian's gifsicle and
aom-tools); everything else comes from Pillow and PyAV (FFmpeg with x264, x265,
SVT-AV1, FFV1, libwebp).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from .peakrss import run_child


class AnchorUnavailable(Exception):
    """The tool behind an anchor is not installed; the message says which."""


@dataclass
class Encoded:
    nbytes: int
    frames: list[np.ndarray]  # decoded RGBA or RGB frames
    enc_s: float
    dec_s: float
    extra: dict = field(default_factory=dict)


def _pil_frames(data: bytes) -> list[np.ndarray]:
    from PIL import Image

    im = Image.open(io.BytesIO(data))
    out = []
    for i in range(getattr(im, "n_frames", 1)):
        im.seek(i)
        out.append(np.asarray(im.convert("RGBA")).copy())
    return out


def source_gif(path: Path, frames: list[np.ndarray], durations: list[int]) -> Encoded:
    if path.suffix.lower() != ".gif":
        raise AnchorUnavailable("source is not a GIF")
    return Encoded(path.stat().st_size, frames, 0.0, 0.0)


def gifsicle(path: Path, frames: list[np.ndarray], durations: list[int]) -> Encoded:
    exe = shutil.which("gifsicle")
    if exe is None:
        raise AnchorUnavailable("gifsicle is not installed (Debian package gifsicle)")
    if path.suffix.lower() != ".gif":
        raise AnchorUnavailable("source is not a GIF")
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "o.gif"
        t = time.perf_counter()
        peak = _tool([exe, "-O3", str(path), "-o", str(out)], 600)
        enc = time.perf_counter() - t
        data = out.read_bytes()
    t = time.perf_counter()
    dec = _pil_frames(data)
    return Encoded(len(data), dec, enc, time.perf_counter() - t, {"enc_peak_rss_mb": peak})


def gifsicle_lossy(level: int, optimize: int = 3) -> Callable:
    """`gifsicle -O3 --lossy=N`: what people use today to shrink a GIF with a little
    loss (LZW-domain: pixels are changed where that extends a dictionary string).
    -O3 may merge identical frames; where it does, the GIF is made again with -O1,
    which keeps every frame (the benchmark compares frame by frame)."""

    def run(path: Path, frames: list[np.ndarray], durations: list[int]) -> Encoded:
        exe = shutil.which("gifsicle")
        if exe is None:
            raise AnchorUnavailable("gifsicle is not installed (Debian package gifsicle)")
        if path.suffix.lower() != ".gif":
            raise AnchorUnavailable("source is not a GIF")
        for opt in dict.fromkeys((optimize, 1)):
            with tempfile.TemporaryDirectory() as d:
                out = Path(d) / "o.gif"
                t = time.perf_counter()
                argv = [exe, f"-O{opt}", f"--lossy={level}", str(path), "-o", str(out)]
                peak = _tool(argv, 600)
                enc = time.perf_counter() - t
                data = out.read_bytes()
            t = time.perf_counter()
            dec = _pil_frames(data)
            dec_s = time.perf_counter() - t
            if len(dec) == len(frames):
                break
        extra = {"enc_peak_rss_mb": peak, "optimize": opt}
        return Encoded(len(data), dec, enc, dec_s, extra)

    return run


JXL_EFFORT = 7  # cjxl's default; effort 9 is several times slower again


def jxl(distance: float, effort: int = JXL_EFFORT) -> Callable:
    """JPEG XL through libjxl's `cjxl` (distance 0: lossless), from the GIF itself
    (cjxl reads animated GIFs, palette and timing included), decoded back by `djxl`."""

    def run(path: Path, frames: list[np.ndarray], durations: list[int]) -> Encoded:
        enc_exe, dec_exe = shutil.which("cjxl"), shutil.which("djxl")
        if enc_exe is None or dec_exe is None:
            raise AnchorUnavailable("cjxl/djxl are not installed (Debian package libjxl-tools)")
        if path.suffix.lower() != ".gif":
            raise AnchorUnavailable("source is not a GIF")
        with tempfile.TemporaryDirectory() as d:
            out, back = Path(d) / "o.jxl", Path(d) / "back.apng"
            t = time.perf_counter()
            opts = ["-d", str(distance), "-e", str(effort), "--num_threads=1", "--quiet"]
            try:
                peak = _tool([enc_exe, str(path), str(out), *opts], 3600)
            except RuntimeError:
                # cjxl's GIF reader refuses some disposals: give it the composited
                # frames as an APNG instead (the same pixels, no palette)
                apng_in = Path(d) / "in.apng"
                apng_in.write_bytes(_apng_bytes(frames, durations))
                t = time.perf_counter()
                peak = _tool([enc_exe, str(apng_in), str(out), *opts], 3600)
            enc = time.perf_counter() - t
            nbytes = out.stat().st_size
            t = time.perf_counter()
            subprocess.run(
                [dec_exe, str(out), str(back), "--num_threads=1"],
                check=True,
                capture_output=True,
                timeout=600,
            )
            dec = _pil_frames(back.read_bytes())
            dec_s = time.perf_counter() - t
        return Encoded(nbytes, dec, enc, dec_s, {"enc_peak_rss_mb": peak})

    return run


def _apng_bytes(frames: list[np.ndarray], durations: list[int]) -> bytes:
    from PIL import Image

    ims = [Image.fromarray(f, "RGBA") for f in frames]
    buf = io.BytesIO()
    ims[0].save(
        buf,
        "PNG",
        save_all=True,
        append_images=ims[1:],
        duration=[max(x, 1) for x in durations],
        loop=0,
        default_image=False,
        disposal=1,  # every frame whole (cjxl 0.7 misreads APNG's partial frames)
    )
    return buf.getvalue()


def _tool(argv: list[str], timeout: float) -> float:
    """Run an anchor's command-line encoder; its own peak resident set in MiB."""
    code, peak, err = run_child(argv, timeout)
    if code != 0:
        raise RuntimeError(f"{Path(argv[0]).name} failed: {err.strip()[-200:]}")
    return peak


def _pillow_animation(frames: list[np.ndarray], durations: list[int], fmt: str, **opts) -> Encoded:
    """Save an animation with Pillow in `fmt`, timed, and decode it back with Pillow."""
    from PIL import Image

    ims = [Image.fromarray(f, "RGBA") for f in frames]
    buf = io.BytesIO()
    t = time.perf_counter()
    ims[0].save(
        buf,
        fmt,
        save_all=True,
        append_images=ims[1:],
        duration=[max(d, 1) for d in durations],
        loop=0,
        **opts,
    )
    enc = time.perf_counter() - t
    data = buf.getvalue()
    t = time.perf_counter()
    dec = _pil_frames(data)
    return Encoded(len(data), dec, enc, time.perf_counter() - t)


def webp(lossless: bool, quality: int = 100) -> Callable:
    def run(path: Path, frames: list[np.ndarray], durations: list[int]) -> Encoded:
        return _pillow_animation(
            frames, durations, "WEBP", lossless=lossless, quality=quality, method=4
        )

    return run


def apng(path: Path, frames: list[np.ndarray], durations: list[int]) -> Encoded:
    return _pillow_animation(frames, durations, "PNG", optimize=True)


def pyav_encode(
    frames: list[np.ndarray],
    durations: list[int],
    codec: str,
    pix_fmt: str,
    options: dict,
    container: str = "matroska",
    rgb_in: str = "rgb24",
) -> bytes:
    """RGB(A) frames through one of PyAV's FFmpeg encoders into `container`, with the
    clip's own timing (odd sizes padded by edge copies where the format subsamples)."""
    import av

    try:
        av.codec.Codec(codec, "w")
    except Exception:
        raise AnchorUnavailable(f"PyAV's FFmpeg has no {codec} encoder") from None
    h, w = frames[0].shape[:2]
    ew, eh = (w + (w & 1), h + (h & 1)) if pix_fmt.startswith("yuv420") else (w, h)
    buf = io.BytesIO()
    out = av.open(buf, "w", format=container)
    s = out.add_stream(codec, options=options)
    s.width, s.height, s.pix_fmt = ew, eh, pix_fmt
    s.time_base = Fraction(1, 1000)
    s.codec_context.time_base = Fraction(1, 1000)
    pts = 0
    for f, d in zip(frames, durations, strict=True):
        img = f[..., :4] if rgb_in == "rgba" else f[..., :3]
        if (ew, eh) != (w, h):
            img = np.pad(img, ((0, eh - h), (0, ew - w), (0, 0)), mode="edge")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format=rgb_in)
        vf.pts = pts
        vf.time_base = Fraction(1, 1000)
        pts += max(int(d), 1)
        for p in s.encode(vf):
            out.mux(p)
    for p in s.encode():
        out.mux(p)
    out.close()
    return buf.getvalue()


def pyav_decode(
    data: bytes, height: int | None = None, width: int | None = None, rgb_in: str = "rgb24"
) -> list[np.ndarray]:
    """The frames of a file PyAV reads, cropped to the clip's size where given (an
    encoder may have padded them)."""
    import av

    fmt = "rgba" if rgb_in == "rgba" else "rgb24"
    with av.open(io.BytesIO(data)) as inp:
        return [fr.to_ndarray(format=fmt)[:height, :width] for fr in inp.decode(video=0)]


def _pyav(
    codec: str, pix_fmt: str, options: dict, container: str = "matroska", rgb_in: str = "rgb24"
) -> Callable:
    def run(path: Path, frames: list[np.ndarray], durations: list[int]) -> Encoded:
        import av  # noqa: F401  (imported before the clock starts: not the encoder's time)

        t = time.perf_counter()
        data = pyav_encode(frames, durations, codec, pix_fmt, options, container, rgb_in)
        enc = time.perf_counter() - t
        h, w = frames[0].shape[:2]
        t = time.perf_counter()
        dec = pyav_decode(data, h, w, rgb_in)
        return Encoded(len(data), dec, enc, time.perf_counter() - t)

    return run


ffv1 = _pyav("ffv1", "bgra", {"level": "3", "coder": "1", "context": "1", "g": "1"}, rgb_in="rgba")
x264_lossless = _pyav("libx264rgb", "bgr0", {"qp": "0", "preset": "veryslow"})


def x264(crf: int) -> Callable:
    return _pyav("libx264", "yuv444p", {"crf": str(crf), "preset": "veryslow"})


def x265(crf: int) -> Callable:
    return _pyav(
        "libx265", "yuv444p", {"crf": str(crf), "preset": "slow", "x265-params": "log-level=error"}
    )


def av1(crf: int) -> Callable:
    """SVT-AV1, the only AV1 encoder in PyAV's FFmpeg, which takes 4:2:0 only: its
    colour subsampling alone costs some clips a distance of about 20, so the report
    labels it 4:2:0 and measures AV1 at its best with `aom444` beside it."""
    return _pyav("libsvtav1", "yuv420p", {"crf": str(crf), "preset": "6"})


# What each anchor runs at, in the report's words.
SETTINGS_NOTES = {
    "gifsicle": "gifsicle -O3 (its strongest lossless optimisation)",
    "gifsicle-lossy": "gifsicle -O3 --lossy=N (LZW-domain lossy GIF)",
    "jxl": f"libjxl cjxl lossless (-d 0), effort {JXL_EFFORT}, from the GIF, one thread",
    "jxl-lossy": f"libjxl cjxl lossy (-d distance), effort {JXL_EFFORT}, from the GIF, one thread",
    "webp": "Pillow/libwebp lossless, method 4",
    "webp-lossy": "Pillow/libwebp lossy, method 4",
    "apng": "Pillow APNG, optimize",
    "ffv1": "FFV1 level 3, range coder, large contexts, intra only, BGRA",
    "x264-lossless": "libx264rgb qp 0, preset veryslow",
    "x264": "libx264 4:4:4, CRF sweep, preset veryslow",
    "x265": "libx265 4:4:4, CRF sweep, preset slow",
    "av1": "SVT-AV1 4:2:0 (PyAV's only AV1 encoder; the subsampling alone costs some clips "
    "a distance of about 20), CRF sweep, preset 6",
    "av1-444": "libaom (aomenc) 4:4:4 profile 1, constant quality sweep, good mode, "
    "cpu-used 4 (0-3: several times slower), one thread",
}

AOM_CPU_USED = 4  # libaom's good-quality mode; 0-3 are several times slower still


def _y4m_frames(data: bytes) -> list[np.ndarray]:
    """The planes of a 4:4:4 8-bit Y4M stream, as (3, H, W) arrays."""
    head, _, rest = data.partition(b"\n")
    fields = {t[:1]: t[1:] for t in head.split()[1:]}
    w, h = int(fields[b"W"]), int(fields[b"H"])
    n = 3 * w * h
    out, pos = [], 0
    while pos < len(rest):
        if not rest.startswith(b"FRAME", pos):
            raise ValueError("damaged Y4M frame")
        pos = rest.index(b"\n", pos) + 1
        out.append(np.frombuffer(rest, np.uint8, n, pos).reshape(3, h, w))
        pos += n
    return out


def aom444(cq: int) -> Callable:
    """libaom (`aomenc`) in 4:4:4, constant quality `cq`, the same RGB to YUV
    conversion as the x264/x265 anchors (PyAV's), decoded back by `aomdec`."""

    def run(path: Path, frames: list[np.ndarray], durations: list[int]) -> Encoded:
        import av

        enc_exe, dec_exe = shutil.which("aomenc"), shutil.which("aomdec")
        if enc_exe is None or dec_exe is None:
            raise AnchorUnavailable("aomenc/aomdec are not installed (Debian package aom-tools)")
        h, w = frames[0].shape[:2]
        with tempfile.TemporaryDirectory() as d:
            src, out, back = Path(d) / "in.y4m", Path(d) / "o.webm", Path(d) / "back.y4m"
            with open(src, "wb") as f:
                f.write(f"YUV4MPEG2 W{w} H{h} F100:1 Ip A1:1 C444\n".encode())
                for fr in frames:
                    rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(fr[..., :3]), "rgb24")
                    f.write(b"FRAME\n" + rgb.reformat(format="yuv444p").to_ndarray().tobytes())
            t = time.perf_counter()
            peak = _tool(
                [enc_exe, "--i444", "--profile=1", "--end-usage=q", f"--cq-level={cq}",
                 f"--cpu-used={AOM_CPU_USED}", "--threads=1", "--webm", "-q",
                 "-o", str(out), str(src)],
                3600,
            )  # fmt: skip
            enc = time.perf_counter() - t
            nbytes = out.stat().st_size
            t = time.perf_counter()
            subprocess.run(
                [dec_exe, "-o", str(back), str(out)], check=True, capture_output=True, timeout=600
            )
            dec = [
                av.VideoFrame.from_ndarray(np.ascontiguousarray(p), "yuv444p").to_ndarray(
                    format="rgb24"
                )
                for p in _y4m_frames(back.read_bytes())
            ]
            dec_s = time.perf_counter() - t
        return Encoded(nbytes, dec, enc, dec_s, {"enc_peak_rss_mb": peak})

    return run


def tool_versions() -> dict:
    import av
    import PIL

    versions = {
        "pillow": PIL.__version__,
        "pyav": av.__version__,
        "ffmpeg_libavcodec": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
    }
    for tool, flag in (("gifsicle", "--version"), ("aomenc", "--help"), ("cjxl", "--version")):
        exe = shutil.which(tool)
        if exe:
            try:
                text = subprocess.run(
                    [exe, flag], capture_output=True, text=True, timeout=10
                ).stdout
                line = [
                    x
                    for x in text.splitlines()
                    if "gifsicle" in x.lower() or "AOMedia" in x or "cjxl" in x
                ]
                versions[tool] = (line[0] if line else text.splitlines()[0]).strip()
            except Exception:
                versions[tool] = "unknown"
    return versions
