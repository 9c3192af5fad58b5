"""A streaming GIF writer that reproduces RGBA frames exactly where GIF can.

Each output frame paints only the rectangle that changed since what a viewer
shows, leaves unchanged pixels to the transparent index, and uses disposal 2
("restore to background", i.e. transparent) exactly when the next frame needs
pixels to become transparent. Frames with at most 255 distinct visible colours in
their rectangle (always true for frames that came from a GIF) are written
losslessly, so `Pillow.open(out).convert("RGBA")` gives back the same frames:
same alpha, same colour wherever visible, same durations and loop count. Frames
with more colours are quantised (and counted in `quantised_frames`).

The writer holds one frame back: whether a frame must be disposed depends on the
next one.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

import numpy as np
from numba import njit

from .colour_index import index_colours, nearest_colours
from .heap import release_free_memory
from .limits import row_bands

DISPOSE_NONE = 1
DISPOSE_BACKGROUND = 2
# Painted pixels beyond which a frame's table is chosen from a sample (_quantise).
QUANTISE_WHOLE = 1 << 20


@njit(cache=True, nogil=True)
def _lzw(indices, min_code_size, out):
    """GIF-flavoured LZW of a flat uint8 index array into `out`; returns bytes used."""
    clear = 1 << min_code_size
    eoi = clear + 1
    table = np.full((4096, 256), -1, np.int16)
    used = np.zeros(4096, np.int16)  # rows touched since the last clear, to reset cheaply
    n_used = 0
    next_code = eoi + 1
    code_size = min_code_size + 1
    acc = 0
    nacc = 0
    pos = 0

    # emit clear
    acc |= clear << nacc
    nacc += code_size
    while nacc >= 8:
        out[pos] = acc & 0xFF
        pos += 1
        acc >>= 8
        nacc -= 8
    prefix = np.int64(indices[0])
    for i in range(1, indices.shape[0]):
        k = np.int64(indices[i])
        nxt = table[prefix, k]
        if nxt >= 0:
            prefix = nxt
            continue
        acc |= prefix << nacc
        nacc += code_size
        while nacc >= 8:
            out[pos] = acc & 0xFF
            pos += 1
            acc >>= 8
            nacc -= 8
        if next_code < 4096:
            table[prefix, k] = next_code
            used[n_used] = prefix
            n_used += 1
            if next_code == (1 << code_size) and code_size < 12:
                code_size += 1
            next_code += 1
        else:
            acc |= clear << nacc
            nacc += code_size
            while nacc >= 8:
                out[pos] = acc & 0xFF
                pos += 1
                acc >>= 8
                nacc -= 8
            for j in range(n_used):
                table[used[j], :] = -1
            n_used = 0
            next_code = eoi + 1
            code_size = min_code_size + 1
        prefix = k
    acc |= prefix << nacc
    nacc += code_size
    while nacc >= 8:
        out[pos] = acc & 0xFF
        pos += 1
        acc >>= 8
        nacc -= 8
    acc |= eoi << nacc
    nacc += code_size
    while nacc > 0:
        out[pos] = acc & 0xFF
        pos += 1
        acc >>= 8
        nacc -= 8
    return pos


def lzw_encode(indices: np.ndarray, min_code_size: int) -> bytes:
    flat = np.ascontiguousarray(indices, np.uint8).ravel()
    out = np.zeros(2 * flat.size + 64, np.uint8)
    n = _lzw(flat, min_code_size, out)
    return out[:n].tobytes()


def _sub_blocks(data: bytes) -> bytes:
    parts = [bytes([len(data[i : i + 255])]) + data[i : i + 255] for i in range(0, len(data), 255)]
    return b"".join(parts) + b"\x00"


@njit(cache=True, nogil=True)
def _changed(a, b, out):
    """Per pixel of two canonical RGBA frames (or two rectangles of them): does it
    look different? One pass, in place: the NumPy form took about eight bytes a
    pixel of temporaries."""
    h, w = out.shape
    for y in range(h):
        for x in range(w):
            va = a[y, x, 3] != 0
            if va != (b[y, x, 3] != 0):
                out[y, x] = True
            elif va:
                out[y, x] = (
                    a[y, x, 0] != b[y, x, 0]
                    or a[y, x, 1] != b[y, x, 1]
                    or a[y, x, 2] != b[y, x, 2]
                    or a[y, x, 3] != b[y, x, 3]
                )
            else:
                out[y, x] = False


@njit(cache=True, nogil=True)
def _changed_box(a, b):
    """(x0, y0, x1, y1) bounding the pixels `_changed` marks, x1 = 0 for none: one
    pass and no mask (a one-pixel frame on a large screen made three frame-sized
    masks a frame). The test is _changed's, written out: a shared function called
    per pixel made both passes five times slower."""
    h, w = a.shape[0], a.shape[1]
    x0, y0, x1, y1 = w, h, 0, 0
    for y in range(h):
        for x in range(w):
            va = a[y, x, 3] != 0
            if va != (b[y, x, 3] != 0):
                d = True
            elif va:
                d = (
                    a[y, x, 0] != b[y, x, 0]
                    or a[y, x, 1] != b[y, x, 1]
                    or a[y, x, 2] != b[y, x, 2]
                    or a[y, x, 3] != b[y, x, 3]
                )
            else:
                d = False
            if d:
                x0, x1 = min(x0, x), max(x1, x + 1)
                y0, y1 = min(y0, y), max(y1, y + 1)
    return x0, y0, x1, y1


@njit(cache=True)
def _cleared_box(shown, nxt):
    """The box of pixels visible in `shown` that are clear in the next frame (x1 = 0
    for none): those the frame's disposal must clear."""
    h, w = shown.shape[0], shown.shape[1]
    x0, y0, x1, y1 = w, h, 0, 0
    for y in range(h):
        for x in range(w):
            if shown[y, x, 3] != 0 and nxt[y, x, 3] == 0:
                x0, x1 = min(x0, x), max(x1, x + 1)
                y0, y1 = min(y0, y), max(y1, y + 1)
    return x0, y0, x1, y1


