"""Adaptive binary range coder: the entropy-coding engine under every fpcodec coding mode.

Everything here is integer arithmetic compiled by numba, so the encoder and the
decoder step through identical states on any machine. The design follows LZMA's
carry-propagating range coder (32-bit range, 64-bit low, one cached byte), with
16-bit probabilities and models that adapt by integer counts: a model's step size
starts at 1/2 and shrinks with the number of symbols it has seen (a running
frequency estimate for rarely used contexts) down to 2^-limit (tracking
non-stationary statistics once a context is well used).

A coder state is a small int64 array plus a byte buffer, so coding kernels can
keep it in registers and pass it around cheaply:

    st[0] low, st[1] range, st[2] cache, st[3] cache_size, st[4] position,
    st[5] code (decoder), st[6] bytes read past the end (decoder), st[7] overflow flag

Every coding kernel is written once, for both directions: `code_bit(..., enc)`
encodes `bit` when `enc` is true and returns it, otherwise decodes and returns the
decoded bit. One body for both directions is what keeps contexts in lock-step.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

PROB_BITS = 16
PROB_ONE = 1 << PROB_BITS
PROB_HALF = PROB_ONE >> 1
P_MIN = 48
P_MAX = PROB_ONE - 48
TOP = 1 << 24

# Step shift by how many symbols a context has seen: 1, 2, 2, 3, 3, 3, 3, 4, ...
_SHIFT = np.array([min(1 + int(np.log2(n + 1)), 15) for n in range(256)], dtype=np.int64)

STATE_SIZE = 8


def min_coded_bytes(adaptive_bits: int) -> int:
    """A lower bound on the bytes an encoding with this many adaptive decisions writes
    (for an encoder to skip a trial that is sure to lose). A decision leaves at most
    1 - P_MIN / PROB_ONE of the range to its symbol, less the split's rounding (under
    1/256 of P_MIN: the range is at least TOP before a decision), and every 8 bits of
    narrowing shift a byte out; 40 bits spare cover the start and the flush."""
    per_decision = -math.log2(1 - P_MIN * (1 - 1 / 256) / PROB_ONE) * (1 - 1e-9)
    return max(0, math.floor((adaptive_bits * per_decision - 40) / 8))


def new_state() -> np.ndarray:
    return np.zeros(STATE_SIZE, dtype=np.int64)


def input_buffer(data: bytes) -> np.ndarray:
    """A writable copy of coded bytes: one compiled kernel serves both directions, and
    numba types read-only buffers differently."""
    return np.frombuffer(data, np.uint8).copy()


def new_models(n: int) -> tuple[np.ndarray, np.ndarray]:
    """n binary models: probability of a 1 (16-bit) and the count of symbols seen."""
    return np.full(n, PROB_HALF, dtype=np.int32), np.zeros(n, dtype=np.uint8)


@njit(cache=True, inline="always")
def rc_init_enc(st):
    st[0] = 0
    st[1] = 0xFFFFFFFF
    st[2] = 0
    st[3] = 1
    st[4] = 0
    st[5] = 0
    st[6] = 0
    st[7] = 0


@njit(cache=True, inline="always")
def _shift_low(st, buf):
    # written with locals and a counted loop: the same bytes as LZMA's `do { } while
    # (--cache_size)` over the state array, which numba compiled 5x slower per bit.
    # rc_enc_bit carries a copy of this body (see there why): change both. The coder's
    # round-trip tests run every stream through both (rc_finish_enc flushes here).
    low = st[0]
    if low < 0xFF000000 or low >= 0x100000000:
        carry = low >> 32
        pos = st[4]
        n = buf.shape[0]
        if pos < n:
            buf[pos] = (st[2] + carry) & 0xFF
        else:
            st[7] = 1
        pos += 1
        for _ in range(st[3] - 1):
            if pos < n:
                buf[pos] = (0xFF + carry) & 0xFF
            else:
                st[7] = 1
            pos += 1
        st[4] = pos
        st[3] = 0
        st[2] = (low >> 24) & 0xFF
    st[3] += 1
    st[0] = (low & 0x00FFFFFF) << 8


@njit(cache=True, inline="always")
def rc_enc_bit(st, buf, p1, bit):
    bound = (st[1] >> PROB_BITS) * p1
    if bit:
        st[1] = bound
    else:
        st[0] += bound
        st[1] -= bound
    while st[1] < TOP:
        st[1] = (st[1] << 8) & 0xFFFFFFFF
        # _shift_low's body, written out: numba does not inline an inline="always"
        # call made inside a loop or branch of a function that is itself being
        # inlined (as this one is, through code_bit), even within one module; it
        # compiled a real call with two arrays per output byte, 44 ns per bit instead
        # of 7. (Tried: _shift_low without `inline`, without `cache`: as slow.)
        low = st[0]
        if low < 0xFF000000 or low >= 0x100000000:
            carry = low >> 32
            pos = st[4]
            n = buf.shape[0]
            if pos < n:
                buf[pos] = (st[2] + carry) & 0xFF
            else:
                st[7] = 1
            pos += 1
            for _ in range(st[3] - 1):
                if pos < n:
                    buf[pos] = (0xFF + carry) & 0xFF
                else:
                    st[7] = 1
                pos += 1
            st[4] = pos
            st[3] = 0
            st[2] = (low >> 24) & 0xFF
        st[3] += 1
        st[0] = (low & 0x00FFFFFF) << 8


@njit(cache=True)
def rc_finish_enc(st, buf):
    for _ in range(5):
        _shift_low(st, buf)
    return st[4]


@njit(cache=True, inline="always")
def _next_byte(st, buf):
    pos = st[4]
    st[4] = pos + 1
    if pos < buf.shape[0]:
        return np.int64(buf[pos])
    st[6] += 1
    return np.int64(0)


@njit(cache=True)
def rc_init_dec(st, buf):
    st[0] = 0
    st[1] = 0xFFFFFFFF
    st[4] = 0
    st[5] = 0
    st[6] = 0
    st[7] = 0
    for _ in range(5):
        st[5] = ((st[5] << 8) | _next_byte(st, buf)) & 0xFFFFFFFF


@njit(cache=True, inline="always")
def rc_dec_bit(st, buf, p1):
    bound = (st[1] >> PROB_BITS) * p1
    if st[5] < bound:
        st[1] = bound
        bit = 1
    else:
        st[5] -= bound
        st[1] -= bound
        bit = 0
    while st[1] < TOP:
        st[1] = (st[1] << 8) & 0xFFFFFFFF
        st[5] = ((st[5] << 8) | _next_byte(st, buf)) & 0xFFFFFFFF
    return bit


@njit(cache=True, inline="always")
def code_bit(st, buf, p1, bit, enc):
    """Code one bit with probability p1 (of a 1, in 1/65536) in either direction."""
    if p1 < P_MIN:
        p1 = P_MIN
    elif p1 > P_MAX:
        p1 = P_MAX
    if enc:
        rc_enc_bit(st, buf, p1, bit)
        return bit
    return rc_dec_bit(st, buf, p1)


@njit(cache=True, inline="always")
def update_model(probs, counts, ctx, bit, limit):
    n = counts[ctx]
    s = _SHIFT[n]
    if s > limit:
        s = limit
    p = np.int64(probs[ctx])
    if bit:
        p += (PROB_ONE - p) >> s
    else:
        p -= p >> s
    if p < P_MIN:
        p = P_MIN
    elif p > P_MAX:
        p = P_MAX
    probs[ctx] = p
    if n < 255:
        counts[ctx] = n + 1


@njit(cache=True, inline="always")
def code_adaptive(st, buf, probs, counts, ctx, bit, enc, limit):
    """Code one bit under adaptive model `ctx`, then update that model."""
    b = code_bit(st, buf, np.int64(probs[ctx]), bit, enc)
    update_model(probs, counts, ctx, b, limit)
    return b


@njit(cache=True, inline="always")
def code_bypass(st, buf, value, nbits, enc):
    """Code nbits raw bits (MSB first) at probability 1/2."""
    out = 0
    for i in range(nbits - 1, -1, -1):
        b = code_bit(st, buf, PROB_HALF, (value >> i) & 1, enc)
        out |= b << i
    return out


@njit(cache=True, inline="always")
def code_tree(st, buf, probs, counts, base, value, nbits, enc, limit):
    """Code an nbits-wide symbol MSB first through a binary tree of 2^nbits models at base."""
    node = 1
    for i in range(nbits - 1, -1, -1):
        b = code_adaptive(st, buf, probs, counts, base + node, (value >> i) & 1, enc, limit)
        node = (node << 1) | b
    return node - (1 << nbits)


@njit(cache=True, inline="always")
def code_magnitude(st, buf, probs, counts, base, value, enc, limit):
    """Code a non-negative integer: adaptive unary bins 0..15, then Elias-gamma escape.

    Uses models base..base+15. Small values (the common case for residuals) cost a
    few well-predicted bins; large ones cost O(log v) bypass bits.
    """
    v = 0
    while v < 16:
        more = code_adaptive(st, buf, probs, counts, base + v, 1 if value > v else 0, enc, limit)
        if more == 0:
            return v
        v += 1
    # Escape: value - 16 in Elias-gamma with bypass bits.
    rest = value - 16 if enc else 0
    rest1 = rest + 1
    nb = 0
    if enc:
        t = rest1
        while t > 1:
            t >>= 1
            nb += 1
    n = 0
    while n < 40:
        stop = code_bit(st, buf, PROB_HALF, 1 if n == nb else 0, enc)
        if stop:
            break
        n += 1
    low = code_bypass(st, buf, rest1 & ((1 << n) - 1), n, enc)
    return 16 + ((1 << n) | low) - 1


BUCKET_MODELS = 8 + 8 * 128  # models used by one code_bucketed group


@njit(cache=True, inline="always")
def code_bucketed(st, buf, probs, counts, base, value, enc, limit):
    """Code an integer in 1..255: its bit length (adaptive unary), then the bits below
    the leading one through an adaptive binary tree per bit length.

    Residuals of palette images cluster at a few large magnitudes (the palette's
    steps); the per-length trees learn such peaks exactly, where a Golomb code would
    spread them out. Uses BUCKET_MODELS models from base.
    """
    b = 0
    if enc:
        t = value
        while t > 0:
            t >>= 1
            b += 1
    n = 1
    while n < 8:
        more = code_adaptive(st, buf, probs, counts, base + n, 1 if b > n else 0, enc, limit)
        if more == 0:
            break
        n += 1
    low = code_tree(st, buf, probs, counts, base + 8 + n * 128 - 128, value, n - 1, enc, limit)
    return (1 << (n - 1)) | low


class CodingOverflow(Exception):
    """The coded stream outgrew its buffer: the caller falls back to a raw frame."""
