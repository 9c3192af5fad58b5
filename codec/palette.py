"""Lossless palette coding: code what a GIF frame really contains.

A palette frame is the GIF frame itself: rectangle, disposal, transparency index,
colour table and the LZW phrase stream that produced its indices. Decoding
rebuilds the indices, and the compositor (gifcompose.py) draws them exactly as
Pillow would. Coding the phrase structure matters: web GIFs are often made by
"lossy LZW" encoders that choose pixels to extend dictionary strings, and a model
that knows the dictionary predicts such pixels far better than one that sees
pixels alone.

For each phrase the coder sends: whether a clear code comes first, the phrase's
first index (any palette entry), then, while the dictionary node has children,
"continue?" and which child. Indices are coded as ranks in the palette sorted by
luma, bit by bit, each bit through a context-mixing model (mixing.py) whose
contexts are the neighbouring indices already decoded, the colour the canvas shows
at this pixel (nearest palette rank), the predictor's colour for this pixel
(nearest palette rank) and the dictionary node being extended. Continuation
choices only spend bits where the dictionary leaves more than one option.

A keyframe also carries the compositor's state (what the canvas shows, Pillow's
remembered disposal, the global palette), so decoding can start there. The canvas
it is drawn over is, where it has at most 256 colours (a GIF's canvas nearly always
has), coded as one more GIF frame: its colours as a table, its pixels as indices
LZW-parsed and coded with the same models as any frame. It then costs about what
the GIF's first frame costs; coding it as pixels cost four times as much.
"""

from __future__ import annotations

import copy
import struct
from dataclasses import dataclass

import numpy as np
from numba import njit

from . import rangecoder as rc
from .colour_index import hash_slot, index_colours, packed_at
from .errors import FormatError
from .gifcompose import CompositorState
from .gifparse import GifFrame, interlace_rows
from .mixing import MixerModel, bucket_of, hash2, mix_code, prefetch_bucket
from .sections import Reader, pack

USE_Q = True
N_SYM_CTX = 13 if USE_Q else 11
N_STOP_CTX = 7 if USE_Q else 6
SYM_SETS = 16
STOP_SETS = 16
N_CLEAR_MODELS = 32
PAL_COUNT_BASE = 0  # 512 models: palette size as a 9-bit tree
PAL_SAME_BASE = 512  # 4 models: "entry equals the reference entry"
PAL_VALUE_BASE = 516  # 3 x 256 models: channel values as 8-bit trees
N_PAL_MODELS = PAL_VALUE_BASE + 3 * 256


class PaletteModels:
    """Adaptive state of the palette coder (reset at keyframes)."""

    def __init__(self, table_bits: int = 22) -> None:
        self.sym = MixerModel(N_SYM_CTX, table_bits, SYM_SETS)
        self.stop = MixerModel(N_STOP_CTX, table_bits - 2, STOP_SETS)
        self.clear_probs, self.clear_counts = rc.new_models(N_CLEAR_MODELS)
        self.pal_probs, self.pal_counts = rc.new_models(N_PAL_MODELS)
        self.lut = np.full(1 << 15, -1, np.int32)

    def reset(self) -> None:
        self.sym.reset()
        self.stop.reset()
        self.clear_probs[:] = rc.PROB_HALF
        self.clear_counts[:] = 0
        self.pal_probs[:] = rc.PROB_HALF
        self.pal_counts[:] = 0


# ------------------------------------------------------------------ kernels


@njit(cache=True)
def _code_palette(st, buf, enc, pal, ref, probs, counts):
    """Code a colour table (n, 3) against a reference table. Returns the table."""
    n = pal.shape[0] if enc else 0
    n = rc.code_tree(st, buf, probs, counts, PAL_COUNT_BASE, n, 9, enc, 5)
    out = np.zeros((n, 3), np.uint8)
    prev_same = 1
    for i in range(n):
        same = 0
        if i < ref.shape[0]:
            if enc:
                same = (
                    1
                    if (
                        pal[i, 0] == ref[i, 0] and pal[i, 1] == ref[i, 1] and pal[i, 2] == ref[i, 2]
                    )
                    else 0
                )
            same = rc.code_adaptive(st, buf, probs, counts, PAL_SAME_BASE + prev_same, same, enc, 5)
        if same:
            for c in range(3):
                out[i, c] = ref[i, c]
        else:
            for c in range(3):
                v = np.int64(pal[i, c]) if enc else 0
                out[i, c] = rc.code_tree(
                    st, buf, probs, counts, PAL_VALUE_BASE + 256 * c, v, 8, enc, 5
                )
        prev_same = same
    return out


