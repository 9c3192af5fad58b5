"""How long the context mixer waits for its tables: ns a coded bit, with and without
the read-ahead hint (codec/prefetch.py).

`python -m fpcodec.bench.mixer_reads` codes bits through the palette coder's mixer
(13 contexts, tables of 2^22 bytes each, 52 MB: the symbol model's size) under
contexts drawn at random, so every read misses the caches as in a real frame's
worst case; then the same with each bit's reads hinted one bit ahead, and once more
with tables small enough to stay in cache (the arithmetic alone). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from fpcodec.codec import rangecoder as rc
from fpcodec.codec.mixing import MixerModel, mix_code, prefetch_bucket
from numba import njit

N_CONTEXTS = 13
NODE = 7 * 16 + 1  # one bucket past the first (nodes 112..127): any node would do


@njit(cache=True)
def _draw(x, ctxs, spread):
    x = (x * 6364136223846793005 + 1442695040888963407) & 0x7FFFFFFFFFFFFFFF
    for k in range(ctxs.shape[0]):
        ctxs[k] = (x >> (k + 3)) % spread
    return x


@njit(cache=True)
def _code_bits(n, st, buf, hist, sm, weights, spread, ahead):
    ctxs = np.zeros(N_CONTEXTS, np.int64)
    nxt = np.zeros(N_CONTEXTS, np.int64)
    scratch = np.zeros((3, 2 * N_CONTEXTS), np.int64)
    x = _draw(12345, nxt, spread)
    ones = 0
    for _ in range(n):
        ctxs[:] = nxt
        x = _draw(x, nxt, spread)  # the next bit's contexts, known a bit early
        if ahead:
            prefetch_bucket(nxt, NODE >> 4, hist)
        bit = (x >> 40) & 1
        ones += mix_code(
            st, buf, 1, bit, ctxs, NODE, hist, sm, weights, 0, scratch[0], scratch[1], scratch[2]
        )
    return ones


def ns_per_bit(table_bits: int, ahead: bool, n: int) -> float:
    model = MixerModel(N_CONTEXTS, table_bits, 16)
    buf = np.zeros(n // 2 + (1 << 16), np.uint8)  # far more than n coded bits can need
    for count in (1000, n):  # the first call compiles and warms the tables
        st = rc.new_state()
        rc.rc_init_enc(st)
        t = time.perf_counter()
        _code_bits(count, st, buf, model.hist, model.sm, model.weights, 1 << 30, ahead)
        seconds = time.perf_counter() - t
    return seconds / n * 1e9


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fpcodec.bench.mixer_reads", description=__doc__)
    ap.add_argument("--bits", type=int, default=2_000_000, help="bits coded per run")
    args = ap.parse_args(argv)
    result = {
        "contexts": N_CONTEXTS,
        "table_bytes": N_CONTEXTS << 22,
        "ns_per_bit_waiting": ns_per_bit(22, False, args.bits),
        "ns_per_bit_hinted": ns_per_bit(22, True, args.bits),
        "ns_per_bit_in_cache": ns_per_bit(12, False, args.bits),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
