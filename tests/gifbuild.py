"""Byte-level GIF construction for tests: every disposal, local palettes, interlace.

Pillow's writer optimises and normalises; these tests need files with exactly the
structure they name, so they are assembled here block by block.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from fpcodec.codec.gifwriter import lzw_encode


@dataclass
class GifFrame:
    indices: np.ndarray  # (h, w) uint8
    x: int = 0
    y: int = 0
    palette: np.ndarray | None = None  # local colour table (n, 3), n a power of two
    disposal: int = 1
    transparency: int | None = None
    delay_cs: int = 5
    interlace: bool = False


def _bits(n: int) -> int:
    return max(1, int(np.ceil(np.log2(max(n, 2)))))


def _table(pal: np.ndarray) -> tuple[bytes, int]:
    bits = _bits(len(pal))
    t = np.zeros((1 << bits, 3), np.uint8)
    t[: len(pal)] = pal
    return t.tobytes(), bits


def _interlace_order(h: int) -> list[int]:
    return [*range(0, h, 8), *range(4, h, 8), *range(2, h, 4), *range(1, h, 2)]


def build_gif(
    width: int,
    height: int,
    frames: list[GifFrame],
    global_palette: np.ndarray | None = None,
    loop: int | None = 0,
    background: int = 0,
) -> bytes:
    out = bytearray(b"GIF89a")
    flags = 0
    gtab = b""
    if global_palette is not None:
        gtab, bits = _table(global_palette)
        flags = 0x80 | (bits - 1)
    out += struct.pack("<HHBBB", width, height, flags, background, 0)
    out += gtab
    if loop is not None:
        out += b"!\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", loop) + b"\x00"
    for f in frames:
        gflags = (f.disposal << 2) | (1 if f.transparency is not None else 0)
        out += b"!\xf9\x04" + struct.pack("<BHB", gflags, f.delay_cs, f.transparency or 0) + b"\x00"
        h, w = f.indices.shape
        iflags = 0x40 if f.interlace else 0
        ltab = b""
        pal = f.palette if f.palette is not None else global_palette
        if f.palette is not None:
            ltab, bits = _table(f.palette)
            iflags |= 0x80 | (bits - 1)
        out += b"," + struct.pack("<HHHHB", f.x, f.y, w, h, iflags) + ltab
        rows = f.indices[_interlace_order(h)] if f.interlace else f.indices
        mcs = max(2, _bits(len(pal)))
        data = lzw_encode(rows, mcs)
        out += bytes([mcs])
        for i in range(0, len(data), 255):
            out += bytes([len(data[i : i + 255])]) + data[i : i + 255]
        out += b"\x00"
    out += b";"
    return bytes(out)
