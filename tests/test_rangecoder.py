import numpy as np
import pytest
from fpcodec.codec import rangecoder as rc
from numba import njit


@njit(cache=False)
def _run(values, probs_in, kind, buf, out, enc):
    """kind 0: fixed-probability bits, 1: adaptive bits, 2: bucketed 1..255, 3: magnitude."""
    st = np.zeros(rc.STATE_SIZE, np.int64)
    if enc:
        rc.rc_init_enc(st)
    else:
        rc.rc_init_dec(st, buf)
    probs = np.full(rc.BUCKET_MODELS + 64, rc.PROB_HALF, np.int32)
    counts = np.zeros(rc.BUCKET_MODELS + 64, np.uint8)
    for i in range(values.shape[0]):
        v = values[i]
        if kind == 0:
            out[i] = rc.code_bit(st, buf, probs_in[i], v, enc)
        elif kind == 1:
            out[i] = rc.code_adaptive(st, buf, probs, counts, i % 7, v, enc, 5)
        elif kind == 2:
            out[i] = rc.code_bucketed(st, buf, probs, counts, 0, v, enc, 6)
        else:
            out[i] = rc.code_magnitude(st, buf, probs, counts, 0, v, enc, 6)
    if enc:
        return rc.rc_finish_enc(st, buf), st[7]
    return st[4], st[6]


def _round_trip(values, probs=None, kind=0):
    values = np.asarray(values, np.int64)
    probs = np.zeros(len(values), np.int64) if probs is None else np.asarray(probs, np.int64)
    buf = np.zeros(16 * len(values) + 64, np.uint8)
    out = np.zeros(len(values), np.int64)
    n, overflow = _run(values, probs, kind, buf, out, True)
    assert not overflow
    back = np.zeros(len(values), np.int64)
    _run(values, probs, kind, buf[:n].copy(), back, False)
    np.testing.assert_array_equal(back, values)
    return n


def test_random_bits_with_random_probabilities():
    rng = np.random.default_rng(1)
    p = rng.integers(0, 65537, 20000)
    bits = (rng.random(20000) < p / 65536).astype(np.int64)
    n = _round_trip(bits, p)
    assert n < 20000 / 8  # skewed probabilities compress


@pytest.mark.parametrize("bit,p", [(1, 0), (0, 65536), (0, 0), (1, 65536), (1, 1), (0, 65535)])
def test_adversarial_extreme_probabilities(bit, p):
    _round_trip(np.full(5000, bit), np.full(5000, p))


@pytest.mark.parametrize("pattern", ["zeros", "ones", "alternating", "random"])
def test_adaptive_models(pattern):
    n = 30000
    v = {
        "zeros": np.zeros(n),
        "ones": np.ones(n),
        "alternating": np.arange(n) % 2,
        "random": np.random.default_rng(2).integers(0, 2, n),
    }[pattern]
    size = _round_trip(v, kind=1)
    if pattern in ("zeros", "ones"):
        assert size < 100  # learned almost certainty


@pytest.mark.parametrize("pattern", ["min", "max", "alternating", "random", "peaky"])
def test_bucketed_symbols(pattern):
    rng = np.random.default_rng(3)
    n = 5000
    v = {
        "min": np.ones(n),
        "max": np.full(n, 255),
        "alternating": np.where(np.arange(n) % 2, 1, 255),
        "random": rng.integers(1, 256, n),
        "peaky": rng.choice([36, 72, 1], n, p=[0.8, 0.1, 0.1]),
    }[pattern]
    size = _round_trip(v, kind=2)
    if pattern == "peaky":
        assert size < n * 1.2 / 8 * 8 / 8 * 2  # about 1 bit/symbol, far below 8


def test_magnitude_escape_range():
    v = np.array([0, 1, 15, 16, 17, 100, 1000, 65535, 2**20, 3, 0])
    _round_trip(v, kind=3)


def test_overflow_is_reported_not_silent():
    bits = np.ones(4000, np.int64)
    p = np.zeros(4000, np.int64)  # each bit costs ~10 bits
    buf = np.zeros(64, np.uint8)
    _, overflow = _run(bits, p, 0, buf, np.zeros(4000, np.int64), True)
    assert overflow
