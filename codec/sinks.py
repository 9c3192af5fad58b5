"""Writing decoded frames, chosen by the output path.

    *.gif           GIF (gifwriter.py; exact for GIF-born frames)
    *.webp          animated WebP, lossless (libwebp's animation encoder)
    *.png, *.apng   animated PNG, lossless, changed rectangles only
    *.mp4 *.mkv *.mov *.webm   H.264 (VP9 for WebM) through PyAV, for playback;
                    FFV1 in .mkv when lossless
    DIR/            (path ending in a separator) one PNG per frame, frame_000000.png ...

Every writer streams: frames are written as they arrive, so memory does not grow
with the clip (libwebp keeps its encoded frames until it assembles the file).
Callers write into a temporary path and rename it into place.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import OutputError, UsageError
from .gifwriter import GifWriter
from .inflight import OneInFlight

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".webm"}
SUFFIXES = {".gif", ".webp", ".png", ".apng", *VIDEO_SUFFIXES}


# `--to NAME`: the format by name, for standard output (which has no suffix).
FORMATS = {
    "gif": ".gif",
    "webp": ".webp",
    "png": ".png",
    "apng": ".png",
    "mp4": ".mp4",
    "mkv": ".mkv",
    "mov": ".mov",
    "webm": ".webm",
}


def output_kind(path: str, to: str | None = None) -> str:
    """The sink for an output path ('-' is standard output, which needs `to`)."""
    if to is not None:
        if to not in FORMATS:
            raise UsageError(f"unknown output format {to!r} (one of {', '.join(FORMATS)})")
        if path != "-" and output_kind(path) != FORMATS[to]:
            raise UsageError(f"--to {to} disagrees with the output name {path!r}")
        return FORMATS[to]
    if path == "-":
        raise UsageError("standard output has no suffix: name the format with --to")
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


def _changed_box(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int, int] | None:
    """The smallest rectangle (x0, y0, x1, y1) outside which frames a and b agree."""
    diff = np.any(a != b, axis=2)
    rows, cols = np.flatnonzero(diff.any(1)), np.flatnonzero(diff.any(0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _png_delay(duration_ms: int) -> tuple[int, int]:
    """An APNG delay fraction (u16 / u16) for a duration in milliseconds."""
    d = Fraction(max(int(duration_ms), 0), 1000).limit_denominator(65535)
    if d.numerator > 65535:  # longer than 65.5 s: centiseconds reach 655 s
        return min(round(duration_ms / 10), 65535), 100
    return d.numerator, d.denominator


def _png_idat(img) -> bytes:
    """The zlib stream Pillow's PNG writer makes for an image (its filters, level 6)."""
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=6)
    data, pos, out = buf.getvalue(), 8, []
    while pos + 8 <= len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        if data[pos + 4 : pos + 8] == b"IDAT":
            out.append(data[pos + 8 : pos + 8 + n])
        pos += 12 + n
    return b"".join(out)


