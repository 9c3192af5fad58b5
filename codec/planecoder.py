"""Entropy coding of residual symbol planes, behind one small interface.

A frame's residual becomes up to three planes of small signed integers (int16,
(C, H, W)) plus a mask of the pixels that carry a symbol (transparent pixels carry
none). A `PlaneCoder` turns them into bytes and back. Two backends:

* ``zstd``  -- the baseline: symbols zigzag-mapped to bytes, planes laid out one after
  another so runs of zeros are contiguous, compressed by zstd.
* ``arith`` -- a context-adaptive binary range coder (see rangecoder.py). Each symbol
  is binarised (zero flag, sign, magnitude as bit length + an adaptive tree
  over the bits below the leading one) and every bin is coded under a
  context built from the causal neighbours in the same plane, the co-located
  symbol of the first plane (colour correlation), the co-located magnitude in the
  previous frame (temporal activity) and, when a predictor provides one, its
  confidence. Model state carries over from frame to frame until the next keyframe.

Both backends take the same inputs and return the same planes, so the codec can
select them per stream and the benchmark can compare them on equal terms.
"""

from __future__ import annotations

import numpy as np
import zstandard
from numba import njit

from . import rangecoder as rc
from .errors import CorruptError
from .zstd_bounded import decompress

ZSTD_LEVEL = 12

# Context layout of the arith backend.
N_ACT = 12  # spatial activity buckets
N_TMP = 4  # temporal activity buckets
N_XCH = 5  # cross-channel (first plane) magnitude buckets
N_SPREAD = 4  # predictor confidence buckets
N_SLOT = 4  # plane index (up to 3 colour planes + alpha)
N_CTX = N_SLOT * N_ACT * N_TMP * N_XCH * N_SPREAD
MAG_BINS = rc.BUCKET_MODELS
# model blocks: zero flags, signs (9 sign contexts per slot), magnitudes (per act bucket)
ZERO_BASE = 0
SIGN_BASE = ZERO_BASE + N_CTX
MAG_BASE = SIGN_BASE + N_SLOT * 9
N_MODELS = MAG_BASE + N_SLOT * N_ACT * N_XCH * MAG_BINS

LIMIT_ZERO = 6
LIMIT_SIGN = 6
LIMIT_MAG = 6

_ACT_Q = np.array(
    [0, 1, 2, 3, 3, 4, 4, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 8, 8, 8, 8, 8, 8, 8, 8]
    + [9] * 12
    + [10] * 24,
    dtype=np.int64,
)
_TMP_Q = np.array([0, 1, 2, 2, 3], dtype=np.int64)
_XCH_Q = np.array([0, 1, 2, 3, 3, 3, 4], dtype=np.int64)


class CoderState:
    """Adaptive state shared by encoder and decoder between keyframes."""

    def __init__(self, height: int, width: int, channels: int) -> None:
        self.probs, self.counts = rc.new_models(N_MODELS)
        # The temporal context of each channel at each pixel: _TMP_Q of the magnitude
        # of the channel's last symbol there, 2 bits a channel packed in one byte. The
        # magnitudes themselves were a byte a channel, and an encoder trial copies this.
        if channels > 4:
            raise ValueError("at most four channels share a temporal context byte")
        self.prev_tmp = np.zeros((height, width), dtype=np.uint8)

    def reset(self) -> None:
        self.probs[:] = rc.PROB_HALF
        self.counts[:] = 0
        self.prev_tmp[:] = 0


