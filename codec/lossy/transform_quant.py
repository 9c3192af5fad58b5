"""Transform and quantisation: the step tables, the encoder's rate-distortion
quantiser (RDOQ) and the reconstruction both sides share.

Residuals go through the reversible 4x4 integer DCT (codec/transform.py) and a
dead-zone quantiser whose step per coefficient undoes the transform's gains and
whose step per plane follows how much each plane weighs in the perceptual distance
(green counts most: errors in Y cost 9x, Cg 2.25x, Co 1.25x, from the redmean
weights of R, G and B). Keyframes use half the predicted frames' step, since every
later frame is predicted from them.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..transform import ZIGZAG_4, block_scales, fdct4x4, idct4x4
from .structure import PSY_STRENGTH, SSIM_STRENGTH, block_cost, source_stats

# plane weights in the perceptual distance (Y, Co, Cg) and the step factors they imply
PLANE_WEIGHT = np.array([9.0, 1.25, 2.25])
PLANE_STEP = np.sqrt(PLANE_WEIGHT[0] / PLANE_WEIGHT)
PLANE_STEP_C = (1.0, float(PLANE_STEP[1]), float(PLANE_STEP[2]))  # for compiled code
# encoder only: what the decisions weigh, the planes' weights then the strengths of
# the structural term (structure.py)
DECISION_WEIGHTS = np.array([*PLANE_WEIGHT, PSY_STRENGTH, SSIM_STRENGTH])
KEYFRAME_STEP = 0.5  # keyframe step relative to predicted frames' (format)
# encoder only, in units of the step: what a bit is worth against a sum of absolute
# differences in Y units (motion search) and against a sum of colour distances
# (unit and level decisions, see mode_decision.py and quantize); tuned per clip on
# the held-out set (the distance lambda: x0.55 +1.8%, x0.73 +1.2%, x1.4 +1.2% bytes)
SAD_LAMBDA = 0.1643
PD_LAMBDA = 0.2711


def quality_step(quality: int) -> float:
    """Quantiser step (orthonormal-DCT units of 8-bit Y) for quality 1..100; Q 1
    reaches the distances of x264's CRF 34 and beyond."""
    return 0.5 * 2.0 ** ((100 - quality) / 13.5)


