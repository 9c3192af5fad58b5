"""The lossy coding's symbols: the one place that reads and writes them.

Every function here is written once for both directions (`enc` true: write the
value given and return it; false: read and return it), so encoder and decoder
cannot drift apart. With the range coder (`arith`) symbols go through the adaptive
models of models.py, in the order docs/FORMAT.md gives; with the zstd baseline
(`lv` non-empty) each symbol is one int64 of `lv`, laid out so that zstd sees long
runs of zeros, for a frame of B 4x4 blocks and U 8x8 units (B = 4U):

    (p*16 + z)*B + b      levels: plane p, zigzag position z, block b (raster order)
    48*B + b              intra modes
    49*B + 2*u + c        vector differences (c: 0 vertical, 1 horizontal)
    49*B + 2*U + u        intra unit flags
    49*B + 3*U + u        reference indices
    49*B + 4*U + u        second reference + 1 (0: none)
    49*B + 5*U + 2*u + c  second vectors' differences

`rcs` is the range coder (state, buffer, model probabilities, model counts).
A function that reads damage returns a flag rather than raising: the caller stops
the frame and reports it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .. import rangecoder as rc
from .models import (
    BI_BASE,
    CBF_BASE,
    ESCAPE_BASE,
    INTRA_BASE,
    LAST_BASE,
    LEVEL2_BASE,
    LEVEL_BASE,
    LIMIT,
    MODE_BASE,
    MV1_BASE,
    MV_BASE,
    MV_MODELS,
    REF1_BASE,
    REF_BASE,
    SIG2_BASE,
    SIG_BASE,
    SKIP_BASE,
)
from .motion_comp import scale_mv

MAX_MV = 512  # pixels; a larger vector in a stream is damage
MAX_LEVEL = 1 << 20  # a larger level in a stream is damage
_POS_CLASS = np.array([0, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3], np.int64)


def level_count(hp: int, wp: int) -> int:
    """zstd baseline: symbols of a padded frame (the layout above)."""
    units = (hp // 8) * (wp // 8)
    return 49 * (4 * units) + 7 * units


# The per-unit state of a frame that contexts and vector prediction read (nb): one
# (Nuy, Nux, U_FIELDS) array, a field per index below. One array, not a tuple of
# eight: every per-unit call passed the tuple, and each array argument costs a
# compiled call its reference counting.
U_MV = 0  # the unit's vector (2)
U_MVNZ = 2  # its difference from the predicted vector was nonzero, per component (2)
U_MV1NZ = 4  # the same for the second vector (2)
U_SKIP = 6  # skipped
U_INTRA = 7  # intra
U_BI = 8  # two hypotheses
U_REF = 9  # reference, second reference (-1: none) (2)
U_MV1 = 11  # second vector (2)
U_FIELDS = 13
# The per-block state (maps) the same way: (Nby, Nbx, B_FIELDS)
B_CBF = 0  # coded-block flag per plane (3)
B_MODE = 3  # intra mode
B_ACT = 4  # intra or carrying levels (what deblocking filters)
B_FIELDS = 5


@njit(cache=True)
def unit_maps(nuy, nux):
    """A frame's unit state (nb, the fields above): zero, references -1. int32: every
    field is a flag, a reference or a vector within MAX_MV (int64 was 52 MiB at the
    size cap)."""
    nb = np.zeros((nuy, nux, U_FIELDS), np.int32)
    nb[:, :, U_REF] = -1
    nb[:, :, U_REF + 1] = -1
    return nb


# (not inline="always": inlined, with its tuple argument, its caller segfaulted when
# loaded from numba's cache)
@njit(cache=True)
def unit_contexts(nb, uy, ux):
    """Contexts of a unit's skip, intra and second-hypothesis flags: how many of the
    left and upper units had them. nb: the frame's unit maps (unit_maps)."""
    sctx = SKIP_BASE + (nb[uy, ux - 1, U_SKIP] if ux > 0 else 0)
    sctx += nb[uy - 1, ux, U_SKIP] if uy > 0 else 0
    ictx = INTRA_BASE + (nb[uy, ux - 1, U_INTRA] if ux > 0 else 0)
    ictx += nb[uy - 1, ux, U_INTRA] if uy > 0 else 0
    bctx = BI_BASE + (nb[uy, ux - 1, U_BI] if ux > 0 else 0)
    bctx += nb[uy - 1, ux, U_BI] if uy > 0 else 0
    return sctx, ictx, bctx


