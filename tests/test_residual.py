import numpy as np
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
