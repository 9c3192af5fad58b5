"""Bjontegaard delta rate: average bitrate difference at equal quality.

Each curve is (rate, quality) points. log(rate) is fitted as a cubic polynomial
of quality for each curve, both fits are integrated over the quality interval the
curves share, and the mean difference of log-rates is turned into a percentage:
negative means curve B needs fewer bits than curve A for the same quality.
Quality may be "higher is better" (PSNR) or "lower is better" (perceptual
distance); only the shared interval matters, so the direction needs no flag.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def bd_rate(
    rate_a: Sequence[float],
    qual_a: Sequence[float],
    rate_b: Sequence[float],
    qual_b: Sequence[float],
) -> float:
    """Percent rate change of B relative to A at equal quality (nan without overlap)."""
    ra, qa = np.log(np.asarray(rate_a, float)), np.asarray(qual_a, float)
    rb, qb = np.log(np.asarray(rate_b, float)), np.asarray(qual_b, float)
    ok_a = np.isfinite(ra) & np.isfinite(qa)
    ok_b = np.isfinite(rb) & np.isfinite(qb)
    ra, qa, rb, qb = ra[ok_a], qa[ok_a], rb[ok_b], qb[ok_b]
    if len(qa) < 2 or len(qb) < 2:
        return math.nan
    lo = max(qa.min(), qb.min())
    hi = min(qa.max(), qb.max())
    if not hi > lo:
        return math.nan
    deg_a = min(3, len(qa) - 1)
    deg_b = min(3, len(qb) - 1)
    pa = np.polyint(np.polyfit(qa, ra, deg_a))
    pb = np.polyint(np.polyfit(qb, rb, deg_b))
    ia = np.polyval(pa, hi) - np.polyval(pa, lo)
    ib = np.polyval(pb, hi) - np.polyval(pb, lo)
    avg = (ib - ia) / (hi - lo)
    return float((math.exp(avg) - 1.0) * 100.0)