@njit(cache=True)
def _code_symbol(
    st, buf, enc, v, restricted, ch, nch, nb, ctxs, hist, sm, weights, slots, states, inputs
):
    """Code a rank (nb bits); when restricted, only ranks in ch[:nch] are possible and
    bits the restriction already decides cost nothing. ch[:nch] is used up: it keeps
    the ranks that agree with the bits so far, so each bit scans only those (a root's
    children can be hundreds)."""
    node = 1
    if not restricted:  # a restricted rank's first reads are hinted by the caller
        prefetch_bucket(ctxs, 0, hist)
        if nb > 4:
            prefetch_bucket(ctxs, 1, hist)
    for j in range(nb - 1, -1, -1):
        bit = (v >> j) & 1 if enc else 0
        if restricted:
            # ch[:nch] agree with every bit above j: is bit j decided among them?
            has0 = False
            has1 = False
            for i in range(nch):
                if (ch[i] >> j) & 1:
                    has1 = True
                else:
                    has0 = True
                if has0 and has1:
                    break
            if not (has0 and has1):
                node = node * 2 + (1 if has1 else 0)
                continue
        depth_bit = nb - 1 - j
        wsel = (depth_bit if depth_bit < 7 else 7) * 2 + restricted
        b = mix_code(st, buf, enc, bit, ctxs, node, hist, sm, weights, wsel, slots, states, inputs)
        node = node * 2 + b
        if restricted:
            kept = 0
            for i in range(nch):
                if ((ch[i] >> j) & 1) == b:
                    ch[kept] = ch[i]
                    kept += 1
            nch = kept
        if depth_bit + 5 < nb:
            # the bucket of the bit five further down is now known (mixing.py)
            prefetch_bucket(ctxs, node, hist)
    return node - (1 << nb)


@njit(cache=True)
def _first_open_node(ch, nch, nb):
    """The tree node of the first bit a restricted rank codes: the ranks in ch[:nch]
    (nch > 1) share every bit above their highest differing one, which decides it."""
    diff = 0
    for i in range(1, nch):
        diff |= ch[i] ^ ch[0]
    top = 0
    while (diff >> (top + 1)) > 0:
        top += 1
    return (ch[0] >> (top + 1)) | (1 << (nb - 1 - top))


# The LZW dictionary as the decoder rebuilds it: one (4, 4096) table, a row per field,
# so the helpers below take one array instead of four.
D_CHILD = 0  # first child of an entry (-1: none)
D_SIB = 1  # next sibling (-1: last)
D_SYM = 2  # the index an entry appends to its parent's string
D_DEPTH = 3  # string length
MAX_CLEARS_IN_ROW = 64  # more clear codes in a row than any GIF writes: a damaged stream


@njit(cache=True)
def _new_dictionary(clear):
    """The dictionary right after a clear code: one root per palette index."""
    dic = np.zeros((4, 4096), np.int32)
    dic[D_CHILD, :] = -1
    dic[D_SIB, :] = -1
    for s in range(clear):
        dic[D_DEPTH, s] = 1
        dic[D_SYM, s] = s
    return dic


@njit(cache=True)
def _clear_dictionary(dic, nxt):
    """Forget every string added since the last clear (entries below nxt)."""
    for e in range(nxt):
        dic[D_CHILD, e] = -1


@njit(cache=True)
def _add_entry(dic, e, parent, s):
    """Entry e = parent's string + index s, as LZW adds one after each phrase."""
    dic[D_SYM, e] = s
    dic[D_DEPTH, e] = dic[D_DEPTH, parent] + 1
    dic[D_CHILD, e] = -1
    dic[D_SIB, e] = dic[D_CHILD, parent]
    dic[D_CHILD, parent] = e


@njit(cache=True)
def _child_ranks(dic, node, rank, ch):
    """Ranks of the indices that can extend node's string, into ch; returns how many."""
    nch = 0
    e = dic[D_CHILD, node]
    while e >= 0:
        ch[nch] = rank[dic[D_SYM, e]]
        nch += 1
        e = dic[D_SIB, e]
    return nch


@njit(cache=True)
def _find_child(dic, node, s):
    """The entry extending node's string by index s, or -1 (a damaged stream)."""
    e = dic[D_CHILD, node]
    while e >= 0:
        if dic[D_SYM, e] == s:
            return e
        e = dic[D_SIB, e]
    return -1


@njit(cache=True)
def _clear_context(nco, nxt):
    """Context of the "clear code first?" flag: the stream's start, or how close the
    dictionary is to full (writers clear near 4096 entries)."""
    if nco == 0:
        return 31
    c = nxt - 4080
    return 0 if c < 0 else (30 if c > 30 else c)


@njit(cache=True)
def _encoder_target(codes, ci, nxt, clear, eoi):
    """The code the encoder's phrase must end on, or -1 if the GIF's code stream is
    not one this dictionary can produce."""
    if ci >= codes.shape[0]:
        return -1
    t = codes[ci]
    if t < 0 or t >= nxt or t in (clear, eoi):
        return -1
    return t


