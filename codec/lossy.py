"""Lossy residual coding (`--quality Q`): transform, dead-zone quantisation, RDO.

Per frame, in YCoCg-R (exact integer colour transform), in 8x8 units of four 4x4
blocks (coding 9; the kernel's `version` branches below 9 are development steps that
format 1.0 neither writes nor reads):

* prediction: on predicted frames each unit carries a half-pel motion vector into
  the predictor's frame (the predictor proposes, the vector corrects where things
  moved; with `last` this is classic motion compensation) or into one of up to 15
  older decoded frames (GIFs loop, alternate and re-dither: what comes back is
  found there), coded as a reference index and the vector's difference from the
  median of the neighbours' vectors; it may average in a second hypothesis (its
  own reference and vector, coded against the first vector scaled to that
  reference's distance), which averages away noise and dither that differ between
  frames; a unit with the predicted vector into the predictor's frame and no levels
  is coded as skipped, one flag; or the unit is intra-coded. Intra blocks (every
  block of a keyframe) use one of DC / vertical / horizontal from the block's
  reconstructed neighbours (chosen per block, coded once for the three planes);
  keyframes use half the predicted frames' step, since every later frame is
  predicted from them;
* the residual goes through the reversible 4x4 integer DCT (transform.py) and a
  dead-zone quantiser whose step per coefficient undoes the transform's gains and
  whose step per plane follows how much each plane weighs in the perceptual
  distance (green counts most: errors in Y cost 9x, Cg 2.25x, Co 1.25x, from the
  redmean weights of R, G and B);
* encoder decisions are rate-distortion decisions on the distance the benchmark
  measures -- per pixel, the colour distance of the three planes weighted as it
  weighs them, summed, not squared error: a unit is trial-coded as each candidate
  (one hypothesis, two, skipped, intra) and the cheapest in distance + lambda * bits
  wins; levels are lowered and blocks dropped the same way;
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

import numba
import numpy as np
import zstandard
from numba import njit, prange

from . import rangecoder as rc
from .container import CODING_LOSSY
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

# numba's default threading layer is OpenMP, the libgomp that torch's CPU kernels use
# too: with the encoder's parallel motion search in the same process, every small
# torch op of a learned predictor joined a thread team that included numba's worker,
# and where two processes shared two cores each op waited for a descheduled thread
# (convlstm encodes 20x slower in the benchmark). numba's own workqueue layer shares
# nothing with torch. A layer the user chose (NUMBA_THREADING_LAYER) is kept.
if numba.config.THREADING_LAYER == "default":
    numba.config.THREADING_LAYER = "workqueue"

# plane weights in the perceptual distance (Y, Co, Cg) and the step factors they imply
PLANE_WEIGHT = np.array([9.0, 1.25, 2.25])
PLANE_STEP = np.sqrt(PLANE_WEIGHT[0] / PLANE_WEIGHT)
PLANE_STEP_C = (1.0, float(PLANE_STEP[1]), float(PLANE_STEP[2]))  # for compiled code
KEYFRAME_STEP = 0.5  # codings 4 to 7: keyframe step relative to predicted frames' (format)
# encoder only, in units of the step: what a bit is worth against a sum of absolute
# differences in Y units (motion search) and against a sum of colour distances
# (unit and level decisions, see _choose_unit and _quantize); tuned per clip on the
# held-out set (the distance lambda: x0.55 +1.8%, x0.73 +1.2%, x1.4 +1.2% bytes)
SAD_LAMBDA = 0.1643
PD_LAMBDA = 0.2711

CBF_BASE = 0  # 3 planes x 4
LAST_BASE = 12  # 3 planes x 16 (4-bit tree)
SIG_BASE = LAST_BASE + 48  # 3 planes x 16 positions
MODE_BASE = SIG_BASE + 48  # 3 left-mode contexts x 4 (2-bit tree)
LEVEL_BASE = MODE_BASE + 12  # 3 planes x 4 position classes x BUCKET_MODELS
ESCAPE_BASE = LEVEL_BASE + 12 * rc.BUCKET_MODELS  # 16 models: levels beyond 255
MV_MODELS = 3 + 16  # per vector component: zero flag (3 neighbour contexts), magnitude
MV_BASE = ESCAPE_BASE + 16
INTRA_BASE = MV_BASE + 2 * MV_MODELS  # intra unit flag in predicted frames: 3 contexts
# codings 4 and 5: levels and significance also see the block's previous nonzero level
# (none / 1 / larger); "none" uses the coding 3 models
LEVEL2_BASE = INTRA_BASE + 3  # 3 planes x 4 position classes x 2 x BUCKET_MODELS
SIG2_BASE = LEVEL2_BASE + 24 * rc.BUCKET_MODELS  # 3 planes x 16 positions x 2
SKIP_BASE = SIG2_BASE + 96  # coding 6: skipped unit flag, 3 contexts
REF_BASE = SKIP_BASE + 3  # coding 6: reference index, 3 positions x 3 neighbour contexts
BI_BASE = REF_BASE + 9  # coding 7: bi-predicted unit flag, 3 neighbour contexts
REF1_BASE = BI_BASE + 3  # coding 7: second reference index, as REF_BASE
MV1_BASE = REF1_BASE + 9  # coding 7: second vector's difference, as MV_BASE
N_MODELS = MV1_BASE + 2 * MV_MODELS
CODING_VERSION = CODING_LOSSY  # the lossy coding the encoder writes; coding number = version
MAX_MV = 512  # pixels; a larger vector in a stream is damage
SEARCH_RANGE = 8  # full search +-8 pixels around the best candidate vector (+-16: 1% fewer
# bytes, a third slower encoding)
REF_PENALTY = 6  # encoder only: an older reference must win by this many lambda bits
REF_RANGE = 2  # encoder only: the older references' integer search range
OLD_REF_TRIES = 2  # encoder only: and how many of them are searched (all 15: 0.6% fewer
# bytes per clip, 1.75x the encoding time)
BI_REFS = 2  # encoder only: second hypotheses are looked for in the 2 newest references
BI_RANGE = 2  # encoder only: and searched +-2 around the scaled first vector
# coding 6: the predictor's frame and up to 15 older decoded frames (4: 5.8% fewer bytes
# per clip, 8: 1.8% fewer again, 16: 2.4% fewer again, 23% on a looping spinner)...
N_REFS = 16
REF_PIXELS = 1 << 24  # ...as long as references x padded pixels stay within this
SEARCH_MAX = 64  # the encoder never proposes vectors longer than this
LIMIT = 5
# encoder only: squared error in the transform's units over this is squared error in
# pixels (the lifting DCT scales coefficients by block_scales, not orthonormally)
_INV_GAIN2 = 1.0 / block_scales() ** 2
_POS_CLASS = np.array([0, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3], np.int64)


def quality_step(quality: int, motion: bool = True) -> float:
    """Quantiser step (orthonormal-DCT units of 8-bit Y) for quality 1..100.

    Coding 4 spreads Q over a wider range than coding 3 did, so that Q 1 reaches the
    distances of x264's CRF 34 and beyond."""
    return 0.5 * 2.0 ** ((100 - quality) / (13.5 if motion else 15.0))


