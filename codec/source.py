"""Reading source media into a stream of RGBA frames with display durations.

GIF, PNG/APNG and WebP go through Pillow, whose `convert("RGBA")` of each frame
(disposal, partial frames and transparency honoured) is the reference for what a
lossless round trip must reproduce. Everything else goes through PyAV. Frames are
produced one at a time so memory stays bounded by a frame, not by the clip.

A GIF read for the encoder (frames with `gif=True`) is read twice. The first pass
draws each parsed frame with fpcodec's compositor (gifcompose.py) beside Pillow's
and finds how many leading frames the two draw alike, keeping Pillow's durations.
The second pass, the one the encoder codes, draws those frames with the compositor
alone, and Pillow only the rest, from the first that differs. The frames are
Pillow's either way. Pillow's reading holds its own canvas and a converted frame
beside the one handed out, and the compositor's canvas is the frame the encoder's
exact compositor keeps anyway (framecodec._gif_step): 4 bytes a pixel less while
each frame is coded, 128 MiB at the size cap.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import stat
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .gifcompose import CompositorState, composite, same_pixels
from .gifparse import GifFrame, GifScreen, GifStructureError, iter_frames, parse_screen
from .limits import MAX_DURATION_MS, MAX_FRAMES, check_dimensions, row_bands

PILLOW_SIGNATURES = (b"GIF87a", b"GIF89a", b"\x89PNG\r\n\x1a\n")


@dataclass(frozen=True)
class Frame:
    rgba: np.ndarray  # (H, W, 4) uint8; RGB is zero wherever alpha is zero
    duration_ms: int
    # For GIF sources: the frame as the file stores it (rectangle, palette, LZW
    # phrases), when the parser could represent it; the palette coder uses it.
    gif: GifFrame | None = None


@dataclass(frozen=True)
class SourceInfo:
    width: int
    height: int
    frame_count: int | None  # None when the container does not say
    loop: int | None  # GIF semantics: None plays once, 0 loops forever
    kind: str  # "gif", "video" or "image"
    gif_screen: GifScreen | None = None


def canonical_rgba(rgba: np.ndarray) -> np.ndarray:
    """Zero the colour of fully transparent pixels: it is invisible and never coded."""
    out = np.ascontiguousarray(rgba, dtype=np.uint8)
    clear = out[..., 3] == 0
    if clear.any():
        out = out.copy()
        out[clear, :3] = 0
    return out


class Source:
    info: SourceInfo
    nbytes: int = 0  # size of the input as read (a pipe has no size to stat)
    _spool: Path | None = None  # the temporary copy of a piped input, removed on close

    def frames(self, gif: bool = True) -> Iterator[Frame]:
        """gif: also parse each GIF frame as the file stores it (Frame.gif), which only
        palette coding reads (a frame of indices, 32 MiB at the size cap)."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.close()
        finally:
            if self._spool is not None:
                with contextlib.suppress(OSError):
                    self._spool.unlink()


def _clip_duration(ms: float | int | None) -> int:
    if ms is None:
        return 0
    return int(min(max(round(float(ms)), 0), MAX_DURATION_MS))