class ApngSink(Sink):
    """Animated PNG, written as Pillow's APNG writer does: each frame stores only the
    rectangle that changed since the one before (no disposal, source blending, so any
    reader shows the exact frames), and a frame equal to the one before extends that
    one's duration instead of being stored. One frame is held back to know that."""

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
        self._n = 0  # frames received
        self._stored = 0  # frames written
        self._frame_count = frame_count
        self._prev: np.ndarray | None = None  # the last frame written
        self._pending: tuple[np.ndarray, int] | None = None  # frame, duration not yet final
        plays = 1 if loop is None else loop
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(
            _png_chunk(
                b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6 if has_alpha else 2, 0, 0, 0)
            )
        )
        self._actl = f.tell()
        f.write(_png_chunk(b"acTL", struct.pack(">II", max(frame_count, 1), plays)))
        self._plays = plays

    def add(self, rgba, duration_ms):
        px = np.ascontiguousarray(rgba[..., : self._channels])
        self._n += 1
        if self._pending is not None:
            frame, ms = self._pending
            if np.array_equal(frame, px):
                self._pending = (frame, ms + int(duration_ms))
                return
            self._write(frame, ms)
        self._pending = (px, int(duration_ms))

    def _write(self, px: np.ndarray, duration_ms: int) -> None:
        from PIL import Image

        box = (0, 0, self._w, self._h)
        if self._prev is not None:
            box = _changed_box(self._prev, px) or (0, 0, 1, 1)
        x0, y0, x1, y1 = box
        data = _png_idat(Image.fromarray(np.ascontiguousarray(px[y0:y1, x0:x1])))
        num, den = _png_delay(duration_ms)
        fctl = struct.pack(">IIIIIHHBB", self._seq, x1 - x0, y1 - y0, x0, y0, num, den, 0, 0)
        self._f.write(_png_chunk(b"fcTL", fctl))
        self._seq += 1
        if self._prev is None:
            self._f.write(_png_chunk(b"IDAT", data))
        else:
            self._f.write(_png_chunk(b"fdAT", struct.pack(">I", self._seq) + data))
            self._seq += 1
        self._prev = px
        self._stored += 1

    def close(self):
        if self._n != self._frame_count:
            raise OutputError(f"APNG declared {self._frame_count} frames but got {self._n}")
        if self._pending is not None:
            self._write(*self._pending)
        self._f.write(_png_chunk(b"IEND", b""))
        if self._stored != max(self._frame_count, 1):  # equal frames were merged
            end = self._f.tell()
            self._f.seek(self._actl)
            self._f.write(_png_chunk(b"acTL", struct.pack(">II", self._stored, self._plays)))
            self._f.seek(end)


class WebpSink(Sink):
    """Animated WebP through libwebp's animation encoder with Pillow's lossless
    defaults: it stores the changed rectangle of each frame and chooses blending
    itself. Frames are fed as they arrive through the encoder Pillow's own writer
    uses (Pillow >= 11); with an older Pillow they are collected and handed to its
    public writer, which encodes them the same way."""

    # lossless, quality (effort) 80, alpha quality 100, method 4: Pillow's defaults
    _SETTINGS = (True, 80.0, 100.0, 4)

    def __init__(self, f: BinaryIO, width: int, height: int, loop: int | None, has_alpha: bool):
        from PIL import Image, _webp

        self._f = f
        self._alpha = has_alpha
        self._t = 0
        # WebP counts plays like APNG (0: forever); a GIF without a loop count plays once.
        self._plays = 1 if loop is None else min(loop, 65535)
        self._enc = None
        self._frames: list = []  # the fallback's frames
        self._durations: list[int] = []
        if hasattr(_webp, "WebPAnimEncoder") and hasattr(Image.Image, "getim"):
            # size, background (transparent black), loop, minimize_size, kmin, kmax,
            # allow_mixed, verbose: Pillow's defaults for lossless
            self._enc = _webp.WebPAnimEncoder(
                (width, height), 0, self._plays, False, 9, 17, False, False
            )

    def add(self, rgba, duration_ms):
        from PIL import Image

        img = Image.fromarray(np.ascontiguousarray(rgba if self._alpha else rgba[..., :3]))
        if self._enc is not None:
            self._enc.add(img.getim(), self._t, *self._SETTINGS)
        else:
            self._frames.append(img)
            self._durations.append(max(int(duration_ms), 0))
        self._t += max(int(duration_ms), 0)

    def close(self):
        if self._enc is None:
            if self._frames:
                self._frames[0].save(
                    self._f,
                    "WEBP",
                    save_all=True,
                    append_images=self._frames[1:],
                    duration=self._durations,
                    loop=self._plays,
                    lossless=True,
                )
            return
        self._enc.add(None, self._t, *self._SETTINGS[:3], 0)
        data = self._enc.assemble(b"", b"", b"")  # no ICC profile, EXIF or XMP
        if data is None:
            raise OutputError("libwebp could not assemble the animation")
        self._f.write(data)


# Lossy video outputs: the codec and its default constant-rate factor per container.
VIDEO_CODECS = {".webm": ("libvpx-vp9", 20)}
H264 = ("libx264", 18)
MAX_CRF = 51  # libx264's scale; VP9's goes to 63 but 51 is already unwatchable


