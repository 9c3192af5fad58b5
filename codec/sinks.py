"""Writing decoded frames, chosen by the output path.

    *.gif           GIF (gifwriter.py; exact for GIF-born frames)
    *.webp          animated WebP, lossless
    *.png, *.apng   animated PNG, lossless
    *.mp4 *.mkv *.mov *.webm   H.264 (VP9 for WebM) through PyAV, for playback
    DIR/            (path ending in a separator) one PNG per frame, frame_000000.png ...

Every writer streams: frames are written as they arrive, so memory does not grow
with the clip. Callers write into a temporary path and rename it into place.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import OutputError
from .gifwriter import GifWriter

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".webm"}
SUFFIXES = {".gif", ".webp", ".png", ".apng", *VIDEO_SUFFIXES}


def output_kind(path: str) -> str:
    if path.endswith(("/", os.sep)):
        return "dir"
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise OutputError(
            f"cannot tell the output format from {path!r}: use one of "
            f"{', '.join(sorted(SUFFIXES))}, or end the path with '/' for PNG frames"
        )
    return {".apng": ".png"}.get(suffix, suffix)


class Sink:
    def add(self, rgba: np.ndarray, duration_ms: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    quantised_frames = 0


class GifSink(Sink):
    def __init__(self, f: BinaryIO, width: int, height: int, loop: int | None, has_alpha: bool):
        self._w = GifWriter(f, width, height, loop, has_alpha)

    def add(self, rgba, duration_ms):
        self._w.add(rgba, duration_ms)

    def close(self):
        self._w.close()
        self.quantised_frames = self._w.quantised_frames


def _png_chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data))


class ApngSink(Sink):
    """Animated PNG: every frame complete (no blending), so readers reproduce it exactly."""

    def __init__(
        self,
        f: BinaryIO,
        width: int,
        height: int,
        frame_count: int,
        loop: int | None,
        has_alpha: bool,
    ):
        self._f = f
        self._w, self._h = width, height
        self._channels = 4 if has_alpha else 3
        self._seq = 0
        self._n = 0
        self._frame_count = frame_count
        plays = 1 if loop is None else loop
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(
            _png_chunk(
                b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6 if has_alpha else 2, 0, 0, 0)
            )
        )
        f.write(_png_chunk(b"acTL", struct.pack(">II", max(frame_count, 1), plays)))

    def add(self, rgba, duration_ms):
        px = np.ascontiguousarray(rgba[..., : self._channels])
        raw = np.concatenate([np.zeros((self._h, 1), np.uint8), px.reshape(self._h, -1)], axis=1)
        data = zlib.compress(raw.tobytes(), 6)
        fctl = struct.pack(
            ">IIIIIHHBB", self._seq, self._w, self._h, 0, 0, int(duration_ms), 1000, 0, 0
        )
        self._f.write(_png_chunk(b"fcTL", fctl))
        self._seq += 1
        if self._n == 0:
            self._f.write(_png_chunk(b"IDAT", data))
        else:
            self._f.write(_png_chunk(b"fdAT", struct.pack(">I", self._seq) + data))
            self._seq += 1
        self._n += 1

    def close(self):
        if self._n != self._frame_count:
            raise OutputError(f"APNG declared {self._frame_count} frames but got {self._n}")
        self._f.write(_png_chunk(b"IEND", b""))


class WebpSink(Sink):
    """Animated WebP assembled from Pillow's lossless still frames (RIFF/ANMF muxing)."""

    def __init__(self, f: BinaryIO, width: int, height: int, loop: int | None, has_alpha: bool):
        self._f = f
        self._w, self._h = width, height
        self._alpha = has_alpha
        self._start = f.tell()
        f.write(b"RIFF\0\0\0\0WEBP")
        flags = 0x02 | (0x10 if has_alpha else 0)  # animation, alpha
        vp8x = (
            struct.pack("<B3x", flags)
            + (width - 1).to_bytes(3, "little")
            + (height - 1).to_bytes(3, "little")
        )
        f.write(self._chunk(b"VP8X", vp8x))
        f.write(
            self._chunk(b"ANIM", struct.pack("<IH", 0, 0 if loop is None else min(loop, 65535)))
        )

    @staticmethod
    def _chunk(tag: bytes, data: bytes) -> bytes:
        pad = b"\0" if len(data) & 1 else b""
        return tag + struct.pack("<I", len(data)) + data + pad

    def add(self, rgba, duration_ms):
        from PIL import Image

        img = Image.fromarray(np.ascontiguousarray(rgba if self._alpha else rgba[..., :3]))
        buf = io.BytesIO()
        img.save(buf, "WEBP", lossless=True, quality=100, method=4, exact=True)
        still = buf.getvalue()
        # Keep the still's image chunks (ALPH/VP8/VP8L); drop its RIFF header and VP8X.
        pos, payload = 12, b""
        while pos + 8 <= len(still):
            tag = still[pos : pos + 4]
            (n,) = struct.unpack("<I", still[pos + 4 : pos + 8])
            chunk = still[pos : pos + 8 + n + (n & 1)]
            if tag in (b"ALPH", b"VP8 ", b"VP8L"):
                payload += chunk
            pos += 8 + n + (n & 1)
        head = (
            (0).to_bytes(3, "little")
            + (0).to_bytes(3, "little")
            + (self._w - 1).to_bytes(3, "little")
            + (self._h - 1).to_bytes(3, "little")
            + min(max(int(duration_ms), 0), 0xFFFFFF).to_bytes(3, "little")
            + bytes([0x02])  # do not blend, do not dispose
        )
        self._f.write(self._chunk(b"ANMF", head + payload))

    def close(self):
        end = self._f.tell()
        self._f.seek(self._start + 4)
        self._f.write(struct.pack("<I", end - self._start - 8))
        self._f.seek(end)