@njit(cache=True)
def _code_ref(st, buf, probs, counts, base, rctx, uref, nref, enc):
    """Reference index, truncated unary over nref references (3 position contexts)."""
    r = 0
    while r < nref - 1:
        more = rc.code_adaptive(
            st, buf, probs, counts, base + 3 * min(r, 2) + rctx, 1 if uref > r else 0, enc, LIMIT
        )
        if not more:
            break
        r += 1
    return r


@njit(cache=True)
def _code_mvd(st, buf, probs, counts, ctx, ctx_nz, d, enc):
    """One vector difference component: zero flag (neighbour context), bypass sign,
    adaptive magnitude."""
    nz = rc.code_adaptive(st, buf, probs, counts, ctx + ctx_nz, 1 if d != 0 else 0, enc, LIMIT)
    if not nz:
        return 0
    neg = rc.code_bit(st, buf, rc.PROB_HALF, 1 if d < 0 else 0, enc)
    m = 1 + rc.code_magnitude(st, buf, probs, counts, ctx + 3, abs(d) - 1, enc, LIMIT)
    return -m if neg else m


@njit(cache=True)
def _code_vector(enc, rcs, lv, k, base, nb, nzf, uy, ux, py, px, vy, vx):
    """A vector (vy, vx) as its difference from (py, px), vertical first: at lv[k],
    lv[k + 1], or range coded under the models at `base`, the zero flag's context
    counting the left and upper units whose difference in that component was nonzero
    (the unit field nzf of nb, updated). Returns the vector."""
    st, buf, probs, counts = rcs
    for c in range(2):
        d = (vy - py) if c == 0 else (vx - px)
        if lv.shape[0] > 0:
            if enc:
                lv[k + c] = d
            else:
                d = lv[k + c]
        else:
            ctx_nz = (nb[uy, ux - 1, nzf + c] if ux > 0 else 0) + (
                nb[uy - 1, ux, nzf + c] if uy > 0 else 0
            )
            d = _code_mvd(st, buf, probs, counts, base + c * MV_MODELS, ctx_nz, d, enc)
        nb[uy, ux, nzf + c] = 1 if d != 0 else 0
        if c == 0:
            vy = py + d
        else:
            vx = px + d
    return vy, vx


@njit(cache=True)
def _code_second(enc, rcs, lv, nb, uy, ux, nref, bctx, uref, mvy, mvx, bref, b1y, b1x):
    """A motion unit's second hypothesis: its flag, then its reference and the
    difference of its vector from the first one scaled to that reference. Returns
    (damaged, second reference or -1, second vector)."""
    st, buf, probs, counts = rcs
    nux = nb.shape[1]
    nu = nb.shape[0] * nux
    u = uy * nux + ux
    if lv.shape[0] > 0:
        k = 196 * nu + 4 * nu + u
        if enc:
            lv[k] = bref + 1
        else:
            bref = lv[k] - 1
            if bref < -1 or bref >= nref:
                return True, bref, b1y, b1x
    else:
        isbi = rc.code_adaptive(st, buf, probs, counts, bctx, 1 if bref >= 0 else 0, enc, LIMIT)
        if isbi:
            rctx = (1 if ux > 0 and nb[uy, ux - 1, U_REF + 1] > 0 else 0) + (
                1 if uy > 0 and nb[uy - 1, ux, U_REF + 1] > 0 else 0
            )
            bref = _code_ref(st, buf, probs, counts, REF1_BASE, rctx, bref, nref, enc)
        else:
            bref = -1
    if bref >= 0:
        nb[uy, ux, U_BI] = 1
        sy = scale_mv(mvy, bref + 1, uref + 1)
        sx = scale_mv(mvx, bref + 1, uref + 1)
        k = 196 * nu + 5 * nu + 2 * u
        b1y, b1x = _code_vector(enc, rcs, lv, k, MV1_BASE, nb, U_MV1NZ, uy, ux, sy, sx, b1y, b1x)
        if abs(b1y) > 2 * MAX_MV or abs(b1x) > 2 * MAX_MV:
            return True, bref, b1y, b1x
    return False, bref, b1y, b1x