@njit(cache=True)
def _code_planes(
    sym, mask, spread, use_spread, prev_tmp, use_temporal, slot0, probs, counts, buf, enc
):
    """Code (C, H, W) symbols (int8 from the encoders, int16 decoded) in raster
    order, planes interleaved per pixel.

    In decode mode `sym` is filled in. Returns (bytes written or read, error flag).
    """
    C, H, W = sym.shape
    st = np.zeros(rc.STATE_SIZE, np.int64)
    if enc:
        rc.rc_init_enc(st)
    else:
        rc.rc_init_dec(st, buf)
    # magnitudes of this row and the one above, rows alternating: the contexts reach
    # no further up, and a whole-frame int64 copy was 24 bytes a pixel
    mag = np.zeros((C, 2, W), np.int64)
    for y in range(H):
        for x in range(W):
            if not mask[y, x]:
                for c in range(C):
                    mag[c, y & 1, x] = 0
                    if not enc:
                        sym[c, y, x] = 0
                continue
            sp = 0
            if use_spread:
                sp = spread[y, x]
                if sp >= N_SPREAD:
                    sp = N_SPREAD - 1
            first_mag = 0
            for c in range(C):
                slot = slot0 + c
                a = 0
                sw = 0
                sn = 0
                if x > 0:
                    a += 2 * mag[c, y & 1, x - 1]
                    sw = sym[c, y, x - 1]
                if y > 0:
                    a += 2 * mag[c, (y - 1) & 1, x]
                    sn = sym[c, y - 1, x]
                    if x > 0:
                        a += mag[c, (y - 1) & 1, x - 1]
                    if x + 1 < W:
                        a += mag[c, (y - 1) & 1, x + 1]
                a = a >> 1
                if a >= _ACT_Q.shape[0]:
                    a = _ACT_Q.shape[0] - 1
                act = _ACT_Q[a]
                if y > 0 and x > 1 and mag[c, y & 1, x - 2] + mag[c, (y - 1) & 1, x] > 40:
                    act = N_ACT - 1
                tmp = 0
                if use_temporal:
                    tmp = (prev_tmp[y, x] >> (2 * c)) & 3
                xch = 0
                if c > 0:
                    f = first_mag
                    if f > 6:
                        f = 6
                    xch = _XCH_Q[f]
                ctx = (((slot * N_ACT + act) * N_TMP + tmp) * N_XCH + xch) * N_SPREAD + sp
                v = 0
                if enc:
                    v = np.int64(sym[c, y, x])
                nz = rc.code_adaptive(
                    st, buf, probs, counts, ZERO_BASE + ctx, 1 if v != 0 else 0, enc, LIMIT_ZERO
                )
                m = 0
                if nz:
                    sctx = 4
                    if sw > 0:
                        sctx += 1
                    elif sw < 0:
                        sctx -= 1
                    if sn > 0:
                        sctx += 3
                    elif sn < 0:
                        sctx -= 3
                    neg = rc.code_adaptive(
                        st,
                        buf,
                        probs,
                        counts,
                        SIGN_BASE + slot * 9 + sctx,
                        1 if v < 0 else 0,
                        enc,
                        LIMIT_SIGN,
                    )
                    mbase = MAG_BASE + ((slot * N_ACT + act) * N_XCH + xch) * MAG_BINS
                    m = rc.code_bucketed(
                        st, buf, probs, counts, mbase, v if v > 0 else -v, enc, LIMIT_MAG
                    )
                    if not enc:
                        sym[c, y, x] = -m if neg else m
                mag[c, y & 1, x] = m
                if c == 0:
                    first_mag = m
    if enc:
        n = rc.rc_finish_enc(st, buf)
        return n, st[7]
    # A decoder that ran far past the end of its bytes was fed a damaged stream.
    return st[4], 1 if st[6] > 8 else 0


@njit(cache=True)
def _update_prev_tmp(prev_tmp, sym, mask):
    """The temporal contexts after this frame, for its C channels (the others kept)."""
    C, H, W = sym.shape
    for y in range(H):
        for x in range(W):
            t = np.int64(prev_tmp[y, x])
            for c in range(C):
                t &= ~(3 << (2 * c))
                if mask[y, x]:
                    v = np.int64(sym[c, y, x])
                    if v < 0:
                        v = -v
                    t |= _TMP_Q[v if v < 4 else 4] << (2 * c)
            prev_tmp[y, x] = t


