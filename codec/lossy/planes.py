"""RGB frames to the coder's padded YCoCg-R planes and back, as compiled loops.

The same integer lifting as codec/transform.py's ycocg_forward / ycocg_inverse, one
pass over the pixels with the edge padding (repeat the last row and column) folded
in: done in NumPy through pad, stack, moveaxis and casts, the two conversions were a
sixth of a lossy decode's time.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def rgb_to_planes(rgb, hp, wp):
    """(H, W, 3) integers -> (3, hp, wp) int16 [Y, Co, Cg], edges repeated to hp x wp.

    int16 holds every value (Y 0..255, Co and Cg -255..255); int64 planes made three
    frame-sized arrays of the lossy coder take 2.4 GB at the size cap."""
    out = np.empty((3, hp, wp), np.int16)
    rgb_into_planes(rgb, out)
    return out


@njit(cache=True, nogil=True)
def rgb_into_planes(rgb, out):
    """rgb_to_planes into a given (3, hp, wp) array (the decoder's reference slot)."""
    h, w = rgb.shape[0], rgb.shape[1]
    hp, wp = out.shape[1], out.shape[2]
    for y in range(hp):
        sy = y if y < h else h - 1
        for x in range(wp):
            sx = x if x < w else w - 1
            r = np.int64(rgb[sy, sx, 0])
            g = np.int64(rgb[sy, sx, 1])
            b = np.int64(rgb[sy, sx, 2])
            co = r - b
            t = b + (co >> 1)
            cg = g - t
            out[0, y, x] = t + (cg >> 1)
            out[1, y, x] = co
            out[2, y, x] = cg


def planes_to_rgb(planes, h, w):
    """(3, Hp, Wp) [Y, Co, Cg] integers -> (h, w, 3) uint8 RGB, clipped to 0..255."""
    return planes_into_rgb(planes, np.empty((h, w, 3), np.uint8))


@njit(cache=True, nogil=True)
def planes_into_rgb(planes, out):
    """planes_to_rgb into a given (h, w, 3) array (the colour of an RGBA frame, say)."""
    h, w = out.shape[0], out.shape[1]
    for y in range(h):
        for x in range(w):
            yy = np.int64(planes[0, y, x])
            co = np.int64(planes[1, y, x])
            cg = np.int64(planes[2, y, x])
            t = yy - (cg >> 1)
            g = cg + t
            b = t - (co >> 1)
            r = b + co
            out[y, x, 0] = 0 if r < 0 else (255 if r > 255 else r)
            out[y, x, 1] = 0 if g < 0 else (255 if g > 255 else g)
            out[y, x, 2] = 0 if b < 0 else (255 if b > 255 else b)
    return out
