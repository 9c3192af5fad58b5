"""Lossy residual coding (`--quality Q`): transform, dead-zone quantisation, RDO.

Per frame, in YCoCg-R (exact integer colour transform), in 8x8 units of four 4x4
blocks (coding 6; coding 5, without skipped units and older references, coding 4,
which deblocked every edge, and coding 3, 4x4 blocks without vectors, are still
decoded):

* prediction: on predicted frames each unit carries a half-pel motion vector into
  the predictor's frame (the predictor proposes, the vector corrects where things
  moved; with `last` this is classic motion compensation) or into one of up to 15
  older decoded frames (GIFs loop, alternate and re-dither: what comes back is
  found there), coded as a reference index and the vector's difference from the
  median of the neighbours' vectors; a unit with the predicted vector into the
  predictor's frame and no levels is coded as skipped, one flag; or the unit is
  intra-coded. Intra
  blocks (every block of a keyframe) use one of DC / vertical / horizontal from the
  block's reconstructed neighbours (chosen per block, coded once for the three
  planes); keyframes use half the predicted frames' step, since every later frame
  is predicted from them;
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

# plane weights in the perceptual distance (Y, Co, Cg) and the step factors they imply
PLANE_WEIGHT = np.array([9.0, 1.25, 2.25])
PLANE_STEP = np.sqrt(PLANE_WEIGHT[0] / PLANE_WEIGHT)
PLANE_STEP_C = (1.0, float(PLANE_STEP[1]), float(PLANE_STEP[2]))  # for compiled code
KEYFRAME_STEP = 0.5  # codings 4 to 6: keyframe step relative to predicted frames' (format)
LAMBDA_SCALE = 0.12 * 0.2  # encoder only, see step_tables
MOTION_LAMBDA = 3.0  # encoder only: vector bits against SAD, x sqrt(lambda)
# encoder only: the intra unit estimate takes its neighbours from the source, which
# flatters it (the real ones carry quantisation error); weighting it 1.5x cost 5%
# fewer bytes per clip at equal distance (1.25x: 4%, 2x: 4.7%, 3x: 4%, 0.8x: +15%)
INTRA_WEIGHT = 1.5
# encoder only: and it pays a fixed cost in units of lambda (per clip at equal distance:
# 24 gave 2.2% fewer bytes than 8; 1% measured at 64, +5% at 0)
INTRA_PENALTY = 24

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
N_MODELS = REF_BASE + 9
CODING_VERSION = CODING_LOSSY  # the lossy coding the encoder writes; coding number = version
MAX_MV = 512  # pixels; a larger vector in a stream is damage
SEARCH_RANGE = 8  # full search +-8 pixels around the best candidate vector (+-16: 1% fewer
# bytes, a third slower encoding)
REF_PENALTY = 6  # encoder only: an older reference must win by this many lambda bits
REF_RANGE = 2  # encoder only: the older references' integer search range
# coding 6: the predictor's frame and up to 15 older decoded frames (4: 5.8% fewer bytes
# per clip, 8: 1.8% fewer again, 16: 2.4% fewer again, 23% on a looping spinner)...
N_REFS = 16
REF_PIXELS = 1 << 24  # ...as long as references x padded pixels stay within this
SEARCH_MAX = 64  # the encoder never proposes vectors longer than this
LIMIT = 5
_POS_CLASS = np.array([0, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3], np.int64)


def quality_step(quality: int, motion: bool = True) -> float:
    """Quantiser step (orthonormal-DCT units of 8-bit Y) for quality 1..100.

    Coding 4 spreads Q over a wider range than coding 3 did, so that Q 1 reaches the
    distances of x264's CRF 34 and beyond."""
    return 0.5 * 2.0 ** ((100 - quality) / (13.5 if motion else 15.0))


def step_tables(
    quality: int, intra: bool, motion: bool = True
) -> tuple[np.ndarray, np.ndarray, float]:
    """Per plane and coefficient: step and dead-zone offset in 1/16 units; lambda."""
    step = quality_step(quality, motion)
    if intra and motion:
        # keyframes are every later frame's reference: finer steps pay back many times
        step *= KEYFRAME_STEP
    gains = block_scales()
    steps = np.empty((3, 16), np.int64)
    for p in range(3):
        steps[p] = np.maximum(1, np.round(16 * step * PLANE_STEP[p] * gains))
    offs = (steps * (1 / 3 if intra else 1 / 6)).astype(np.int64)
    # A fifth of the lambda an MSE coder would use (H.264's ~0.135 step^2 per bit):
    # the perceptual distance is a mean of per-pixel distances, not of squares, so
    # small errors spread over a skipped block cost more than MSE says. Measured on
    # the held-out clips: 0.2x gave 36% less BD-rate against x264 than 1x; 0.1-0.3
    # were equal, 3x and 9x far worse.
    lam = LAMBDA_SCALE * (step * 16) ** 2 / 256.0 * PLANE_WEIGHT[0] / 8.0
    return steps, offs, lam


