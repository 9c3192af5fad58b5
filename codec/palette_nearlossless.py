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

Transparent pixels are never changed. An opaque pixel may become transparent
(showing the canvas below, as GIF optimisers leave unchanged pixels) where what
the canvas shows there is within E of the source. The bound then holds by
induction over frames: painted pixels are within E, and what shows through (or is
restored by disposal 3) was within E when it was drawn.
The caller still checks every composited frame against the source.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numba import njit

from .colour_index import packed_at
from .gifparse import GifFrame, interlace_rows
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
def _smooth(orig, ok, canvas_idx, keep, tidx, spatial, out):
    """Per pixel (image order), the index the context model expects most, when it is
    allowed: the transparent index where the canvas below is within the bound (the
    pixel is left as it was: GIF's cheapest pixel), else what the canvas already
    shows there (the palette coder's canvas context) or, where it shows no colour of
    the table, the predictor's colour (its prediction context), else the left
    neighbour's choice, else the upper one's, else its own. Flattening dither and
    noise this way is what makes runs (and phrases) long; repeating the prediction
    keeps the moved pixels of a still picture the same from frame to frame."""
    h, w = orig.shape
    for y in range(h):
        for x in range(w):
            i = orig[y, x]
            c = canvas_idx[y, x]
            if keep[y, x]:
                out[y, x] = tidx
            elif c >= 0 and ok[i, c]:
                out[y, x] = c
            elif spatial and x > 0 and ok[i, out[y, x - 1]]:
                out[y, x] = out[y, x - 1]
            elif spatial and y > 0 and ok[i, out[y - 1, x]]:
                out[y, x] = out[y - 1, x]
            else:
                out[y, x] = i


@njit(cache=True)
def _clear_positions(codes, mcs):
    """The pixel positions (file order) at which the source's LZW stream clears its
    dictionary, after its first code, ending with a sentinel past every pixel."""
    clear = 1 << mcs
    eoi = clear + 1
    length = np.zeros(4096, np.int64)
    n_clears = 0
    for k in range(1, codes.shape[0]):
        n_clears += codes[k] < 0
    # sized by the clears, not the codes: a frame at the size cap has tens of millions
    out = np.empty(n_clears + 1, np.int64)
    n_out = 0
    nxt = eoi + 1
    prev = -1
    pos = 0
    for k in range(codes.shape[0]):
        c = codes[k]
        if c < 0:
            if k > 0:
                out[n_out] = pos
                n_out += 1
            nxt = eoi + 1
            prev = -1
            continue
        if prev >= 0 and nxt < 4096:
            length[nxt] = (1 if prev < clear else length[prev]) + 1
            nxt += 1
        pos += 1 if c < clear else length[c]
        prev = c
    out[n_out] = 1 << 62
    return out


@njit(cache=True)
def _greedy_lzw(
    src, pref, allowed, n_allowed, keep, tidx, spatial, mcs, clear_at, out_idx, out_codes
):
    """LZW-parse the preferred indices `pref` (file order) extending phrases through
    substitutes allowed for the source indices `src`. Writes the chosen indices and
    the codes (-1: clear); returns the code count.

    The dictionary is cleared where the source cleared it (`clear_at`, pixel
    positions: the first phrase that starts there or after), and a full one is kept
    until then, as the source kept it. Where nothing moves this is the source's own
    stream; clearing on a full table instead moved the clears of the GIFs that clear
    two codes early, and their frames, made by lossy LZW encoders whose pixels follow
    the dictionary they built, then re-parsed into up to twice the codes."""
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
    ci = 0
    n = src.shape[0]
    while pos < n:
        if pos >= clear_at[ci]:
            out_codes[nc] = -1
            nc += 1
            for j in range(n_used):
                child[used[j], :] = -1
            n_used = 0
            nxt = eoi + 1
            prev = -1
            while pos >= clear_at[ci]:
                ci += 1
        s = np.int64(pref[pos])
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
            sym = np.int64(pref[pos])
            c = child[node, sym]
            if c < 0 and keep[pos] and child[node, tidx] >= 0:
                c = child[node, tidx]
                sym = tidx
            if c < 0 and spatial:
                for a in range(n_allowed[i]):
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
    return nc


def _canvas_indices(
    table: np.ndarray,
    canvas: np.ndarray,
    predicted: np.ndarray | None = None,
    transparency: int | None = None,
) -> np.ndarray:
    """(h, w) index of the table entry equal to each visible canvas colour, else to the
    predicted colour, else -1. The transparent index never stands for a colour: where
    it shares one with an opaque entry, the lookup finds the opaque one."""
    packed = (
        (table[:, 0].astype(np.int64) << 16) | (table[:, 1].astype(np.int64) << 8) | table[:, 2]
    )
    if transparency is not None and 0 <= transparency < len(packed):
        packed[transparency] = -1  # below every colour: never found
    order = np.argsort(packed, kind="stable")
    out = np.empty(canvas.shape[:2], np.int16)
    use_pred = predicted is not None
    # numba types an argument by its value: an unused prediction is a 3-byte array
    pred = predicted if use_pred else np.zeros((1, 1, 3), np.uint8)
    _lookup_canvas(packed[order], order, canvas, pred, use_pred, out)
    return out


