"""Motion vectors and motion-compensated prediction, the same on both sides.

Vectors are in half-pel units. A unit's vector is coded as its difference from
the vector predicted from its neighbours (`mv_pred`); a second hypothesis's vector
as its difference from the first vector scaled to its reference's distance
(`scale_mv`). Half-pel samples are the rounded mean of their two or four integer
neighbours, in integers, so both sides compute the same block.
"""

from __future__ import annotations

from numba import njit


@njit(cache=True, inline="always")
def clamp(v, hi):
    return 0 if v < 0 else hi if v > hi else v


@njit(cache=True)
def mc_block(ref, p, y0, x0, mvy, mvx, n, out):
    """n x n block of plane p at (y0, x0) displaced by a half-pel vector, edges repeated."""
    _, hp, wp = ref.shape
    iy, fy = mvy >> 1, mvy & 1
    ix, fx = mvx >> 1, mvx & 1
    ty, tx = y0 + iy, x0 + ix
    if ty >= 0 and tx >= 0 and ty + n - 1 + fy < hp and tx + n - 1 + fx < wp:
        # inside the frame, no sample is repeated: the same means without the clamps,
        # and at whole-pel positions the mean of four equal samples is the sample
        # (most of a decode's blocks; the decoder's prediction took 40% of its time)
        if fy == 0 and fx == 0:
            for i in range(n):
                for j in range(n):
                    out[i, j] = ref[p, ty + i, tx + j]
        elif fy == 0:
            for i in range(n):
                for j in range(n):
                    out[i, j] = (ref[p, ty + i, tx + j] + ref[p, ty + i, tx + j + 1] + 1) >> 1
        elif fx == 0:
            for i in range(n):
                for j in range(n):
                    out[i, j] = (ref[p, ty + i, tx + j] + ref[p, ty + i + 1, tx + j] + 1) >> 1
        else:
            for i in range(n):
                for j in range(n):
                    a = ref[p, ty + i, tx + j] + ref[p, ty + i, tx + j + 1]
                    b = ref[p, ty + i + 1, tx + j] + ref[p, ty + i + 1, tx + j + 1]
                    out[i, j] = (a + b + 2) >> 2
        return
    for i in range(n):
        ya = clamp(y0 + i + iy, hp - 1)
        yb = clamp(y0 + i + iy + fy, hp - 1)
        for j in range(n):
            xa = clamp(x0 + j + ix, wp - 1)
            xb = clamp(x0 + j + ix + fx, wp - 1)
            out[i, j] = (ref[p, ya, xa] + ref[p, ya, xb] + ref[p, yb, xa] + ref[p, yb, xb] + 2) >> 2


@njit(cache=True)
def mc_pred(ring, order, p, y0, x0, r0, m0y, m0x, r1, m1y, m1x, pb, pb2):
    """4x4 prediction of plane p at (y0, x0): the reference r0 at its vector, averaged
    with rounding with the second hypothesis (r1 >= 0) when there is one. Into pb;
    pb2 is scratch. Both sides and the encoder's trials predict with it."""
    mc_block(ring[order[r0]], p, y0, x0, m0y, m0x, 4, pb)
    if r1 >= 0:
        mc_block(ring[order[r1]], p, y0, x0, m1y, m1x, 4, pb2)
        for i in range(4):
            for j in range(4):
                pb[i, j] = (pb[i, j] + pb2[i, j] + 1) >> 1


@njit(cache=True, inline="always")
def _median3(a, b, c):
    return max(min(a, b), min(max(a, b), c))


@njit(cache=True)
def mv_pred(mvs, uy, ux, nux):
    """Median of the left, upper and upper-right units' vectors (H.264's rule)."""
    if uy == 0:
        if ux == 0:
            return 0, 0
        return mvs[uy, ux - 1, 0], mvs[uy, ux - 1, 1]
    cx = ux + 1 if ux + 1 < nux else ux - 1
    a0, a1 = (mvs[uy, ux - 1, 0], mvs[uy, ux - 1, 1]) if ux > 0 else (0, 0)
    c0, c1 = (mvs[uy - 1, cx, 0], mvs[uy - 1, cx, 1]) if cx >= 0 else (0, 0)
    return _median3(a0, mvs[uy - 1, ux, 0], c0), _median3(a1, mvs[uy - 1, ux, 1], c1)


@njit(cache=True, inline="always")
def scale_mv(v, d1, d0):
    """A vector into a frame d0 frames back, scaled to one d1 frames back (constant
    motion), rounded half away from zero in integers."""
    n = v * d1
    return (n + d0 // 2) // d0 if n >= 0 else -((-n + d0 // 2) // d0)