@njit(cache=True)
def _code_motion(enc, rcs, lv, nb, uy, ux, nref, bctx, pmy, pmx, uref, mvy, mvx, bref, b1y, b1x):
    """A motion unit's reference index (when there is more than one), its vector's
    difference from the predicted vector and its second hypothesis. Returns
    (damaged, reference, vector, second reference or -1, second vector)."""
    st, buf, probs, counts = rcs
    nux = nb.shape[1]
    nu = nb.shape[0] * nux
    u = uy * nux + ux
    raw = lv.shape[0] > 0
    if nref > 1:
        # reference index, truncated unary
        if raw:
            k = 196 * nu + 3 * nu + u
            if enc:
                lv[k] = uref
            else:
                uref = lv[k]
                if uref < 0 or uref >= nref:
                    return True, uref, mvy, mvx, bref, b1y, b1x
        else:
            rctx = (1 if ux > 0 and nb[uy, ux - 1, U_REF] else 0) + (
                1 if uy > 0 and nb[uy - 1, ux, U_REF] else 0
            )
            uref = _code_ref(st, buf, probs, counts, REF_BASE, rctx, uref, nref, enc)
    mvy, mvx = _code_vector(
        enc, rcs, lv, 196 * nu + 2 * u, MV_BASE, nb, U_MVNZ, uy, ux, pmy, pmx, mvy, mvx
    )
    if abs(mvy) > 2 * MAX_MV or abs(mvx) > 2 * MAX_MV:
        return True, uref, mvy, mvx, bref, b1y, b1x
    nb[uy, ux, U_MV], nb[uy, ux, U_MV + 1] = mvy, mvx
    bad, bref, b1y, b1x = _code_second(
        enc, rcs, lv, nb, uy, ux, nref, bctx, uref, mvy, mvx, bref, b1y, b1x
    )
    return bad, uref, mvy, mvx, bref, b1y, b1x


@njit(cache=True)
def code_unit_header(enc, rcs, lv, nb, uy, ux, nref, use_skip, ctxs, pm, choice):
    """Everything a predicted frame's unit codes before its blocks: the skip flag
    (range coder only), the intra flag, then for a motion unit _code_motion.
    choice: what the encoder decided, as mode_decision.choose_unit returns it (the
    decoder passes KIND_MOTION and zeros). Records the unit in the maps nb. Returns
    (damaged, (kind, reference, vector, second reference or -1, second vector))."""
    st, buf, probs, counts = rcs
    sctx, ictx, bctx = ctxs
    pmy, pmx = pm
    kind, uref, mvy, mvx, bref, b1y, b1x = choice
    skip = kind == 2
    uintra = kind == 1
    nux = nb.shape[1]
    nu = nb.shape[0] * nux
    if use_skip:
        skip = rc.code_adaptive(st, buf, probs, counts, sctx, 1 if skip else 0, enc, LIMIT) != 0
        nb[uy, ux, U_SKIP] = 1 if skip else 0
    if skip:
        mvy, mvx = pmy, pmx
        uintra = False
        bref = -1
        nb[uy, ux, U_MV], nb[uy, ux, U_MV + 1] = mvy, mvx
    elif lv.shape[0] > 0:
        k = 196 * nu + 2 * nu + uy * nux + ux
        if enc:
            lv[k] = 1 if uintra else 0
        else:
            uintra = lv[k] != 0
    else:
        uintra = rc.code_adaptive(st, buf, probs, counts, ictx, 1 if uintra else 0, enc, LIMIT) != 0
    nb[uy, ux, U_INTRA] = 1 if uintra else 0
    bad = False
    if uintra:
        mvy, mvx = pmy, pmx
        uref = 0
        bref = -1
    elif not skip:
        bad, uref, mvy, mvx, bref, b1y, b1x = _code_motion(
            enc, rcs, lv, nb, uy, ux, nref, bctx, pmy, pmx, uref, mvy, mvx, bref, b1y, b1x
        )
        if bad:
            return True, (kind, uref, mvy, mvx, bref, b1y, b1x)
    nb[uy, ux, U_REF] = uref
    nb[uy, ux, U_REF + 1] = bref
    nb[uy, ux, U_MV1] = b1y if bref >= 0 else 0
    nb[uy, ux, U_MV1 + 1] = b1x if bref >= 0 else 0
    kind = 2 if skip else 1 if uintra else 0
    return False, (kind, uref, mvy, mvx, bref, b1y, b1x)


