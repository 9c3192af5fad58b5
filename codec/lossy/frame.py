"""The frame loop, the same kernel for encoding and decoding: every 8x8 unit in
raster order through decision (encoder), header syntax, prediction, levels and
reconstruction. Its four 4x4 blocks are coded in z-order, each block's planes Y,
Co, Cg in turn.

Reconstruction is exact integer arithmetic, so encoder and decoder agree bit for
bit and the encoder returns what the decoder will show.

The decoder runs frame_decode.py's loop, which calls the same functions in bands so
that reading symbols and rebuilding pixels overlap on two threads; this kernel's
decoding direction is what the tests hold that loop to (tests/test_frame_decode.py).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .. import rangecoder as rc
from .intra import best_intra_mode, predict_block
from .mode_decision import KIND_INTRA, KIND_MOTION, KIND_SKIP, choose_unit, trial_scratch
from .motion_comp import mc_pred, mv_pred
from .motion_search import PREPASS_FIELDS, motion_prepass
from .syntax import (
    B_ACT,
    B_FIELDS,
    U_MV,
    U_MV1,
    U_REF,
    code_unit_blocks,
    code_unit_header,
    unit_contexts,
    unit_maps,
)
from .transform_quant import quantize, reconstruct


@njit(cache=True)
def _block_scratch():
    """The winning trial's levels and reconstruction, then _code_blocks' scratch:
    (qbest, rbest, pb, pb2, blk, qs, umodes, nzs, deq, work, qerr)."""
    return (
        np.zeros((4, 3, 16), np.int64),
        np.zeros((3, 8, 8), np.int64),
        np.zeros((4, 4), np.int64),
        np.zeros((4, 4), np.int64),
        np.zeros((4, 4), np.int64),
        np.zeros((4, 3, 16), np.int64),
        np.zeros(4, np.int64),
        np.zeros((4, 3), np.int64),
        np.zeros((4, 4), np.int64),
        np.zeros((3, 4, 4), np.int64),  # quantize's; the third holds the prediction
        np.zeros((4, 4)),
    )


@njit(cache=True)
def _code_blocks(enc, rcs, lv, tgt, recon, ring, order, intra, uy, ux, motion, maps, quant, best):
    """The four blocks of unit (uy, ux). The encoder predicts, quantises (or takes the
    winning trial's levels) and reconstructs them, then writes their symbols; the
    decoder reads the symbols, then predicts and reconstructs -- the same arithmetic
    on both sides, since no symbol depends on a pixel. motion: (kind, reference,
    vector, second reference, second vector); maps: the block state (syntax.B_
    fields); best: the
    encoder's winning trial and scratch (_block_scratch). Returns whether the stream
    is damaged."""
    kind, uref, mvy, mvx, bref, b1y, b1x = motion
    steps, offs, lam_pd, wplane = quant
    qbest, rbest, pb, pb2, blk, qs, umodes, nzs, deq, work, qerr = best
    skip = kind == KIND_SKIP
    use_mv = not intra
    bintra = intra or kind == KIND_INTRA
    # the encoder's trial already reconstructed a motion-compensated or skipped unit
    # exactly as the decoder will: it restores that instead of predicting again
    reuse = enc and not bintra
    if not enc:
        qs[:] = 0
        if code_unit_blocks(enc, rcs, lv, maps, uy, ux, bintra, skip, umodes, qs, nzs):
            return True
    if not reuse:
        for sb in range(4):
            y0 = uy * 8 + 4 * (sb // 2)
            x0 = ux * 8 + 4 * (sb % 2)
            if enc and bintra:
                umodes[sb] = best_intra_mode(recon, tgt, y0, x0, pb)[0]
            for p in range(3):
                if bintra:
                    predict_block(recon, p, y0, x0, umodes[sb], pb)
                else:
                    mc_pred(ring, order, p, y0, x0, uref, mvy, mvx, bref, b1y, b1x, pb, pb2)
                q = qs[sb, p]
                if enc:
                    if use_mv:
                        q[:] = qbest[sb, p]  # the levels choose_unit's trial coded
                    else:
                        for i in range(4):
                            for j in range(4):
                                blk[i, j] = tgt[p, y0 + i, x0 + j] - pb[i, j]
                                work[2, i, j] = pb[i, j]  # for the structural term
                        for z in range(16):
                            q[z] = 0
                        quantize(blk, p, steps, offs, lam_pd, wplane, q, work, qerr)
                reconstruct(q, p, steps, pb, deq, recon, y0, x0)
    if reuse:
        recon[:, uy * 8 : uy * 8 + 8, ux * 8 : ux * 8 + 8] = rbest
        for sb in range(4):
            for p in range(3):
                if skip:
                    qs[sb, p, :] = 0
                else:
                    qs[sb, p] = qbest[sb, p]
    if enc:
        code_unit_blocks(enc, rcs, lv, maps, uy, ux, bintra, skip, umodes, qs, nzs)
    return False


@njit(cache=True, nogil=True)
def hand_over_units(nb, maps, mvf, act, urefs, mv1s):
    """What leaves a coded frame's unit loop, on both sides: the vectors (kept for the
    next frame's search where its size is the same), the blocks deblocking filters,
    and each unit's references and second vector."""
    nuy, nux = nb.shape[0], nb.shape[1]
    if mvf.shape[0] == nuy and mvf.shape[1] == nux:
        mvf[:] = nb[:, :, U_MV : U_MV + 2]
    act[:] = maps[:, :, B_ACT]
    urefs[:] = nb[:, :, U_REF : U_REF + 2]
    mv1s[:] = nb[:, :, U_MV1 : U_MV1 + 2]


@njit(cache=True)
def code_frame(
    enc,
    tgt,
    ring,
    order,
    intra,
    quant,
    lam_sad,
    probs,
    counts,
    buf,
    recon,
    lv,
    mvf,
    act,
    urefs,
    mv1s,
    search,
):
    """Code (3, Hp, Wp) YCoCg planes (Hp, Wp multiples of 8), against the references
    ring[order[r]]. Returns (bytes, flag: encoder overflow / decoder damage).

    quant: (steps, offs, lam_pd, wplane), see transform_quant.step_tables. mvf holds
    the unit vectors: the previous frame's on entry (encoder search candidates), this
    frame's on return; urefs (Nuy, Nux, 2) and mv1s (Nuy, Nux, 2) receive each unit's
    reference, second reference (-1: none) and second vector; act the blocks that are
    intra or carry levels (what deblock filters). A non-empty `lv` is the zstd
    baseline: no range coding happens, symbols go to / come from lv (syntax.py).
    search: the encoder's speed preset (presets.py; the decoder ignores it)."""
    _, hp, wp = recon.shape
    nref = order.shape[0]
    nuy, nux = hp // 8, wp // 8
    nby, nbx = hp // 4, wp // 4
    raw = lv.shape[0] > 0
    st = np.zeros(rc.STATE_SIZE, np.int64)
    if raw:
        pass
    elif enc:
        rc.rc_init_enc(st)
    else:
        rc.rc_init_dec(st, buf)
    rcs = (st, buf, probs, counts)
    maps = np.zeros((nby, nbx, B_FIELDS), np.int8)  # flags and intra modes: int64 was 40 B/px
    nb = unit_maps(nuy, nux)
    mvs = nb[:, :, U_MV : U_MV + 2]
    use_mv = not intra
    # a unit whose vector is the predicted one and whose blocks carry no levels is
    # coded with one flag (the range coder only; zstd sees the zeros)
    use_skip = use_mv and not raw
    # the encoder's motion prepass results (0.56 bytes a pixel, never read by a decoder)
    pre = np.zeros((nuy, nux, PREPASS_FIELDS) if enc else (1, 1, PREPASS_FIELDS), np.int32)
    scratch = trial_scratch()
    best = _block_scratch()
    qbest, rbest = best[0], best[1]
    if enc and use_mv:
        motion_prepass(tgt, ring, order, mvf, lam_sad, search, pre)
    for uy in range(nuy):
        for ux in range(nux):
            motion = (KIND_MOTION, 0, 0, 0, -1, 0, 0)
            if use_mv:
                pm = mv_pred(mvs, uy, ux, nux)
                ctxs = unit_contexts(nb, uy, ux)
                if enc:
                    motion = choose_unit(
                        tgt,
                        recon,
                        ring,
                        order,
                        uy,
                        ux,
                        mvs,
                        pm,
                        pre[uy, ux],
                        use_skip,
                        ctxs,
                        probs,
                        quant,
                        lam_sad,
                        scratch,
                        qbest,
                        rbest,
                    )
                bad, motion = code_unit_header(
                    enc, rcs, lv, nb, uy, ux, nref, use_skip, ctxs, pm, motion
                )
                if bad:
                    return (0 if raw else st[4]), 1
            if _code_blocks(
                enc, rcs, lv, tgt, recon, ring, order, intra, uy, ux, motion, maps, quant, best
            ):
                return (0 if raw else st[4]), 1
    hand_over_units(nb, maps, mvf, act, urefs, mv1s)
    if raw:
        return 0, 0
    if enc:
        return rc.rc_finish_enc(st, buf), st[7]
    return st[4], 1 if st[6] > 8 else 0
