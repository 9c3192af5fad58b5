"""A streaming GIF parser that keeps what a GIF really contains.

For each frame it yields the rectangle, palette, transparency index, disposal,
interlace flag and the LZW *code stream* (as phrases), not just pixels: many GIFs
on the web were written by "lossy LZW" encoders that pick pixels to extend
dictionary strings, so the phrase structure is exactly what the palette coder
models. Everything is bounds-checked; anything unusual raises GifStructureError and
the encoder falls back to coding composited RGBA frames instead.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from numba import njit

from .limits import MAX_PIXELS


class GifStructureError(Exception):
    """The file is not a GIF this parser can represent exactly (fall back to RGBA)."""


@dataclass(frozen=True)
class GifScreen:
    width: int
    height: int
    global_palette: np.ndarray | None  # (n, 3) uint8
    background: int
    loop: int | None


@dataclass
class GifFrame:
    x: int
    y: int
    w: int
    h: int
    local_palette: np.ndarray | None  # (n, 3) uint8, n a power of two
    transparency: int | None
    disposal: int  # raw GCE disposal bits (0..7); 0 also when there is no GCE
    has_gce: bool
    delay_cs: int
    interlace: bool
    min_code_size: int
    # Phrase stream: codes[i] is a dictionary code (or CLEAR); lengths of phrases are
    # implied by the dictionary. `indices` is the pixel stream in file order.
    codes: np.ndarray  # int32, CLEAR marked as -1
    indices: np.ndarray  # uint8, w*h (file order: interlaced rows if interlace)

    @property
    def palette(self) -> np.ndarray | None:
        return self.local_palette


def interlace_rows(h: int) -> np.ndarray:
    """Row order of an interlaced GIF frame (file order -> image row)."""
    return np.array([*range(0, h, 8), *range(4, h, 8), *range(2, h, 4), *range(1, h, 2)], np.int64)


@njit(cache=True)
def _lzw_decode(data, mcs, npix, codes_out, idx_out):
    """Decode GIF LZW; returns (n_codes, n_pixels, status). status 0 ok, 1 bad code,
    2 ran out of data before npix pixels, 3 more pixels than npix (data past the
    frame's end), 4 no end-of-information code."""
    clear = 1 << mcs
    eoi = clear + 1
    prefix = np.zeros(4096, np.int32)
    suffix = np.zeros(4096, np.int32)
    first = np.zeros(4096, np.int32)
    length = np.zeros(4096, np.int32)
    for i in range(clear):
        prefix[i] = -1
        suffix[i] = i
        first[i] = i
        length[i] = 1
    size = mcs + 1
    nxt = eoi + 1
    prev = -1
    bits = 0
    nbits = 0
    pos = 0
    nc = 0
    npx = 0
    stack = np.zeros(4096, np.int32)
    while True:
        while nbits < size:
            if pos >= data.shape[0]:
                return nc, npx, 2 if npx < npix else 4
            bits |= np.int64(data[pos]) << nbits
            nbits += 8
            pos += 1
        code = bits & ((1 << size) - 1)
        bits >>= size
        nbits -= size
        if code == clear:
            codes_out[nc] = -1
            nc += 1
            size = mcs + 1
            nxt = eoi + 1
            prev = -1
            continue
        if code == eoi:
            return nc, npx, 0 if npx == npix else (2 if npx < npix else 3)
        if code > nxt or (code == nxt and prev < 0):
            return nc, npx, 1
        if code == nxt:
            # KwKwK: the phrase is prev + first(prev)
            cur_first = first[prev]
        else:
            cur_first = first[code]
        if prev >= 0 and nxt < 4096:
            prefix[nxt] = prev
            suffix[nxt] = cur_first
            first[nxt] = first[prev]
            length[nxt] = length[prev] + 1
            nxt += 1
            if nxt == (1 << size) and size < 12:
                size += 1
        # emit phrase
        c = code
        n = length[c]
        if npx + n > npix:
            return nc, npx, 3
        k = n - 1
        while c >= 0:
            stack[k] = suffix[c]
            c = prefix[c]
            k -= 1
        for k in range(n):
            idx_out[npx + k] = stack[k]
        npx += n
        codes_out[nc] = code
        nc += 1
        if nc >= codes_out.shape[0]:
            return nc, npx, 1
        prev = code


def _read(f: BinaryIO, n: int) -> bytes:
    b = f.read(n)
    if len(b) != n:
        raise GifStructureError("truncated")
    return b


def _sub_blocks(f: BinaryIO) -> bytes:
    out = bytearray()
    while True:
        n = _read(f, 1)[0]
        if n == 0:
            return bytes(out)
        out += _read(f, n)


def parse_screen(f: BinaryIO) -> GifScreen:
    head = _read(f, 13)
    if head[:6] not in (b"GIF87a", b"GIF89a"):
        raise GifStructureError("not a GIF")
    w, h, flags, bg, _ = struct.unpack("<HHBBB", head[6:])
    pal = None
    if flags & 0x80:
        n = 2 << (flags & 7)
        pal = np.frombuffer(_read(f, 3 * n), np.uint8).reshape(n, 3).copy()
    return GifScreen(w, h, pal, bg, None)


def iter_frames(f: BinaryIO, screen: GifScreen) -> Iterator[tuple[GifFrame, int | None]]:
    """Yields (frame, loop-if-seen-so-far). Application extensions may precede frames."""
    loop: int | None = None
    gce: tuple[int, int, int | None] | None = None
    while True:
        b = f.read(1)
        if not b or b == b";":
            return
        if b == b"!":
            label = _read(f, 1)[0]
            block = _sub_blocks(f) if label not in (0xF9, 0xFF) else None
            if label == 0xF9:
                n = _read(f, 1)[0]
                data = _read(f, n)
                rest = _sub_blocks(f)
                if n < 4:
                    raise GifStructureError("short graphic control extension")
                del rest
                flags, delay, tidx = struct.unpack("<BHB", data[:4])
                gce = (flags, delay, tidx if flags & 1 else None)
            elif label == 0xFF:
                n = _read(f, 1)[0]
                app = _read(f, n)
                data = _sub_blocks(f)
                if (
                    app.startswith(b"NETSCAPE2.0")
                    and len(data) >= 3
                    and data[0] == 1
                    and loop is None
                ):
                    loop = struct.unpack("<H", data[1:3])[0]
            del block
            continue
        if b != b",":
            continue  # stray bytes between blocks: skipped, as Pillow does
        x, y, w, h, flags = struct.unpack("<HHHHB", _read(f, 9))
        if w == 0 or h == 0 or x + w > screen.width or y + h > screen.height:
            raise GifStructureError("frame outside the logical screen")
        if w * h > MAX_PIXELS:
            raise GifStructureError("frame too large")
        lpal = None
        if flags & 0x80:
            n = 2 << (flags & 7)
            lpal = np.frombuffer(_read(f, 3 * n), np.uint8).reshape(n, 3).copy()
        mcs = _read(f, 1)[0]
        if not 2 <= mcs <= 8:
            raise GifStructureError("unsupported LZW code size")
        data = np.frombuffer(_sub_blocks(f), np.uint8)
        npix = w * h
        # Every code takes at least mcs + 1 bits: the data bounds the code count (a
        # bound from the pixel count let a 16 KB LZW bomb allocate 4 bytes a pixel).
        codes = np.zeros(8 * data.shape[0] // (mcs + 1) + 2, np.int32)
        idx = np.zeros(npix, np.uint8)
        nc, npx, status = _lzw_decode(data, mcs, npix, codes, idx)
        if status not in (0, 4) or npx != npix:
            raise GifStructureError("LZW data does not fill the frame exactly")
        gflags, delay, tidx = gce if gce is not None else (0, 0, None)
        frame = GifFrame(
            x,
            y,
            w,
            h,
            lpal,
            tidx,
            (gflags >> 2) & 7,
            gce is not None,
            delay,
            bool(flags & 0x40),
            mcs,
            codes[:nc].copy(),
            idx,
        )
        gce = None
        yield frame, loop
