"""Lossy residual coding (`--quality Q`): transform, dead-zone quantisation, RDO.

Per frame, in YCoCg-R (exact integer colour transform), in 4x4 blocks:

* prediction: the predictor's frame for predicted frames; for keyframes one of
  DC / vertical / horizontal from the block's reconstructed neighbours (chosen per
  block, coded once for the three planes);
* the residual goes through the reversible 4x4 integer DCT (transform.py) and a
  dead-zone quantiser whose step per coefficient undoes the transform's gains and
  whose step per plane follows how much each plane weighs in the perceptual
  distance (green counts most: errors in Y cost 9x, Cg 2.25x, Co 1.25x, from the
  redmean weights of R, G and B);
* rate-distortion decisions with lambda ~ step^2: trailing and isolated +-1 levels
  are dropped, and a whole block is skipped (one flag) when coding it does not pay;
* symbols go through the adaptive binary range coder: coded-block flag (context:
  left and upper blocks' flags, plane), last position, significance per position,
  levels (bit length + adaptive tree) and bypass signs. Models persist until the
  next keyframe.

The decoder runs the same kernel; reconstruction is exact integer arithmetic, so
encoder and decoder agree bit for bit and the encoder returns what the decoder
will show.
"""

from __future__ import annotations

import math

import numpy as np
import zstandard
from numba import njit

from . import rangecoder as rc
from .planecoder import ZSTD_LEVEL
from .transform import (
    ZIGZAG_4,
    block_scales,
    fdct4x4,
    idct4x4,
    ycocg_forward,
    ycocg_inverse,
)
from .zstd_bounded import decompress

# plane weights in the perceptual distance (Y, Co, Cg) and the step factors they imply
PLANE_WEIGHT = np.array([9.0, 1.25, 2.25])
PLANE_STEP = np.sqrt(PLANE_WEIGHT[0] / PLANE_WEIGHT)

CBF_BASE = 0  # 3 planes x 4
LAST_BASE = 12  # 3 planes x 16 (4-bit tree)
SIG_BASE = LAST_BASE + 48  # 3 planes x 16 positions
MODE_BASE = SIG_BASE + 48  # 3 left-mode contexts x 4 (2-bit tree)
LEVEL_BASE = MODE_BASE + 12  # 3 planes x 4 position classes x BUCKET_MODELS
ESCAPE_BASE = LEVEL_BASE + 12 * rc.BUCKET_MODELS  # 16 models: levels beyond 255
N_MODELS = ESCAPE_BASE + 16
LIMIT = 5
_POS_CLASS = np.array([0, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3], np.int64)


def quality_step(quality: int) -> float:
    """Quantiser step (orthonormal-DCT units of 8-bit Y) for quality 1..100."""
    return 0.5 * 2.0 ** ((100 - quality) / 15.0)


