"""Encoding and decoding stream: memory does not grow with the clip's length."""

from __future__ import annotations

import tracemalloc

import numpy as np
from fpcodec.codec.gifwriter import GifWriter

import fpcodec


def _long_gif(path, n: int, size: int = 48) -> None:
    yy, xx = np.mgrid[0:size, 0:size]
    with open(path, "wb") as f:
        w = GifWriter(f, size, size, loop=0, has_alpha=False)
        for t in range(n):
            v = ((xx + 3 * t) // 6 + (yy + t) // 6) % 8 * 32
            frame = np.stack([v, 255 - v, (v * 3) % 256, np.full_like(v, 255)], -1).astype(np.uint8)
            w.add(frame, 20)
        w.close()


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_is_independent_of_clip_length(tmp):
    short, long_ = tmp / "short.gif", tmp / "long.gif"
    # Both clips span several keyframes (every 120 frames), so both peaks include
    # the transient cost of restarting the models.
    _long_gif(short, 300)
    _long_gif(long_, 1200)
    fpcodec.encode(
        short, tmp / "warm.fpc", predictor="last"
    )  # JIT and caches outside the measurement
    fpcodec.decode(tmp / "warm.fpc", tmp / "warm.gif")
    enc_short = _peak(lambda: fpcodec.encode(short, tmp / "s.fpc", predictor="last"))
    enc_long = _peak(lambda: fpcodec.encode(long_, tmp / "l.fpc", predictor="last"))
    dec_short = _peak(lambda: fpcodec.decode(tmp / "s.fpc", tmp / "s.gif"))
    dec_long = _peak(lambda: fpcodec.decode(tmp / "l.fpc", tmp / "l.gif"))
    # Model tables are a fixed cost; holding the extra 900 frames would add
    # 900 * 48 * 48 * 4 = 8.3 MB to the long run's peak. Allow a fifth of that.
    growth = 900 * 48 * 48 * 4 // 5
    assert enc_long < enc_short + growth
    assert dec_long < dec_short + growth