@njit(cache=True)
def code_unit_blocks(enc, rcs, lv, maps, uy, ux, bintra, skip, umodes, qs, nzs):
    """The symbols of unit (uy, ux)'s four 4x4 blocks, in z-order: per block its intra
    mode when the blocks are intra (a 2-bit tree under the left block's mode; a mode
    above 2 reads as 0), then per plane (Y, Co, Cg) its coded-block flag (context:
    plane, the left and upper blocks' flags; not coded in a skipped unit, where it
    is 0) and levels. umodes (4,): the blocks' intra modes; qs (4, 3, 16): their
    levels in zigzag order (the decoder's zero on entry); nzs (4, 3) receives the
    flags. maps: the frame's block state (B_ fields); flags, modes and activity are
    updated. Returns whether the stream is damaged. One function for the unit, levels included, is
    measured: a call per block and plane (and per coded block for the levels) took
    the decoder 10-20% more CPU time than the one kernel before the split."""
    st, buf, probs, counts = rcs
    raw = lv.shape[0] > 0
    nby, nbx = maps.shape[0], maps.shape[1]
    nblk = nby * nbx
    for sb in range(4):
        by = uy * 2 + sb // 2
        bx = ux * 2 + sb % 2
        if bintra:
            mode = umodes[sb]
            lm = maps[by, bx - 1, B_MODE] if bx > 0 else 0
            if raw:
                if enc:
                    lv[48 * nblk + by * nbx + bx] = mode
                else:
                    mode = lv[48 * nblk + by * nbx + bx]
            else:
                mode = rc.code_tree(st, buf, probs, counts, MODE_BASE + lm * 4, mode, 2, enc, LIMIT)
            if mode > 2 or mode < 0:
                mode = 0
            maps[by, bx, B_MODE] = mode
            umodes[sb] = mode
        for p in range(3):
            q = qs[sb, p]
            nz = 0
            if raw:
                b = by * nbx + bx
                for z in range(16):
                    if enc:
                        lv[(p * 16 + z) * nblk + b] = q[z]
                    else:
                        q[z] = lv[(p * 16 + z) * nblk + b]
                        if q[z] > MAX_LEVEL or q[z] < -MAX_LEVEL:
                            return True
                    if q[z] != 0:
                        nz = 1
            left = maps[by, bx - 1, B_CBF + p] if bx > 0 else 0
            up = maps[by - 1, bx, B_CBF + p] if by > 0 else 0
            if skip:
                nz = 0
            elif not raw:
                nz = 0
                if enc:
                    for z in range(16):
                        if q[z] != 0:
                            nz = 1
                ctx = CBF_BASE + p * 4 + left + 2 * up
                nz = rc.code_adaptive(st, buf, probs, counts, ctx, nz, enc, LIMIT)
            maps[by, bx, B_CBF + p] = nz
            nzs[sb, p] = nz
            if bintra or nz:
                maps[by, bx, B_ACT] = 1  # what deblocking filters
            if not nz or raw:
                continue
            # the levels: last position, significance of each earlier position, each
            # nonzero level's magnitude and bypass sign; after a nonzero level the
            # block's later symbols use the second and third model sets (its
            # magnitude 1 / larger)
            last = 0
            if enc:
                for z in range(16):
                    if q[z] != 0:
                        last = z
            last = rc.code_tree(st, buf, probs, counts, LAST_BASE + p * 16, last, 4, enc, LIMIT)
            pm = 0
            for z in range(last + 1):
                sig = 1
                if z < last:
                    ctx = SIG_BASE + p * 16 + z
                    if pm:
                        ctx = SIG2_BASE + (p * 16 + z) * 2 + pm - 1
                    sig = rc.code_adaptive(
                        st, buf, probs, counts, ctx, 1 if q[z] else 0, enc, LIMIT
                    )
                if sig:
                    base = LEVEL_BASE + (p * 4 + _POS_CLASS[z]) * rc.BUCKET_MODELS
                    if pm:
                        g = (p * 4 + _POS_CLASS[z]) * 2 + pm - 1
                        base = LEVEL2_BASE + g * rc.BUCKET_MODELS
                    v = abs(q[z]) if enc else 1
                    v8 = rc.code_bucketed(
                        st, buf, probs, counts, base, v if v < 255 else 255, enc, LIMIT
                    )
                    if v8 == 255:
                        v8 = 255 + rc.code_magnitude(
                            st, buf, probs, counts, ESCAPE_BASE, v - 255, enc, LIMIT
                        )
                        if v8 > MAX_LEVEL:
                            return True
                    v = v8
                    neg = rc.code_bit(st, buf, rc.PROB_HALF, 1 if q[z] < 0 else 0, enc)
                    q[z] = -v if neg else v
                    pm = 1 if v == 1 else 2
                else:
                    q[z] = 0
    return False