class LossyModels:
    def __init__(self) -> None:
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


@njit(cache=True)
def _quantize(blk, p, steps, offs, lam, wplane, q):
    """Encoder: transform a 4x4 residual of plane p and quantise it into q (zigzag
    order) with the rate-distortion decisions: +-1 levels whose rate outweighs their
    distortion gain are dropped, and the whole block when coding it does not pay."""
    fdct4x4(blk)
    dist_zero = 0.0
    for z in range(16):
        k = ZIGZAG_4[z]
        c = blk[k // 4, k % 4]
        v = (abs(c) * 16 + offs[p, k]) // steps[p, k]
        q[z] = -v if c < 0 else v
        dist_zero += float(c) * float(c)
    for z in range(15, -1, -1):
        if q[z] == 1 or q[z] == -1:
            k = ZIGZAG_4[z]
            c = float(blk[k // 4, k % 4])
            rec = float(steps[p, k]) / 16.0
            gain = c * c - (abs(c) - rec) ** 2
            if wplane[p] * gain < lam * 4.0:
                q[z] = 0
    dist_coded = 0.0
    for z in range(16):
        k = ZIGZAG_4[z]
        c = float(blk[k // 4, k % 4])
        rec = q[z] * float(steps[p, k]) / 16.0
        dist_coded += (c - rec) ** 2
    if wplane[p] * dist_zero <= wplane[p] * dist_coded + lam * (_rate(q) - 1.0):
        for z in range(16):
            q[z] = 0


@njit(cache=True)
def _unit_is_empty(tgt, prd, y0, x0, mvy, mvx, steps, offs, lam, wplane, pb, blk, q):
    """Encoder: whether every block of the 8x8 unit, motion-compensated with the
    vector, quantises to nothing (the unit can then be coded as skipped)."""
    for sb in range(4):
        by0 = y0 + 4 * (sb // 2)
        bx0 = x0 + 4 * (sb % 2)
        for p in range(3):
            _mc_block(prd, p, by0, bx0, mvy, mvx, 4, pb)
            for i in range(4):
                for j in range(4):
                    blk[i, j] = tgt[p, by0 + i, bx0 + j] - pb[i, j]
            _quantize(blk, p, steps, offs, lam, wplane, q)
            for z in range(16):
                if q[z] != 0:
                    return False
    return True


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
def _intra_cost(tgt, y0, x0, pb):
    """Encoder's estimate of an 8x8 unit's intra cost: best mode SAD per 4x4 block, the
    neighbours taken from the source (its reconstruction does not exist yet)."""
    total = 0
    for sb in range(4):
        total += _best_intra_mode(tgt, tgt, y0 + 4 * (sb // 2), x0 + 4 * (sb % 2), pb)[1]
    return total


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
def _mc_sad(tgt, ref, y0, x0, mvy, mvx, blk):
    """Y SAD of the 8x8 unit at a half-pel vector."""
    _mc_block(ref, 0, y0, x0, mvy, mvx, 8, blk)
    s = 0
    for i in range(8):
        for j in range(8):
            s += abs(tgt[0, y0 + i, x0 + j] - blk[i, j])
    return s


@njit(cache=True)
def _colour_cost(tgt, ref, y0, x0, mvy, mvx, blk):
    """SAD of the 8x8 unit at a half-pel vector over all planes, each weighted as the
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
    luma does not see). Returns the vector and its luma cost, which the intra
    decision compares with."""
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
    hy, hx = 2 * by, 2 * bx
    cy0, cx0 = hy, hx
    # half-pel refinement on all planes
    best = _colour_cost(tgt, ref, y0, x0, hy, hx, blk) + lam_sad * (
        _mvd_bits(hy - pmy) + _mvd_bits(hx - pmx)
    )
    for dy in range(-1, 2):
        for dx in range(-1, 2):
            if dy == 0 and dx == 0:
                continue
            my, mx = cy0 + dy, cx0 + dx
            c = lam_sad * (_mvd_bits(my - pmy) + _mvd_bits(mx - pmx))
            c += _colour_cost(tgt, ref, y0, x0, my, mx, blk)
            if c < best:
                best, hy, hx = c, my, mx
    return (
        hy,
        hx,
        lam_sad * (_mvd_bits(hy - pmy) + _mvd_bits(hx - pmx))
        + _mc_sad(tgt, ref, y0, x0, hy, hx, blk),
    )


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
    """Codings 5 and 6: whether the deblocking filter touches the edge between two 4x4
    blocks: only where a side was coded (intra or levels) or the vector (coding 6:
    or the reference) changes, since content copied unchanged was filtered when it
    was coded."""
    if act[by0, bx0] or act[by1, bx1]:
        return True
    u0y, u0x, u1y, u1x = by0 >> 1, bx0 >> 1, by1 >> 1, bx1 >> 1
    return (
        mvs[u0y, u0x, 0] != mvs[u1y, u1x, 0]
        or mvs[u0y, u0x, 1] != mvs[u1y, u1x, 1]
        or urefs[u0y, u0x] != urefs[u1y, u1x]
    )


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
    lam,
    lam_sad,
    wplane,
    probs,
    counts,
    buf,
    recon,
    lv,
    mvf,
    act,
    urefs,
):
    """Code (3, Hp, Wp) YCoCg planes. Returns (bytes, flag).

    version 4 and 5 (mc): 8x8 units, each with a half-pel motion vector into the prediction
    on predicted frames, holding four 4x4 blocks in z-order. Version 3 (coding 3,
    kept for old files): 4x4 blocks in raster order, prediction used as it is.
    mvf holds the unit vectors: the previous frame's on entry (encoder search
    candidates), this frame's on return.

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
    cands = np.zeros((6, 2), np.int64)
    pb = np.zeros((4, 4), np.int64)
    blk = np.zeros((4, 4), np.int64)
    blk8 = np.zeros((8, 8), np.int64)
    q = np.zeros(16, np.int64)
    deq = np.zeros((4, 4), np.int64)
    use_mv = mc and not intra
    # coding 6: a unit whose vector is the predicted one and whose blocks carry no
    # levels is coded with one flag (the range coder only; zstd sees the zeros)
    use_skip = use_mv and version >= 6 and not raw
    skip_map = np.zeros((nuy, nux), np.int64)
    for uy in range(nuy):
        for ux in range(nux):
            mvy, mvx = 0, 0
            uintra = False
            skip = False
            uref = 0
            if use_mv:
                pmy, pmx = _mv_pred(mvs, uy, ux, nux)
                if enc:
                    cands[0, 0], cands[0, 1] = 0, 0
                    cands[1, 0], cands[1, 1] = pmy, pmx
                    cands[2] = mvs[uy, ux - 1] if ux > 0 else cands[0]
                    cands[3] = mvs[uy - 1, ux] if uy > 0 else cands[0]
                    cands[4] = mvf[uy, ux]
                    cands[5] = mvs[uy - 1, ux + 1] if uy > 0 and ux + 1 < nux else cands[0]
                    mvy, mvx, mc_cost = _search(
                        tgt, prd, uy * 8, ux * 8, pmy, pmx, cands, lam_sad, blk8, SEARCH_RANGE
                    )
                    if nref > 1:
                        mc_cost += lam_sad
                        # older frames: a short search around the same candidates finds
                        # what came back (loops, dither patterns that alternate); the
                        # choice weighs all three planes, since an older frame can match
                        # the luma and not the colour
                        best3 = _colour_cost(tgt, prd, uy * 8, ux * 8, mvy, mvx, blk8) + (
                            mc_cost - _mc_sad(tgt, prd, uy * 8, ux * 8, mvy, mvx, blk8)
                        )
                        for r in range(1, nref):
                            ry, rx, rcost = _search(
                                tgt,
                                ring[order[r]],
                                uy * 8,
                                ux * 8,
                                pmy,
                                pmx,
                                cands,
                                lam_sad,
                                blk8,
                                REF_RANGE,
                            )
                            rcost += lam_sad * (min(r + 1, nref - 1) + REF_PENALTY)
                            c3 = _colour_cost(tgt, ring[order[r]], uy * 8, ux * 8, ry, rx, blk8) + (
                                rcost - _mc_sad(tgt, ring[order[r]], uy * 8, ux * 8, ry, rx, blk8)
                            )
                            if c3 < best3:
                                mvy, mvx, mc_cost, uref, best3 = ry, rx, rcost, r, c3
                    ic = INTRA_WEIGHT * _intra_cost(tgt, uy * 8, ux * 8, pb)
                    uintra = ic + lam_sad * INTRA_PENALTY < mc_cost
                    skip = (
                        use_skip
                        and not uintra
                        and uref == 0
                        and mvy == pmy
                        and mvx == pmx
                        and _unit_is_empty(
                            tgt, prd, uy * 8, ux * 8, mvy, mvx, steps, offs, lam, wplane, pb, blk, q
                        )
                    )
                if use_skip:
                    sctx = SKIP_BASE + (skip_map[uy, ux - 1] if ux > 0 else 0)
                    sctx += skip_map[uy - 1, ux] if uy > 0 else 0
                    skip = (
                        rc.code_adaptive(st, buf, probs, counts, sctx, 1 if skip else 0, enc, LIMIT)
                        != 0
                    )
                    skip_map[uy, ux] = 1 if skip else 0
                ictx = INTRA_BASE + (uintra_map[uy, ux - 1] if ux > 0 else 0)
                ictx += uintra_map[uy - 1, ux] if uy > 0 else 0
                if skip:
                    mvy, mvx = pmy, pmx
                    uintra = False
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
                            rctx = (1 if ux > 0 and urefs[uy, ux - 1] else 0) + (
                                1 if uy > 0 and urefs[uy - 1, ux] else 0
                            )
                            r = 0
                            while r < nref - 1:
                                more = rc.code_adaptive(
                                    st,
                                    buf,
                                    probs,
                                    counts,
                                    REF_BASE + 3 * min(r, 2) + rctx,
                                    1 if uref > r else 0,
                                    enc,
                                    LIMIT,
                                )
                                if not more:
                                    break
                                r += 1
                            uref = r
                    for c in range(2):
                        d = (mvy - pmy) if c == 0 else (mvx - pmx)
                        if raw:
                            k = 49 * nblk + 2 * (uy * nux + ux) + c
                            if enc:
                                lv[k] = d
                            else:
                                d = lv[k]
                        else:
                            ctx = MV_BASE + c * MV_MODELS
                            ctx_nz = (mvnz[uy, ux - 1, c] if ux > 0 else 0) + (
                                mvnz[uy - 1, ux, c] if uy > 0 else 0
                            )
                            nz = rc.code_adaptive(
                                st, buf, probs, counts, ctx + ctx_nz, 1 if d != 0 else 0, enc, LIMIT
                            )
                            if nz:
                                neg = rc.code_bit(st, buf, rc.PROB_HALF, 1 if d < 0 else 0, enc)
                                m = 1 + rc.code_magnitude(
                                    st, buf, probs, counts, ctx + 3, abs(d) - 1, enc, LIMIT
                                )
                                d = -m if neg else m
                            else:
                                d = 0
                        mvnz[uy, ux, c] = 1 if d != 0 else 0
                        if c == 0:
                            mvy = pmy + d
                        else:
                            mvx = pmx + d
                    if abs(mvy) > 2 * MAX_MV or abs(mvx) > 2 * MAX_MV:
                        return (0 if raw else st[4]), 1
                    mvs[uy, ux, 0], mvs[uy, ux, 1] = mvy, mvx
                urefs[uy, ux] = uref
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
                    elif use_mv:
                        _mc_block(ring[order[uref]], p, y0, x0, mvy, mvx, 4, pb)
                    else:
                        for i in range(4):
                            for j in range(4):
                                pb[i, j] = prd[p, y0 + i, x0 + j]
                    for k in range(16):
                        q[k] = 0
                    if enc and not skip:
                        for i in range(4):
                            for j in range(4):
                                blk[i, j] = tgt[p, y0 + i, x0 + j] - pb[i, j]
                        _quantize(blk, p, steps, offs, lam, wplane, q)
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
    steps, offs, lam = step_tables(quality, intra, version >= 4)
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
    # references: the predictor's frame, then the decoded frames before the last one
    # (which the predictor has already seen)
    order = np.array([0, *models.history[1:nmax]], np.int64)
    urefs = np.zeros(shape[:2], np.int64)
    n, err = _code_lossy(
        enc,
        version,
        tgt,
        models.ring,
        order,
        intra,
        steps,
        offs,
        lam,
        MOTION_LAMBDA * math.sqrt(lam / PLANE_WEIGHT[0]),
        PLANE_WEIGHT,
        models.probs,
        models.counts,
        buf,
        recon,
        lv,
        models.vectors,
        act,
        urefs,
    )
    if version >= 4 and not err:
        # codings 5 and 6 leave edges alone where nothing was coded and the vector did not
        # change: re-filtering copied content every frame blurs a static picture
        _deblock(recon, steps, act, models.vectors, urefs, version >= 5)
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
    version: int = CODING_VERSION,
) -> tuple[bytes, np.ndarray]:
    """Code an RGB frame (H, W, 3) against pred (None: intra). Returns (bytes, recon RGB).

    version: the lossy coding written (3, 4 or 5, see FORMAT.md; tests write the old
    ones to check they still decode)."""
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
    version: int = CODING_VERSION,
) -> tuple[np.ndarray, bool]:
    """Returns (recon RGB, damaged flag)."""
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