def step_tables(
    quality: int, intra: bool, motion: bool = True
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Per plane and coefficient: step and dead-zone offset in 1/16 units; the encoder's
    lambdas against SAD and against colour distance."""
    step = quality_step(quality, motion)
    if intra and motion:
        # keyframes are every later frame's reference: finer steps pay back many times
        step *= KEYFRAME_STEP
    gains = block_scales()
    steps = np.empty((3, 16), np.int64)
    for p in range(3):
        steps[p] = np.maximum(1, np.round(16 * step * PLANE_STEP[p] * gains))
    # encoder only: the quantiser rounds a third of a step up (1/6 and a half: 2.6% and
    # 3.4% more bytes per clip); rate-distortion decisions then lower levels
    offs = steps // 3
    return steps, offs, SAD_LAMBDA * step, PD_LAMBDA * step


class LossyModels:
    def __init__(self, prediction_is_decoded: bool = True) -> None:
        """prediction_is_decoded: the predictor's frame is the newest decoded frame
        (the `last` predictor), which coding 9 then does not list twice."""
        self.prediction_is_decoded = prediction_is_decoded
        self.probs, self.counts = rc.new_models(N_MODELS)
        # the previous frame's vectors: search candidates only, not stream state
        self.vectors = np.zeros((0, 0, 2), np.int64)
        # reference planes (int16: every value is within +-1024): slot 0 holds the
        # predictor's frame, the others decoded frames; `history` lists the slots of
        # the latest decoded frames, newest first (coding 6)
        self.ring = np.zeros((0, 3, 0, 0), np.int16)
        self.history: list[int] = []

    def reset(self) -> None:
        self.probs[:] = rc.PROB_HALF
        self.counts[:] = 0
        self.vectors = np.zeros((0, 0, 2), np.int64)
        self.history = []


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


def _basis_images() -> np.ndarray:
    """(16, 4, 4): what one unit of each dequantised coefficient (raster order) adds to
    the pixels through idct4x4 -- the lifting steps round, so measured at a large
    amplitude and scaled back."""
    out = np.empty((16, 4, 4))
    for k in range(16):
        blk = np.zeros((4, 4), np.int64)
        blk[k // 4, k % 4] = 1 << 16
        idct4x4(blk)
        out[k] = blk / float(1 << 16)
    return out


_BASIS = _basis_images()  # encoder only: level decisions estimate pixel errors with it


@njit(cache=True)
def _quantize(blk, p, steps, offs, lam_pd, wplane, q, work, err):
    """Encoder: transform a 4x4 residual of plane p and quantise it into q (zigzag
    order) with rate-distortion decisions judged on the colour distance in pixels,
    which is what the perceptual distance sums (small errors spread over a block cost
    more there than squares say): levels are lowered by one, last first, while that
    lowers distance + lambda * bits, and the whole block is dropped when coding it
    does not pay. A level's effect on the pixels is taken as linear (its basis image
    times its step), which saves an inverse transform per try. work: (2, 4, 4) int64,
    err: (4, 4) float64 scratch."""
    res = work[0]
    deq = work[1]
    res[:] = blk
    fdct4x4(blk)
    last = -1
    for z in range(16):
        k = ZIGZAG_4[z]
        c = blk[k // 4, k % 4]
        v = (abs(c) * 16 + offs[p, k]) // steps[p, k]
        q[z] = -v if c < 0 else v
        if v:
            last = z
    if last < 0:
        return
    for z in range(16):
        k = ZIGZAG_4[z]
        v = q[z] * steps[p, k]
        deq[k // 4, k % 4] = (v + 8) >> 4 if v >= 0 else -((-v + 8) >> 4)
    idct4x4(deq)
    d = 0.0
    d_zero = 0
    for i in range(4):
        for j in range(4):
            err[i, j] = float(res[i, j] - deq[i, j])
            d += abs(err[i, j])
            d_zero += abs(res[i, j])
    w = math.sqrt(wplane[p])
    r = _rate(q)
    j_best = w * d + lam_pd * r
    for z in range(last, -1, -1):
        v = abs(q[z])
        if v == 0:
            continue
        # what _rate(q) would change by, without recounting the block
        pl = z
        if v >= 2:
            dr = 2.0 * (_bitlen(v - 1) - _bitlen(v))
        elif z < last:
            dr = -3.0  # its level and sign go; its significance is coded as a zero
        else:  # the last level goes: the last position moves back
            pl = z - 1
            while pl >= 0 and q[pl] == 0:
                pl -= 1
            dr = 1.0 - r if pl < 0 else -3.0 - (z - pl)
        k = ZIGZAG_4[z]
        sgn = 1 if q[z] > 0 else -1
        delta = sgn * steps[p, k] / 16.0  # the reconstruction loses this much of B_k
        d2 = 0.0
        for i in range(4):
            for j in range(4):
                d2 += abs(err[i, j] + delta * _BASIS[k, i, j])
        jc = w * d2 + lam_pd * (r + dr)
        if jc < j_best:
            j_best = jc
            r += dr
            q[z] -= sgn
            last = pl if v == 1 and z == last else last
            for i in range(4):
                for j in range(4):
                    err[i, j] += delta * _BASIS[k, i, j]
    if w * d_zero + lam_pd <= j_best:
        for z in range(16):
            q[z] = 0


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


@njit(cache=True, inline="always")
def _clamp(v, hi):
    return 0 if v < 0 else hi if v > hi else v


@njit(cache=True)
def _mc_block(ref, p, y0, x0, mvy, mvx, n, out):
    """n x n block of plane p at (y0, x0) displaced by a half-pel vector, edges repeated.

    Half-pel samples are the rounded mean of their two or four integer neighbours,
    in integers, so both sides compute the same block."""
    _, hp, wp = ref.shape
    iy, fy = mvy >> 1, mvy & 1
    ix, fx = mvx >> 1, mvx & 1
    for i in range(n):
        ya = _clamp(y0 + i + iy, hp - 1)
        yb = _clamp(y0 + i + iy + fy, hp - 1)
        for j in range(n):
            xa = _clamp(x0 + j + ix, wp - 1)
            xb = _clamp(x0 + j + ix + fx, wp - 1)
            out[i, j] = (ref[p, ya, xa] + ref[p, ya, xb] + ref[p, yb, xa] + ref[p, yb, xb] + 2) >> 2


@njit(cache=True)
def _mc_pred(ring, order, p, y0, x0, r0, m0y, m0x, r1, m1y, m1x, pb, pb2):
    """4x4 prediction of plane p at (y0, x0): the reference r0 at its vector, averaged
    with rounding with the second hypothesis (r1 >= 0, coding 7) when there is one.
    Into pb; pb2 is scratch. Both sides and the encoder's trials predict with it."""
    _mc_block(ring[order[r0]], p, y0, x0, m0y, m0x, 4, pb)
    if r1 >= 0:
        _mc_block(ring[order[r1]], p, y0, x0, m1y, m1x, 4, pb2)
        for i in range(4):
            for j in range(4):
                pb[i, j] = (pb[i, j] + pb2[i, j] + 1) >> 1


@njit(cache=True)
def _sad_int(tgt, ref, y0, x0, dy, dx, limit):
    """Weighted SAD (as _colour_cost) of the 8x8 unit against the reference at an
    integer offset, stopping once it reaches limit."""
    _, hp, wp = ref.shape
    s = 0.0
    inside = y0 + dy >= 0 and x0 + dx >= 0 and y0 + dy + 8 <= hp and x0 + dx + 8 <= wp
    for p in range(3):
        w = 1.0 / PLANE_STEP_C[p]
        for i in range(8):
            t = 0
            for j in range(8):
                if inside:
                    r = ref[p, y0 + dy + i, x0 + dx + j]
                else:
                    r = ref[p, _clamp(y0 + dy + i, hp - 1), _clamp(x0 + dx + j, wp - 1)]
                t += abs(tgt[p, y0 + i, x0 + j] - r)
            s += w * t
            if s >= limit:
                return s
    return s


