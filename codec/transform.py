"""Exact integer transforms: YCoCg-R colour and a reversible 4x4 DCT.

Both are built from lifting steps (x += f(y) with f an integer function), so the
inverse undoes the forward exactly for every integer input, on any machine:
`inverse(forward(x)) == x`. Quantisation is the only loss in the lossy coder.

The 4-point transform follows the DCT-II butterfly: reversible sum/difference
pairs split even and odd halves, the even half takes another sum/difference, the
odd half is rotated by pi/8 with three dyadic lifting steps (tan(pi/16) ~ 13/64,
sin(pi/8) ~ 49/128). Relative to the orthonormal DCT its outputs are scaled by
[1/2, sqrt 2, 1, sqrt 2]; the quantiser divides those scales back out
(SCALE_4 / block_scales).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

SCALE_4 = np.array([0.5, math.sqrt(2.0), 1.0, math.sqrt(2.0)])
ZIGZAG_4 = np.array([0, 1, 4, 8, 5, 2, 3, 6, 9, 12, 13, 10, 7, 11, 14, 15], np.int64)


def block_scales() -> np.ndarray:
    """(16,) gain of each 4x4 coefficient relative to an orthonormal 2D DCT (raster order)."""
    return np.outer(SCALE_4, SCALE_4).ravel()


# ------------------------------------------------------------------ colour


def ycocg_forward(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) integers -> (..., 3) [Y, Co, Cg] integers (YCoCg-R lifting)."""
    r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))
    co = r - b
    t = b + (co >> 1)
    cg = g - t
    y = t + (cg >> 1)
    return np.stack([y, co, cg], -1)


def ycocg_inverse(ycc: np.ndarray) -> np.ndarray:
    y, co, cg = (ycc[..., i].astype(np.int32) for i in range(3))
    t = y - (cg >> 1)
    g = cg + t
    b = t - (co >> 1)
    r = b + co
    return np.stack([r, g, b], -1)


# ------------------------------------------------------------------ 4x4 DCT


@njit(cache=True, inline="always")
def _fwd4(x0, x1, x2, x3):
    d0 = x0 - x3
    s0 = x3 + (d0 >> 1)
    d1 = x1 - x2
    s1 = x2 + (d1 >> 1)
    e1 = s0 - s1
    e0 = s1 + (e1 >> 1)
    # rotate (d0, d1) by -pi/8
    d0 = d0 + ((13 * d1 + 32) >> 6)
    d1 = d1 - ((49 * d0 + 64) >> 7)
    d0 = d0 + ((13 * d1 + 32) >> 6)
    return e0, d0, e1, -d1


@njit(cache=True, inline="always")
def _inv4(c0, c1, c2, c3):
    d0 = c1
    d1 = -c3
    d0 = d0 - ((13 * d1 + 32) >> 6)
    d1 = d1 + ((49 * d0 + 64) >> 7)
    d0 = d0 - ((13 * d1 + 32) >> 6)
    e0 = c0
    e1 = c2
    s1 = e0 - (e1 >> 1)
    s0 = e1 + s1
    x2 = s1 - (d1 >> 1)
    x1 = d1 + x2
    x3 = s0 - (d0 >> 1)
    x0 = d0 + x3
    return x0, x1, x2, x3


@njit(cache=True)
def fdct4x4(blk):
    """In place on a (4, 4) int64 block: rows, then columns."""
    for i in range(4):
        a, b, c, d = _fwd4(blk[i, 0], blk[i, 1], blk[i, 2], blk[i, 3])
        blk[i, 0], blk[i, 1], blk[i, 2], blk[i, 3] = a, b, c, d
    for j in range(4):
        a, b, c, d = _fwd4(blk[0, j], blk[1, j], blk[2, j], blk[3, j])
        blk[0, j], blk[1, j], blk[2, j], blk[3, j] = a, b, c, d


@njit(cache=True)
def idct4x4(blk):
    """Exact inverse of fdct4x4, in place."""
    for j in range(4):
        a, b, c, d = _inv4(blk[0, j], blk[1, j], blk[2, j], blk[3, j])
        blk[0, j], blk[1, j], blk[2, j], blk[3, j] = a, b, c, d
    for i in range(4):
        a, b, c, d = _inv4(blk[i, 0], blk[i, 1], blk[i, 2], blk[i, 3])
        blk[i, 0], blk[i, 1], blk[i, 2], blk[i, 3] = a, b, c, d
