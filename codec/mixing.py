"""Context mixing: many context models, one probability per binary decision.

Each context model keeps, per hashed slot, a small bit history (how many 0s and 1s
it has seen, 4 bits each, old evidence discounted when the other bit shows up).
A per-model adaptive table maps that history to a probability (so "seen a 1 once,
never a 0" learns how much that is worth), a logistic mixer combines the models'
stretched probabilities with weights trained online, and the result drives the
range coder. It is the lpaq/paq recipe in miniature.

Everything is integer: stretch is a table, squash a table, weights are int32 and
updated with shifts, so encoder and decoder compute identical probabilities on any
machine.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import rangecoder as rc
from .prefetch import prefetch


def _stretch_table() -> np.ndarray:
    p = (np.arange(4096) + 0.5) / 4096.0
    return np.round(np.log(p / (1 - p)) * 256).astype(np.int32)  # stretch(p) in 1/256


def _squash_table() -> np.ndarray:
    x = np.arange(-2047, 2048) / 256.0
    return np.clip(np.round(4096 / (1 + np.exp(-x))), 1, 4095).astype(np.int32)


def _confidence_table() -> np.ndarray:
    """The mixer's second input per bit history: how one-sided it is (+ for 1s, - for
    0s, up to 8 observations), 0 when both bits have been seen."""
    y = np.zeros(256, np.int32)
    for state in range(256):
        n0, n1 = state >> 4, state & 15
        if n0 == 0 and n1 > 0:
            y[state] = min(n1, 8) * 128
        elif n1 == 0 and n0 > 0:
            y[state] = -min(n0, 8) * 128
    return y


def _next_state_table() -> np.ndarray:
    """A bit history after bit b: its count goes up (to 15), the other's is halved
    beyond 2 (old evidence discounted)."""
    nxt = np.zeros((2, 256), np.uint8)
    for state in range(256):
        n0, n1 = state >> 4, state & 15
        nxt[1, state] = (((n0 + 1) >> 1 if n0 > 2 else n0) << 4) | min(n1 + 1, 15)
        nxt[0, state] = (min(n0 + 1, 15) << 4) | ((n1 + 1) >> 1 if n1 > 2 else n1)
    return nxt


STRETCH = _stretch_table()
SQUASH = _squash_table()  # index x + 2047 for x in -2047..2047
# Tables rather than branches: which way a history's counts go is data the CPU
# cannot guess. (In-cache timings with and without them differed by less than this
# machine's noise, 5-15%; kept because they are the same values with less code.)
CONFIDENCE = _confidence_table()
NEXT_STATE = _next_state_table()
# How a bit history (n0, n1) maps to a probability before any learning.
_SM_INIT = np.array(
    [int(65536 * ((s & 15) + 0.4) / ((s >> 4) + (s & 15) + 0.8)) for s in range(256)], np.int32
)
WEIGHT_ONE = 1 << 16
MIX_SHIFT = 15  # mixer learning rate: weight step = input * error >> MIX_SHIFT


class MixerModel:
    """Tables of one context-mixing model: n contexts, `sets` weight sets."""

    def __init__(
        self, n_contexts: int, table_bits: int, sets: int, n_inputs: int | None = None
    ) -> None:
        self.n = n_contexts
        self.table_bits = table_bits
        self.hist = np.zeros((n_contexts, 1 << table_bits), np.uint8)
        self.sm = np.empty((n_contexts, 256), np.int32)
        inputs = n_inputs if n_inputs is not None else 2 * n_contexts
        self.weights = np.empty((sets, inputs), np.int32)
        self.reset()

    def reset(self) -> None:
        self.hist[:] = 0
        self.sm[:] = _SM_INIT
        self.weights[:] = WEIGHT_ONE // max(1, self.n)


@njit(cache=True, inline="always")
def hash2(a, b):
    h = (a * 0x9E3779B1 + b * 0x85EBCA77 + 0x632BE5AB) & 0xFFFFFFFF
    h ^= h >> 15
    h = (h * 0x2C1B3C6D) & 0xFFFFFFFF
    return h ^ (h >> 12)


# Nodes of one symbol's bit tree share 16-slot buckets (one cache line): nodes 1..15
# (a symbol's first four bits) one bucket, then each bucket holds the 16 nodes that
# share their bits above the last four, so an 8-bit symbol visits five buckets: the
# first, then one known once 0, 1, 2, 3 of its bits are (nodes 16.., 32.., 64..,
# 128..). Node 0 codes a lone flag: it gets the whole table.


@njit(cache=True, inline="always")
def bucket_of(node):
    """Which bucket of a context's table holds `node` (-1: node 0, a lone flag)."""
    if node == 0:
        return -1
    return node >> 4


@njit(cache=True, inline="always")
def _bucket_mask(hist, hi):
    full = hist.shape[1] - 1
    return full if hi < 0 else full & ~15


@njit(cache=True, inline="always")
def _bucket_start(ctx, k, hi, mask):
    return hash2(ctx * 64 + k, hi) & mask


@njit(cache=True, inline="always")
def prefetch_bucket(ctxs, hi, hist):
    """Start loading the bucket `hi` of every context in ctxs (mix_code will read it):
    the reads then overlap instead of each waiting for memory in turn."""
    mask = _bucket_mask(hist, hi)
    for k in range(ctxs.shape[0]):
        prefetch(hist, k, _bucket_start(ctxs[k], k, hi, mask))


@njit(cache=True)
def mix_code(st, buf, enc, bit, ctxs, node, hist, sm, weights, wsel, slots, states, inputs):
    """Code one bit under the contexts `ctxs` (hashed with the tree node `node`, 1..255,
    or 0 for a lone flag).

    slots/states/inputs are caller-provided scratch arrays (len >= 2 * n contexts).
    Returns the coded bit. Updates histories, maps and weights.
    """
    k_n = ctxs.shape[0]
    hi = bucket_of(node)
    mask = _bucket_mask(hist, hi)
    lo = node & 15  # 0 for a lone flag
    dot = 0
    for k in range(k_n):
        s = _bucket_start(ctxs[k], k, hi, mask) | lo
        slots[k] = s
        state = np.int64(hist[k, s])
        states[k] = state
        p = sm[k, state]
        x = STRETCH[p >> 4]
        inputs[k] = x
        y = CONFIDENCE[state]
        inputs[k_n + k] = y
        dot += x * weights[wsel, k] + y * weights[wsel, k_n + k]
    dot >>= 16
    if dot > 2047:
        dot = 2047
    elif dot < -2047:
        dot = -2047
    p12 = SQUASH[dot + 2047]
    b = rc.code_bit(st, buf, p12 << 4, bit, enc)
    err = ((b << 12) - p12) * 6
    for i in range(2 * k_n):
        w = weights[wsel, i] + ((inputs[i] * err) >> MIX_SHIFT)
        weights[wsel, i] = max(-(1 << 22), min(1 << 22, w))
    for k in range(k_n):
        state = states[k]
        t = sm[k, state]
        if b:
            t += (65535 - t) >> 6
        else:
            t -= t >> 6
        sm[k, state] = t
        hist[k, slots[k]] = NEXT_STATE[b, state]
    return b