def step_tables(quality: int, intra: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """Per plane and coefficient: step and dead-zone offset in 1/16 units; lambda."""
    step = quality_step(quality)
    gains = block_scales()
    steps = np.empty((3, 16), np.int64)
    for p in range(3):
        steps[p] = np.maximum(1, np.round(16 * step * PLANE_STEP[p] * gains))
    offs = (steps * (1 / 3 if intra else 1 / 6)).astype(np.int64)
    lam = 0.12 * (step * 16) ** 2 / 256.0 * PLANE_WEIGHT[0] / 8.0
    return steps, offs, lam


class LossyModels:
    def __init__(self) -> None:
        self.probs, self.counts = rc.new_models(N_MODELS)

    def reset(self) -> None:
        self.probs[:] = rc.PROB_HALF
        self.counts[:] = 0


@njit(cache=True)
def _bitlen(v):
    n = 0
    while v > 0:
        v >>= 1
        n += 1
    return n


@njit(cache=True)
def _rate(q):
    """Rough bits of a quantised block (zigzag order), for RD decisions."""
    last = -1
    for i in range(16):
        if q[i] != 0:
            last = i
    if last < 0:
        return 1.0
    r = 5.0
    for i in range(last + 1):
        v = abs(q[i])
        r += 1.0
        if v:
            r += 1.0 + 2.0 * _bitlen(v)
    return r


@njit(cache=True)
def _predict_block(recon, p, y0, x0, mode, out):
    """Intra prediction of a 4x4 block from reconstructed neighbours."""
    has_up = y0 > 0
    has_left = x0 > 0
    base = 128 if p == 0 else 0
    if mode == 1 and has_up:
        for i in range(4):
            for j in range(4):
                out[i, j] = recon[p, y0 - 1, x0 + j]
        return
    if mode == 2 and has_left:
        for i in range(4):
            for j in range(4):
                out[i, j] = recon[p, y0 + i, x0 - 1]
        return
    s = 0
    n = 0
    if has_up:
        for j in range(4):
            s += recon[p, y0 - 1, x0 + j]
        n += 4
    if has_left:
        for i in range(4):
            s += recon[p, y0 + i, x0 - 1]
        n += 4
    dc = base if n == 0 else (s + n // 2) // n if s >= 0 else -((-s + n // 2) // n)
    for i in range(4):
        for j in range(4):
            out[i, j] = dc


@njit(cache=True)
def _code_lossy(enc, tgt, prd, intra, steps, offs, lam, wplane, probs, counts, buf, recon, lv):
    """Code (3, Hp, Wp) YCoCg planes in 4x4 blocks. Returns (bytes, flag).

    With a non-empty `lv` (the zstd baseline) no range coding happens: levels and
    intra modes are written to / read from lv, laid out plane by plane and
    position by position ((p*16 + z)*blocks + b, then the modes) so zstd sees long
    runs of zeros."""
    _, hp, wp = recon.shape
    nby, nbx = hp // 4, wp // 4
    nblk = nby * nbx
    raw = lv.shape[0] > 0
    st = np.zeros(rc.STATE_SIZE, np.int64)
    if raw:
        pass
    elif enc:
        rc.rc_init_enc(st)
    else:
        rc.rc_init_dec(st, buf)
    cbf = np.zeros((3, nby, nbx), np.int64)
    modes = np.zeros((nby, nbx), np.int64)
    pb = np.zeros((4, 4), np.int64)
    blk = np.zeros((4, 4), np.int64)
    q = np.zeros(16, np.int64)
    deq = np.zeros((4, 4), np.int64)
    for by in range(nby):
        for bx in range(nbx):
            y0 = by * 4
            x0 = bx * 4
            mode = 0
            if intra:
                if enc:
                    best = -1
                    for m in range(3):
                        _predict_block(recon, 0, y0, x0, m, pb)
                        sad = 0
                        for i in range(4):
                            for j in range(4):
                                sad += abs(tgt[0, y0 + i, x0 + j] - pb[i, j])
                        if best < 0 or sad < best:
                            best = sad
                            mode = m
                lm = modes[by, bx - 1] if bx > 0 else 0
                if raw:
                    if enc:
                        lv[48 * nblk + by * nbx + bx] = mode
                    else:
                        mode = lv[48 * nblk + by * nbx + bx]
                else:
                    mode = rc.code_tree(
                        st, buf, probs, counts, MODE_BASE + lm * 4, mode, 2, enc, LIMIT
                    )
                if mode > 2 or mode < 0:
                    mode = 0
                modes[by, bx] = mode
            for p in range(3):
                if intra:
                    _predict_block(recon, p, y0, x0, mode, pb)
                else:
                    for i in range(4):
                        for j in range(4):
                            pb[i, j] = prd[p, y0 + i, x0 + j]
                for k in range(16):
                    q[k] = 0
                if enc:
                    for i in range(4):
                        for j in range(4):
                            blk[i, j] = tgt[p, y0 + i, x0 + j] - pb[i, j]
                    fdct4x4(blk)
                    dist_zero = 0.0
                    for z in range(16):
                        k = ZIGZAG_4[z]
                        c = blk[k // 4, k % 4]
                        a = abs(c) * 16
                        v = (a + offs[p, k]) // steps[p, k]
                        q[z] = -v if c < 0 else v
                        dist_zero += float(c) * float(c)
                    # RD: drop +-1 levels whose rate outweighs their distortion gain
                    for z in range(15, -1, -1):
                        if q[z] == 1 or q[z] == -1:
                            k = ZIGZAG_4[z]
                            c = float(blk[k // 4, k % 4])
                            rec = float(steps[p, k]) / 16.0
                            gain = c * c - (abs(c) - rec) ** 2
                            if wplane[p] * gain < lam * 4.0:
                                q[z] = 0
                    # RD: skip the whole block when coding it does not pay
                    dist_coded = 0.0
                    for z in range(16):
                        k = ZIGZAG_4[z]
                        c = float(blk[k // 4, k % 4])
                        rec = q[z] * float(steps[p, k]) / 16.0
                        dist_coded += (c - rec) ** 2
                    if wplane[p] * dist_zero <= wplane[p] * dist_coded + lam * (_rate(q) - 1.0):
                        for z in range(16):
                            q[z] = 0
                # --- entropy coding
                if raw:
                    b = by * nbx + bx
                    nz = 0
                    for z in range(16):
                        if enc:
                            lv[(p * 16 + z) * nblk + b] = q[z]
                        else:
                            q[z] = lv[(p * 16 + z) * nblk + b]
                            if q[z] > 1 << 20 or q[z] < -(1 << 20):
                                return 0, 1
                        if q[z] != 0:
                            nz = 1
                left = cbf[p, by, bx - 1] if bx > 0 else 0
                up = cbf[p, by - 1, bx] if by > 0 else 0
                if not raw:
                    nz = 0
                    if enc:
                        for z in range(16):
                            if q[z] != 0:
                                nz = 1
                    nz = rc.code_adaptive(
                        st, buf, probs, counts, CBF_BASE + p * 4 + left + 2 * up, nz, enc, LIMIT
                    )
                cbf[p, by, bx] = nz
                if nz and not raw:
                    last = 0
                    if enc:
                        for z in range(16):
                            if q[z] != 0:
                                last = z
                    last = rc.code_tree(
                        st, buf, probs, counts, LAST_BASE + p * 16, last, 4, enc, LIMIT
                    )
                    for z in range(last + 1):
                        sig = 1
                        if z < last:
                            sig = rc.code_adaptive(
                                st,
                                buf,
                                probs,
                                counts,
                                SIG_BASE + p * 16 + z,
                                1 if q[z] != 0 else 0,
                                enc,
                                LIMIT,
                            )
                        if sig:
                            base = LEVEL_BASE + (p * 4 + _POS_CLASS[z]) * rc.BUCKET_MODELS
                            v = abs(q[z]) if enc else 1
                            v8 = rc.code_bucketed(
                                st, buf, probs, counts, base, v if v < 255 else 255, enc, LIMIT
                            )
                            if v8 == 255:
                                v8 = 255 + rc.code_magnitude(
                                    st, buf, probs, counts, ESCAPE_BASE, v - 255, enc, LIMIT
                                )
                                if v8 > 1 << 20:
                                    return st[4], 1
                            v = v8
                            neg = rc.code_bit(st, buf, rc.PROB_HALF, 1 if q[z] < 0 else 0, enc)
                            q[z] = -v if neg else v
                        else:
                            q[z] = 0
                # --- reconstruction (identical on both sides)
                for z in range(16):
                    k = ZIGZAG_4[z]
                    v = q[z] * steps[p, k]
                    deq[k // 4, k % 4] = (v + 8) >> 4 if v >= 0 else -((-v + 8) >> 4)
                if nz:
                    idct4x4(deq)
                for i in range(4):
                    for j in range(4):
                        v = pb[i, j] + deq[i, j]
                        # keep the reconstruction in range of what any colour can be
                        if v < -1024:
                            v = -1024
                        elif v > 1024:
                            v = 1024
                        recon[p, y0 + i, x0 + j] = v
    if raw:
        return 0, 0
    if enc:
        return rc.rc_finish_enc(st, buf), st[7]
    return st[4], 1 if st[6] > 8 else 0


def _planes(rgb: np.ndarray, hp: int, wp: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    padded = np.pad(rgb, ((0, hp - h), (0, wp - w), (0, 0)), mode="edge")
    return np.ascontiguousarray(np.moveaxis(ycocg_forward(padded), -1, 0)).astype(np.int64)


def _to_rgb(recon: np.ndarray, h: int, w: int) -> np.ndarray:
    rgb = ycocg_inverse(np.moveaxis(recon[:, :h, :w], 0, -1))
    return np.clip(rgb, 0, 255).astype(np.uint8)


_NO_LEVELS = np.zeros(0, np.int64)
_ZSTD = zstandard.ZstdCompressor(level=ZSTD_LEVEL)


def _level_count(hp: int, wp: int) -> int:
    return (hp // 4) * (wp // 4) * 49  # 3 planes x 16 levels, and the intra mode, per block


def _pack_levels(lv: np.ndarray) -> bytes:
    """zstd baseline: zigzag-mapped levels in the narrowest width that holds them."""
    z = ((lv << 1) ^ (lv >> 63)).astype(np.uint64)
    top = int(z.max()) if z.size else 0
    width = 1 if top < 1 << 8 else 2 if top < 1 << 16 else 4
    dtype = {1: np.uint8, 2: np.dtype("<u2"), 4: np.dtype("<u4")}[width]
    return bytes([width]) + _ZSTD.compress(z.astype(dtype).tobytes())


def _unpack_levels(data: bytes, n: int) -> np.ndarray | None:
    if not data or data[0] not in (1, 2, 4):
        return None
    width = data[0]
    raw = decompress(data[1:], n * width, "lossy levels")
    if len(raw) != n * width:
        return None
    dtype = {1: np.uint8, 2: np.dtype("<u2"), 4: np.dtype("<u4")}[width]
    z = np.frombuffer(raw, dtype).astype(np.int64)
    return (z >> 1) ^ -(z & 1)


def _run(enc, tgt, prd, intra, quality, models, buf, lv):
    """One pass of the kernel, encoding or decoding; returns (bytes, flag, recon planes)."""
    steps, offs, lam = step_tables(quality, intra)
    recon = np.zeros(prd.shape, np.int64)
    n, err = _code_lossy(
        enc,
        tgt,
        prd,
        intra,
        steps,
        offs,
        lam,
        PLANE_WEIGHT,
        models.probs,
        models.counts,
        buf,
        recon,
        lv,
    )
    return n, err, recon


def encode_lossy(
    rgb: np.ndarray,
    pred: np.ndarray | None,
    visible: np.ndarray,
    quality: int,
    models: LossyModels,
    entropy: str = "arith",
) -> tuple[bytes, np.ndarray]:
    """Code an RGB frame (H, W, 3) against pred (None: intra). Returns (bytes, recon RGB)."""
    h, w = rgb.shape[:2]
    hp, wp = -(-h // 4) * 4, -(-w // 4) * 4
    target = rgb
    if pred is not None and not visible.all():
        target = np.where(visible[..., None], rgb, pred)  # invisible pixels cost nothing
    tgt = _planes(target, hp, wp)
    prd = _planes(pred, hp, wp) if pred is not None else tgt
    lv = np.zeros(_level_count(hp, wp), np.int64) if entropy == "zstd" else _NO_LEVELS
    buf = np.zeros(8 * hp * wp + 1024 if not lv.size else 1, np.uint8)
    n, err, recon = _run(True, tgt, prd, pred is None, quality, models, buf, lv)
    if err:
        raise rc.CodingOverflow()
    data = _pack_levels(lv) if lv.size else buf[:n].tobytes()
    return data, _to_rgb(recon, h, w)


def decode_lossy(
    data: bytes,
    pred: np.ndarray | None,
    height: int,
    width: int,
    quality: int,
    models: LossyModels,
    entropy: str = "arith",
) -> tuple[np.ndarray, bool]:
    """Returns (recon RGB, damaged flag)."""
    hp, wp = -(-height // 4) * 4, -(-width // 4) * 4
    prd = _planes(pred, hp, wp) if pred is not None else np.zeros((3, hp, wp), np.int64)
    lv = _NO_LEVELS
    if entropy == "zstd":
        lv = _unpack_levels(data, _level_count(hp, wp))
        if lv is None:
            return np.zeros((height, width, 3), np.uint8), True
        data = b""
    buf = rc.input_buffer(data)
    n, err, recon = _run(False, prd, prd, pred is None, quality, models, buf, lv)
    return _to_rgb(recon, height, width), bool(err) or n > len(data) + 8


def quality_for_step(step: float) -> int:
    return round(100 - 15 * math.log2(step / 0.5))