@njit(cache=True)
def _best_intra_mode(src, tgt, y0, x0, pb):
    """Encoder: the intra mode (predicted from `src`) with the least Y SAD against
    the target at a 4x4 block, and that SAD."""
    best, mode = -1, 0
    for m in range(3):
        _predict_block(src, 0, y0, x0, m, pb)
        sad = 0
        for i in range(4):
            for j in range(4):
                sad += abs(tgt[0, y0 + i, x0 + j] - pb[i, j])
        if best < 0 or sad < best:
            best, mode = sad, m
    return mode, best


@njit(cache=True)
def _mvd_bits(d):
    return 1 if d == 0 else 2 + 2 * _bitlen(abs(d))


@njit(cache=True, inline="always")
def _median3(a, b, c):
    return max(min(a, b), min(max(a, b), c))


@njit(cache=True)
def _mv_pred(mvs, uy, ux, nux):
    """Median of the left, upper and upper-right units' vectors (H.264's rule)."""
    if uy == 0:
        if ux == 0:
            return 0, 0
        return mvs[uy, ux - 1, 0], mvs[uy, ux - 1, 1]
    cx = ux + 1 if ux + 1 < nux else ux - 1
    a0, a1 = (mvs[uy, ux - 1, 0], mvs[uy, ux - 1, 1]) if ux > 0 else (0, 0)
    c0, c1 = (mvs[uy - 1, cx, 0], mvs[uy - 1, cx, 1]) if cx >= 0 else (0, 0)
    return _median3(a0, mvs[uy - 1, ux, 0], c0), _median3(a1, mvs[uy - 1, ux, 1], c1)


@njit(cache=True)
def _colour_cost(tgt, ref, y0, x0, mvy, mvx, blk):
    """SAD of the 8x8 unit at a fractional vector over all planes, each weighted as the
    perceptual distance weighs it relative to Y (a distance, not a square: sqrt)."""
    s = 0.0
    for p in range(3):
        _mc_block(ref, p, y0, x0, mvy, mvx, 8, blk)
        t = 0
        for i in range(8):
            for j in range(8):
                t += abs(tgt[p, y0 + i, x0 + j] - blk[i, j])
        s += t / PLANE_STEP_C[p]
    return s


@njit(cache=True)
def _search(tgt, ref, y0, x0, pmy, pmx, cands, lam_sad, blk, radius):
    """Encoder's motion search for one 8x8 unit: best of the candidate vectors, a full
    integer search +-radius around it, then half-pel refinement, each on the SAD of
    all three planes weighted as the distance weighs them, plus lambda * vector bits
    (luma alone: 3% more bytes per clip at equal distance; GIFs move colours that
    luma does not see). Returns the vector and that cost."""
    best = 1e30
    by, bx = 0, 0
    for k in range(cands.shape[0]):
        cy, cx = cands[k, 0] >> 1, cands[k, 1] >> 1
        if abs(cy) > SEARCH_MAX or abs(cx) > SEARCH_MAX:
            continue
        bits = _mvd_bits(2 * cy - pmy) + _mvd_bits(2 * cx - pmx)
        c = _sad_int(tgt, ref, y0, x0, cy, cx, best) + lam_sad * bits
        if c < best:
            best, by, bx = c, cy, cx
    cy0, cx0 = by, bx
    for dy in range(cy0 - radius, cy0 + radius + 1):
        for dx in range(cx0 - radius, cx0 + radius + 1):
            if abs(dy) > SEARCH_MAX or abs(dx) > SEARCH_MAX:
                continue
            bits = _mvd_bits(2 * dy - pmy) + _mvd_bits(2 * dx - pmx)
            c = lam_sad * bits
            if c >= best:
                continue
            c += _sad_int(tgt, ref, y0, x0, dy, dx, best - c)
            if c < best:
                best, by, bx = c, dy, dx
    hy, hx = by << 1, bx << 1
    best = _colour_cost(tgt, ref, y0, x0, hy, hx, blk) + lam_sad * (
        _mvd_bits(hy - pmy) + _mvd_bits(hx - pmx)
    )
    cy0, cx0 = hy, hx
    for dy in range(-1, 2):
        for dx in range(-1, 2):
            if dy == 0 and dx == 0:
                continue
            my, mx = cy0 + dy, cx0 + dx
            c = lam_sad * (_mvd_bits(my - pmy) + _mvd_bits(mx - pmx))
            c += _colour_cost(tgt, ref, y0, x0, my, mx, blk)
            if c < best:
                best, hy, hx = c, my, mx
    return hy, hx, best


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