class PlaneCoder:
    """Interface: symbols (C, H, W) int16 + mask (H, W) bool  <->  bytes."""

    name = "base"

    def encode(
        self,
        sym: np.ndarray,
        mask: np.ndarray,
        state: CoderState | None,
        spread: np.ndarray | None = None,
        temporal: bool = True,
        slot0: int = 0,
    ) -> bytes:
        raise NotImplementedError

    def decode(
        self,
        data: bytes,
        shape: tuple[int, int, int],
        mask: np.ndarray,
        state: CoderState | None,
        spread: np.ndarray | None = None,
        temporal: bool = True,
        slot0: int = 0,
    ) -> np.ndarray:
        raise NotImplementedError


class ArithPlaneCoder(PlaneCoder):
    name = "arith"

    def encode(self, sym, mask, state, spread=None, temporal=True, slot0=0):
        C, H, W = sym.shape
        # Pathological inputs can expand; the container's raw fallback catches that.
        buf = np.zeros(2 * C * H * W + 64, np.uint8)
        sp = spread if spread is not None else np.zeros((1, 1), np.uint8)
        n, err = _code_planes(
            sym,
            mask,
            sp,
            spread is not None,
            state.prev_tmp,
            temporal,
            slot0,
            state.probs,
            state.counts,
            buf,
            True,
        )
        if err:
            raise rc.CodingOverflow()
        _update_prev_tmp(state.prev_tmp, sym, mask)
        return buf[:n].tobytes()

    def decode(self, data, shape, mask, state, spread=None, temporal=True, slot0=0):
        sym = np.zeros(shape, np.int16)
        buf = rc.input_buffer(data)
        sp = spread if spread is not None else np.zeros((1, 1), np.uint8)
        n, err = _code_planes(
            sym,
            mask,
            sp,
            spread is not None,
            state.prev_tmp,
            temporal,
            slot0,
            state.probs,
            state.counts,
            buf,
            False,
        )
        if err or n > len(data) + 8:
            raise CorruptError("residual stream is damaged (ran past its end)")
        _update_prev_tmp(state.prev_tmp, sym, mask)
        return sym


def zigzag8(sym: np.ndarray) -> np.ndarray:
    """int16 symbols known to fit in int8 -> uint8 codes, small magnitudes first."""
    s = sym.astype(np.int16)
    return ((s << 1) ^ (s >> 15)).astype(np.uint8)


def unzigzag8(codes: np.ndarray) -> np.ndarray:
    c = codes.astype(np.int16)
    return ((c >> 1) ^ -(c & 1)).astype(np.int16)


class ZstdPlaneCoder(PlaneCoder):
    """Baseline backend. Symbols must lie in [-128, 127] (the residual mapping ensures it)."""

    name = "zstd"

    def __init__(self, level: int = ZSTD_LEVEL) -> None:
        self._c = zstandard.ZstdCompressor(level=level)

    def encode(self, sym, mask, state, spread=None, temporal=True, slot0=0):
        planes = zigzag8(sym[:, mask])  # (C, n) -- plane after plane
        return self._c.compress(planes.tobytes())

    def decode(self, data, shape, mask, state, spread=None, temporal=True, slot0=0):
        C = shape[0]
        n = int(mask.sum())
        raw = decompress(data, C * n, "residual stream")
        if len(raw) != C * n:
            raise CorruptError("residual stream has the wrong length")
        sym = np.zeros(shape, np.int16)
        sym[:, mask] = unzigzag8(np.frombuffer(raw, np.uint8).reshape(C, n))
        return sym


def get_plane_coder(name: str) -> PlaneCoder:
    if name == "arith":
        return ArithPlaneCoder()
    if name == "zstd":
        return ZstdPlaneCoder()
    raise ValueError(f"unknown entropy backend {name!r} (choose arith or zstd)")