@njit(cache=True)
def _symbol_contexts(sctx, rankbuf, row, col, w, tv, pv, qv, head, phrase):
    """Contexts of a pixel's rank: the ranks already coded to the west and north, the
    canvas (tv), prediction (pv) and previous-frame (qv) ranks, plus `head` (0 for a
    phrase's first index, 32 + depth inside one) and `phrase` (the previous phrase,
    or the dictionary node being extended)."""
    wv = rankbuf[row, col - 1] if col > 0 else -1
    wwv = rankbuf[row, col - 2] if col > 1 else -1
    w3 = rankbuf[row, col - 3] if col > 2 else -1
    w4 = rankbuf[row, col - 4] if col > 3 else -1
    nv = rankbuf[row - 1, col] if row > 0 else -1
    nwv = rankbuf[row - 1, col - 1] if (row > 0 and col > 0) else -1
    nev = rankbuf[row - 1, col + 1] if (row > 0 and col + 1 < w) else -1
    sctx[0] = head
    sctx[1] = wv + 1
    sctx[2] = hash2(wv, nv)
    sctx[3] = hash2(hash2(wv, nv), hash2(nwv, nev))
    sctx[4] = tv + 3
    sctx[5] = hash2(tv, wv)
    sctx[6] = pv + 3
    sctx[7] = hash2(wv, wwv)
    sctx[8] = hash2(hash2(wv, wwv), hash2(w3, w4))
    sctx[9] = phrase
    sctx[10] = hash2(pv, nv)
    if USE_Q:
        sctx[11] = qv + 3
        sctx[12] = hash2(qv, wv)


@njit(cache=True)
def _stop_contexts(tctx, ch, nch, node, dd, col, lastv, nv, tv, pv, qv):
    """Contexts of "does the phrase go on?": depth (dd, capped), how many children
    the node has and which of the neighbouring / canvas / predicted / previous ranks
    are among them."""
    c_t = 0
    c_p = 0
    c_n = 0
    c_w = 0
    c_q = 0
    for i in range(nch):
        if ch[i] == tv:
            c_t = 1
        if ch[i] == pv:
            c_p = 1
        if ch[i] == nv:
            c_n = 1
        if ch[i] == lastv:
            c_w = 1
        if ch[i] == qv:
            c_q = 1
    tctx[0] = dd * 8 + (nch if nch < 7 else 7)
    tctx[1] = hash2(node, 1)
    tctx[2] = c_t | (c_p << 1) | (c_n << 2) | (c_w << 3) | ((nch if nch < 3 else 3) << 4)
    tctx[3] = hash2(hash2(tv, nv), lastv)
    tctx[4] = dd * 16 + (8 if col == 0 else 0) + c_t * 4 + c_n * 2 + c_p
    tctx[5] = hash2(lastv, pv)
    if USE_Q:
        tctx[6] = hash2(hash2(qv, lastv), c_q * 2 + c_n)