@njit(cache=True)
def _first_equal(keys, want):
    """Index of the first key equal to `want`, else -1 (binary search)."""
    lo, hi = 0, keys.shape[0]
    while lo < hi:  # first key >= want: the leftmost of equal colours
        mid = (lo + hi) // 2
        if keys[mid] < want:
            lo = mid + 1
        else:
            hi = mid
    if lo < keys.shape[0] and keys[lo] == want:
        return lo
    return -1


@njit(cache=True)
def _lookup_canvas(keys, order, canvas, pred, use_pred, out):
    """Per pixel, the table index (`order` of the sorted `keys`) of the visible canvas
    colour, else of the predicted one (where use_pred), else -1. A loop because the
    NumPy form (packed int64 colours, searchsorted, where) took about 50 bytes a pixel,
    1.6 GB at the size cap."""
    H, W = out.shape
    for y in range(H):
        for x in range(W):
            out[y, x] = -1
            k = -1
            if canvas[y, x, 3] != 0:
                k = _first_equal(keys, packed_at(canvas, y, x))
            if k < 0 and use_pred:
                k = _first_equal(keys, packed_at(pred, y, x))
            if k >= 0:
                out[y, x] = order[k]


def near_lossless_frame(
    frame: GifFrame,
    global_palette: np.ndarray | None,
    max_error: int,
    canvas: np.ndarray | None = None,
    spatial: bool = True,
    predicted: np.ndarray | None = None,
) -> GifFrame | None:
    """The frame re-parsed with indices moved within `max_error`, or None when no
    index of its table has a substitute (nothing to gain). canvas: (H, W, 4) what the
    frame is drawn over, whose colours the moved indices prefer to repeat; predicted:
    (H, W, 3) the predictor's frame, whose colours they repeat where the canvas shows
    none (a GIF that clears each frame's rectangle, disposal 2, before the next); read
    only with a canvas, which the encoder always has."""
    table = colour_table(frame, global_palette)
    allowed, n_allowed = allowed_indices(table, max_error, frame.transparency)
    used = np.bincount(frame.indices, minlength=len(table))[: len(table)] > 0
    if not (n_allowed[used] > 1).any() and (frame.transparency is None or canvas is None):
        return None
    n = len(table)
    ok = np.zeros((n, n), np.bool_)
    for i in range(n):
        ok[i, allowed[i, : n_allowed[i]]] = True
    rows = interlace_rows(frame.h) if frame.interlace else np.arange(frame.h)
    img = np.empty((frame.h, frame.w), np.uint8)
    img[rows] = frame.indices.reshape(frame.h, frame.w)  # file order -> image order
    t = frame.transparency if frame.transparency is not None and frame.transparency < n else -1
    keep = np.zeros((frame.h, frame.w), np.bool_)
    if canvas is None:
        cidx = np.full((frame.h, frame.w), -1, np.int16)
    else:
        region = canvas[frame.y : frame.y + frame.h, frame.x : frame.x + frame.w]
        pred = None
        if predicted is not None:
            pred = predicted[frame.y : frame.y + frame.h, frame.x : frame.x + frame.w]
        cidx = _canvas_indices(table, region, pred, t if t >= 0 else None)
        if t >= 0:
            # the transparent index leaves the canvas showing: allowed where it is
            # visible and within the bound of what this pixel should show
            d = np.abs(region[..., :3].astype(np.int16) - table[img][..., :3]).max(axis=2)
            keep = (region[..., 3] != 0) & (d <= max_error) & (img != t)
    smooth = np.empty_like(img)
    _smooth(img, ok, cidx, keep, max(t, 0), spatial, smooth)
    pref = np.ascontiguousarray(smooth[rows]).ravel()
    keep_file = np.ascontiguousarray(keep[rows]).ravel()
    indices, codes = reparse(frame, pref, allowed, n_allowed, keep_file, max(t, 0), spatial)
    return replace(frame, codes=codes, indices=indices)


def reparse(
    frame: GifFrame,
    pref: np.ndarray,
    allowed: np.ndarray,
    n_allowed: np.ndarray,
    keep: np.ndarray | None = None,
    tidx: int = 0,
    spatial: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The frame's indices and LZW codes (-1: clear) re-parsed from `pref` (file order)
    by _greedy_lzw, clearing where the frame's own stream cleared."""
    npix = frame.indices.shape[0]
    if keep is None:
        keep = np.zeros(npix, np.bool_)
    out_idx = np.empty(npix, np.uint8)
    clear_at = _clear_positions(frame.codes, frame.min_code_size)
    # a code per phrase, a clear at most per source clear and the first
    out_codes = np.empty(npix + clear_at.shape[0] + 1, np.int32)
    nc = _greedy_lzw(
        frame.indices,
        pref,
        allowed,
        n_allowed,
        keep,
        tidx,
        spatial,
        frame.min_code_size,
        clear_at,
        out_idx,
        out_codes,
    )
    return out_idx, out_codes[:nc].copy()