def _box(b: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
    return None if b[2] == 0 else (int(b[0]), int(b[1]), int(b[2]), int(b[3]))


def _union(
    a: tuple[int, int, int, int] | None, b: tuple[int, int, int, int] | None
) -> tuple[int, int, int, int] | None:
    if a is None or b is None:
        return a or b
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


class GifWriter:
    def __init__(
        self, f: BinaryIO, width: int, height: int, loop: int | None, has_alpha: bool
    ) -> None:
        if not (1 <= width <= 65535 and 1 <= height <= 65535):
            raise ValueError("GIF dimensions must be 1..65535")
        self._f = f
        self.width, self.height = width, height
        self.has_alpha = has_alpha
        self._canvas = np.zeros((height, width, 4), np.uint8)  # what a viewer shows now
        self._pending: tuple[np.ndarray, int] | None = None
        self._first = True
        self.quantised_frames = 0
        f.write(b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0))
        if loop is not None:
            f.write(b"!\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", min(loop, 65535)) + b"\x00")

    def add(self, rgba: np.ndarray, duration_ms: int) -> None:
        if self._pending is not None:
            self._emit(*self._pending, rgba)
        self._pending = (rgba, duration_ms)

    def close(self) -> None:
        if self._pending is not None:
            self._emit(*self._pending, None)
            self._pending = None
        self._f.write(b";")

    def _emit(self, target: np.ndarray, duration_ms: int, nxt: np.ndarray | None) -> None:
        release_free_memory(self.width * self.height)  # the decoder's, before the masks
        # The boxes of what changed and of what the next frame clears come from
        # compiled passes without masks; masks are made for the frame's rectangle only.
        cleared = None if nxt is None else _box(_cleared_box(target, nxt))
        if self._first:
            rect = (0, 0, self.width, self.height)
        else:
            rect = _union(_box(_changed_box(self._canvas, target)), cleared) or (0, 0, 1, 1)
        x0, y0, x1, y1 = rect
        region = target[y0:y1, x0:x1]
        vis = region[..., 3] != 0
        delta = np.empty(vis.shape, bool)
        _changed(self._canvas[y0:y1, x0:x1], region, delta)
        delta &= vis
        # The first frame of a clip with transparency must declare a transparent index,
        # or readers (Pillow among them) drop alpha for the whole animation.
        need_transparent_index = not vis.all() or (self._first and self.has_alpha)
        # Two ways to paint: only the changed pixels (the rest left to the transparent
        # index) or every visible pixel of the rectangle. Dithered content often LZW-
        # compresses better painted in full; keep whichever exact option is smaller.
        # Disposal 2 clears to the frame's own transparent index (Pillow, browsers):
        # a frame that must be cleared afterwards declares one.
        dispose = DISPOSE_BACKGROUND if cleared else DISPOSE_NONE
        need_transparent_index |= dispose == DISPOSE_BACKGROUND
        best: tuple[bytes, np.ndarray, bool] | None = None
        for paint, transparent in ((delta, True), (vis, need_transparent_index)):
            img = self._frame_image(region, paint, transparent)
            if img is not None and (best is None or len(img[0]) < len(best[0])):
                best = (img[0], paint, transparent)
        if best is None:
            img = self._frame_image(region, delta, True, quantise=True)
            assert img is not None
            best = (img[0], delta, True)
        data, paint, transparent = best
        delay = min(max(round(duration_ms / 10), 0), 65535)
        f = self._f
        flags = (dispose << 2) | (1 if transparent else 0)
        f.write(b"!\xf9\x04" + struct.pack("<BHB", flags, delay, 0) + b"\x00")
        f.write(b"," + struct.pack("<HHHH", x0, y0, x1 - x0, y1 - y0) + data)
        # What a viewer shows after this frame (and its disposal), in place: the canvas
        # is the writer's own.
        shown = self._canvas
        # copyto with a mask: boolean indexing built index arrays of 16 bytes a pixel
        np.copyto(shown[y0:y1, x0:x1], region, where=paint[..., None])
        if self._first:  # the rectangle is the screen
            np.copyto(shown, 0, where=~vis[..., None])
        if dispose == DISPOSE_BACKGROUND:
            shown[y0:y1, x0:x1] = 0
        self._canvas = shown
        self._first = False

    def _frame_image(
        self, region: np.ndarray, paint: np.ndarray, transparent: bool, quantise: bool = False
    ) -> tuple[bytes] | None:
        """Image descriptor flags, local colour table and LZW data; None if not exact."""
        first = 1 if transparent else 0  # index 0 is "transparent" when the frame has one
        exact = index_colours(region, paint, 256 - first, first)
        if exact is not None:
            palette, indices = exact
        elif not quantise:
            return None
        else:
            palette, indices = self._quantise(region, paint, first)
        bits = max(1, int(np.ceil(np.log2(max(palette.size + first, 2)))))
        table = np.zeros((1 << bits, 3), np.uint8)
        table[first : palette.size + first, 0] = (palette >> 16) & 0xFF
        table[first : palette.size + first, 1] = (palette >> 8) & 0xFF
        table[first : palette.size + first, 2] = palette & 0xFF
        mcs = max(2, bits)
        data = (
            bytes([0x80 | (bits - 1)])
            + table.tobytes()
            + bytes([mcs])
            + _sub_blocks(lzw_encode(indices, mcs))
        )
        return (data,)

    def _quantise(
        self, region: np.ndarray, paint: np.ndarray, first: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(packed 0xRRGGBB table of at most 255 colours, uint8 indices: first + the
        colour's position where painted, 0 elsewhere). Up to QUANTISE_WHOLE painted
        pixels, Pillow's median cut of all of them; beyond, of an even sample of
        them, every pixel then mapped to its nearest table colour (Pillow's mapping
        to a given table goes through a cache of 6 bits a channel: perceptual
        distance 3.8 on a test frame where the whole strip's cut was 0.1-0.3). The
        whole strip, its copies and Pillow's own buffers took 20 bytes a pixel, 640
        MiB at the size cap."""
        from PIL import Image

        self.quantised_frames += 1
        n = int(np.count_nonzero(paint))
        whole = n <= QUANTISE_WHOLE
        if whole:
            cols = region[paint][:, :3]
        else:
            step = -(-n // QUANTISE_WHOLE)
            bands = row_bands(*paint.shape)
            # each band's sample copied out: a view would keep the band's painted
            # pixels alive until the concatenation (144 MiB at the size cap)
            cols = np.concatenate([region[a:b][paint[a:b]][::step, :3].copy() for a, b in bands])
        strip = Image.fromarray(cols[None, :, :], "RGB").quantize(255, dither=Image.Dither.NONE)
        pal = np.array(strip.getpalette()[: 255 * 3], np.uint32).reshape(-1, 3)
        packed = (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]
        indices = np.zeros(paint.shape, np.uint8)
        if whole:
            indices[paint] = np.asarray(strip)[0] + np.uint8(first)
        else:
            nearest_colours(region, paint, pal.astype(np.int64), first, indices)
        return packed, indices
