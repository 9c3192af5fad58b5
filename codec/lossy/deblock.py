"""In-loop deblocking of a reconstructed frame (both sides; the filtered planes are
the reconstruction and the next frames' reference)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _edge_delta(px, alpha, beta):
    """How far the two pixels at an edge (px = p1 p0 | q0 q1) move towards each other;
    0 where the edge looks like picture rather than blocking. tc = beta."""
    p1, p0, q0, q1 = px[0], px[1], px[2], px[3]
    if abs(p0 - q0) < alpha and abs(p1 - p0) < beta and abs(q1 - q0) < beta:
        d = ((q0 - p0) * 4 + (p1 - q1) + 4) >> 3
        return -beta if d < -beta else beta if d > beta else d
    return 0


@njit(cache=True, inline="always")
def _edge_on(act, mvs, urefs, by0, bx0, by1, bx1):
    """Whether the filter touches the edge between two 4x4 blocks: only where a side
    was coded (intra or levels) or the motion changes (the vector, the reference, the
    second hypothesis), since content copied unchanged was filtered when it was
    coded. mvs holds per unit (vector, second vector), urefs (reference, second
    reference or -1)."""
    if act[by0, bx0] or act[by1, bx1]:
        return True
    u0y, u0x, u1y, u1x = by0 >> 1, bx0 >> 1, by1 >> 1, bx1 >> 1
    same = True
    for k in range(mvs.shape[2]):
        same &= mvs[u0y, u0x, k] == mvs[u1y, u1x, k]
    for k in range(urefs.shape[2]):
        same &= urefs[u0y, u0x, k] == urefs[u1y, u1x, k]
    return not same


@njit(cache=True, nogil=True)
def deblock(recon, steps, act, mvs, urefs):
    """Smoothing across 4x4 block edges (H.264's normal filter, simplified): an edge
    step smaller than alpha between sides flatter than beta is quantisation blocking,
    not a picture edge; its two edge pixels move towards each other by at most tc.
    Vertical edges first, then horizontal, every plane; integers only; only the edges
    _edge_on picks (act: blocks that are intra or carry levels).

    Thresholds follow the plane's step (steps[p, 0] is 4x it in 1/16 units):
    alpha = step, beta = tc = step / 4. Stronger settings (2x) measured worse."""
    _, hp, wp = recon.shape
    nby, nbx = hp // 4, wp // 4
    # which block edges to filter (left and upper edge of each block), decided once
    # for every plane and pixel row along them
    left = np.ones((nby, nbx), np.bool_)
    upper = np.ones((nby, nbx), np.bool_)
    for by in range(nby):
        for bx in range(nbx):
            left[by, bx] = bx > 0 and _edge_on(act, mvs, urefs, by, bx - 1, by, bx)
            upper[by, bx] = by > 0 and _edge_on(act, mvs, urefs, by - 1, bx, by, bx)
    for p in range(3):
        a = (steps[p, 0] + 2) >> 2
        b = (steps[p, 0] + 8) >> 4
        if b <= 0:
            continue
        for y in range(hp):
            for x in range(4, wp, 4):
                if not left[y >> 2, x >> 2]:
                    continue
                d = _edge_delta(recon[p, y, x - 2 : x + 2], a, b)
                recon[p, y, x - 1] += d
                recon[p, y, x] -= d
        for y in range(4, hp, 4):
            for x in range(wp):
                if not upper[y >> 2, x >> 2]:
                    continue
                d = _edge_delta(recon[p, y - 2 : y + 2, x], a, b)
                recon[p, y - 1, x] += d
                recon[p, y, x] -= d
