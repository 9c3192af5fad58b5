"""The classic codecs fpcodec is measured against, all driven from Python.

Each anchor turns a clip's RGBA frames (and, for GIF sources, the GIF file) into
bytes and decodes those bytes back with the format's own decoder, so every
number comes from real files. An anchor whose tool is missing reports why and is
skipped: gifsicle is a system package; everything else comes from Pillow and
PyAV (FFmpeg with x264, x265, SVT-AV1, FFV1, libwebp).
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
        subprocess.run(
            [exe, "-O3", str(path), "-o", str(out)], check=True, capture_output=True, timeout=600
        )
        enc = time.perf_counter() - t
        data = out.read_bytes()
    t = time.perf_counter()
    dec = _pil_frames(data)
    return Encoded(len(data), dec, enc, time.perf_counter() - t)


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


def _pyav(
    codec: str, pix_fmt: str, options: dict, container: str = "matroska", rgb_in: str = "rgb24"
) -> Callable:
    def run(path: Path, frames: list[np.ndarray], durations: list[int]) -> Encoded:
        import av

        try:
            av.codec.Codec(codec, "w")
        except Exception:
            raise AnchorUnavailable(f"PyAV's FFmpeg has no {codec} encoder") from None
        h, w = frames[0].shape[:2]
        ew, eh = (w + (w & 1), h + (h & 1)) if pix_fmt.startswith("yuv420") else (w, h)
        buf = io.BytesIO()
        t = time.perf_counter()
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
        enc = time.perf_counter() - t
        data = buf.getvalue()
        t = time.perf_counter()
        dec = []
        with av.open(io.BytesIO(data)) as inp:
            for fr in inp.decode(video=0):
                dec.append(fr.to_ndarray(format="rgba" if rgb_in == "rgba" else "rgb24")[:h, :w])
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
    return _pyav("libsvtav1", "yuv420p", {"crf": str(crf), "preset": "6"})


def tool_versions() -> dict:
    import av
    import PIL

    versions = {
        "pillow": PIL.__version__,
        "pyav": av.__version__,
        "ffmpeg_libavcodec": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
    }
    exe = shutil.which("gifsicle")
    if exe:
        try:
            versions["gifsicle"] = subprocess.run(
                [exe, "--version"], capture_output=True, text=True, timeout=10
            ).stdout.splitlines()[0]
        except Exception:
            versions["gifsicle"] = "unknown"
    return versions
