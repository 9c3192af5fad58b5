"""Coding 8: lossless residuals with the spatial/temporal predictor switched per pixel."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
from fpcodec.codec.container import (
    CODING_RESIDUAL,
    CODING_SWITCHED,
    ContainerReader,
    ContainerWriter,
    StreamHeader,
)
from fpcodec.codec.decoder import Decoder
from fpcodec.codec.encoder import Encoder
from fpcodec.codec.errors import FormatError
from fpcodec.codec.planecoder import ArithPlaneCoder, CoderState
from fpcodec.codec.residual import inter_symbols
from fpcodec.codec.switched import switched_reconstruct, switched_symbols
from fpcodec.models.last import LastFramePredictor

from .conftest import moving_clip


def _noise(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _gradient(h, w, shift=0):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([(xx + shift) * 3 % 256, yy * 5 % 256, (xx + yy + shift) * 2 % 256], -1).astype(
        np.uint8
    )


@pytest.mark.parametrize("with_pred", [False, True])
def test_symbols_reconstruct_exactly_with_a_mask(with_pred):
    rng = np.random.default_rng(3)
    target = _noise(17, 23, 1)
    pred = _noise(17, 23, 2) if with_pred else None
    mask = rng.random((17, 23)) > 0.2
    sym, rec = switched_symbols(target, pred, mask)
    assert sym.dtype == np.int16 and sym.min() >= -128 and sym.max() <= 127
    assert (sym[:, ~mask] == 0).all()
    expect = np.where(mask[..., None], target, 0)
    np.testing.assert_array_equal(rec, expect)
    np.testing.assert_array_equal(switched_reconstruct(sym, pred, mask), expect)


def test_static_texture_follows_the_prediction():
    """Where the frame equals the prediction, the temporal predictor is exact and its
    neighbours say so: every symbol but the first pixel's is zero."""
    frame = _noise(20, 30, 4)
    sym, _ = switched_symbols(frame, frame.copy(), np.ones((20, 30), bool))
    assert np.count_nonzero(sym.any(axis=0)) <= 1


def test_smooth_picture_ignores_a_useless_prediction():
    """A smooth gradient against a prediction of noise: the spatial predictor wins
    and the residuals stay as small as on a keyframe."""
    frame = _gradient(24, 32)
    mask = np.ones((24, 32), bool)
    sym, _ = switched_symbols(frame, _noise(24, 32, 5), mask)
    key, _ = switched_symbols(frame, None, mask)
    assert np.abs(sym.astype(int)).mean() <= np.abs(key.astype(int)).mean() + 0.5
    rgb_sym, _ = inter_symbols(frame, _noise(24, 32, 5), mask, 0)  # coding 1 on the same
    assert np.abs(sym.astype(int)).mean() < np.abs(rgb_sym.astype(int)).mean() / 4


def _smooth_field(h, w, seed):
    """A smooth random picture: a coarse grid of random colours, bilinearly upsampled."""
    g = np.random.default_rng(seed).integers(0, 256, (h // 8 + 2, w // 8 + 2, 3)).astype(float)
    yy, xx = np.mgrid[0:h, 0:w] / 8.0
    y0, x0 = yy.astype(int), xx.astype(int)
    fy, fx = (yy - y0)[..., None], (xx - x0)[..., None]
    top = g[y0, x0] * (1 - fx) + g[y0, x0 + 1] * fx
    bot = g[y0 + 1, x0] * (1 - fx) + g[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bot * fy


def test_moving_picture_costs_fewer_bytes_than_coding_1():
    """A pan over a smooth picture with sensor noise (what camera video is): coded by
    the same entropy coder, coding 8 takes fewer bytes than coding 1's RGB residuals
    against the previous frame."""
    rng = np.random.default_rng(6)
    field = _smooth_field(40, 80, 7)
    frames = [
        np.clip(field[:, 3 * t : 3 * t + 48] + rng.normal(0, 1, (40, 48, 3)), 0, 255).astype(
            np.uint8
        )
        for t in range(5)
    ]
    mask = np.ones((40, 48), bool)
    sizes = []
    for coding in (1, 8):
        state, n = CoderState(40, 48, 3), 0
        for prev, cur in itertools.pairwise(frames):
            if coding == 8:
                sym, _ = switched_symbols(cur, prev, mask)
            else:
                sym, _ = inter_symbols(cur, prev, mask, 0)
            n += len(ArithPlaneCoder().encode(sym, mask, state))
        sizes.append(n)
    assert sizes[1] < 0.85 * sizes[0]  # measured 0.77


def _codings(data: bytes) -> list[int]:
    return [c.coding for c in ContainerReader(io.BytesIO(data)).frames()]


@pytest.mark.parametrize("entropy", ["arith", "zstd"])
@pytest.mark.parametrize("max_error", [0, 3])
def test_lossless_pixels_write_coding_8_and_near_lossless_coding_1(entropy, max_error):
    frames = moving_clip(5, 21, 29, alpha=True)
    buf = io.BytesIO()
    enc = Encoder(
        buf,
        StreamHeader(29, 21, entropy=entropy, max_error=max_error),
        LastFramePredictor(),
        palette=False,
    )
    recons = [enc.add(f, 40).recon for f in frames]
    enc.close()
    data = buf.getvalue()
    assert set(_codings(data)) == {CODING_SWITCHED if max_error == 0 else CODING_RESIDUAL}
    out = [f.rgba for f in Decoder(io.BytesIO(data))]
    for r, d, f in zip(recons, out, frames, strict=True):
        np.testing.assert_array_equal(r, d)
        if max_error == 0:
            np.testing.assert_array_equal(d, np.where(f[..., 3:] > 0, f, 0))


def test_switched_frame_in_a_near_lossless_stream_is_refused():
    """Coding 8 is lossless only: under a header that says --max-error it is damage,
    reported as such rather than decoded."""
    frames = moving_clip(3, 12, 16)
    buf = io.BytesIO()
    enc = Encoder(buf, StreamHeader(16, 12), LastFramePredictor(), palette=False)
    for f in frames:
        enc.add(f, 40)
    enc.close()
    chunks = list(ContainerReader(io.BytesIO(buf.getvalue())).frames())
    assert {c.coding for c in chunks} == {CODING_SWITCHED}
    out = io.BytesIO()
    writer = ContainerWriter(out, StreamHeader(16, 12, max_error=2))
    for c in chunks:
        writer.write_frame(c.frame_type, c.coding, c.duration_ms, c.recon_crc, c.body)
    writer.close()
    with pytest.raises(FormatError, match="frame 0: switched"):
        list(Decoder(io.BytesIO(out.getvalue())))
