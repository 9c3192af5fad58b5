"""Encoder only: motion estimation. For every 8x8 unit of a predicted frame, the best
vector into the predictor's frame, into the older references, and the best second
hypothesis to average in -- all before the frame's coding pass, in parallel.

Costs are the SAD of all three planes, each weighted as the perceptual distance
weighs it relative to Y (luma alone: 3% more bytes per clip at equal distance; GIFs
move colours that luma does not see), plus lambda times the vector's bits. Nothing
here is part of the format: the decoder reads whatever vectors the encoder chose.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .motion_comp import clamp, mc_block, mv_pred, scale_mv
from .presets import P_BI_RANGE, P_BI_REFS, P_OLD_REFS, P_RANGE
from .transform_quant import PLANE_STEP_C, bitlen

# numba's threading layer for the parallel search: workqueue (codec/numbastart.py)

SEARCH_MAX = 64  # the encoder never proposes vectors longer than this
PREPASS_FIELDS = 9  # per unit, what _search_unit writes
REF_PENALTY = 6  # an older reference must win by this many lambda bits
REF_RANGE = 2  # the older references' integer search range
# how far and in how many references to search: presets.py (--speed)


@njit(cache=True)
def mvd_bits(d):
    """Estimated bits of one vector difference component."""
    return 1 if d == 0 else 2 + 2 * bitlen(abs(d))


@njit(cache=True)
def _sad_int(tgt, ref, y0, x0, dy, dx, limit):
    """Weighted SAD (as colour_cost) of the 8x8 unit against the reference at an
    integer offset, stopping once it reaches limit."""
    _, hp, wp = ref.shape
    s = 0.0
    inside = y0 + dy >= 0 and x0 + dx >= 0 and y0 + dy + 8 <= hp and x0 + dx + 8 <= wp
    for p in range(3):
        w = 1.0 / PLANE_STEP_C[p]
        for i in range(8):
            t = 0
            for j in range(8):
                if inside:
                    r = ref[p, y0 + dy + i, x0 + dx + j]
                else:
                    r = ref[p, clamp(y0 + dy + i, hp - 1), clamp(x0 + dx + j, wp - 1)]
                t += abs(tgt[p, y0 + i, x0 + j] - r)
            s += w * t
            if s >= limit:
                return s
    return s


@njit(cache=True)
def colour_cost(tgt, ref, y0, x0, mvy, mvx, blk):
    """SAD of the 8x8 unit at a fractional vector over all planes, each weighted as the
    perceptual distance weighs it relative to Y (a distance, not a square: sqrt)."""
    s = 0.0
    for p in range(3):
        mc_block(ref, p, y0, x0, mvy, mvx, 8, blk)
        t = 0
        for i in range(8):
            for j in range(8):
                t += abs(tgt[p, y0 + i, x0 + j] - blk[i, j])
        s += t / PLANE_STEP_C[p]
    return s


@njit(cache=True)
def _search(tgt, ref, y0, x0, pmy, pmx, cands, lam_sad, blk, radius):
    """Motion search for one 8x8 unit: best of the candidate vectors, a full integer
    search +-radius around it, then half-pel refinement, vector bits counted from
    (pmy, pmx). Returns the vector and its cost."""
    best = 1e30
    by, bx = 0, 0
    for k in range(cands.shape[0]):
        cy, cx = cands[k, 0] >> 1, cands[k, 1] >> 1
        if abs(cy) > SEARCH_MAX or abs(cx) > SEARCH_MAX:
            continue
        bits = mvd_bits(2 * cy - pmy) + mvd_bits(2 * cx - pmx)
        c = _sad_int(tgt, ref, y0, x0, cy, cx, best) + lam_sad * bits
        if c < best:
            best, by, bx = c, cy, cx
    cy0, cx0 = by, bx
    for dy in range(cy0 - radius, cy0 + radius + 1):
        for dx in range(cx0 - radius, cx0 + radius + 1):
            if abs(dy) > SEARCH_MAX or abs(dx) > SEARCH_MAX:
                continue
            bits = mvd_bits(2 * dy - pmy) + mvd_bits(2 * dx - pmx)
            c = lam_sad * bits
            if c >= best:
                continue
            c += _sad_int(tgt, ref, y0, x0, dy, dx, best - c)
            if c < best:
                best, by, bx = c, dy, dx
    hy, hx = by << 1, bx << 1
    best = colour_cost(tgt, ref, y0, x0, hy, hx, blk) + lam_sad * (
        mvd_bits(hy - pmy) + mvd_bits(hx - pmx)
    )
    cy0, cx0 = hy, hx
    for dy in range(-1, 2):
        for dx in range(-1, 2):
            if dy == 0 and dx == 0:
                continue
            my, mx = cy0 + dy, cx0 + dx
            c = lam_sad * (mvd_bits(my - pmy) + mvd_bits(mx - pmx))
            c += colour_cost(tgt, ref, y0, x0, my, mx, blk)
            if c < best:
                best, hy, hx = c, my, mx
    return hy, hx, best


@njit(cache=True)
def _bi_cost(tgt, ref, y0, x0, p0, my, mx, blk):
    """SAD of the 8x8 unit predicted by the mean of p0 (3, 8, 8) and the reference at a
    vector, weighted over planes as colour_cost."""
    s = 0.0
    for p in range(3):
        mc_block(ref, p, y0, x0, my, mx, 8, blk)
        t = 0
        for i in range(8):
            for j in range(8):
                t += abs(tgt[p, y0 + i, x0 + j] - ((p0[p, i, j] + blk[i, j] + 1) >> 1))
        s += t / PLANE_STEP_C[p]
    return s


@njit(cache=True)
def _bi_search(tgt, ref, y0, x0, p0, cy, cx, oy, ox, lam_sad, blk, t8, radius):
    """One vector of a bi-predicted unit, given its other hypothesis p0: an integer
    search +-radius around (cy, cx) (half-pel units) on 2 * target - p0, then half-pel
    refinement on the real mean, vector bits counted from (oy, ox). Returns the vector
    and its colour cost with lambda * difference bits."""
    _, hp, wp = ref.shape
    for p in range(3):
        for i in range(8):
            for j in range(8):
                t8[p, i, j] = 2 * tgt[p, y0 + i, x0 + j] - p0[p, i, j]
    by, bx = cy >> 1, cx >> 1
    best = 1e30
    iy0, ix0 = by, bx
    for dy in range(iy0 - radius, iy0 + radius + 1):
        for dx in range(ix0 - radius, ix0 + radius + 1):
            c = lam_sad * (mvd_bits(2 * dy - oy) + mvd_bits(2 * dx - ox))
            for p in range(3):
                w = 0.5 / PLANE_STEP_C[p]
                t = 0
                for i in range(8):
                    yy = clamp(y0 + dy + i, hp - 1)
                    for j in range(8):
                        t += abs(t8[p, i, j] - ref[p, yy, clamp(x0 + dx + j, wp - 1)])
                c += w * t
                if c >= best:
                    break
            if c < best:
                best, by, bx = c, dy, dx
    hy, hx = by << 1, bx << 1
    best = _bi_cost(tgt, ref, y0, x0, p0, hy, hx, blk) + lam_sad * (
        mvd_bits(hy - oy) + mvd_bits(hx - ox)
    )
    sy, sx = hy, hx
    for dy in range(-1, 2):
        for dx in range(-1, 2):
            if dy == 0 and dx == 0:
                continue
            my, mx = sy + dy, sx + dx
            c = lam_sad * (mvd_bits(my - oy) + mvd_bits(mx - ox))
            c += _bi_cost(tgt, ref, y0, x0, p0, my, mx, blk)
            if c < best:
                best, hy, hx = c, my, mx
    return hy, hx, best


@njit(cache=True)
def _old_ref_shortlist(tgt, ring, order, y0, x0, cands, tries):
    """The `tries` (>= 1) older references (>= 1) whose best integer candidate vector
    comes closest, cheapest first; 0 marks an empty place. Searching every one took
    most of the encoding time."""
    nref = order.shape[0]
    tried = np.zeros(tries, np.int64)
    tried_cost = np.full(tries, 1e30)
    for r in range(1, nref):
        ref = ring[order[r]]
        c = 1e30
        for k in range(cands.shape[0]):
            cy, cx = cands[k, 0] >> 1, cands[k, 1] >> 1
            if abs(cy) <= SEARCH_MAX and abs(cx) <= SEARCH_MAX:
                c = min(c, _sad_int(tgt, ref, y0, x0, cy, cx, c))
        # insertion into the short list, cheapest first
        k = tries - 1
        if c < tried_cost[k]:
            while k > 0 and tried_cost[k - 1] > c:
                tried_cost[k], tried[k] = tried_cost[k - 1], tried[k - 1]
                k -= 1
            tried_cost[k], tried[k] = c, r
    return tried


@njit(cache=True)
def _search_second(tgt, ring, order, y0, x0, pmy, pmx, uref, mvy, mvx, lam_sad, search, out):
    """The best second hypothesis for the unit's best single vector (uref, mvy, mvx):
    writes out[4:9] = (its first vector, second reference, second vector), leaving
    them (mvy, mvx, -1, 0, 0) when there is none, and returns its cost (1e30: none)."""
    nref = order.shape[0]
    blk8 = np.empty((8, 8), np.int64)
    p0 = np.empty((3, 8, 8), np.int64)
    p1 = np.empty((3, 8, 8), np.int64)
    t8 = np.empty((3, 8, 8), np.int64)
    # the scaled first vector is where its search starts and what its difference is from
    for p in range(3):
        mc_block(ring[order[uref]], p, y0, x0, mvy, mvx, 8, p0[p])
    cbest, cref, cy, cx = 1e30, -1, 0, 0
    bi_range = search[P_BI_RANGE]
    for r1 in range(min(nref, search[P_BI_REFS])):
        sy = scale_mv(mvy, r1 + 1, uref + 1)
        sx = scale_mv(mvx, r1 + 1, uref + 1)
        ry, rx, c3 = _bi_search(
            tgt, ring[order[r1]], y0, x0, p0, sy, sx, sy, sx, lam_sad, blk8, t8, bi_range
        )
        c3 += lam_sad * min(r1 + 1, nref - 1)
        if c3 < cbest:
            cbest, cref, cy, cx = c3, r1, ry, rx
    if cref < 0:
        return 1e30
    # the first vector was the best alone; against the second it may not be, so it is
    # searched again with the second fixed, and the second after it
    for p in range(3):
        mc_block(ring[order[cref]], p, y0, x0, cy, cx, 8, p1[p])
    b0y, b0x, _ = _bi_search(
        tgt, ring[order[uref]], y0, x0, p1, mvy, mvx, pmy, pmx, lam_sad, blk8, t8, bi_range
    )
    sy = scale_mv(b0y, cref + 1, uref + 1)
    sx = scale_mv(b0x, cref + 1, uref + 1)
    if b0y != mvy or b0x != mvx:
        for p in range(3):
            mc_block(ring[order[uref]], p, y0, x0, b0y, b0x, 8, p0[p])
        cy, cx, _ = _bi_search(
            tgt, ring[order[cref]], y0, x0, p0, cy, cx, sy, sx, lam_sad, blk8, t8, 1
        )
    # its cost as the single searches count theirs: colour SAD, vector and index bits
    cost = _bi_cost(tgt, ring[order[cref]], y0, x0, p0, cy, cx, blk8)
    cost += lam_sad * (mvd_bits(b0y - pmy) + mvd_bits(b0x - pmx))
    cost += lam_sad * (mvd_bits(cy - sy) + mvd_bits(cx - sx) + 1)
    if nref > 1:
        cost += lam_sad * (min(uref + 1, nref - 1) + min(cref + 1, nref - 1))
    out[4], out[5], out[6], out[7], out[8] = b0y, b0x, cref, cy, cx
    return cost


@njit(cache=True)
def _search_unit(tgt, ring, order, y0, x0, pmy, pmx, cands, lam_sad, search, out):
    """The motion searches for the 8x8 unit at (y0, x0), SAD plus lambda * vector bits
    counted from (pmy, pmx): the best vector into the predictor's frame and into the
    older references, then the best second hypothesis for it. Writes out[:3] =
    (reference, vector), out[3] = 1 where the two hypotheses cost less than it, and
    out[4:9] = (their first vector, second reference or -1, second vector). The costs
    are compared here, in float64, so that the table is int32 (a float64 table with
    both costs was 40 MiB at the size cap). search: the preset (presets.py)."""
    nref = order.shape[0]
    blk8 = np.empty((8, 8), np.int64)
    prd = ring[order[0]]
    radius = search[P_RANGE]
    mvy, mvx, best3 = _search(tgt, prd, y0, x0, pmy, pmx, cands, lam_sad, blk8, radius)
    uref = 0
    if nref > 1:
        best3 += lam_sad  # its reference index
    # older frames: a short search around the same candidates finds what came back
    # (loops, dither patterns that alternate); the choice weighs all three planes,
    # since an older frame can match the luma and not the colour
    tries = search[P_OLD_REFS]
    tried = _old_ref_shortlist(tgt, ring, order, y0, x0, cands, tries) if tries > 0 else cands[0]
    for t in range(tries):
        r = tried[t]
        if r == 0:
            break
        ry, rx, c3 = _search(tgt, ring[order[r]], y0, x0, pmy, pmx, cands, lam_sad, blk8, REF_RANGE)
        c3 += lam_sad * (min(r + 1, nref - 1) + REF_PENALTY)
        if c3 < best3:
            mvy, mvx, uref, best3 = ry, rx, r, c3
    out[0], out[1], out[2] = uref, mvy, mvx
    out[4], out[5], out[6], out[7], out[8] = mvy, mvx, -1, 0, 0
    cost = _search_second(tgt, ring, order, y0, x0, pmy, pmx, uref, mvy, mvx, lam_sad, search, out)
    out[3] = 1 if cost < best3 else 0


@njit(cache=True, parallel=True)
def motion_prepass(tgt, ring, order, mvf, lam_sad, search, pre):
    """Every unit's motion searches at once, in parallel -- the references are final
    when a frame starts; only the vector predictor (the median of the coded
    neighbours' vectors) is not known yet, so the previous frame's field stands in
    for it. Each unit's result depends on nothing another thread computes, so the
    output does not depend on the thread count. search: the preset (presets.py);
    pre: (Nuy, Nux, PREPASS_FIELDS) int32, see _search_unit."""
    nuy, nux = pre.shape[0], pre.shape[1]
    for u in prange(nuy * nux):
        uy, ux = u // nux, u % nux
        cands = np.zeros((7, 2), np.int64)
        pmy, pmx = 0, 0
        if mvf.shape[0] == nuy and mvf.shape[1] == nux:
            pmy, pmx = mv_pred(mvf, uy, ux, nux)
            cands[1, 0], cands[1, 1] = pmy, pmx
            cands[2] = mvf[uy, ux]
            if ux > 0:
                cands[3] = mvf[uy, ux - 1]
            if uy > 0:
                cands[4] = mvf[uy - 1, ux]
            if ux + 1 < nux:
                cands[5] = mvf[uy, ux + 1]
            if uy + 1 < nuy:
                cands[6] = mvf[uy + 1, ux]
        _search_unit(
            tgt, ring, order, uy * 8, ux * 8, pmy, pmx, cands, lam_sad, search, pre[uy, ux]
        )
