"""The decoder's frame loop in two stages, syntax apart from reconstruction (as dav1d
splits them): a band of unit rows is parsed, every symbol of every unit, while the
band before it is reconstructed (prediction, dequantisation, inverse transform) on a
second thread where numba is allowed two. No symbol depends on a pixel, so the parse
never waits for the pixels, and the reconstruction of a band needs only the bands
above it (intra prediction) and the references.

The functions are the encoder's (syntax.py, motion_comp.py, intra.py,
transform_quant.py) and the results are frame.code_frame's, bit for bit: only the
order of the calls differs. Measured on the 2-core machine (`tnc-happy-lamb-dance`,
Q 70, 49 frames at 400x243): the parse is 0.28 s of code_frame's 0.47 s, the
reconstruction the rest.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from .. import rangecoder as rc
from ..inflight import OneInFlight
from .frame import hand_over_units
from .intra import predict_block
from .mode_decision import KIND_INTRA, KIND_MOTION, KIND_SKIP
from .motion_comp import mc_pred, mv_pred
from .syntax import (
    B_FIELDS,
    U_MV,
    code_unit_blocks,
    code_unit_header,
    unit_contexts,
    unit_maps,
)
from .transform_quant import reconstruct

# Unit rows a band holds: the pipeline's first parse and last reconstruction run
# alone, and every band costs a hand-over between the threads (tens of microseconds)
BAND_ROWS = 4
_MOTION_FIELDS = 7  # kind, reference, vector, second reference (-1: none), second vector


@njit(cache=True, nogil=True)
def parse_band(rcs, lv, nb, maps, intra, use_skip, nref, uy0, uy1, motion, modes, levels, nzs):
    """Read the symbols of unit rows uy0..uy1 (the range coder's or the zstd
    baseline's, syntax.py) into the band's motion (rows, Nux, 7), intra modes
    (rows, Nux, 4) and levels (rows, Nux, 4, 3, 16); the frame's unit and block maps
    are updated as code_frame updates them. Returns the units read whole, in raster
    order: fewer than the band's where the stream is damaged."""
    nux = nb.shape[1]
    mvs = nb[:, :, U_MV : U_MV + 2]
    done = 0
    for uy in range(uy0, uy1):
        r = uy - uy0
        for ux in range(nux):
            m = (KIND_MOTION, 0, 0, 0, -1, 0, 0)
            if not intra:
                pm = mv_pred(mvs, uy, ux, nux)
                ctxs = unit_contexts(nb, uy, ux)
                bad, m = code_unit_header(False, rcs, lv, nb, uy, ux, nref, use_skip, ctxs, pm, m)
                if bad:
                    return done
            for f in range(_MOTION_FIELDS):
                motion[r, ux, f] = m[f]
            bintra = intra or m[0] == KIND_INTRA
            qs = levels[r, ux]
            qs[:] = 0
            if code_unit_blocks(
                False, rcs, lv, maps, uy, ux, bintra, m[0] == KIND_SKIP, modes[r, ux], qs, nzs
            ):
                return done
            done += 1
    return done


@njit(cache=True, nogil=True)
def rebuild_band(ring, order, recon, intra, steps, uy0, units, motion, modes, levels, scratch):
    """Predict and reconstruct the first `units` units (raster order) of the band
    starting at unit row uy0 into recon, from what parse_band read. scratch: three
    (4, 4) int64 blocks (prediction, second hypothesis, dequantised levels)."""
    nux = recon.shape[2] // 8
    pb, pb2, deq = scratch[0], scratch[1], scratch[2]
    for k in range(units):
        r, ux = k // nux, k % nux
        uy = uy0 + r
        kind, uref, mvy, mvx, bref, b1y, b1x = motion[r, ux]
        bintra = intra or kind == KIND_INTRA
        for sb in range(4):
            y0 = uy * 8 + 4 * (sb // 2)
            x0 = ux * 8 + 4 * (sb % 2)
            for p in range(3):
                if bintra:
                    predict_block(recon, p, y0, x0, modes[r, ux, sb], pb)
                else:
                    mc_pred(ring, order, p, y0, x0, uref, mvy, mvx, bref, b1y, b1x, pb, pb2)
                reconstruct(levels[r, ux, sb, p], p, steps, pb, deq, recon, y0, x0)


class _Band:
    """One band's symbols: the parse fills one while the other is reconstructed."""

    def __init__(self, nux: int) -> None:
        self.motion = np.zeros((BAND_ROWS, nux, _MOTION_FIELDS), np.int32)
        self.modes = np.zeros((BAND_ROWS, nux, 4), np.int64)
        self.levels = np.zeros((BAND_ROWS, nux, 4, 3, 16), np.int32)
        self.scratch = np.zeros((3, 4, 4), np.int64)


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _forget_pool() -> None:
    """A forked child has the pool object but not its thread: work sent there would
    wait forever (the batch workers fork)."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def _second_thread() -> ThreadPoolExecutor | None:
    """The reconstruction's thread, where numba may use more than one (NUMBA_NUM_THREADS,
    numba.set_num_threads): the decoder takes no more cores than the encoder's
    motion search does."""
    global _pool
    from ..numbastart import allowed_threads

    if allowed_threads() < 2:
        return None
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(1, thread_name_prefix="fpcodec-rebuild")
        return _pool


def decode_units(
    ring: np.ndarray,
    order: np.ndarray,
    intra: bool,
    steps: np.ndarray,
    probs: np.ndarray,
    counts: np.ndarray,
    buf: np.ndarray,
    recon: np.ndarray,
    lv: np.ndarray,
    mvf: np.ndarray,
    act: np.ndarray,
    urefs: np.ndarray,
    mv1s: np.ndarray,
) -> tuple[int, int]:
    """Decode a frame's units into recon: frame.code_frame's decoding (same arguments,
    same results, same return: bytes read and a damage flag), in bands."""
    _, hp, wp = recon.shape
    nuy, nux = hp // 8, wp // 8
    raw = lv.shape[0] > 0
    st = np.zeros(rc.STATE_SIZE, np.int64)
    if not raw:
        rc.rc_init_dec(st, buf)
    rcs = (st, buf, probs, counts)
    maps = np.zeros((hp // 4, wp // 4, B_FIELDS), np.int8)
    nb = unit_maps(nuy, nux)
    nzs = np.zeros((4, 3), np.int64)
    use_skip = not intra and not raw
    nref = order.shape[0]
    bands = (_Band(nux), _Band(nux))
    jobs = OneInFlight(_second_thread())
    damaged = False
    try:
        for i, uy0 in enumerate(range(0, nuy, BAND_ROWS)):
            uy1 = min(nuy, uy0 + BAND_ROWS)
            b = bands[i % 2]
            # the band before is being reconstructed from the other buffer meanwhile
            done = parse_band(
                rcs, lv, nb, maps, intra, use_skip, nref, uy0, uy1, b.motion, b.modes, b.levels, nzs
            )
            jobs.submit(
                rebuild_band, ring, order, recon, intra, steps, uy0, done, b.motion, b.modes,
                b.levels, b.scratch,
            )  # fmt: skip
            if done < (uy1 - uy0) * nux:
                damaged = True
                break
        jobs.wait()
    except BaseException:
        jobs.abandon()  # an interrupted caller leaves once no thread writes its frame
        raise
    if damaged:
        return (0 if raw else int(st[4])), 1
    hand_over_units(nb, maps, mvf, act, urefs, mv1s)
    if raw:
        return 0, 0
    return int(st[4]), 1 if st[6] > 8 else 0
