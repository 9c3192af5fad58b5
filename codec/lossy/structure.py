"""Encoder only: a structural term beside the per-pixel distance in the lossy decisions.

The decisions minimise the perceptual distance, a mean of per-pixel colour distances.
That metric is blind to *where* an error falls: a unit whose texture is flattened (a
dither pattern replaced by its mean, an edge smeared by a skipped unit) can cost less
distance than coding the texture, and SSIM -- what a viewer's eye tracks, contrast
and structure -- then pays for it. Two terms, per 4x4 block and plane, weighted as the
distance weighs the planes:

- *psy* (x264's psy-rd): |AC energy of the source - AC energy of the reconstruction|,
  energy the sum of absolute deviations from the block mean. Losing texture, or
  inventing it, costs; a block that keeps the right amount of detail in slightly the
  wrong place costs less than its pixel distance says.
- *ssim*: the block's squared error divided by 2 var(source) + C2, the denominator of
  SSIM's contrast-structure term (SSIM-optimal rate-distortion, Wang et al.): an error
  in a flat block, where it is visible, costs more than the same error in a busy one,
  and large errors cost as squares, which the distance's mean of magnitudes does not
  charge.

Both are floats in the encoder only: the decoder never computes them, and the
decisions run in the serial coding pass, so the bytes do not depend on threads.
"""

from __future__ import annotations

import math

from numba import njit

# Strengths, tuned per clip on five dev clips outside the held-out set (16 frames each,
# Q 10-55), BD-rate against the term off (PD / PSNR / SSIM / MS-SSIM): ssim 2: -0.6 /
# -4.5 / -4.0 / -7.1%; 4: -0.9 / -7.6 / -5.4 / -10.5%; 5: -0.7 / -7.8 / -5.4 / -12.0%;
# 8: +1.3 / -8.6 / -5.9 / -13.4%; 16: +4.9 / -8.4 / -4.7 / -14.3%. psy 0.5 alone:
# +9.9 / -1.8 / +0.7 / -0.7% -- texture kept in the wrong place is not what SSIM
# rewards, and the distance pays dearly, so psy ships off (0) and stays for trials.
PSY_STRENGTH = 0.0
SSIM_STRENGTH = 5.0
SSIM_C2 = (0.03 * 255.0) ** 2  # SSIM's stabiliser for 8-bit data (Y is 8-bit in YCoCg-R)


@njit(cache=True)
def structural_cost(tgt, recon, y0u, x0u, wts):
    """The structural term of the 8x8 unit at (y0u, x0u): psy and ssim terms (module
    docstring) summed over its four 4x4 blocks and three planes, in the units of the
    summed colour distance it is added to. wts: transform_quant.DECISION_WEIGHTS."""
    psy, sw = wts[3], wts[4]
    if psy == 0.0 and sw == 0.0:
        return 0.0
    cost = 0.0
    for sb in range(4):
        y0 = y0u + 4 * (sb // 2)
        x0 = x0u + 4 * (sb % 2)
        for p in range(3):
            st = 0.0
            sr = 0.0
            for i in range(4):
                for j in range(4):
                    st += float(tgt[p, y0 + i, x0 + j])
                    sr += float(recon[p, y0 + i, x0 + j])
            mt = st / 16.0
            mr = sr / 16.0
            et = 0.0
            er = 0.0
            vt = 0.0
            sse = 0.0
            for i in range(4):
                for j in range(4):
                    t = float(tgt[p, y0 + i, x0 + j])
                    r = float(recon[p, y0 + i, x0 + j])
                    et += abs(t - mt)
                    er += abs(r - mr)
                    vt += (t - mt) * (t - mt)
                    sse += (t - r) * (t - r)
            w = math.sqrt(wts[p])
            cost += psy * w * abs(et - er)
            cost += sw * w * sse / (2.0 * vt / 16.0 + SSIM_C2)
    return cost


@njit(cache=True)
def source_stats(pb, res):
    """(AC energy, variance) of the source block pb + res, for block_cost."""
    m = 0.0
    for i in range(4):
        for j in range(4):
            m += float(pb[i, j] + res[i, j])
    m /= 16.0
    et = 0.0
    vt = 0.0
    for i in range(4):
        for j in range(4):
            d = float(pb[i, j] + res[i, j]) - m
            et += abs(d)
            vt += d * d
    return et, vt / 16.0


@njit(cache=True)
def block_cost(pb, res, err, p, wts, et, vt):
    """The structural term of one 4x4 block of plane p whose reconstruction is
    pb + res - err (prediction, residual, the error the levels leave), against the
    source's (AC energy, variance) from source_stats; for the level decisions."""
    m = 0.0
    for i in range(4):
        for j in range(4):
            m += float(pb[i, j] + res[i, j]) - err[i, j]
    m /= 16.0
    er = 0.0
    sse = 0.0
    for i in range(4):
        for j in range(4):
            er += abs(float(pb[i, j] + res[i, j]) - err[i, j] - m)
            sse += err[i, j] * err[i, j]
    w = math.sqrt(wts[p])
    return wts[3] * w * abs(et - er) + wts[4] * w * sse / (2.0 * vt + SSIM_C2)