@njit(cache=True, inline="always")
def _scale_mv(v, d1, d0):
    """Coding 7: a vector into a frame d0 frames back, scaled to one d1 frames back
    (constant motion), rounded half away from zero in integers."""
    n = v * d1
    return (n + d0 // 2) // d0 if n >= 0 else -((-n + d0 // 2) // d0)


@njit(cache=True)
def _bi_cost(tgt, ref, y0, x0, p0, my, mx, blk):
    """SAD of the 8x8 unit predicted by the mean of p0 (3, 8, 8) and the reference at a
    vector, weighted over planes as _colour_cost."""
    s = 0.0
    for p in range(3):
        _mc_block(ref, p, y0, x0, my, mx, 8, blk)
        t = 0
        for i in range(8):
            for j in range(8):
                t += abs(tgt[p, y0 + i, x0 + j] - ((p0[p, i, j] + blk[i, j] + 1) >> 1))
        s += t / PLANE_STEP_C[p]
    return s


@njit(cache=True)
def _bi_search(tgt, ref, y0, x0, p0, cy, cx, oy, ox, lam_sad, blk, t8, radius):
    """Encoder: one vector of a bi-predicted unit, given its other hypothesis p0: an
    integer search +-radius around (cy, cx) (half-pel units) on 2 * target - p0, then
    half-pel refinement on the real mean, vector bits counted from (oy, ox). Returns
    the vector and its colour cost with lambda * difference bits."""
    _, hp, wp = ref.shape
    for p in range(3):
        for i in range(8):
            for j in range(8):
                t8[p, i, j] = 2 * tgt[p, y0 + i, x0 + j] - p0[p, i, j]
    by, bx = cy >> 1, cx >> 1
    best = 1e30
    iy0, ix0 = by, bx
    for dy in range(iy0 - radius, iy0 + radius + 1):
        for dx in range(ix0 - radius, ix0 + radius + 1):
            c = lam_sad * (_mvd_bits(2 * dy - oy) + _mvd_bits(2 * dx - ox))
            for p in range(3):
                w = 0.5 / PLANE_STEP_C[p]
                t = 0
                for i in range(8):
                    yy = _clamp(y0 + dy + i, hp - 1)
                    for j in range(8):
                        t += abs(t8[p, i, j] - ref[p, yy, _clamp(x0 + dx + j, wp - 1)])
                c += w * t
                if c >= best:
                    break
            if c < best:
                best, by, bx = c, dy, dx
    hy, hx = by << 1, bx << 1
    best = _bi_cost(tgt, ref, y0, x0, p0, hy, hx, blk) + lam_sad * (
        _mvd_bits(hy - oy) + _mvd_bits(hx - ox)
    )
    sy, sx = hy, hx
    for dy in range(-1, 2):
        for dx in range(-1, 2):
            if dy == 0 and dx == 0:
                continue
            my, mx = sy + dy, sx + dx
            c = lam_sad * (_mvd_bits(my - oy) + _mvd_bits(mx - ox))
            c += _bi_cost(tgt, ref, y0, x0, p0, my, mx, blk)
            if c < best:
                best, hy, hx = c, my, mx
    return hy, hx, best


@njit(cache=True)
def _bit_cost(probs, ctx, bit):
    """Encoder: bits an adaptive flag would cost now."""
    p = float(probs[ctx]) / rc.PROB_ONE
    return -math.log2(p if bit else 1.0 - p)


@njit(cache=True)
def _trial(
    tgt,
    recon,
    ring,
    order,
    y0u,
    x0u,
    kind,
    r0,
    m0y,
    m0x,
    r1,
    m1y,
    m1x,
    steps,
    offs,
    lam_pd,
    wplane,
    pb,
    pb2,
    blk,
    qs,
    deq,
    work,
    err,
):
    """Encoder: code an 8x8 unit as `kind` (0 motion-compensated with levels, 1 the same
    without levels (skipped), 2 intra) into recon, as the coding pass would, leaving
    the levels in qs (4 blocks x 3 planes x 16). Returns
    (the sum over its pixels of the colour distance the perceptual distance measures,
    in YCoCg with the planes weighted as it weighs them; estimated bits of levels and
    intra modes)."""
    bits = 0.0
    for sb in range(4):
        y0 = y0u + 4 * (sb // 2)
        x0 = x0u + 4 * (sb % 2)
        mode = 0
        if kind == 2:
            mode = _best_intra_mode(recon, tgt, y0, x0, pb)[0]
            bits += 1.5
        for p in range(3):
            if kind == 2:
                _predict_block(recon, p, y0, x0, mode, pb)
            else:
                _mc_pred(ring, order, p, y0, x0, r0, m0y, m0x, r1, m1y, m1x, pb, pb2)
            q = qs[sb, p]
            for z in range(16):
                q[z] = 0
            if kind != 1:
                for i in range(4):
                    for j in range(4):
                        blk[i, j] = tgt[p, y0 + i, x0 + j] - pb[i, j]
                _quantize(blk, p, steps, offs, lam_pd, wplane, q, work, err)
                bits += _rate(q)
            _reconstruct(q, p, steps, pb, deq, recon, y0, x0)
    dist = 0.0
    for i in range(8):
        for j in range(8):
            s2 = 0.0
            for p in range(3):
                e = float(tgt[p, y0u + i, x0u + j] - recon[p, y0u + i, x0u + j])
                s2 += wplane[p] * e * e
            dist += math.sqrt(s2)
    return dist, bits


@njit(cache=True)
def _search_unit(tgt, ring, order, y0, x0, pmy, pmx, cands, use_bi, lam_sad, out):
    """Encoder's motion searches for the 8x8 unit at (y0, x0), SAD plus lambda * vector
    bits counted from (pmy, pmx): the best vector into the predictor's frame and into
    the older references, then the best second hypothesis for it. Writes out[:4] =
    (reference, vector, cost) and out[4:10] = (its first vector, second reference or
    -1, second vector, cost)."""
    nref = order.shape[0]
    blk8 = np.empty((8, 8), np.int64)
    p0 = np.empty((3, 8, 8), np.int64)
    p1 = np.empty((3, 8, 8), np.int64)
    t8 = np.empty((3, 8, 8), np.int64)
    prd = ring[order[0]]
    mvy, mvx, best3 = _search(tgt, prd, y0, x0, pmy, pmx, cands, lam_sad, blk8, SEARCH_RANGE)
    uref = 0
    if nref > 1:
        best3 += lam_sad  # its reference index
    # older frames: a short search around the same candidates finds what came back
    # (loops, dither patterns that alternate); the choice weighs all three planes,
    # since an older frame can match the luma and not the colour. Only the ones whose
    # best candidate vector (integer) comes closest are searched: searching every one
    # took most of the encoding time
    tried = np.zeros(OLD_REF_TRIES, np.int64)
    tried_cost = np.full(OLD_REF_TRIES, 1e30)
    for r in range(1, nref):
        ref = ring[order[r]]
        c = 1e30
        for k in range(cands.shape[0]):
            cy, cx = cands[k, 0] >> 1, cands[k, 1] >> 1
            if abs(cy) <= SEARCH_MAX and abs(cx) <= SEARCH_MAX:
                c = min(c, _sad_int(tgt, ref, y0, x0, cy, cx, c))
        # insertion into the short list, cheapest first
        k = OLD_REF_TRIES - 1
        if c < tried_cost[k]:
            while k > 0 and tried_cost[k - 1] > c:
                tried_cost[k], tried[k] = tried_cost[k - 1], tried[k - 1]
                k -= 1
            tried_cost[k], tried[k] = c, r
    for t in range(OLD_REF_TRIES):
        r = tried[t]
        if r == 0:
            break
        ry, rx, c3 = _search(tgt, ring[order[r]], y0, x0, pmy, pmx, cands, lam_sad, blk8, REF_RANGE)
        c3 += lam_sad * (min(r + 1, nref - 1) + REF_PENALTY)
        if c3 < best3:
            mvy, mvx, uref, best3 = ry, rx, r, c3
    out[0], out[1], out[2], out[3] = uref, mvy, mvx, best3
    out[4], out[5], out[6], out[7], out[8], out[9] = mvy, mvx, -1, 0, 0, 1e30
    if not use_bi:
        return
    # a second hypothesis averaged in: the scaled first vector is where its search
    # starts and what its difference is from
    for p in range(3):
        _mc_block(ring[order[uref]], p, y0, x0, mvy, mvx, 8, p0[p])
    cbest, cref, cy, cx = 1e30, -1, 0, 0
    for r1 in range(min(nref, BI_REFS)):
        sy = _scale_mv(mvy, r1 + 1, uref + 1)
        sx = _scale_mv(mvx, r1 + 1, uref + 1)
        ry, rx, c3 = _bi_search(
            tgt, ring[order[r1]], y0, x0, p0, sy, sx, sy, sx, lam_sad, blk8, t8, BI_RANGE
        )
        c3 += lam_sad * min(r1 + 1, nref - 1)
        if c3 < cbest:
            cbest, cref, cy, cx = c3, r1, ry, rx
    if cref < 0:
        return
    # the first vector was the best alone; against the second it may not be, so it is
    # searched again with the second fixed, and the second after it
    for p in range(3):
        _mc_block(ring[order[cref]], p, y0, x0, cy, cx, 8, p1[p])
    b0y, b0x, _ = _bi_search(
        tgt, ring[order[uref]], y0, x0, p1, mvy, mvx, pmy, pmx, lam_sad, blk8, t8, BI_RANGE
    )
    sy = _scale_mv(b0y, cref + 1, uref + 1)
    sx = _scale_mv(b0x, cref + 1, uref + 1)
    if b0y != mvy or b0x != mvx:
        for p in range(3):
            _mc_block(ring[order[uref]], p, y0, x0, b0y, b0x, 8, p0[p])
        cy, cx, _ = _bi_search(
            tgt, ring[order[cref]], y0, x0, p0, cy, cx, sy, sx, lam_sad, blk8, t8, 1
        )
    # its cost as the single searches count theirs: colour SAD, vector and index bits
    cost = _bi_cost(tgt, ring[order[cref]], y0, x0, p0, cy, cx, blk8)
    cost += lam_sad * (_mvd_bits(b0y - pmy) + _mvd_bits(b0x - pmx))
    cost += lam_sad * (_mvd_bits(cy - sy) + _mvd_bits(cx - sx) + 1)
    if nref > 1:
        cost += lam_sad * (min(uref + 1, nref - 1) + min(cref + 1, nref - 1))
    out[4], out[5], out[6], out[7], out[8], out[9] = b0y, b0x, cref, cy, cx, cost


@njit(cache=True, parallel=True)
def _motion_prepass(tgt, ring, order, mvf, use_bi, lam_sad, pre):
    """Encoder: every unit's motion searches at once, in parallel -- the references are
    final when a frame starts; only the vector predictor (the median of the coded
    neighbours' vectors) is not known yet, so the previous frame's field stands in
    for it. Each unit's result depends on nothing another thread computes, so the
    output does not depend on the thread count. pre: (Nuy, Nux, 10), see _search_unit."""
    nuy, nux = pre.shape[0], pre.shape[1]
    for u in prange(nuy * nux):
        uy, ux = u // nux, u % nux
        cands = np.zeros((7, 2), np.int64)
        pmy, pmx = 0, 0
        if mvf.shape[0] == nuy and mvf.shape[1] == nux:
            pmy, pmx = _mv_pred(mvf, uy, ux, nux)
            cands[1, 0], cands[1, 1] = pmy, pmx
            cands[2] = mvf[uy, ux]
            if ux > 0:
                cands[3] = mvf[uy, ux - 1]
            if uy > 0:
                cands[4] = mvf[uy - 1, ux]
            if ux + 1 < nux:
                cands[5] = mvf[uy, ux + 1]
            if uy + 1 < nuy:
                cands[6] = mvf[uy + 1, ux]
        _search_unit(
            tgt, ring, order, uy * 8, ux * 8, pmy, pmx, cands, use_bi, lam_sad, pre[uy, ux]
        )


@njit(cache=True)
def _choose_unit(
    tgt,
    recon,
    ring,
    order,
    y0,
    x0,
    pmy,
    pmx,
    cands,
    pre,
    use_skip,
    use_bi,
    sctx,
    ictx,
    bctx,
    probs,
    steps,
    offs,
    lam_sad,
    lam_pd,
    wplane,
    qbest,
    rbest,
):
    """Encoder: how to code the 8x8 unit at (y0, x0) of a predicted frame.

    The prepass's vector is compared with the candidates only this frame's coded
    neighbours provide (their vectors, the predicted vector (pmy, pmx)) and refined
    by half a pixel, all with vector bits counted from the real predicted vector; then
    each candidate -- one hypothesis, two (the prepass's pair), skipped, intra -- is
    coded for trial and the one with the least colour distance + lambda * bits wins,
    its flags priced by the adaptive models as they stand. Returns (kind: 0 motion,
    1 intra, 2 skipped; reference, vector, second reference or -1, second vector)."""
    nref = order.shape[0]
    blk8 = np.empty((8, 8), np.int64)
    pb = np.zeros((4, 4), np.int64)
    pb2 = np.zeros((4, 4), np.int64)
    blk = np.zeros((4, 4), np.int64)
    deq = np.zeros((4, 4), np.int64)
    qs = np.zeros((4, 3, 16), np.int64)
    work = np.zeros((2, 4, 4), np.int64)
    err = np.zeros((4, 4))
    uref, mvy, mvx = int(pre[0]), int(pre[1]), int(pre[2])
    ref_extra = (min(uref + 1, nref - 1) + REF_PENALTY) if uref > 0 else (1 if nref > 1 else 0)
    best3 = _colour_cost(tgt, ring[order[uref]], y0, x0, mvy, mvx, blk8) + lam_sad * (
        _mvd_bits(mvy - pmy) + _mvd_bits(mvx - pmx) + ref_extra
    )
    ref0 = 1 if nref > 1 else 0
    for k in range(cands.shape[0]):
        cy, cx = cands[k, 0], cands[k, 1]
        if abs(cy) > 2 * SEARCH_MAX or abs(cx) > 2 * SEARCH_MAX:
            continue
        c = _colour_cost(tgt, ring[order[0]], y0, x0, cy, cx, blk8) + lam_sad * (
            _mvd_bits(cy - pmy) + _mvd_bits(cx - pmx) + ref0
        )
        if c < best3:
            best3, uref, mvy, mvx = c, 0, cy, cx
    ref_extra = (min(uref + 1, nref - 1) + REF_PENALTY) if uref > 0 else ref0
    cy0, cx0 = mvy, mvx
    for dy in range(-1, 2):
        for dx in range(-1, 2):
            if dy == 0 and dx == 0:
                continue
            my, mx = cy0 + dy, cx0 + dx
            c = _colour_cost(tgt, ring[order[uref]], y0, x0, my, mx, blk8) + lam_sad * (
                _mvd_bits(my - pmy) + _mvd_bits(mx - pmx) + ref_extra
            )
            if c < best3:
                best3, mvy, mvx = c, my, mx
    # side bits each candidate carries beyond its levels
    ref_bits = float(min(uref + 1, nref - 1)) if nref > 1 else 0.0
    mv_bits = float(_mvd_bits(mvy - pmy) + _mvd_bits(mvx - pmx))
    not_skip = _bit_cost(probs, sctx, 0) if use_skip else 0.0
    inter_flags = not_skip + _bit_cost(probs, ictx, 0)
    no_bi = _bit_cost(probs, bctx, 0) if use_bi else 0.0
    d, b = _trial(
        tgt,
        recon,
        ring,
        order,
        y0,
        x0,
        0,
        uref,
        mvy,
        mvx,
        -1,
        0,
        0,
        steps,
        offs,
        lam_pd,
        wplane,
        pb,
        pb2,
        blk,
        qs,
        deq,
        work,
        err,
    )
    best = d + lam_pd * (b + inter_flags + no_bi + ref_bits + mv_bits)
    qbest[:] = qs
    rbest[:] = recon[:, y0 : y0 + 8, x0 : x0 + 8]
    kind, bref, b1y, b1x = 0, -1, 0, 0
    cref = int(pre[6])
    # two hypotheses are tried where the prepass found them cheaper than one
    if use_bi and cref >= 0 and pre[9] < pre[3]:
        r0, b0y, b0x, cy, cx = int(pre[0]), int(pre[4]), int(pre[5]), int(pre[7]), int(pre[8])
        d, b = _trial(
            tgt,
            recon,
            ring,
            order,
            y0,
            x0,
            0,
            r0,
            b0y,
            b0x,
            cref,
            cy,
            cx,
            steps,
            offs,
            lam_pd,
            wplane,
            pb,
            pb2,
            blk,
            qs,
            deq,
            work,
            err,
        )
        sy = _scale_mv(b0y, cref + 1, r0 + 1)
        sx = _scale_mv(b0x, cref + 1, r0 + 1)
        side = inter_flags + _bit_cost(probs, bctx, 1)
        side += float(min(r0 + 1, nref - 1)) if nref > 1 else 0.0
        side += float(_mvd_bits(b0y - pmy) + _mvd_bits(b0x - pmx))
        side += float(min(cref + 1, nref - 1) + _mvd_bits(cy - sy) + _mvd_bits(cx - sx))
        j = d + lam_pd * (b + side)
        if j < best:
            best, bref, b1y, b1x = j, cref, cy, cx
            uref, mvy, mvx = r0, b0y, b0x
            qbest[:] = qs
            rbest[:] = recon[:, y0 : y0 + 8, x0 : x0 + 8]
    if use_skip:
        d, b = _trial(
            tgt,
            recon,
            ring,
            order,
            y0,
            x0,
            1,
            0,
            pmy,
            pmx,
            -1,
            0,
            0,
            steps,
            offs,
            lam_pd,
            wplane,
            pb,
            pb2,
            blk,
            qs,
            deq,
            work,
            err,
        )
        j = d + lam_pd * _bit_cost(probs, sctx, 1)
        if j < best:
            best, kind = j, 2
            rbest[:] = recon[:, y0 : y0 + 8, x0 : x0 + 8]
    d, b = _trial(
        tgt,
        recon,
        ring,
        order,
        y0,
        x0,
        2,
        0,
        0,
        0,
        -1,
        0,
        0,
        steps,
        offs,
        lam_pd,
        wplane,
        pb,
        pb2,
        blk,
        qs,
        deq,
        work,
        err,
    )
    if d + lam_pd * (b + not_skip + _bit_cost(probs, ictx, 1)) < best:
        kind = 1
        qbest[:] = qs
    if kind == 2:
        return 2, 0, pmy, pmx, -1, 0, 0
    if kind == 1:
        return 1, 0, pmy, pmx, -1, 0, 0
    return 0, uref, mvy, mvx, bref, b1y, b1x


@njit(cache=True)
def _reconstruct(q, p, steps, pb, deq, recon, y0, x0):
    """Dequantise the levels q (zigzag order) of plane p, inverse-transform them and add
    the prediction pb into recon at (y0, x0); identical on both sides."""
    nz = False
    for z in range(16):
        k = ZIGZAG_4[z]
        v = q[z] * steps[p, k]
        deq[k // 4, k % 4] = (v + 8) >> 4 if v >= 0 else -((-v + 8) >> 4)
        nz |= q[z] != 0
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


@njit(cache=True, inline="always")
def _edge_delta(px, alpha, beta):
    """How far the two pixels at an edge (px = p1 p0 | q0 q1) move towards each other;
    0 where the edge looks like picture rather than blocking. tc = beta."""
    p1, p0, q0, q1 = px[0], px[1], px[2], px[3]
    if abs(p0 - q0) < alpha and abs(p1 - p0) < beta and abs(q1 - q0) < beta:
        d = ((q0 - p0) * 4 + (p1 - q1) + 4) >> 3
        return -beta if d < -beta else beta if d > beta else d
    return 0


@njit(cache=True, inline="always")
def _edge_on(act, mvs, urefs, by0, bx0, by1, bx1):
    """Codings 5 to 7: whether the deblocking filter touches the edge between two 4x4
    blocks: only where a side was coded (intra or levels) or the motion changes (the
    vector; coding 6: the reference; coding 7: the second hypothesis), since content
    copied unchanged was filtered when it was coded. mvs holds per unit (vector,
    second vector), urefs (reference, second reference or -1)."""
    if act[by0, bx0] or act[by1, bx1]:
        return True
    u0y, u0x, u1y, u1x = by0 >> 1, bx0 >> 1, by1 >> 1, bx1 >> 1
    same = True
    for k in range(mvs.shape[2]):
        same &= mvs[u0y, u0x, k] == mvs[u1y, u1x, k]
    for k in range(urefs.shape[2]):
        same &= urefs[u0y, u0x, k] == urefs[u1y, u1x, k]
    return not same


@njit(cache=True)
def _deblock(recon, steps, act, mvs, urefs, selective):
    """In-loop smoothing across 4x4 block edges (H.264's normal filter, simplified):
    an edge step smaller than alpha between sides flatter than beta is quantisation
    blocking, not a picture edge; its two edge pixels move towards each other by
    at most tc. Vertical edges first, then horizontal, every plane; integers only.
    Coding 4 (not selective) filters every edge, codings 5 and 6 those _edge_on picks.

    Thresholds follow the plane's step (steps[p, 0] is 4x it in 1/16 units):
    alpha = step, beta = tc = step / 4. Stronger settings (2x) measured worse."""
    _, hp, wp = recon.shape
    nby, nbx = hp // 4, wp // 4
    # which block edges to filter (left and upper edge of each block), decided once
    # for every plane and pixel row along them
    left = np.ones((nby, nbx), np.bool_)
    upper = np.ones((nby, nbx), np.bool_)
    if selective:
        for by in range(nby):
            for bx in range(nbx):
                left[by, bx] = bx > 0 and _edge_on(act, mvs, urefs, by, bx - 1, by, bx)
                upper[by, bx] = by > 0 and _edge_on(act, mvs, urefs, by - 1, bx, by, bx)
    for p in range(3):
        a = (steps[p, 0] + 2) >> 2
        b = (steps[p, 0] + 8) >> 4
        if b <= 0:
            continue
        for y in range(hp):
            for x in range(4, wp, 4):
                if not left[y >> 2, x >> 2]:
                    continue
                d = _edge_delta(recon[p, y, x - 2 : x + 2], a, b)
                recon[p, y, x - 1] += d
                recon[p, y, x] -= d
        for y in range(4, hp, 4):
            for x in range(wp):
                if not upper[y >> 2, x >> 2]:
                    continue
                d = _edge_delta(recon[p, y - 2 : y + 2, x], a, b)
                recon[p, y - 1, x] += d
                recon[p, y, x] -= d


@njit(cache=True)
def _code_lossy(
    enc,
    version,
    tgt,
    ring,
    order,
    intra,
    steps,
    offs,
    lam_sad,
    lam_pd,
    wplane,
    probs,
    counts,
    buf,
    recon,
    lv,
    mvf,
    act,
    urefs,
    mv1s,
):
    """Code (3, Hp, Wp) YCoCg planes. Returns (bytes, flag).

    version 4 and 5 (mc): 8x8 units, each with a half-pel motion vector into the prediction
    on predicted frames, holding four 4x4 blocks in z-order. Version 3 (coding 3,
    kept for old files): 4x4 blocks in raster order, prediction used as it is.
    mvf holds the unit vectors: the previous frame's on entry (encoder search
    candidates), this frame's on return; urefs (Nuy, Nux, 2) and mv1s (Nuy, Nux, 2)
    receive each unit's reference, second reference (-1: none) and second vector.

    With a non-empty `lv` (the zstd baseline) no range coding happens: levels, intra
    modes and vector differences are written to / read from lv, laid out plane by
    plane and position by position ((p*16 + z)*blocks + b, then the modes, then the
    vectors) so zstd sees long runs of zeros."""
    _, hp, wp = recon.shape
    prd = ring[order[0]]
    nref = order.shape[0]
    mc = version >= 4
    unit = 8 if mc else 4
    ns = unit // 4
    nuy, nux = hp // unit, wp // unit
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
    mvs = np.zeros((nuy, nux, 2), np.int64)
    mvnz = np.zeros((nuy, nux, 2), np.int64)
    uintra_map = np.zeros((nuy, nux), np.int64)
    cands = np.zeros((4, 2), np.int64)
    pb = np.zeros((4, 4), np.int64)
    blk = np.zeros((4, 4), np.int64)
    q = np.zeros(16, np.int64)
    deq = np.zeros((4, 4), np.int64)
    use_mv = mc and not intra
    # coding 6: a unit whose vector is the predicted one and whose blocks carry no
    # levels is coded with one flag (the range coder only; zstd sees the zeros)
    use_skip = use_mv and version >= 6 and not raw
    skip_map = np.zeros((nuy, nux), np.int64)
    # coding 7: a unit may average a second motion-compensated hypothesis in
    use_bi = use_mv and version >= 7
    bi_map = np.zeros((nuy, nux), np.int64)
    mv1nz = np.zeros((nuy, nux, 2), np.int64)
    pb2 = np.zeros((4, 4), np.int64)
    pre = np.zeros((nuy, nux, 10), np.float64)
    qbest = np.zeros((4, 3, 16), np.int64)
    rbest = np.zeros((3, 8, 8), np.int64)
    work = np.zeros((2, 4, 4), np.int64)
    qerr = np.zeros((4, 4))
    if enc and use_mv:
        _motion_prepass(tgt, ring, order, mvf, use_bi, lam_sad, pre)
    for uy in range(nuy):
        for ux in range(nux):
            mvy, mvx = 0, 0
            uintra = False
            skip = False
            uref = 0
            bref = -1  # second hypothesis: reference (-1: none) and vector
            b1y, b1x = 0, 0
            if use_mv:
                pmy, pmx = _mv_pred(mvs, uy, ux, nux)
                sctx = SKIP_BASE + (skip_map[uy, ux - 1] if ux > 0 else 0)
                sctx += skip_map[uy - 1, ux] if uy > 0 else 0
                ictx = INTRA_BASE + (uintra_map[uy, ux - 1] if ux > 0 else 0)
                ictx += uintra_map[uy - 1, ux] if uy > 0 else 0
                bctx = BI_BASE + (bi_map[uy, ux - 1] if ux > 0 else 0)
                bctx += bi_map[uy - 1, ux] if uy > 0 else 0
                if enc:
                    # what only this frame's coded neighbours can propose
                    cands[0, 0], cands[0, 1] = pmy, pmx
                    cands[1] = mvs[uy, ux - 1] if ux > 0 else cands[0]
                    cands[2] = mvs[uy - 1, ux] if uy > 0 else cands[0]
                    cands[3] = mvs[uy - 1, ux + 1] if uy > 0 and ux + 1 < nux else cands[0]
                    choice = _choose_unit(
                        tgt,
                        recon,
                        ring,
                        order,
                        uy * 8,
                        ux * 8,
                        pmy,
                        pmx,
                        cands,
                        pre[uy, ux],
                        use_skip,
                        use_bi,
                        sctx,
                        ictx,
                        bctx,
                        probs,
                        steps,
                        offs,
                        lam_sad,
                        lam_pd,
                        wplane,
                        qbest,
                        rbest,
                    )
                    uintra = choice[0] == 1
                    skip = choice[0] == 2
                    uref, mvy, mvx, bref, b1y, b1x = (
                        choice[1],
                        choice[2],
                        choice[3],
                        choice[4],
                        choice[5],
                        choice[6],
                    )
                if use_skip:
                    skip = (
                        rc.code_adaptive(st, buf, probs, counts, sctx, 1 if skip else 0, enc, LIMIT)
                        != 0
                    )
                    skip_map[uy, ux] = 1 if skip else 0
                if skip:
                    mvy, mvx = pmy, pmx
                    uintra = False
                    bref = -1
                    mvs[uy, ux, 0], mvs[uy, ux, 1] = mvy, mvx
                elif raw:
                    k = 49 * nblk + 2 * nuy * nux + uy * nux + ux
                    if enc:
                        lv[k] = 1 if uintra else 0
                    else:
                        uintra = lv[k] != 0
                else:
                    uintra = (
                        rc.code_adaptive(
                            st, buf, probs, counts, ictx, 1 if uintra else 0, enc, LIMIT
                        )
                        != 0
                    )
                uintra_map[uy, ux] = 1 if uintra else 0
                if uintra:
                    mvy, mvx = pmy, pmx
                    uref = 0
                    bref = -1
                elif not skip:
                    if nref > 1:
                        # reference index, truncated unary
                        if raw:
                            k = 49 * nblk + 3 * nuy * nux + uy * nux + ux
                            if enc:
                                lv[k] = uref
                            else:
                                uref = lv[k]
                                if uref < 0 or uref >= nref:
                                    return 0, 1
                        else:
                            rctx = (1 if ux > 0 and urefs[uy, ux - 1, 0] else 0) + (
                                1 if uy > 0 and urefs[uy - 1, ux, 0] else 0
                            )
                            uref = _code_ref(
                                st, buf, probs, counts, REF_BASE, rctx, uref, nref, enc
                            )
                    for c in range(2):
                        d = (mvy - pmy) if c == 0 else (mvx - pmx)
                        if raw:
                            k = 49 * nblk + 2 * (uy * nux + ux) + c
                            if enc:
                                lv[k] = d
                            else:
                                d = lv[k]
                        else:
                            ctx_nz = (mvnz[uy, ux - 1, c] if ux > 0 else 0) + (
                                mvnz[uy - 1, ux, c] if uy > 0 else 0
                            )
                            d = _code_mvd(
                                st, buf, probs, counts, MV_BASE + c * MV_MODELS, ctx_nz, d, enc
                            )
                        mvnz[uy, ux, c] = 1 if d != 0 else 0
                        if c == 0:
                            mvy = pmy + d
                        else:
                            mvx = pmx + d
                    if abs(mvy) > 2 * MAX_MV or abs(mvx) > 2 * MAX_MV:
                        return (0 if raw else st[4]), 1
                    mvs[uy, ux, 0], mvs[uy, ux, 1] = mvy, mvx
                    if use_bi:
                        # second hypothesis: flag, then its reference and the difference of
                        # its vector from the first one scaled to that reference
                        if raw:
                            k = 49 * nblk + 4 * nuy * nux + uy * nux + ux
                            if enc:
                                lv[k] = bref + 1
                            else:
                                bref = lv[k] - 1
                                if bref < -1 or bref >= nref:
                                    return 0, 1
                        else:
                            isbi = rc.code_adaptive(
                                st, buf, probs, counts, bctx, 1 if bref >= 0 else 0, enc, LIMIT
                            )
                            if isbi:
                                rctx = (1 if ux > 0 and urefs[uy, ux - 1, 1] > 0 else 0) + (
                                    1 if uy > 0 and urefs[uy - 1, ux, 1] > 0 else 0
                                )
                                bref = _code_ref(
                                    st, buf, probs, counts, REF1_BASE, rctx, bref, nref, enc
                                )
                            else:
                                bref = -1
                        if bref >= 0:
                            bi_map[uy, ux] = 1
                            sy = _scale_mv(mvy, bref + 1, uref + 1)
                            sx = _scale_mv(mvx, bref + 1, uref + 1)
                            for c in range(2):
                                d = (b1y - sy) if c == 0 else (b1x - sx)
                                if raw:
                                    k = 49 * nblk + 5 * nuy * nux + 2 * (uy * nux + ux) + c
                                    if enc:
                                        lv[k] = d
                                    else:
                                        d = lv[k]
                                else:
                                    ctx_nz = (mv1nz[uy, ux - 1, c] if ux > 0 else 0) + (
                                        mv1nz[uy - 1, ux, c] if uy > 0 else 0
                                    )
                                    d = _code_mvd(
                                        st,
                                        buf,
                                        probs,
                                        counts,
                                        MV1_BASE + c * MV_MODELS,
                                        ctx_nz,
                                        d,
                                        enc,
                                    )
                                mv1nz[uy, ux, c] = 1 if d != 0 else 0
                                if c == 0:
                                    b1y = sy + d
                                else:
                                    b1x = sx + d
                            if abs(b1y) > 2 * MAX_MV or abs(b1x) > 2 * MAX_MV:
                                return (0 if raw else st[4]), 1
                urefs[uy, ux, 0] = uref
                urefs[uy, ux, 1] = bref
                mv1s[uy, ux, 0] = b1y if bref >= 0 else 0
                mv1s[uy, ux, 1] = b1x if bref >= 0 else 0
            # the encoder's trial already reconstructed a motion-compensated or skipped
            # unit exactly as below: it restores that instead of predicting again
            reuse = enc and use_mv and not uintra
            for sb in range(ns * ns):
                by = uy * ns + sb // ns
                bx = ux * ns + sb % ns
                y0 = by * 4
                x0 = bx * 4
                mode = 0
                bintra = intra or uintra
                if bintra:
                    if enc:
                        mode = _best_intra_mode(recon, tgt, y0, x0, pb)[0]
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
                    if bintra:
                        _predict_block(recon, p, y0, x0, mode, pb)
                    elif reuse:
                        pass
                    elif use_mv:
                        _mc_pred(ring, order, p, y0, x0, uref, mvy, mvx, bref, b1y, b1x, pb, pb2)
                    else:
                        for i in range(4):
                            for j in range(4):
                                pb[i, j] = prd[p, y0 + i, x0 + j]
                    for k in range(16):
                        q[k] = 0
                    if enc and use_mv and not skip:
                        q[:] = qbest[sb, p]  # the levels _choose_unit's trial coded
                    elif enc and not skip:
                        for i in range(4):
                            for j in range(4):
                                blk[i, j] = tgt[p, y0 + i, x0 + j] - pb[i, j]
                        _quantize(blk, p, steps, offs, lam_pd, wplane, q, work, qerr)
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
                    if skip:
                        nz = 0
                    elif not raw:
                        nz = 0
                        if enc:
                            for z in range(16):
                                if q[z] != 0:
                                    nz = 1
                        nz = rc.code_adaptive(
                            st, buf, probs, counts, CBF_BASE + p * 4 + left + 2 * up, nz, enc, LIMIT
                        )
                    cbf[p, by, bx] = nz
                    if nz or bintra:
                        act[by, bx] = 1
                    if nz and not raw:
                        last = 0
                        if enc:
                            for z in range(16):
                                if q[z] != 0:
                                    last = z
                        last = rc.code_tree(
                            st, buf, probs, counts, LAST_BASE + p * 16, last, 4, enc, LIMIT
                        )
                        pm = 0
                        for z in range(last + 1):
                            sig = 1
                            if z < last:
                                sctx = SIG_BASE + p * 16 + z
                                if mc and pm:
                                    sctx = SIG2_BASE + (p * 16 + z) * 2 + pm - 1
                                sig = rc.code_adaptive(
                                    st,
                                    buf,
                                    probs,
                                    counts,
                                    sctx,
                                    1 if q[z] != 0 else 0,
                                    enc,
                                    LIMIT,
                                )
                            if sig:
                                base = LEVEL_BASE + (p * 4 + _POS_CLASS[z]) * rc.BUCKET_MODELS
                                if mc and pm:
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
                                    if v8 > 1 << 20:
                                        return st[4], 1
                                v = v8
                                neg = rc.code_bit(st, buf, rc.PROB_HALF, 1 if q[z] < 0 else 0, enc)
                                q[z] = -v if neg else v
                                pm = 1 if v == 1 else 2
                            else:
                                q[z] = 0
                    if not reuse:
                        _reconstruct(q, p, steps, pb, deq, recon, y0, x0)
            if reuse:
                recon[:, uy * 8 : uy * 8 + 8, ux * 8 : ux * 8 + 8] = rbest
    if mvf.shape[0] == nuy and mvf.shape[1] == nux:
        mvf[:] = mvs
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


def _level_count(hp: int, wp: int, version: int) -> int:
    # per 4x4 block: 3 planes x 16 levels and the intra mode; per 8x8 unit (coding 4
    # on): a vector and an intra flag
    n = (hp // 4) * (wp // 4) * 49
    units = (hp // 8) * (wp // 8)
    if version >= 7:
        return n + units * 7  # and the second hypothesis: reference + 1, vector
    return n + units * 4 if version >= 6 else n + units * 3 if version >= 4 else n


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


def _run(enc, version, tgt, prd, intra, quality, models, buf, lv):
    """One pass of the kernel, encoding or decoding; returns (bytes, flag, recon planes)."""
    steps, offs, lam_sad, lam_pd = step_tables(quality, intra, version >= 4)
    _, hp, wp = prd.shape
    recon = np.zeros(prd.shape, np.int64)
    act = np.zeros((hp // 4, wp // 4), np.int64)  # blocks with coefficients or intra
    unit = 8 if version >= 4 else 4
    shape = (hp // unit, wp // unit, 2)
    if models.vectors.shape != shape or intra:
        models.vectors = np.zeros(shape, np.int64)
    if intra:
        models.history = []
    nmax = reference_count(hp, wp) if version >= 6 else 1
    if models.ring.shape != (nmax + 1, 3, hp, wp):
        models.ring = np.zeros((nmax + 1, 3, hp, wp), np.int16)
        models.history = []
    models.ring[0] = prd
    if version >= 9 and not models.prediction_is_decoded and models.history:
        # coding 9, a learned predictor: the newest decoded frame leads (its motion
        # is what the vectors describe; a learned frame's corrections blur what
        # they get wrong), the predictor's frame is the second reference, older
        # decoded frames follow
        order = np.array([models.history[0], 0, *models.history[1 : nmax - 1]], np.int64)
    else:
        # references: the predictor's frame, then the decoded frames before the last
        # one (which the predictor has already seen)
        order = np.array([0, *models.history[1:nmax]], np.int64)
    urefs = np.full((*shape[:2], 2), -1, np.int64)
    mv1s = np.zeros(shape, np.int64)
    n, err = _code_lossy(
        enc,
        version,
        tgt,
        models.ring,
        order,
        intra,
        steps,
        offs,
        lam_sad,
        lam_pd,
        PLANE_WEIGHT,
        models.probs,
        models.counts,
        buf,
        recon,
        lv,
        models.vectors,
        act,
        urefs,
        mv1s,
    )
    if version >= 4 and not err:
        # codings 5 and 6 leave edges alone where nothing was coded and the vector did not
        # change: re-filtering copied content every frame blurs a static picture
        motion = np.concatenate((models.vectors, mv1s), axis=2)
        _deblock(recon, steps, act, motion, urefs, version >= 5)
    if nmax > 1 and not err:
        # the oldest frame's slot takes the new one once all are in use
        slot = models.history[-1] if len(models.history) == nmax else len(models.history) + 1
        models.ring[slot] = recon
        models.history = [slot, *models.history[: nmax - 1]]
    return n, err, recon


def reference_count(hp: int, wp: int) -> int:
    """Coding 6: how many reference frames units may choose from at a padded size
    (the predictor's frame included); a format rule, like H.264's level limits on
    stored frames, so that the decoder's memory stays bounded at any frame size."""
    return max(1, min(N_REFS, REF_PIXELS // (hp * wp)))


def _padded(height: int, width: int, version: int) -> tuple[int, int]:
    unit = 8 if version >= 4 else 4
    return -(-height // unit) * unit, -(-width // unit) * unit


def encode_lossy(
    rgb: np.ndarray,
    pred: np.ndarray | None,
    visible: np.ndarray,
    quality: int,
    models: LossyModels,
    entropy: str = "arith",
) -> tuple[bytes, np.ndarray]:
    """Code an RGB frame (H, W, 3) against pred (None: intra). Returns (bytes, recon RGB)."""
    version = CODING_VERSION
    h, w = rgb.shape[:2]
    hp, wp = _padded(h, w, version)
    target = rgb
    if pred is not None and not visible.all():
        target = np.where(visible[..., None], rgb, pred)  # invisible pixels cost little
    tgt = _planes(target, hp, wp)
    prd = _planes(pred, hp, wp) if pred is not None else tgt
    lv = np.zeros(_level_count(hp, wp, version), np.int64) if entropy == "zstd" else _NO_LEVELS
    buf = np.zeros(8 * hp * wp + 1024 if not lv.size else 1, np.uint8)
    n, err, recon = _run(True, version, tgt, prd, pred is None, quality, models, buf, lv)
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
    version = CODING_VERSION
    hp, wp = _padded(height, width, version)
    prd = _planes(pred, hp, wp) if pred is not None else np.zeros((3, hp, wp), np.int64)
    lv = _NO_LEVELS
    if entropy == "zstd":
        lv = _unpack_levels(data, _level_count(hp, wp, version))
        if lv is None:
            return np.zeros((height, width, 3), np.uint8), True
        data = b""
    buf = rc.input_buffer(data)
    n, err, recon = _run(False, version, prd, prd, pred is None, quality, models, buf, lv)
    return _to_rgb(recon, height, width), bool(err) or n > len(data) + 8
