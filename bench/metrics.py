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
