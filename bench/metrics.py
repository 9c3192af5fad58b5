"""Quality metrics on 0..255 RGB frames, computed over visible pixels.

The catz "perceptual distance" is the mean over pixels of the redmean colour
distance: with r_bar the mean of the two red values,
    sqrt((512 + r_bar) * dR^2 / 256 + 4 * dG^2 + (767 - r_bar) * dB^2 / 256).
"""

from __future__ import annotations

import math

import numpy as np


def redmean_distance_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel redmean distance between two (..., 3) RGB arrays (any numeric dtype)."""
    a = np.asarray(a, np.float64)[..., :3]
    b = np.asarray(b, np.float64)[..., :3]
    rbar = (a[..., 0] + b[..., 0]) / 2.0
    d = a - b
    return np.sqrt(
        (512.0 + rbar) * d[..., 0] ** 2 / 256.0
        + 4.0 * d[..., 1] ** 2
        + (767.0 - rbar) * d[..., 2] ** 2 / 256.0
    )


def perceptual_distance(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean redmean distance over the pixels selected by `mask` (all when None)."""
    dist = redmean_distance_map(a, b)
    if mask is not None:
        if not mask.any():
            return 0.0
        return float(dist[mask].mean())
    return float(dist.mean())


def mse(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    d = (np.asarray(a, np.float64)[..., :3] - np.asarray(b, np.float64)[..., :3]) ** 2
    if mask is not None:
        return float(d[mask].mean()) if mask.any() else 0.0
    return float(d.mean())


def psnr_from_mse(value: float) -> float:
    """PSNR in dB for 8-bit data; +inf for identical frames."""
    if value <= 0:
        return math.inf
    return 10.0 * math.log10(255.0**2 / value)


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    return psnr_from_mse(mse(a, b, mask))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two RGB frames (scikit-image, channel-averaged)."""
    from skimage.metrics import structural_similarity

    a3 = np.asarray(a)[..., :3]
    b3 = np.asarray(b)[..., :3]
    h, w = a3.shape[:2]
    if min(h, w) < 7:
        return 1.0 if np.array_equal(a3, b3) else float("nan")
    return float(structural_similarity(a3, b3, channel_axis=-1, data_range=255))


def ssim_db(value: float) -> float:
    """SSIM (or MS-SSIM) on a decibel scale, -10 log10(1 - value): SSIM saturates near 1,
    where equal steps in it are ever larger steps in quality, so rate curves are fitted
    against this instead (+inf for identical frames)."""
    if not math.isfinite(value):
        return math.nan
    if value >= 1.0:
        return math.inf
    return -10.0 * math.log10(1.0 - value)


# Wang, Simoncelli and Bovik (2003): the weights of the five scales, coarsest last
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_K1, _K2, _SIGMA, _WIN = 0.01, 0.03, 1.5, 11


def _gauss_valid(x: np.ndarray) -> np.ndarray:
    """The 11-tap Gaussian window (sigma 1.5) of the reference implementation, applied
    'valid' (no padding), as Wang's MATLAB code does with filter2."""
    from scipy.ndimage import correlate1d

    r = _WIN // 2
    t = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-(t * t) / (2 * _SIGMA**2))
    g /= g.sum()
    y = correlate1d(x, g, axis=0, mode="constant")[r:-r]
    return correlate1d(y, g, axis=1, mode="constant")[:, r:-r]


def _ssim_terms(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(mean luminance*contrast*structure SSIM, mean contrast*structure term) of one plane."""
    c1, c2 = (_K1 * 255.0) ** 2, (_K2 * 255.0) ** 2
    mu_a, mu_b = _gauss_valid(a), _gauss_valid(b)
    saa = _gauss_valid(a * a) - mu_a * mu_a
    sbb = _gauss_valid(b * b) - mu_b * mu_b
    sab = _gauss_valid(a * b) - mu_a * mu_b
    cs = (2 * sab + c2) / (saa + sbb + c2)
    lum = (2 * mu_a * mu_b + c1) / (mu_a * mu_a + mu_b * mu_b + c1)
    return float((lum * cs).mean()), float(cs.mean())


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Multi-scale SSIM of two RGB frames, each channel on its own, averaged (as `ssim`
    averages its channels). Scales halve the frame by 2x2 means; a frame too small for
    all five (the window needs 11 pixels, so five scales need 176) uses the scales it
    has, with their weights renormalised -- a 128x128 GIF gets four. Contrast-structure
    terms below zero count as zero (a product of signed powers is not defined), as in
    the common implementations."""
    a3 = np.asarray(a, np.float64)[..., :3]
    b3 = np.asarray(b, np.float64)[..., :3]
    h, w = a3.shape[:2]
    if min(h, w) < _WIN:
        return 1.0 if np.array_equal(a3, b3) else float("nan")
    scales = 1
    while scales < len(MS_SSIM_WEIGHTS) and min(h, w) >> scales >= _WIN:
        scales += 1
    wts = np.array(MS_SSIM_WEIGHTS[:scales])
    wts /= wts.sum()
    out = []
    for ch in range(3):
        x, y = a3[..., ch], b3[..., ch]
        val = 1.0
        for s in range(scales):
            full, cs = _ssim_terms(x, y)
            last = s == scales - 1
            val *= max(full if last else cs, 0.0) ** wts[s]
            if not last:
                hh, ww = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
                x = x[:hh, :ww].reshape(hh // 2, 2, ww // 2, 2).mean(axis=(1, 3))
                y = y[:hh, :ww].reshape(hh // 2, 2, ww // 2, 2).mean(axis=(1, 3))
        out.append(val)
    return float(np.mean(out))