class PillowSource(Source):
    def __init__(self, path: Path) -> None:
        from PIL import Image

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._im = Image.open(path)
                fmt = self._im.format or ""
                w, h = self._im.size
                check_dimensions(w, h, "image", InputError)
                n = getattr(self._im, "n_frames", 1)
        except InputError:
            raise
        except Exception as e:  # Pillow raises a zoo of types for malformed files
            raise InputError(f"cannot read image: {_reason(e)}") from None
        if n > MAX_FRAMES:
            raise InputError(f"{n} frames exceed the cap of {MAX_FRAMES}")
        loop = self._im.info.get("loop")
        kind = "gif" if fmt == "GIF" else "image"
        self._path = path
        screen = None
        if kind == "gif":
            try:
                with open(path, "rb") as f:
                    screen = parse_screen(f)
            except (GifStructureError, OSError):
                screen = None
        self.info = SourceInfo(w, h, n, None if loop is None else int(loop), kind, screen)

    def _gif_frames(self) -> Iterator[GifFrame | None]:
        """The parsed GIF frames in step with Pillow's; None from the first one the
        parser cannot represent exactly."""
        if self.info.gif_screen is None:
            while True:
                yield None
        try:
            with open(self._path, "rb") as f:
                screen = parse_screen(f)
                for frame, _ in iter_frames(f, screen):
                    yield frame
        except (GifStructureError, OSError, ValueError):
            pass
        while True:
            yield None

    # Frames after the second are converted only where they can differ from the one
    # before (_changed_box), and a GIF read with its parsed frames is drawn by the
    # compositor where it draws as Pillow does (the module's docstring); False reads
    # every frame through Pillow whole (the tests' reference).
    incremental = True
    # how many frames the last reading drew with the compositor (the tests read it)
    composited = 0

    def frames(self, gif: bool = True) -> Iterator[Frame]:
        """gif: with each frame as the GIF file stores it (Frame.gif), for the palette
        coder; other readers need not parse the file."""
        self.composited = 0
        start = 0
        if gif and self.incremental and self.info.gif_screen is not None:
            durations = self._composited_alike()
            yield from self._composited_frames(durations)
            start = len(durations)
        if start < (self.info.frame_count or 1):
            yield from self._pillow_frames(gif, start)

    def _composited_alike(self) -> list[int]:
        """The first pass: Pillow's durations of the leading frames that the compositor
        draws exactly as Pillow does. Pillow's image is closed after it, so that its
        canvas is not held while the frames are coded. Pillow's refusal of a frame is
        raised here, before any frame is handed out (the old single pass handed out
        the frames before it first: the encode failed all the same)."""
        durations: list[int] = []
        pillow = self._pillow_frames(gif=False)
        drawn = self._drawn_by_compositor()
        try:
            for frame in pillow:
                if not same_pixels(next(drawn)[1], frame.rgba):
                    break
                durations.append(frame.duration_ms)
        except (StopIteration, GifStructureError, OSError, ValueError):
            pass  # the parse stopped: Pillow reads from there
        finally:
            drawn.close()
            pillow.close()
            if self._im is not None:
                self._im.close()
                self._im = None
        return durations

    def _composited_frames(self, durations: list[int]) -> Iterator[Frame]:
        """The second pass's frames that the compositor draws (_composited_alike). The
        compositor keeps the frame it handed out, as its canvas: the encoder's exact
        compositor holds that same array (no copy) until the next frame. The frames are
        read-only: one written into would be drawn under the next ones, with no Pillow
        frame left to catch it."""
        drawn = self._drawn_by_compositor()
        try:
            for duration in durations:
                gif, rgba = next(drawn)
                rgba.flags.writeable = False
                self.composited += 1
                yield Frame(rgba, duration, gif)
        except (StopIteration, GifStructureError, OSError, ValueError):
            # the first pass read these frames: the file changed in between
            raise InputError(
                f"cannot read frame {self.composited}: the input changed while it was read"
            ) from None
        finally:
            drawn.close()

    def _drawn_by_compositor(self) -> Iterator[tuple[GifFrame, np.ndarray]]:
        """Each parsed frame of the file, and the compositor's drawing of it."""
        w, h = self.info.width, self.info.height
        with open(self._path, "rb") as f:
            screen = parse_screen(f)
            comp = CompositorState(np.zeros((h, w, 4), np.uint8), background=screen.background)
            for gif, _ in iter_frames(f, screen):
                yield gif, composite(comp, gif, screen.global_palette)

    def _pillow_frames(self, gif: bool, start: int = 0) -> Iterator[Frame]:
        """Pillow's frames from `start` (the frames before it are decoded, not converted)."""
        from PIL import Image

        if self._im is None:
            try:
                self._im = Image.open(self._path)
            except Exception as e:  # opened once already: the file changed meanwhile
                raise InputError(f"cannot read image: {_reason(e)}") from None
        im = self._im
        w, h = self.info.width, self.info.height
        parsed = self._gif_frames() if gif else itertools.repeat(None)
        for _ in range(start):
            next(parsed)
        prev: tuple[np.ndarray, str, tuple[int, int, int, int]] | None = None
        for i in range(start, self.info.frame_count or 1):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    im.seek(i)
                    if im.size != (w, h):
                        raise InputError(
                            f"frame {i} extends outside the {w}x{h} logical screen "
                            f"(canvas would grow to {im.size[0]}x{im.size[1]})"
                        )
                    extent = _frame_extent(im, w, h)
                    box = self._changed_box(i, im.mode, extent, prev)
                    if box is None:
                        prev = None  # not read: its memory can go, but for the caller's
                        rgba = (
                            pillow_rgba(im)
                            if self.incremental
                            else canonical_rgba(np.asarray(im.convert("RGBA")))
                        )
                    else:
                        rgba = _update(prev[0], im, box)
            except InputError:
                raise
            except Exception as e:
                raise InputError(f"cannot decode frame {i}: {_reason(e)}") from None
            # kept only where the next frame's box can use it: a box covers this
            # frame's extent, so beyond half the screen the next one converts whole
            small = extent is not None and 2 * _area(extent) <= w * h
            prev = (rgba, im.mode, extent) if small else None
            out = [Frame(rgba, _clip_duration(im.info.get("duration")), next(parsed))]
            del rgba  # handed out: the generator keeps no reference while suspended
            yield out.pop()

    def _changed_box(self, i, mode, extent, prev) -> tuple[int, int, int, int] | None:
        """Where frame i can differ from frame i-1 as Pillow draws them, or None to
        convert it whole. From the third frame on Pillow keeps an RGB(A) image and
        draws each frame onto the one before: it pastes the previous frame's disposal
        over that frame's extent, then this frame over its own; nothing else changes
        while the mode stays. Converting the whole screen each frame made a one-pixel
        frame on a 4096x4096 screen cost a quarter of a second."""
        if not self.incremental or prev is None or i < 2 or extent is None:
            return None
        if mode != prev[1] or mode not in ("RGB", "RGBA"):
            return None
        (a0, b0, a1, b1), (c0, d0, c1, d1) = prev[2], extent
        box = min(a0, c0), min(b0, d0), max(a1, c1), max(b1, d1)
        h, w = prev[0].shape[:2]
        if 2 * _area(box) > w * h:
            # most of the screen: a whole conversion is cheaper, and the copy of the
            # frame before and a converted crop beside it were two frames more memory
            return None
        return box

    def close(self) -> None:
        if self._im is not None:
            self._im.close()


