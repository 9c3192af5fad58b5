"""Encoder only: how to code each 8x8 unit of a predicted frame (x264's "analysis").

Decisions are rate-distortion decisions on the distance the benchmark measures --
per pixel, the colour distance of the three planes weighted as it weighs them,
summed, not squared error: a unit is trial-coded as each candidate (one hypothesis,
two, skipped, intra) and the cheapest in distance + lambda * bits wins, its flags
priced by the adaptive models as they stand. The winner's levels and
reconstruction are kept, so the coding pass need not code the unit again.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .. import rangecoder as rc
from .intra import best_intra_mode, predict_block
from .motion_comp import mc_pred, scale_mv
from .motion_search import REF_PENALTY, SEARCH_MAX, colour_cost, mvd_bits
from .structure import structural_cost
from .transform_quant import quantize, rate, reconstruct

KIND_MOTION = 0
KIND_INTRA = 1
KIND_SKIP = 2


@njit(cache=True)
def trial_scratch():
    """Scratch arrays of the trials: (pb, pb2, blk, qs, deq, work, err, blk8)."""
    return (
        np.zeros((4, 4), np.int64),
        np.zeros((4, 4), np.int64),
        np.zeros((4, 4), np.int64),
        np.zeros((4, 3, 16), np.int64),
        np.zeros((4, 4), np.int64),
        np.zeros((3, 4, 4), np.int64),  # the third: the prediction, for the structural term
        np.zeros((4, 4)),
        np.zeros((8, 8), np.int64),
    )


@njit(cache=True)
def _bit_cost(probs, ctx, bit):
    """Bits an adaptive flag would cost now."""
    p = float(probs[ctx]) / rc.PROB_ONE
    return -math.log2(p if bit else 1.0 - p)


@njit(cache=True)
def _trial(tgt, recon, ring, order, y0u, x0u, kind, r0, m0y, m0x, r1, m1y, m1x, quant, scratch):
    """Code an 8x8 unit as `kind` (0 motion-compensated with levels, 1 the same without
    levels (skipped), 2 intra) into recon, as the coding pass would, leaving the
    levels in scratch's qs (4 blocks x 3 planes x 16). quant: (steps, offs, lam_pd,
    wplane), wplane structure.DECISION_WEIGHTS. Returns (the sum over its pixels of the
    colour distance the perceptual distance measures, in YCoCg with the planes weighted
    as it weighs them, plus the structural term of structure.py; estimated bits of
    levels and intra modes)."""
    steps, offs, lam_pd, wplane = quant
    pb, pb2, blk, qs, deq, work, err, _ = scratch
    bits = 0.0
    for sb in range(4):
        y0 = y0u + 4 * (sb // 2)
        x0 = x0u + 4 * (sb % 2)
        mode = 0
        if kind == 2:
            mode = best_intra_mode(recon, tgt, y0, x0, pb)[0]
            bits += 1.5
        for p in range(3):
            if kind == 2:
                predict_block(recon, p, y0, x0, mode, pb)
            else:
                mc_pred(ring, order, p, y0, x0, r0, m0y, m0x, r1, m1y, m1x, pb, pb2)
            q = qs[sb, p]
            for z in range(16):
                q[z] = 0
            if kind != 1:
                for i in range(4):
                    for j in range(4):
                        blk[i, j] = tgt[p, y0 + i, x0 + j] - pb[i, j]
                        work[2, i, j] = pb[i, j]
                quantize(blk, p, steps, offs, lam_pd, wplane, q, work, err)
                bits += rate(q)
            reconstruct(q, p, steps, pb, deq, recon, y0, x0)
    dist = 0.0
    for i in range(8):
        for j in range(8):
            s2 = 0.0
            for p in range(3):
                e = float(tgt[p, y0u + i, x0u + j] - recon[p, y0u + i, x0u + j])
                s2 += wplane[p] * e * e
            dist += math.sqrt(s2)
    # what the per-pixel distance does not see: texture lost or made, errors where flat
    dist += structural_cost(tgt, recon, y0u, x0u, wplane)
    return dist, bits


@njit(cache=True)
def _refine_vector(tgt, ring, order, y0, x0, pmy, pmx, cands, pre, lam_sad, blk8):
    """The prepass's vector compared with the candidates only this frame's coded
    neighbours provide (into the predictor's frame) and refined by half a pixel,
    vector bits counted from the real predicted vector. Returns (reference, vector)."""
    nref = order.shape[0]
    uref, mvy, mvx = int(pre[0]), int(pre[1]), int(pre[2])
    ref_extra = (min(uref + 1, nref - 1) + REF_PENALTY) if uref > 0 else (1 if nref > 1 else 0)
    best3 = colour_cost(tgt, ring[order[uref]], y0, x0, mvy, mvx, blk8) + lam_sad * (
        mvd_bits(mvy - pmy) + mvd_bits(mvx - pmx) + ref_extra
    )
    ref0 = 1 if nref > 1 else 0
    for k in range(cands.shape[0]):
        cy, cx = cands[k, 0], cands[k, 1]
        if abs(cy) > 2 * SEARCH_MAX or abs(cx) > 2 * SEARCH_MAX:
            continue
        c = colour_cost(tgt, ring[order[0]], y0, x0, cy, cx, blk8) + lam_sad * (
            mvd_bits(cy - pmy) + mvd_bits(cx - pmx) + ref0
        )
        if c < best3:
            best3, uref, mvy, mvx = c, 0, cy, cx
    ref_extra = (min(uref + 1, nref - 1) + REF_PENALTY) if uref > 0 else ref0
    cy0, cx0 = mvy, mvx
    for dy in range(-1, 2):
        for dx in range(-1, 2):
            if dy == 0 and dx == 0:
                continue
            my, mx = cy0 + dy, cx0 + dx
            c = colour_cost(tgt, ring[order[uref]], y0, x0, my, mx, blk8) + lam_sad * (
                mvd_bits(my - pmy) + mvd_bits(mx - pmx) + ref_extra
            )
            if c < best3:
                best3, mvy, mvx = c, my, mx
    return uref, mvy, mvx


@njit(cache=True)
def choose_unit(
    tgt,
    recon,
    ring,
    order,
    uy,
    ux,
    mvs,
    pm,
    pre,
    use_skip,
    ctxs,
    probs,
    quant,
    lam_sad,
    scratch,
    qbest,
    rbest,
):
    """How to code the 8x8 unit (uy, ux) of a predicted frame, whose predicted vector
    is pm and whose flags' contexts are ctxs (syntax.unit_contexts); pre is its row
    of the motion prepass. Each candidate is coded for trial; the winner's levels go
    to qbest, its reconstruction to rbest. Returns (kind: KIND_MOTION, KIND_INTRA or
    KIND_SKIP; reference, vector, second reference or -1, second vector)."""
    nref = order.shape[0]
    nux = mvs.shape[1]
    y0, x0 = uy * 8, ux * 8
    pmy, pmx = pm
    sctx, ictx, bctx = ctxs
    lam_pd = quant[2]
    qs = scratch[3]
    # what only this frame's coded neighbours can propose
    cands = np.zeros((4, 2), np.int32)  # the unit state's type (syntax.unit_maps)
    cands[0, 0], cands[0, 1] = pmy, pmx
    cands[1] = mvs[uy, ux - 1] if ux > 0 else cands[0]
    cands[2] = mvs[uy - 1, ux] if uy > 0 else cands[0]
    cands[3] = mvs[uy - 1, ux + 1] if uy > 0 and ux + 1 < nux else cands[0]
    uref, mvy, mvx = _refine_vector(
        tgt, ring, order, y0, x0, pmy, pmx, cands, pre, lam_sad, scratch[7]
    )
    # side bits each candidate carries beyond its levels
    ref_bits = float(min(uref + 1, nref - 1)) if nref > 1 else 0.0
    mv_bits = float(mvd_bits(mvy - pmy) + mvd_bits(mvx - pmx))
    not_skip = _bit_cost(probs, sctx, 0) if use_skip else 0.0
    inter_flags = not_skip + _bit_cost(probs, ictx, 0)
    no_bi = _bit_cost(probs, bctx, 0)
    d, b = _trial(tgt, recon, ring, order, y0, x0, 0, uref, mvy, mvx, -1, 0, 0, quant, scratch)
    best = d + lam_pd * (b + inter_flags + no_bi + ref_bits + mv_bits)
    qbest[:] = qs
    rbest[:] = recon[:, y0 : y0 + 8, x0 : x0 + 8]
    kind, bref, b1y, b1x = KIND_MOTION, -1, 0, 0
    cref = int(pre[6])
    # two hypotheses are tried where the prepass found them cheaper than one
    if cref >= 0 and pre[3]:
        r0, b0y, b0x, cy, cx = int(pre[0]), int(pre[4]), int(pre[5]), int(pre[7]), int(pre[8])
        d, b = _trial(
            tgt, recon, ring, order, y0, x0, 0, r0, b0y, b0x, cref, cy, cx, quant, scratch
        )
        sy = scale_mv(b0y, cref + 1, r0 + 1)
        sx = scale_mv(b0x, cref + 1, r0 + 1)
        side = inter_flags + _bit_cost(probs, bctx, 1)
        side += float(min(r0 + 1, nref - 1)) if nref > 1 else 0.0
        side += float(mvd_bits(b0y - pmy) + mvd_bits(b0x - pmx))
        side += float(min(cref + 1, nref - 1) + mvd_bits(cy - sy) + mvd_bits(cx - sx))
        j = d + lam_pd * (b + side)
        if j < best:
            best, bref, b1y, b1x = j, cref, cy, cx
            uref, mvy, mvx = r0, b0y, b0x
            qbest[:] = qs
            rbest[:] = recon[:, y0 : y0 + 8, x0 : x0 + 8]
    if use_skip:
        d, b = _trial(tgt, recon, ring, order, y0, x0, 1, 0, pmy, pmx, -1, 0, 0, quant, scratch)
        j = d + lam_pd * _bit_cost(probs, sctx, 1)
        if j < best:
            best, kind = j, KIND_SKIP
            rbest[:] = recon[:, y0 : y0 + 8, x0 : x0 + 8]
    d, b = _trial(tgt, recon, ring, order, y0, x0, 2, 0, 0, 0, -1, 0, 0, quant, scratch)
    if d + lam_pd * (b + not_skip + _bit_cost(probs, ictx, 1)) < best:
        kind = KIND_INTRA
        qbest[:] = qs
    if kind == KIND_SKIP:
        return KIND_SKIP, 0, pmy, pmx, -1, 0, 0
    if kind == KIND_INTRA:
        return KIND_INTRA, 0, pmy, pmx, -1, 0, 0
    return KIND_MOTION, uref, mvy, mvx, bref, b1y, b1x