class VideoSink(Sink):
    """Video through PyAV. Lossy by default: H.264 (VP9 in WebM) in 4:2:0, which needs
    even sizes, so an odd size is padded by repeating the edge (`padded` says so).
    `lossless`: FFV1 in Matroska, RGB(A) as decoded, no padding."""

    def __init__(
        self,
        path: str,
        suffix: str,
        width: int,
        height: int,
        crf: int | None = None,
        lossless: bool = False,
        has_alpha: bool = False,
    ):
        import av

        self._av = av
        if lossless and suffix != ".mkv":
            raise OutputError("lossless video (FFV1) is written to .mkv only")
        self._out = av.open(
            path,
            "w",
            format={".mkv": "matroska", ".mov": "mov", ".webm": "webm"}.get(suffix, "mp4"),
        )
        if lossless:
            self._stream = self._out.add_stream("ffv1")
            self._pw, self._ph = width, height
            self._stream.pix_fmt = "bgra" if has_alpha else "bgr0"
            self._channels = 4 if has_alpha else 3
        else:
            codec, default_crf = VIDEO_CODECS.get(suffix, H264)
            value = str(default_crf if crf is None else crf)
            opts = (
                {"crf": value, "preset": "medium"}
                if codec == "libx264"
                else {"crf": value, "b": "0"}
            )
            self._stream = self._out.add_stream(codec, options=opts)
            self._pw, self._ph = width + (width & 1), height + (height & 1)
            self._stream.pix_fmt = "yuv420p"
            self._channels = 3
        self.padded = (self._pw, self._ph) != (width, height)
        self._stream.width, self._stream.height = self._pw, self._ph
        # Millisecond timestamps carry GIF-style variable frame durations exactly.
        self._stream.time_base = Fraction(1, 1000)
        self._stream.codec_context.time_base = Fraction(1, 1000)
        self._t = 0

    @property
    def size(self) -> tuple[int, int]:
        """The stored frame size (after padding)."""
        return self._pw, self._ph

    def add(self, rgba, duration_ms):
        px = rgba[..., : self._channels]
        h, w = px.shape[:2]
        if (w, h) != (self._pw, self._ph):
            px = np.pad(px, ((0, self._ph - h), (0, self._pw - w), (0, 0)), mode="edge")
        fmt = "rgba" if self._channels == 4 else "rgb24"
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(px), format=fmt)
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


# Frames up to this size (1920x1080 included) are written on a second thread while
# the next one is decoded; larger ones take turns with the decoder. The writer's
# buffers beside the decoder's were 6-9 bytes a pixel more at 2048x2048 (the decoder
# memory tests: palette 19.8 -> 25.5, switched 28.1 -> 36.8), under 20 MB here; above
# it the decoder's memory grows with the frame as it does at the size cap.
OVERLAP_PIXELS = 1 << 21


@contextlib.contextmanager
def writing_beside(
    sink: Sink, width: int, height: int
) -> Iterator[Callable[[np.ndarray, int], None]]:
    """A function that adds a frame to `sink`: on a second thread, one frame in flight
    and in order, where numba may use two threads (NUMBA_NUM_THREADS) and frames are
    at most OVERLAP_PIXELS; otherwise in turn. Writing a lossy frame to GIF quantises
    it (Pillow, tens of ms a frame at 480x270, with the GIL released), which then
    overlaps the next frame's decoding. The decoder never changes a frame it has
    returned, so none is copied. A writer's error is raised at the next frame or at
    the end; when the caller fails, the frame in flight is waited for before the
    output's temporary file goes."""
    from .numbastart import allowed_threads

    if allowed_threads() < 2 or width * height > OVERLAP_PIXELS:
        yield sink.add
        return
    # leaving the executor also waits for its thread
    with ThreadPoolExecutor(1, thread_name_prefix="fpcodec-write") as pool:
        jobs = OneInFlight(pool)
        try:
            yield lambda rgba, duration_ms: jobs.submit(sink.add, rgba, duration_ms)
        except BaseException:
            jobs.abandon()  # the caller's error is the one raised
            raise
        jobs.wait()
