import numpy as np
import pytest
from fpcodec.codec.residual import (
    inter_reconstruct,
    inter_symbols,
    intra_reconstruct,
    intra_symbols,
)
from hypothesis import given, settings
from hypothesis import strategies as st


def _frame(rng, h, w):
    return rng.integers(0, 256, (h, w, 3)).astype(np.uint8)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 12), st.integers(1, 9), st.integers(1, 9), st.integers(0, 2**31))
def test_intra_and_inter_respect_the_error_bound(e, h, w, seed):
    rng = np.random.default_rng(seed)
    target, pred = _frame(rng, h, w), _frame(rng, h, w)
    mask = rng.random((h, w)) < 0.9
    for sym, recon, _back in (
        (*intra_symbols(target, mask, e), None),
        (*inter_symbols(target, pred, mask, e), None),
    ):
        assert sym.min() >= -128 and sym.max() <= 127
        err = np.abs(recon.astype(int) - target.astype(int))[mask]
        assert err.max(initial=0) <= e
        assert (recon[~mask] == 0).all()
    sym, recon = intra_symbols(target, mask, e)
    np.testing.assert_array_equal(intra_reconstruct(sym, mask, e), recon)
    sym, recon = inter_symbols(target, pred, mask, e)
    np.testing.assert_array_equal(inter_reconstruct(sym, pred, mask, e), recon)


def test_lossless_is_exact_on_extremes():
    target = np.array([[[0, 255, 0], [255, 0, 255]]], np.uint8)
    pred = np.array([[[255, 0, 255], [0, 255, 0]]], np.uint8)
    mask = np.ones((1, 2), bool)
    sym, recon = inter_symbols(target, pred, mask, 0)
    np.testing.assert_array_equal(recon, target)
    np.testing.assert_array_equal(inter_reconstruct(sym, pred, mask, 0), target)


def _inter_reference(target, pred, mask, max_error):
    """The module docstring's arithmetic in NumPy, as the compiled kernel replaced it."""
    wrap = lambda a: ((a.astype(np.int16) + 128) & 255) - 128  # noqa: E731
    e = target.astype(np.int16) - pred.astype(np.int16)
    step = 2 * max_error + 1
    q = wrap(e) if max_error == 0 else np.sign(e) * ((np.abs(e) + max_error) // step)
    q = np.where(mask[..., None], q, 0).astype(np.int16)
    p = pred.astype(np.int16)
    out = ((p + q) & 255) if max_error == 0 else np.clip(p + q * step, 0, 255)
    out = out.astype(np.uint8)
    out[~mask] = 0
    sym = np.stack([q[..., 1], wrap(q[..., 0] - q[..., 1]), wrap(q[..., 2] - q[..., 1])])
    return sym.astype(np.int16), out


@pytest.mark.parametrize("max_error", [0, 1, 2, 7, 64])
def test_compiled_inter_symbols_equal_the_numpy_definition(max_error):
    from fpcodec.codec.residual import inter_symbols

    rng = np.random.default_rng(max_error)
    t = rng.integers(0, 256, (23, 41, 3), dtype=np.uint8)
    p = rng.integers(0, 256, (23, 41, 3), dtype=np.uint8)
    m = rng.random((23, 41)) < 0.8
    want_sym, want_rgb = _inter_reference(t, p, m, max_error)
    sym, rgb = inter_symbols(t, p, m, max_error)
    assert np.array_equal(sym, want_sym) and np.array_equal(rgb, want_rgb)