def step_tables(quality: int, intra: bool) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Per plane and coefficient: step and dead-zone offset in 1/16 units; the encoder's
    lambdas against SAD and against colour distance."""
    step = quality_step(quality)
    if intra:
        # keyframes are every later frame's reference: finer steps pay back many times
        step *= KEYFRAME_STEP
    gains = block_scales()
    steps = np.empty((3, 16), np.int64)
    for p in range(3):
        steps[p] = np.maximum(1, np.round(16 * step * PLANE_STEP[p] * gains))
    # encoder only: the quantiser rounds a third of a step up (1/6 and a half: 2.6% and
    # 3.4% more bytes per clip); rate-distortion decisions then lower levels
    offs = steps // 3
    return steps, offs, SAD_LAMBDA * step, PD_LAMBDA * step


@njit(cache=True)
def bitlen(v):
    n = 0
    while v > 0:
        v >>= 1
        n += 1
    return n


@njit(cache=True)
def rate(q):
    """Rough bits of a quantised block (zigzag order), for RD decisions."""
    last = -1
    for i in range(16):
        if q[i] != 0:
            last = i
    if last < 0:
        return 1.0
    r = 5.0
    for i in range(last + 1):
        v = abs(q[i])
        r += 1.0
        if v:
            r += 1.0 + 2.0 * bitlen(v)
    return r


def _basis_images() -> np.ndarray:
    """(16, 4, 4): what one unit of each dequantised coefficient (raster order) adds to
    the pixels through idct4x4 -- the lifting steps round, so measured at a large
    amplitude and scaled back."""
    out = np.empty((16, 4, 4))
    for k in range(16):
        blk = np.zeros((4, 4), np.int64)
        blk[k // 4, k % 4] = 1 << 16
        idct4x4(blk)
        out[k] = blk / float(1 << 16)
    return out


_BASIS = _basis_images()  # encoder only: level decisions estimate pixel errors with it


@njit(cache=True)
def quantize(blk, p, steps, offs, lam_pd, wplane, q, work, err):
    """Encoder: transform a 4x4 residual of plane p and quantise it into q (zigzag
    order) with rate-distortion decisions judged on the colour distance in pixels,
    which is what the perceptual distance sums (small errors spread over a block cost
    more there than squares say): levels are lowered by one, last first, while that
    lowers distance + lambda * bits, and the whole block is dropped when coding it
    does not pay. A level's effect on the pixels is taken as linear (its basis image
    times its step), which saves an inverse transform per try. work: (2, 4, 4) int64,
    err: (4, 4) float64 scratch; a work of (3, 4, 4) whose third block holds the
    prediction adds the structural term (structure.py) to every decision, with
    wplane = DECISION_WEIGHTS."""
    res = work[0]
    deq = work[1]
    psy = work.shape[0] > 2 and wplane.shape[0] > 4 and (wplane[3] != 0.0 or wplane[4] != 0.0)
    pb = work[2] if psy else work[0]
    res[:] = blk
    fdct4x4(blk)
    last = -1
    for z in range(16):
        k = ZIGZAG_4[z]
        c = blk[k // 4, k % 4]
        v = (abs(c) * 16 + offs[p, k]) // steps[p, k]
        q[z] = -v if c < 0 else v
        if v:
            last = z
    if last < 0:
        return
    for z in range(16):
        k = ZIGZAG_4[z]
        v = q[z] * steps[p, k]
        deq[k // 4, k % 4] = (v + 8) >> 4 if v >= 0 else -((-v + 8) >> 4)
    idct4x4(deq)
    d = 0.0
    d_zero = 0
    for i in range(4):
        for j in range(4):
            err[i, j] = float(res[i, j] - deq[i, j])
            d += abs(err[i, j])
            d_zero += abs(res[i, j])
    w = math.sqrt(wplane[p])
    r = rate(q)
    j_best = w * d + lam_pd * r
    et, vt = 0.0, 0.0
    tmp = err
    if psy:
        et, vt = source_stats(pb, res)
        j_best += block_cost(pb, res, err, p, wplane, et, vt)
        tmp = np.empty((4, 4))
    for z in range(last, -1, -1):
        v = abs(q[z])
        if v == 0:
            continue
        # what rate(q) would change by, without recounting the block
        pl = z
        if v >= 2:
            dr = 2.0 * (bitlen(v - 1) - bitlen(v))
        elif z < last:
            dr = -3.0  # its level and sign go; its significance is coded as a zero
        else:  # the last level goes: the last position moves back
            pl = z - 1
            while pl >= 0 and q[pl] == 0:
                pl -= 1
            dr = 1.0 - r if pl < 0 else -3.0 - (z - pl)
        k = ZIGZAG_4[z]
        sgn = 1 if q[z] > 0 else -1
        delta = sgn * steps[p, k] / 16.0  # the reconstruction loses this much of B_k
        d2 = 0.0
        for i in range(4):
            for j in range(4):
                d2 += abs(err[i, j] + delta * _BASIS[k, i, j])
        jc = w * d2 + lam_pd * (r + dr)
        if psy:
            for i in range(4):
                for j in range(4):
                    tmp[i, j] = err[i, j] + delta * _BASIS[k, i, j]
            jc += block_cost(pb, res, tmp, p, wplane, et, vt)
        if jc < j_best:
            j_best = jc
            r += dr
            q[z] -= sgn
            last = pl if v == 1 and z == last else last
            for i in range(4):
                for j in range(4):
                    err[i, j] += delta * _BASIS[k, i, j]
    j_zero = w * d_zero + lam_pd
    if psy:
        for i in range(4):
            for j in range(4):
                tmp[i, j] = float(res[i, j])
        j_zero += block_cost(pb, res, tmp, p, wplane, et, vt)
    if j_zero <= j_best:
        for z in range(16):
            q[z] = 0


@njit(cache=True)
def reconstruct(q, p, steps, pb, deq, recon, y0, x0):
    """Dequantise the levels q (zigzag order) of plane p, inverse-transform them and add
    the prediction pb into recon at (y0, x0); identical on both sides."""
    nz = False
    for z in range(16):
        k = ZIGZAG_4[z]
        v = q[z] * steps[p, k]
        deq[k // 4, k % 4] = (v + 8) >> 4 if v >= 0 else -((-v + 8) >> 4)
        nz |= q[z] != 0
    if nz:
        idct4x4(deq)
    for i in range(4):
        for j in range(4):
            v = pb[i, j] + deq[i, j]
            # keep the reconstruction in range of what any colour can be
            if v < -1024:
                v = -1024
            elif v > 1024:
                v = 1024
            recon[p, y0 + i, x0 + j] = v