def _area(box: tuple[int, int, int, int]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def _frame_extent(im, w: int, h: int) -> tuple[int, int, int, int] | None:
    """The current GIF frame's rectangle on the screen, as Pillow drew it (None where
    this Pillow does not say)."""
    ext = getattr(im, "dispose_extent", None)
    if not (isinstance(ext, tuple) and len(ext) == 4):
        return None
    x0, y0, x1, y1 = (int(v) for v in ext)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    return (x0, y0, max(x0, x1), max(y0, y1))


# A Pillow frame is converted this many pixels at a time (pillow_rgba)
CONVERT_PIXELS = 1 << 20


def pillow_rgba(im, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Pillow's frame (or its `box`) as canonical RGBA, a band of rows at a time: a
    whole `convert("RGBA")` held Pillow's converted copy and its bytes beside the
    array (256 MiB at the size cap, on top of the frame Pillow keeps). Every
    conversion to RGBA is pixel by pixel, so the bands are the whole frame's pixels."""
    x0, y0, x1, y1 = box or (0, 0, *im.size)
    h, w = y1 - y0, x1 - x0
    bands = row_bands(h, w, CONVERT_PIXELS)
    if len(bands) == 1:
        region = im if box is None else im.crop(box)
        return canonical_rgba(np.asarray(region.convert("RGBA")))
    out = np.empty((h, w, 4), np.uint8)
    for a, b in bands:
        band = out[a:b]
        band[:] = np.asarray(im.crop((x0, y0 + a, x1, y0 + b)).convert("RGBA"))
        band[band[..., 3] == 0, :3] = 0  # as canonical_rgba
    return out


def _update(before: np.ndarray, im, box: tuple[int, int, int, int]) -> np.ndarray:
    """The frame before, with Pillow's pixels in `box` (a copy: frames handed out are
    never written again)."""
    x0, y0, x1, y1 = box
    rgba = before.copy()
    if x1 > x0 and y1 > y0:
        rgba[y0:y1, x0:x1] = pillow_rgba(im, box)
    return rgba


class VideoSource(Source):
    def __init__(self, path: Path) -> None:
        import av

        try:
            self._container = av.open(str(path))
        except Exception as e:
            raise InputError(f"cannot read media: {_reason(e)}") from None
        if not self._container.streams.video:
            self._container.close()
            raise InputError("no video stream in input")
        self._stream = self._container.streams.video[0]
        ctx = self._stream.codec_context
        w, h = ctx.width, ctx.height
        try:
            check_dimensions(w, h, "video", InputError)
        except InputError:
            self._container.close()
            raise
        n = self._stream.frames or None
        self.info = SourceInfo(w, h, n, None, "video")

    def frames(self, gif: bool = True) -> Iterator[Frame]:
        stream = self._stream
        w, h = self.info.width, self.info.height
        tb = float(stream.time_base) if stream.time_base else 0.0
        rate = stream.average_rate or stream.guessed_rate
        default_ms = 1000.0 / float(rate) if rate else 40.0
        pending: tuple[np.ndarray, float | None] | None = None
        count = 0
        try:
            for frame in self._container.decode(stream):
                fmt = frame.format
                has_alpha = fmt.has_palette or any(c.is_alpha for c in fmt.components)
                arr = frame.to_ndarray(format="rgba" if has_alpha else "rgb24", width=w, height=h)
                if not has_alpha:
                    arr = np.concatenate([arr, np.full((h, w, 1), 255, np.uint8)], axis=2)
                t = frame.pts * tb if frame.pts is not None and tb else None
                if pending is not None:
                    prev_t = pending[1]
                    ms = (t - prev_t) * 1000.0 if (t is not None and prev_t is not None) else None
                    out = [
                        Frame(
                            canonical_rgba(pending[0]),
                            _clip_duration(ms if ms and ms > 0 else default_ms),
                        )
                    ]
                    pending = None  # handed out: not held while the generator waits
                    yield out.pop()
                pending = (arr, t)
                del arr
                count += 1
                if count > MAX_FRAMES:
                    raise InputError(f"more than {MAX_FRAMES} frames")
        except InputError:
            raise
        except Exception as e:
            raise InputError(f"cannot decode video frame {count}: {_reason(e)}") from None
        if pending is not None:
            last, pending = pending[0], None
            out = [Frame(canonical_rgba(last), _clip_duration(default_ms))]
            del last
            yield out.pop()
        elif count == 0:
            raise InputError("no frames in input")

    def close(self) -> None:
        self._container.close()


def _reason(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg[:200]


# A piped input is copied to disk before decoding; this bounds that copy.
MAX_PIPED_BYTES = 1 << 32


def is_stdio(path: str | os.PathLike) -> bool:
    return os.fspath(path) == "-"


def _spool(path: str | Path) -> tuple[Path, int]:
    """Copy standard input or a pipe, read once, into a private temporary file."""
    fd, tmp = tempfile.mkstemp(prefix="fpcodec-input.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, _open_once(path) as f:
            n = 0
            while chunk := f.read(1 << 20):
                n += len(chunk)
                if n > MAX_PIPED_BYTES:
                    raise InputError(f"piped input exceeds {MAX_PIPED_BYTES >> 30} GiB")
                out.write(chunk)
    except OSError as e:
        os.unlink(tmp)
        raise InputError(f"cannot read {_name(path)}: {e.strerror or e}") from None
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(tmp), n


def _open_once(path: str | Path):
    if is_stdio(path):
        return contextlib.nullcontext(sys.stdin.buffer)
    return open(path, "rb")


def _name(path: str | os.PathLike) -> str:
    return "standard input" if is_stdio(path) else os.fspath(path)


def _needs_spool(path: str | Path) -> bool:
    if is_stdio(path):
        return True
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False  # open() below says why


def open_source(path: str | Path) -> Source:
    """Open an image or video by its content (not its extension); `-` is standard input."""
    spool, nbytes = _spool(path) if _needs_spool(path) else (None, 0)
    real = spool if spool is not None else Path(path)
    try:
        try:
            with open(real, "rb") as f:
                head = f.read(16)
                if spool is None:
                    nbytes = os.fstat(f.fileno()).st_size
        except OSError as e:
            raise InputError(f"cannot open {path}: {e.strerror or e}") from None
        if not head:
            raise InputError(f"{_name(path)} is empty")
        is_pillow = head.startswith(PILLOW_SIGNATURES) or (
            head[:4] == b"RIFF" and head[8:12] == b"WEBP"
        )
        src = PillowSource(real) if is_pillow else VideoSource(real)
    except BaseException:
        if spool is not None:
            with contextlib.suppress(OSError):
                spool.unlink()
        raise
    src.nbytes = nbytes
    src._spool = spool
    return src
