"""The lossy encoder's structural term (codec/lossy/structure.py) and the metrics the
benchmark judges it by (SSIM and MS-SSIM in dB)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from fpcodec.bench.bdrate import bd_rate
from fpcodec.bench.metrics import _ssim_terms, ms_ssim, ssim, ssim_db
from fpcodec.codec.container import StreamHeader
from fpcodec.codec.encoder import Encoder
from fpcodec.codec.lossy import coder, transform_quant
from fpcodec.models.last import LastFramePredictor


def test_ssim_db_is_minus_ten_log_of_one_minus_ssim():
    assert ssim_db(0.99) == pytest.approx(20.0)
    assert ssim_db(0.9) == pytest.approx(10.0)
    assert math.isinf(ssim_db(1.0))
    assert math.isnan(ssim_db(math.nan))


def test_ms_ssim_single_scale_matches_scikit_image_gaussian_ssim():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 52)).astype(float)
    b = (a + rng.normal(0, 20, a.shape)).clip(0, 255)
    ref = structural_similarity(
        a, b, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert _ssim_terms(a, b)[0] == pytest.approx(ref, abs=1e-12)


def test_ms_ssim_is_one_on_equal_frames_and_falls_with_noise():
    rng = np.random.default_rng(1)
    f = rng.integers(0, 256, (200, 180, 3)).astype(np.uint8)
    assert ms_ssim(f, f) == pytest.approx(1.0)
    g1 = (f + rng.normal(0, 4, f.shape)).clip(0, 255).astype(np.uint8)
    g2 = (f + rng.normal(0, 16, f.shape)).clip(0, 255).astype(np.uint8)
    assert 1.0 > ms_ssim(f, g1) > ms_ssim(f, g2) > 0.0


def _textured_clip(frames: int = 4, h: int = 48, w: int = 64) -> list[np.ndarray]:
    """A moving gradient ordered-dithered to a few levels per channel, over a flat
    region: the texture a GIF carries, next to where an error shows most."""
    bayer = np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]]) / 16.0
    yy, xx = np.mgrid[0:h, 0:w]
    thr = bayer[yy % 4, xx % 4]
    out = []
    for t in range(frames):
        rgb = np.stack([(xx + t) / w, yy / h, 0.5 + 0.5 * np.sin((xx + 2 * t) / 9.0)], -1)
        q = np.floor(rgb * 5 + thr[..., None]).clip(0, 5) * 51
        q[:, : w // 4] = 120  # flat
        out.append(np.dstack([q.astype(np.uint8), np.full((h, w), 255, np.uint8)]))
    return out


def _curve(frames, qualities):
    h, w = frames[0].shape[:2]
    rates, quals = [], []
    for q in qualities:
        buf = io.BytesIO()
        enc = Encoder(buf, StreamHeader(w, h, quality=q), LastFramePredictor())
        recons = [enc.add(f, 40).recon for f in frames]
        enc.close()
        rates.append(len(buf.getvalue()))
        quals.append(
            ssim_db(
                np.mean([ssim(f[..., :3], r[..., :3]) for f, r in zip(frames, recons, strict=True)])
            )
        )
    return rates, quals


def test_structural_term_buys_ssim_at_equal_bytes(monkeypatch):
    """The shipped strengths against the same encoder with the term off: fewer bytes
    for the same SSIM on a textured clip."""
    assert transform_quant.DECISION_WEIGHTS[3:].any(), "the structural term is off"
    frames = _textured_clip()
    qualities = (20, 35, 50, 65)
    on = _curve(frames, qualities)
    off_weights = transform_quant.DECISION_WEIGHTS.copy()
    off_weights[3:] = 0.0
    monkeypatch.setattr(coder, "DECISION_WEIGHTS", off_weights)
    off = _curve(frames, qualities)
    assert on != off  # the term changed decisions
    assert bd_rate(off[0], off[1], on[0], on[1]) < -1.0