@njit(cache=True, nogil=True)
def _code_phrases(
    st,
    buf,
    enc,
    codes,
    idx,
    npix,
    w,
    rowmap,
    mcs,
    rank,
    inv_rank,
    tmap,
    pmap,
    qmap,
    s_hist,
    s_sm,
    s_w,
    t_hist,
    t_sm,
    t_w,
    c_probs,
    c_counts,
    out_codes,
):
    """Code one frame's LZW phrase stream. Returns (status, codes written/read).

    status 0 ok; 1 the encoder's codes disagree with the dictionary; 2 the decoder
    met an impossible stream (damaged). Per phrase: an optional clear code, the
    first index (any rank), then while the dictionary node has children "go on?"
    and which child (a rank restricted to the children).
    """
    clear = 1 << mcs
    eoi = clear + 1
    nb = mcs
    dic = _new_dictionary(clear)
    nxt = eoi + 1
    rankbuf = np.full((rowmap.shape[0], w), -1, np.int16)  # ranks < 4096: half of int32
    sctx = np.zeros(N_SYM_CTX, np.int64)
    tctx = np.zeros(N_STOP_CTX, np.int64)
    slots = np.zeros(2 * N_SYM_CTX, np.int64)
    states = np.zeros(2 * N_SYM_CTX, np.int64)
    inputs = np.zeros(2 * N_SYM_CTX, np.int64)
    ch = np.zeros(4096, np.int64)
    pos = 0
    ci = 0
    nco = 0
    prev = -1
    clears_in_row = 0
    while pos < npix:
        isclr = 1 if (enc and ci < codes.shape[0] and codes[ci] < 0) else 0
        cctx = _clear_context(nco, nxt)
        if rc.code_adaptive(st, buf, c_probs, c_counts, cctx, isclr, enc, 5):
            clears_in_row += 1
            if clears_in_row > MAX_CLEARS_IN_ROW or (not enc and nco >= out_codes.shape[0]):
                return 2, nco
            if enc:
                ci += 1
            else:
                out_codes[nco] = -1
            nco += 1
            _clear_dictionary(dic, nxt)
            nxt = eoi + 1
            prev = -1
            continue
        clears_in_row = 0
        # -- the phrase's first index: any rank
        row = rowmap[pos // w]
        col = pos % w
        _symbol_contexts(
            sctx,
            rankbuf,
            row,
            col,
            w,
            tmap[row, col],
            pmap[row, col],
            qmap[row, col],
            0,
            hash2(-7, prev),
        )
        v = rank[idx[pos]] if enc else 0
        v = _code_symbol(
            st, buf, enc, v, 0, ch, 0, nb, sctx, s_hist, s_sm, s_w, slots, states, inputs
        )
        s = inv_rank[v]
        if not enc:
            idx[pos] = s
        rankbuf[row, col] = v
        pos += 1
        node = s
        depth = 1
        if prev >= 0 and nxt < 4096:
            _add_entry(dic, nxt, prev, s)
            nxt += 1
        length = 0
        if enc:
            target = _encoder_target(codes, ci, nxt, clear, eoi)
            if target < 0:
                return 1, nco
            length = dic[D_DEPTH, target]
        # -- continue the phrase through the dictionary: "go on?", then which child
        while pos < npix:
            nch = _child_ranks(dic, node, rank, ch)
            if nch == 0:
                break
            row = rowmap[pos // w]
            col = pos % w
            lastv = rankbuf[row, col - 1] if col > 0 else -1
            nv = rankbuf[row - 1, col] if row > 0 else -1
            tv = tmap[row, col]
            pv = pmap[row, col]
            qv = qmap[row, col]
            dd = depth if depth < 15 else 15
            _stop_contexts(tctx, ch, nch, node, dd, col, lastv, nv, tv, pv, qv)
            prefetch_bucket(tctx, -1, t_hist)
            # The child's contexts do not depend on "go on?": their first table reads
            # start now and arrive while that bit is coded (wasted where the phrase ends).
            _symbol_contexts(sctx, rankbuf, row, col, w, tv, pv, qv, 32 + dd, hash2(node, 9))
            if nch > 1:
                prefetch_bucket(sctx, bucket_of(_first_open_node(ch, nch, nb)), s_hist)
            cont = 1 if (enc and depth < length) else 0
            cb = mix_code(st, buf, enc, cont, tctx, 0, t_hist, t_sm, t_w, dd, slots, states, inputs)
            if cb == 0:
                break
            v = rank[idx[pos]] if enc else 0
            v = _code_symbol(
                st, buf, enc, v, 1, ch, nch, nb, sctx, s_hist, s_sm, s_w, slots, states, inputs
            )
            s = inv_rank[v]
            node = _find_child(dic, node, s)
            if node < 0:
                return 2, nco
            depth += 1
            if not enc:
                idx[pos] = s
            rankbuf[row, col] = v
            pos += 1
        if enc:
            if node != target:
                return 1, nco
            ci += 1
        else:
            if nco >= out_codes.shape[0]:
                return 2, nco
            out_codes[nco] = node
        nco += 1
        prev = node
    return 0, nco


@njit(cache=True)
def _nearest_ranks(img, use_alpha, pal_by_rank, lut, out):
    """Nearest palette rank of each pixel of an (h, w, >=3) image; -1 where use_alpha
    and the pixel is transparent.

    Exact colours map to their own rank; others go through a 15-bit colour cube
    filled on demand with the nearest entry (weighted squared RGB distance). Reads the
    image in place: a frame at the size cap must not be copied into packed integers.
    """
    n = pal_by_rank.shape[0]
    size = 1024
    keys = np.full(size, -1, np.int64)
    vals = np.zeros(size, np.int32)
    for r in range(n):
        c = pal_by_rank[r]
        hh = hash_slot(keys, c)
        if keys[hh] < 0:
            keys[hh] = c
            vals[hh] = r
    h, w = out.shape
    for y in range(h):
        for x in range(w):
            if use_alpha and img[y, x, 3] == 0:
                out[y, x] = -1
                continue
            c = packed_at(img, y, x)
            hh = hash_slot(keys, c)
            if keys[hh] >= 0:
                out[y, x] = vals[hh]
                continue
            cell = (((c >> 19) & 31) << 10) | (((c >> 11) & 31) << 5) | ((c >> 3) & 31)
            if lut[cell] < 0:
                r0 = (((c >> 19) & 31) << 3) + 4
                g0 = (((c >> 11) & 31) << 3) + 4
                b0 = (((c >> 3) & 31) << 3) + 4
                best = 0
                bestd = 1 << 62
                for r in range(n):
                    p = pal_by_rank[r]
                    dr = ((p >> 16) & 255) - r0
                    dg = ((p >> 8) & 255) - g0
                    db = (p & 255) - b0
                    d = 3 * dr * dr + 4 * dg * dg + 2 * db * db
                    if d < bestd:
                        bestd = d
                        best = r
                lut[cell] = best
            out[y, x] = lut[cell]


@njit(cache=True)
def _ranks_of_indices(prev, undrawn, any_undrawn, rank, out):
    """Rank of the index each pixel last stored; -1 where none was stored yet (where
    any_undrawn and undrawn says so)."""
    n = rank.shape[0]
    h, w = out.shape
    for y in range(h):
        for x in range(w):
            if any_undrawn and undrawn[y, x]:
                out[y, x] = -1
            else:
                out[y, x] = rank[min(np.int64(prev[y, x]), n - 1)]


# ------------------------------------------------------------------ frame level


def _packed(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def colour_table(frame: GifFrame, global_palette: np.ndarray | None) -> np.ndarray:
    """The (2^mcs, 3) colours of every codable index, as the compositor shows them."""
    n = 1 << frame.min_code_size
    pal = frame.local_palette if frame.local_palette is not None else global_palette
    out = np.zeros((max(n, 256), 3), np.uint8)
    if pal is None:
        out[:] = np.arange(out.shape[0], dtype=np.uint8)[:, None]
    else:
        out[: min(len(pal), out.shape[0])] = pal[: out.shape[0]]
    return out[:n]


def luma_ranks(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """rank[index] and inv_rank[rank] for indices sorted by luma (ties by index)."""
    t = table.astype(np.int64)
    luma = t[:, 0] * 299 + t[:, 1] * 587 + t[:, 2] * 114
    order = np.lexsort((np.arange(len(t)), luma))
    rank = np.empty(len(t), np.int64)
    rank[order] = np.arange(len(t))
    return rank, order.astype(np.int64)


@njit(cache=True)
def _opaque_and_alike(canvas, prediction) -> bool:
    """Every canvas pixel opaque and of the predicted colour: the two rank maps of
    _maps are then one (-1 marks only transparent canvas pixels)."""
    for y in range(canvas.shape[0]):
        for x in range(canvas.shape[1]):
            if canvas[y, x, 3] == 0:
                return False
            for c in range(3):
                if canvas[y, x, c] != prediction[y, x, c]:
                    return False
    return True


def _maps(
    models: PaletteModels,
    table: np.ndarray,
    rank: np.ndarray,
    inv_rank: np.ndarray,
    frame: GifFrame,
    canvas: np.ndarray,
    prediction: np.ndarray | None,
    prev_syms: np.ndarray,
    undrawn: np.ndarray | None,
) -> tuple[np.ndarray, ...]:
    """Row map (file order -> row) and the context maps over the rectangle: nearest
    rank of the canvas colour, of the predicted colour, and the rank of the index the
    previous GIF frame stored at each pixel."""
    x0, y0, x1, y1 = frame.x, frame.y, frame.x + frame.w, frame.y + frame.h
    rowmap = interlace_rows(frame.h) if frame.interlace else np.arange(frame.h, dtype=np.int64)
    pal_by_rank = _packed(table[inv_rank])
    models.lut[:] = -1
    # int16 maps: ranks are below MAX_PALETTE; three int32 maps of a frame at the size
    # cap would be 400 MB
    tmap = np.empty((frame.h, frame.w), np.int16)
    _nearest_ranks(canvas[y0:y1, x0:x1], True, pal_by_rank, models.lut, tmap)
    if prediction is None or _opaque_and_alike(canvas[y0:y1, x0:x1], prediction[y0:y1, x0:x1]):
        # after a palette frame, `last` predicts the canvas itself: the ranks are the
        # same, and a second map was 64 MiB at the size cap (the comparison costs about
        # a third of the map it saves)
        pmap = tmap
    else:
        pmap = np.empty((frame.h, frame.w), np.int16)
        _nearest_ranks(prediction[y0:y1, x0:x1], False, pal_by_rank, models.lut, pmap)
    qmap = np.empty((frame.h, frame.w), np.int16)
    if undrawn is None:
        _ranks_of_indices(prev_syms[y0:y1, x0:x1], _NOTHING_UNDRAWN, False, rank, qmap)
    else:
        _ranks_of_indices(prev_syms[y0:y1, x0:x1], undrawn[y0:y1, x0:x1], True, rank, qmap)
    return rowmap, tmap, pmap, qmap


_NOTHING_UNDRAWN = np.zeros((1, 1), np.bool_)
_HEAD = struct.Struct("<BBBBHHHH")
F_INTERLACE, F_LOCAL, F_TRANSPARENT, F_GCE, F_KEYSTATE = 1, 2, 4, 8, 16
K_FIRST, K_RGBA, K_BASE, K_GLOBAL, K_PALETTE_BASE = 1, 2, 8, 16, 32
# a predicted frame's compositor state, drawn over the previous reconstruction (a
# palette frame after frames of other codings, in lossy and near-lossless streams)
K_RESYNC = 64
K_KNOWN = K_FIRST | K_RGBA | K_BASE | K_GLOBAL | K_PALETTE_BASE
_BASE_HEAD = struct.Struct("<BBB")  # min code size, has a transparent index, that index


@dataclass
class PaletteStream:
    """Per-stream palette-coding state shared by encoder and decoder."""

    models: PaletteModels
    global_palette: np.ndarray | None = None
    compositor: CompositorState | None = None
    prev_table: np.ndarray | None = None  # reference for coding the next colour table
    # (H, W) uint8: the last index a GIF frame stored at each pixel, and (H, W) bool:
    # where none has been stored yet, dropped once every pixel has one (a GIF's first
    # frame nearly always covers the screen). One int16 map with -1 for "none" was
    # 64 MiB at the size cap, where these are 32 after the first frame.
    prev_syms: np.ndarray | None = None
    undrawn: np.ndarray | None = None
    fresh: bool = True  # no palette frame since the keyframe yet (palette_resync.py)

    def reset_models(self, height: int, width: int) -> None:
        self.models.reset()
        self.prev_table = None
        self.prev_syms = np.zeros((height, width), np.uint8)
        self.undrawn = np.ones((height, width), np.bool_)

    def fork(self, compositor: CompositorState | None = None) -> PaletteStream:
        """A copy to code a trial frame on (gifchoice.py), drawn over `compositor` when
        given (a keyframe's or a resync's), else over this stream's. The models are
        copied, since a frame updates them in place. The rest is shared: the colour
        tables (a frame replaces them), the compositor's canvas (CompositorState.copy)
        and the index map, which a trial must leave alone (encode_palette_frame with
        remember=False) and only the trial that is kept writes, by `remember`. Each
        copy of the canvas and the map was 6 bytes a pixel, 192 MiB at the size cap."""
        return PaletteStream(
            copy.deepcopy(self.models),
            self.global_palette,
            compositor
            if compositor is not None or self.compositor is None
            else self.compositor.copy(),
            self.prev_table,
            self.prev_syms,
            self.undrawn,
            self.fresh,
        )

    def own_index_map(self) -> None:
        """Stop sharing the index map with the stream this one was forked from."""
        if self.prev_syms is not None:
            self.prev_syms = self.prev_syms.copy()
        if self.undrawn is not None:
            self.undrawn = self.undrawn.copy()

    def remember(self, frame: GifFrame) -> None:
        from .gifcompose import frame_pixels

        rect = (slice(frame.y, frame.y + frame.h), slice(frame.x, frame.x + frame.w))
        self.prev_syms[rect] = frame_pixels(frame)
        if self.undrawn is not None:
            self.undrawn[rect] = False
            if not self.undrawn.any():
                self.undrawn = None


def encode_palette_frame(
    ps: PaletteStream,
    frame: GifFrame,
    key: bool,
    prediction: np.ndarray | None,
    encode_base,  # callable(rgba) -> bytes, intra-codes the base canvas
    resync: bool = False,
    remember: bool = True,
) -> bytes:
    """Body of a palette frame. ps.compositor must hold the state before this frame
    (for a keyframe it is sent; afterwards the caller composites the frame).

    resync (predicted frames only): ps.compositor is drawn over the previous
    reconstruction; its flags travel in a resync state (resync.py), and the models
    start afresh when `ps.fresh` (the stream's first palette frame since a keyframe).

    remember=False leaves the index map as it was, for a trial on a fork (see
    PaletteStream.fork): the caller calls `ps.remember(frame)` if it keeps the frame."""
    comp = ps.compositor
    assert comp is not None
    flags = (
        (F_INTERLACE if frame.interlace else 0)
        | (F_LOCAL if frame.local_palette is not None else 0)
        | (F_TRANSPARENT if frame.transparency is not None else 0)
        | (F_GCE if frame.has_gce else 0)
        | (F_KEYSTATE if key or resync else 0)
    )
    head = _HEAD.pack(
        flags,
        frame.disposal,
        frame.transparency or 0,
        frame.min_code_size,
        frame.x,
        frame.y,
        frame.w,
        frame.h,
    )
    parts = [head]
    if resync:
        from .palette_resync import encode_resync_state

        parts.append(encode_resync_state(ps, comp))
    if key:
        ps.reset_models(*comp.canvas.shape[:2])
        ps.fresh = False
        base = _base_canvas(comp)
        coded_base = None if base is None else encode_palette_base(ps.models, base)
        kflags = (
            (K_FIRST if comp.first else 0)
            | (K_RGBA if comp.rgba_mode else 0)
            | (K_BASE if base is not None else 0)
            | (K_PALETTE_BASE if coded_base is not None else 0)
            | (K_GLOBAL if ps.global_palette is not None else 0)
        )
        parts.append(struct.pack("<BBB", kflags, comp.disposal, comp.background))
        if ps.global_palette is not None:
            parts.append(struct.pack("<H", len(ps.global_palette)) + ps.global_palette.tobytes())
        if coded_base is not None:
            parts.append(pack(coded_base))
        elif base is not None:
            parts.append(pack(encode_base(base)))
    table = colour_table(frame, ps.global_palette)
    rank, inv_rank = luma_ranks(table)
    rowmap, tmap, pmap, qmap = _maps(
        ps.models,
        table,
        rank,
        inv_rank,
        frame,
        _drawn_on(comp),
        prediction,
        ps.prev_syms,
        ps.undrawn,
    )
    m = ps.models
    npix = frame.w * frame.h
    buf = np.zeros(4 * npix + 4096 + (frame.codes.shape[0] * 4), np.uint8)
    st = rc.new_state()
    rc.rc_init_enc(st)
    if frame.local_palette is not None:
        ref = ps.prev_table if ps.prev_table is not None else np.zeros((0, 3), np.uint8)
        _code_palette(st, buf, True, frame.local_palette, ref, m.pal_probs, m.pal_counts)
        ps.prev_table = frame.local_palette
    status, _ = _code_phrases(
        st,
        buf,
        True,
        frame.codes,
        frame.indices,
        npix,
        frame.w,
        rowmap,
        frame.min_code_size,
        rank,
        inv_rank,
        tmap,
        pmap,
        qmap,
        m.sym.hist,
        m.sym.sm,
        m.sym.weights,
        m.stop.hist,
        m.stop.sm,
        m.stop.weights,
        m.clear_probs,
        m.clear_counts,
        np.zeros(1, np.int32),
    )
    n = rc.rc_finish_enc(st, buf)
    if status != 0:
        raise ValueError("GIF code stream disagrees with its dictionary")
    if remember:
        ps.remember(frame)
    if st[7]:
        raise rc.CodingOverflow()
    parts.append(pack(buf[:n].tobytes()))
    return b"".join(parts)


def _drawn_on(comp: CompositorState) -> np.ndarray:
    """What the next frame is drawn over (the canvas after the pending disposal); not
    to be written into (without a pending disposal it is the compositor's canvas)."""
    if comp.first:
        return np.zeros_like(comp.canvas)
    if comp.pending is None:
        return comp.canvas
    canvas = comp.canvas.copy()
    x0, y0, x1, y1, patch = comp.pending
    canvas[y0:y1, x0:x1] = patch
    return canvas


def _base_canvas(comp: CompositorState) -> np.ndarray | None:
    """For a keyframe: the canvas it is drawn over, or None for a clip's first frame.
    The state is normalised (pending disposal applied) so both sides start equal."""
    if comp.first:
        return None
    comp.canvas = _drawn_on(comp)
    comp.pending = None
    return comp.canvas


def decode_palette_frame(
    ps: PaletteStream,
    body: bytes,
    key: bool,
    prediction: np.ndarray | None,
    width: int,
    height: int,
    decode_base,  # callable(bytes) -> rgba
    what: str,
    previous: np.ndarray | None = None,  # the previous reconstruction (resync frames)
) -> GifFrame:
    r = Reader(body, what)
    flags, disposal, tidx, mcs, x, y, w, h = _HEAD.unpack(r.take(_HEAD.size))
    resync = bool(flags & F_KEYSTATE) and not key
    if resync and previous is None:
        raise FormatError(f"{what}: palette state on a frame that may not carry one")
    if not 2 <= mcs <= 8 or w == 0 or h == 0 or x + w > width or y + h > height:
        raise FormatError(f"{what}: impossible GIF frame geometry")
    if key and not flags & F_KEYSTATE:
        raise FormatError(f"{what}: keyframe state flag disagrees with the frame type")
    if resync:
        from .palette_resync import decode_resync_state

        decode_resync_state(ps, r, previous, what)
    if key:
        ps.reset_models(height, width)
        ps.fresh = False
        kflags, rem_disposal, background = struct.unpack("<BBB", r.take(3))
        if kflags & ~K_KNOWN or (kflags & K_PALETTE_BASE and not kflags & K_BASE):
            raise FormatError(f"{what}: unknown keyframe state flags")
        gp = None
        if kflags & K_GLOBAL:
            n = struct.unpack("<H", r.take(2))[0]
            if not 1 <= n <= 256:
                raise FormatError(f"{what}: bad global palette size")
            gp = np.frombuffer(r.take(3 * n), np.uint8).reshape(n, 3).copy()
        ps.global_palette = gp
        canvas = np.zeros((height, width, 4), np.uint8)
        if kflags & K_BASE:
            if kflags & K_FIRST:
                raise FormatError(f"{what}: a first frame has no base canvas")
            if kflags & K_PALETTE_BASE:
                canvas = decode_palette_base(ps.models, r.section(), height, width, what)
            else:
                canvas = decode_base(r.section())
        elif not kflags & K_FIRST:
            raise FormatError(f"{what}: keyframe without a base canvas")
        ps.compositor = CompositorState(
            canvas=canvas,
            first=bool(kflags & K_FIRST),
            rgba_mode=bool(kflags & K_RGBA),
            disposal=rem_disposal & 7,
            background=background,
        )
    elif ps.compositor is None:
        raise FormatError(f"{what}: palette frame without a palette keyframe before it")
    comp = ps.compositor
    frame = GifFrame(
        x,
        y,
        w,
        h,
        None,
        tidx if flags & F_TRANSPARENT else None,
        disposal & 7,
        bool(flags & F_GCE),
        0,
        bool(flags & F_INTERLACE),
        mcs,
        np.zeros(0, np.int32),
        np.zeros(w * h, np.uint8),
    )
    data = r.section()
    r.done()
    m = ps.models
    buf = rc.input_buffer(data)
    st = rc.new_state()
    rc.rc_init_dec(st, buf)
    if flags & F_LOCAL:
        ref = ps.prev_table if ps.prev_table is not None else np.zeros((0, 3), np.uint8)
        table = _code_palette(
            st, buf, False, np.zeros((0, 3), np.uint8), ref, m.pal_probs, m.pal_counts
        )
        if not 2 <= len(table) <= 256 or len(table) & (len(table) - 1):
            raise FormatError(f"{what}: bad colour table size")
        frame.local_palette = table
        ps.prev_table = table
    colours = colour_table(frame, ps.global_palette)
    rank, inv_rank = luma_ranks(colours)
    rowmap, tmap, pmap, qmap = _maps(
        m, colours, rank, inv_rank, frame, _drawn_on(comp), prediction, ps.prev_syms, ps.undrawn
    )
    out_codes = np.zeros(w * h + 4096, np.int16)  # 12-bit codes, -1 for CLEAR
    status, nco = _code_phrases(
        st,
        buf,
        False,
        np.zeros(0, np.int32),
        frame.indices,
        w * h,
        w,
        rowmap,
        mcs,
        rank,
        inv_rank,
        tmap,
        pmap,
        qmap,
        m.sym.hist,
        m.sym.sm,
        m.sym.weights,
        m.stop.hist,
        m.stop.sm,
        m.stop.weights,
        m.clear_probs,
        m.clear_counts,
        out_codes,
    )
    if status != 0 or st[6] > 8:
        raise FormatError(f"{what}: palette stream is damaged")
    frame.codes = out_codes[:nco].astype(np.int32)
    ps.remember(frame)
    return frame


# ------------------------------------------------------------------ keyframe canvas


def _base_table(base: np.ndarray) -> tuple[np.ndarray, np.ndarray, int | None] | None:
    """(colour table, indices (H, W), transparent index) for a canvas of at most 256
    colours (transparency counting as one), or None."""
    visible = base[..., 3] != 0
    opaque = bool(visible.all())
    exact = index_colours(base, visible, 256 if opaque else 255)
    if exact is None:
        return None
    colours, idx = exact
    n = len(colours) + (0 if opaque else 1)
    mcs = max(2, int(np.ceil(np.log2(max(n, 2)))))
    table = np.zeros((1 << mcs, 3), np.uint8)
    table[: len(colours), 0] = colours >> 16
    table[: len(colours), 1] = (colours >> 8) & 255
    table[: len(colours), 2] = colours & 255
    tidx = None if opaque else len(colours)
    if tidx is not None:
        idx[~visible] = tidx
    return table, idx, tidx


def _code_base(st, buf, enc, m: PaletteModels, table, codes, idx, h, w, mcs, out_codes):
    """The canvas as a full-screen frame: table, then its phrase stream. The canvas
    contexts are blank (it is drawn on nothing) and nothing was stored before it."""
    rank, inv_rank = luma_ranks(table)
    blank = np.full((h, w), -1, np.int16)
    return _code_phrases(
        st,
        buf,
        enc,
        codes,
        idx,
        h * w,
        w,
        np.arange(h, dtype=np.int64),
        mcs,
        rank,
        inv_rank,
        blank,
        blank,
        blank,
        m.sym.hist,
        m.sym.sm,
        m.sym.weights,
        m.stop.hist,
        m.stop.sm,
        m.stop.weights,
        m.clear_probs,
        m.clear_counts,
        out_codes,
    )


def encode_palette_base(m: PaletteModels, base: np.ndarray) -> bytes | None:
    """A keyframe's canvas coded as a GIF frame of its own colours (None: more than
    256 colours, or a stream the coder cannot represent: the caller codes pixels)."""
    from .gifparse import _lzw_decode
    from .gifwriter import lzw_encode

    made = _base_table(base)
    if made is None:
        return None
    table, idx, tidx = made
    h, w = idx.shape
    mcs = int(np.log2(len(table)))
    data = np.frombuffer(lzw_encode(idx, mcs), np.uint8)
    codes = np.zeros(h * w + 4 * (data.shape[0] + 1), np.int32)
    flat = np.zeros(h * w, np.uint8)
    nc, npx, status = _lzw_decode(data, mcs, h * w, codes, flat)
    if status not in (0, 4) or npx != h * w:
        return None
    buf = np.zeros(4 * h * w + 4096 + 4 * nc + 3 * len(table) * 4, np.uint8)
    st = rc.new_state()
    rc.rc_init_enc(st)
    empty = np.zeros((0, 3), np.uint8)
    _code_palette(st, buf, True, table, empty, m.pal_probs, m.pal_counts)
    status, _ = _code_base(
        st, buf, True, m, table, codes[:nc], flat, h, w, mcs, np.zeros(1, np.int32)
    )
    n = rc.rc_finish_enc(st, buf)
    if status != 0 or st[7]:
        raise ValueError("keyframe canvas could not be coded")  # the caller codes pixels
    head = _BASE_HEAD.pack(mcs, tidx is not None, tidx or 0)
    return head + buf[:n].tobytes()


def decode_palette_base(
    m: PaletteModels, data: bytes, height: int, width: int, what: str
) -> np.ndarray:
    r = Reader(data, what)
    mcs, has_t, tidx = _BASE_HEAD.unpack(r.take(_BASE_HEAD.size))
    rest = r.take(len(data) - _BASE_HEAD.size)
    if not 2 <= mcs <= 8 or has_t > 1 or (has_t and tidx >= 1 << mcs):
        raise FormatError(f"{what}: bad keyframe canvas header")
    buf = rc.input_buffer(rest)
    st = rc.new_state()
    rc.rc_init_dec(st, buf)
    empty = np.zeros((0, 3), np.uint8)
    table = _code_palette(st, buf, False, empty, empty, m.pal_probs, m.pal_counts)
    if len(table) != 1 << mcs:
        raise FormatError(f"{what}: keyframe canvas table disagrees with its code size")
    idx = np.zeros(height * width, np.uint8)
    out_codes = np.zeros(height * width + 4096, np.int16)
    status, _ = _code_base(
        st, buf, False, m, table, np.zeros(0, np.int32), idx, height, width, mcs, out_codes
    )
    if status != 0 or st[6] > 8:
        raise FormatError(f"{what}: keyframe canvas is damaged")
    canvas = np.zeros((height, width, 4), np.uint8)
    canvas[..., :3] = table[idx].reshape(height, width, 3)
    canvas[..., 3] = 255
    if has_t:
        clear = (idx == tidx).reshape(height, width)
        canvas[clear] = 0
    return canvas