class VideoSink(Sink):
    def __init__(self, path: str, suffix: str, width: int, height: int):
        import av

        self._av = av
        self._out = av.open(
            path,
            "w",
            format={".mkv": "matroska", ".mov": "mov", ".webm": "webm"}.get(suffix, "mp4"),
        )
        codec = "libvpx-vp9" if suffix == ".webm" else "libx264"
        opts = {"crf": "18", "preset": "medium"} if codec == "libx264" else {"crf": "20", "b": "0"}
        self._stream = self._out.add_stream(codec, options=opts)
        # 4:2:0 for players' sake: pad to even dimensions by repeating the edge.
        self._pw, self._ph = width + (width & 1), height + (height & 1)
        self._stream.width, self._stream.height = self._pw, self._ph
        self._stream.pix_fmt = "yuv420p"
        # Millisecond timestamps carry GIF-style variable frame durations exactly.
        self._stream.time_base = Fraction(1, 1000)
        self._stream.codec_context.time_base = Fraction(1, 1000)
        self._t = 0

    def add(self, rgba, duration_ms):
        rgb = rgba[..., :3]
        h, w = rgb.shape[:2]
        if (w, h) != (self._pw, self._ph):
            rgb = np.pad(rgb, ((0, self._ph - h), (0, self._pw - w), (0, 0)), mode="edge")
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self._t
        frame.time_base = Fraction(1, 1000)
        self._t += max(int(duration_ms), 1)
        for packet in self._stream.encode(frame):
            self._out.mux(packet)

    def close(self):
        for packet in self._stream.encode():
            self._out.mux(packet)
        self._out.close()


class FrameDirSink(Sink):
    def __init__(self, directory: Path, has_alpha: bool):
        self._dir = directory
        self._alpha = has_alpha
        self._n = 0

    def add(self, rgba, duration_ms):
        from PIL import Image

        arr = rgba if self._alpha else rgba[..., :3]
        Image.fromarray(np.ascontiguousarray(arr)).save(
            self._dir / frame_name(self._n), compress_level=6
        )
        self._n += 1

    def close(self):
        pass


def frame_name(index: int) -> str:
    return f"frame_{index:06d}.png"
