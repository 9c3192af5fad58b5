"""Index the colours of an RGB(A) image: the sorted table of its distinct colours and
each pixel's position in it, in one pass over the image in place.

The GIF writer and the palette keyframe canvas both need this for whole frames; done
with numpy (packing to int64, np.unique with its inverse) a frame at the size cap
took about 1.5 GB of temporaries. Here it takes the uint8 index image only, and stops
as soon as the image has more colours than a table may hold. `nearest_colours` maps
pixels to a given table instead (the GIF writer's quantised large frames).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def packed_at(img, y, x):
    """The pixel's colour as 0xRRGGBB."""
    return (np.int64(img[y, x, 0]) << 16) | (np.int64(img[y, x, 1]) << 8) | img[y, x, 2]


@njit(cache=True, inline="always")
def hash_slot(keys, c):
    """Slot of colour c in an open-addressing table of packed colours (-1: empty,
    power-of-two size): its own slot, or the empty one where it would go."""
    size = keys.shape[0]
    hh = (c * 2654435761) & (size - 1)
    while keys[hh] >= 0 and keys[hh] != c:
        hh = (hh + 1) & (size - 1)
    return hh


@njit(cache=True, nogil=True)
def _index_colours(img, mask, limit, offset, out):
    """Writes offset + sorted position of each masked pixel's colour into out (0
    elsewhere); returns the sorted colours, or an empty array past `limit` colours."""
    size = 1024  # open addressing, at most 256 keys: load stays below a quarter
    keys = np.full(size, -1, np.int64)
    vals = np.zeros(size, np.int64)
    found = np.empty(limit, np.int64)
    n = 0
    h, w = mask.shape
    for y in range(h):
        for x in range(w):
            if not mask[y, x]:
                out[y, x] = 0
                continue
            c = packed_at(img, y, x)
            hh = hash_slot(keys, c)
            if keys[hh] < 0:
                if n == limit:
                    return np.empty(0, np.int64)
                keys[hh] = c
                vals[hh] = n
                found[n] = c
                n += 1
            out[y, x] = vals[hh]
    order = np.argsort(found[:n])
    position = np.empty(n, np.int64)
    for i in range(n):
        position[order[i]] = i
    for y in range(h):
        for x in range(w):
            if mask[y, x]:
                out[y, x] = offset + position[out[y, x]]
    return found[:n][order]


@njit(cache=True)
def nearest_colours(img, mask, table, offset, out):
    """out[y, x] = offset + the index of the table colour (n, 3) nearest to pixel
    (y, x) in squared RGB distance (the lowest index on a tie), where masked. Each
    distinct colour is searched once while a memo of them has room."""
    keys = np.full(1 << 16, -1, np.int64)
    vals = np.zeros(1 << 16, np.uint8)
    stored = 0
    h, w = mask.shape
    for y in range(h):
        for x in range(w):
            if not mask[y, x]:
                continue
            c = packed_at(img, y, x)
            hh = hash_slot(keys, c)
            if keys[hh] == c:
                out[y, x] = vals[hh]
                continue
            r, g, b = c >> 16, (c >> 8) & 0xFF, c & 0xFF
            best, best_d = 0, np.int64(1) << 62
            for i in range(table.shape[0]):
                dr, dg, db = r - table[i, 0], g - table[i, 1], b - table[i, 2]
                d = dr * dr + dg * dg + db * db
                if d < best_d:
                    best, best_d = i, d
            out[y, x] = offset + best
            if stored < keys.shape[0] // 2:  # half full at most: probes stay short
                keys[hh] = c
                vals[hh] = offset + best
                stored += 1


def index_colours(
    img: np.ndarray, mask: np.ndarray, limit: int, offset: int = 0
) -> tuple[np.ndarray, np.ndarray] | None:
    """(sorted packed 0xRRGGBB colours, uint8 indices) of the pixels under `mask`;
    indices are offset + position in the table and 0 off the mask. None when the
    masked pixels hold more than `limit` colours."""
    if limit < 0 or limit + offset > 256:
        raise ValueError("a uint8 index image holds at most 256 positions")
    out = np.empty(mask.shape, np.uint8)
    colours = _index_colours(img, mask, limit, offset, out)
    if colours.size == 0 and mask.any():
        return None
    return colours, out
