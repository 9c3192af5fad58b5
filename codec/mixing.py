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


def _stretch_table() -> np.ndarray:
    p = (np.arange(4096) + 0.5) / 4096.0
    return np.round(np.log(p / (1 - p)) * 256).astype(np.int32)  # stretch(p) in 1/256


def _squash_table() -> np.ndarray:
    x = np.arange(-2047, 2048) / 256.0
    return np.clip(np.round(4096 / (1 + np.exp(-x))), 1, 4095).astype(np.int32)


STRETCH = _stretch_table()
SQUASH = _squash_table()  # index x + 2047 for x in -2047..2047
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


@njit(cache=True)
def mix_code(st, buf, enc, bit, ctxs, node, hist, sm, weights, wsel, slots, states, inputs):
    """Code one bit under the contexts `ctxs` (hashed with the tree node `node`, 1..255,
    or 0 for a lone flag).

    slots/states/inputs are caller-provided scratch arrays (len >= 2 * n contexts).
    Returns the coded bit. Updates histories, maps and weights.
    """
    k_n = ctxs.shape[0]
    # Nodes of one symbol's bit tree share 16-slot buckets (one cache line): the
    # first four bits of a symbol live in one bucket, the next four in another, so
    # a symbol costs each context two cache misses instead of eight.
    # node 0 codes a lone flag: it gets the whole table.
    full = hist.shape[1] - 1
    mask = full & ~15
    if node == 0:
        hi = -1
        lo = 0
        mask = full
    elif node < 16:
        hi = 0
        lo = node
    else:
        hi = node >> 4
        lo = node & 15
    dot = 0
    for k in range(k_n):
        s = (hash2(ctxs[k] * 64 + k, hi) & mask) | lo
        slots[k] = s
        state = np.int64(hist[k, s])
        states[k] = state
        p = sm[k, state]
        x = STRETCH[p >> 4]
        inputs[k] = x
        n0 = state >> 4
        n1 = state & 15
        if n0 == 0 and n1 > 0:
            y = (n1 if n1 < 8 else 8) * 128
        elif n1 == 0 and n0 > 0:
            y = -(n0 if n0 < 8 else 8) * 128
        else:
            y = 0
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
        n0 = state >> 4
        n1 = state & 15
        if b:
            if n1 < 15:
                n1 += 1
            if n0 > 2:
                n0 = (n0 + 1) >> 1
        else:
            if n0 < 15:
                n0 += 1
            if n1 > 2:
                n1 = (n1 + 1) >> 1
        hist[k, slots[k]] = (n0 << 4) | n1
    return b
