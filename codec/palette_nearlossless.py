"""Palette-domain near-lossless: a GIF frame whose indices may move within --max-error.

With `--max-error E` every pixel of a palette frame may show any colour of the
frame's own colour table that lies within E of the source colour in every channel.
The frame stays a GIF frame (coding 2: rectangle, table, LZW phrases), so no new
syntax is needed: only the encoder's choice of indices and phrases changes.

The choice is greedy in LZW order, as lossy GIF encoders (gifsicle --lossy) make
it: a phrase starts at the source's own index and is extended while the dictionary
has a child whose colour is allowed at the next pixel (the exact index first, else
the nearest allowed one). Longer phrases are what the palette coder codes
cheaply: every pixel that continues a phrase is one "continue" decision among the
few children the dictionary has, instead of a fresh index among the whole table.

Transparent pixels are never changed and no pixel becomes transparent: the
transparent index shows the canvas below, which the bound cannot see from here.
The bound then holds by induction over frames: painted pixels are within E, and
what shows through (or is restored by disposal 3) was within E when it was drawn.
The caller still checks every composited frame against the source.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numba import njit

from .gifparse import GifFrame
from .palette import colour_table


def allowed_indices(
    table: np.ndarray, max_error: int, transparency: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """For each index i of `table` (n, 3): the indices that may stand for it, nearest
    first and i itself first of all, as (n, n) int32 rows and their lengths."""
    t = table.astype(np.int64)
    n = len(t)
    dist = np.abs(t[:, None, :] - t[None, :, :]).max(axis=2)  # Chebyshev: the bound's norm
    ok = dist <= max_error
    if transparency is not None and transparency < n:
        ok[transparency, :] = False
        ok[:, transparency] = False
        ok[transparency, transparency] = True
    # the index itself first (distance 0 ties go to it), then by distance, then by index
    key = np.where(ok, dist * 1024 + np.arange(n)[None, :] + 1, 1 << 40)
    key[np.arange(n), np.arange(n)] = 0
    order = np.argsort(key, axis=1, kind="stable").astype(np.int32)
    return order, ok.sum(axis=1).astype(np.int32)


@njit(cache=True)
def _greedy_lzw(src, allowed, n_allowed, mcs, out_idx, out_codes):
    """LZW-parse `src` (file order) extending phrases through allowed substitutes.
    Writes the chosen indices and the codes (-1: clear); returns the code count."""
    clear = 1 << mcs
    eoi = clear + 1
    child = np.full((4096, clear), -1, np.int16)
    used = np.zeros(4096, np.int32)  # rows with children since the last clear
    n_used = 0
    nxt = eoi + 1
    nc = 0
    out_codes[nc] = -1  # GIF streams start with a clear: the models expect one
    nc += 1
    prev = -1
    pos = 0
    n = src.shape[0]
    while pos < n:
        s = np.int64(src[pos])
        out_idx[pos] = s
        if prev >= 0 and nxt < 4096:
            # what the decoder adds on reading this phrase's first index (it finds
            # the newest of equal children first)
            child[prev, s] = nxt
            used[n_used] = prev
            n_used += 1
            nxt += 1
        node = s
        pos += 1
        while pos < n:
            i = np.int64(src[pos])
            c = child[node, i]
            sym = i
            if c < 0:
                for a in range(1, n_allowed[i]):
                    k = allowed[i, a]
                    if child[node, k] >= 0:
                        c = child[node, k]
                        sym = k
                        break
            if c < 0:
                break
            out_idx[pos] = sym
            node = c
            pos += 1
        out_codes[nc] = node
        nc += 1
        prev = node
        if nxt >= 4096 and pos < n:  # the dictionary is full: start afresh
            out_codes[nc] = -1
            nc += 1
            for j in range(n_used):
                child[used[j], :] = -1
            n_used = 0
            nxt = eoi + 1
            prev = -1
    return nc


def near_lossless_frame(
    frame: GifFrame, global_palette: np.ndarray | None, max_error: int
) -> GifFrame | None:
    """The frame re-parsed with indices moved within `max_error`, or None when no
    index of its table has a substitute (nothing to gain)."""
    table = colour_table(frame, global_palette)
    allowed, n_allowed = allowed_indices(table, max_error, frame.transparency)
    used = np.bincount(frame.indices, minlength=len(table))[: len(table)] > 0
    if not (n_allowed[used] > 1).any():
        return None
    npix = frame.indices.shape[0]
    out_idx = np.empty(npix, np.uint8)
    out_codes = np.empty(npix + npix // 1024 + 8, np.int32)
    nc = _greedy_lzw(frame.indices, allowed, n_allowed, frame.min_code_size, out_idx, out_codes)
    return replace(frame, codes=out_codes[:nc].copy(), indices=out_idx)
