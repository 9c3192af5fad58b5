"""How much refining the motion-compensated prediction could save: a closed-loop bound.

The learned-stage issue lists three places where small networks pay inside classic
codecs: an in-loop filter (bounded in bench/filter_headroom.py), a probability model,
and refining the motion-compensated prediction before the residual is coded. This
measures the last one's room here, through the real lossy encoder, before anyone
trains for it.

For every predicted frame the encoder first codes the frame as it does today; the
motion it chose gives the frame's motion-compensated prediction, and the
least-squares 3x3 filter plus offset per plane that maps that prediction closest to
the *source* is fitted (an oracle: no decoder can fit it; a network would have to
infer it). The frame is then coded again with every reference it may use filtered
by it -- for a linear filter that is the same as filtering the prediction of every
block, integer or half-pel, one or two hypotheses, and the motion search sees the
refined references too -- and the encoder keeps whichever pass has the lower
distance + lambda x bits (its own measure and lambda), so the frame and every later
reference go on from the better one: the loop is closed. The coefficients are
counted free in `free` and at 8 bits each (3 planes x 10, 30 bytes a frame, plus a
flag) in `paid`.

Rows, per clip and quality: bytes and perceptual distance (the catz metric, against
the source, over all frames) of the plain encoder and of the refined one; per clip
the BD-rate of `free` and `paid` against plain at equal perceptual distance.

    python -m fpcodec.bench.mc_refine_headroom CORPUS -o mc-refine.json --clips LIST
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
from fpcodec.codec.lossy.motion_comp import mc_pred
from numba import njit

from .study import loaded_clips, study_clips, study_parser, write_study

QUALITIES = (25, 40, 55, 70)
FRACTION_BITS = 6  # coefficients in 1/64: what a real syntax would send


@njit(cache=True)
def mc_frame(ring, order, urefs, mvs, mv1s, out):
    """The whole frame's motion-compensated prediction from the chosen motion (intra
    units get the prediction of the vector they carry: they are few, and only the fit
    sees them)."""
    _, hp, wp = out.shape
    pb = np.zeros((4, 4), np.int64)
    pb2 = np.zeros((4, 4), np.int64)
    for uy in range(hp // 8):
        for ux in range(wp // 8):
            r0, r1 = urefs[uy, ux, 0], urefs[uy, ux, 1]
            if r0 < 0:
                r0 = 0
            for sb in range(4):
                y0 = uy * 8 + 4 * (sb // 2)
                x0 = ux * 8 + 4 * (sb % 2)
                for p in range(3):
                    mc_pred(
                        ring, order, p, y0, x0, r0, mvs[uy, ux, 0], mvs[uy, ux, 1],
                        r1, mv1s[uy, ux, 0], mv1s[uy, ux, 1], pb, pb2,
                    )  # fmt: skip
                    out[p, y0 : y0 + 4, x0 : x0 + 4] = pb


def rgb_to_planes(rgb: np.ndarray) -> np.ndarray:
    """An RGB frame as the coder's unpadded YCoCg-R planes (tests, fits by hand)."""
    from fpcodec.codec.lossy.planes import rgb_to_planes as to_planes

    return to_planes(np.ascontiguousarray(rgb), rgb.shape[0], rgb.shape[1])


def _neighbourhood(plane: np.ndarray) -> np.ndarray:
    h, w = plane.shape
    pad = np.pad(plane.astype(np.float64), 1, mode="edge")
    cols = [pad[i : i + h, j : j + w].ravel() for i in range(3) for j in range(3)]
    return np.stack([*cols, np.ones(h * w)], 1)


def classify(luma: np.ndarray, classes: int) -> np.ndarray:
    """Each pixel's class (0..classes-1) by the local activity and direction of the
    luma plane around it, as VVC's adaptive loop filter classifies (a filter per
    class is the spatially adaptive oracle); classes 1: all zero, 12: 4 activity
    levels x (flat, horizontal, vertical)."""
    if classes == 1:
        return np.zeros(luma.shape, np.int64)
    y = luma.astype(np.float64)
    gx = np.abs(np.diff(y, axis=1, append=y[:, -1:]))
    gy = np.abs(np.diff(y, axis=0, append=y[-1:]))

    def box(a: np.ndarray) -> np.ndarray:
        pad = np.pad(a, 1, mode="edge")
        h, w = a.shape
        return sum(pad[i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9

    sx, sy = box(gx), box(gy)
    act = np.digitize(sx + sy, (1.0, 4.0, 16.0))
    direction = np.where(sx > 2 * sy, 1, np.where(sy > 2 * sx, 2, 0))
    return act * 3 + direction


MIN_CLASS_PIXELS = 64  # a class seen less often keeps the identity filter


def identity(classes: int = 1) -> np.ndarray:
    coef = np.zeros((3, classes, 10), np.int64)
    coef[:, :, 4] = 1 << FRACTION_BITS
    return coef


def fit(pred: np.ndarray, target: np.ndarray, classes: int = 1) -> np.ndarray:
    """(3, classes, 10) integer coefficients in 1/2^FRACTION_BITS: per plane and
    class (classify on the prediction's luma) the least-squares 3x3 filter plus
    offset from pred to target, rounded as a syntax would send them."""
    coef = identity(classes)
    cls = classify(pred[0], classes).ravel()
    for p in range(3):
        a = _neighbourhood(pred[p])
        t = target[p].ravel().astype(np.float64)
        for k in range(classes):
            sel = cls == k
            if sel.sum() < MIN_CLASS_PIXELS:
                continue
            c, *_ = np.linalg.lstsq(a[sel], t[sel], rcond=None)
            coef[p, k] = np.round(c * (1 << FRACTION_BITS))
    return coef


def apply(coef: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """The filter on (3, H, W) int16 planes, in integers, each pixel by its class (on
    these planes' luma). Clipped only to what the ring holds (+-1024), not to each
    plane's range: reconstructions can leave it, and the identity filter must give
    the plain encoder's bytes exactly (a test)."""
    if coef.ndim == 2:
        coef = coef[:, None]
    out = np.empty_like(planes)
    _, h, w = planes.shape
    half = 1 << (FRACTION_BITS - 1)
    cls = classify(planes[0], coef.shape[1]).ravel()
    for p in range(3):
        a = _neighbourhood(planes[p]).astype(np.int64)  # the offset's column is 1
        v = np.einsum("nk,nk->n", a, coef[p][cls])
        out[p] = np.clip(((v + half) >> FRACTION_BITS).reshape(h, w), -1024, 1023)
    return out


def coefficient_bytes(coef: np.ndarray) -> int:
    """What sending the filters would cost: 8 bits a coefficient, and a flag."""
    return coef.size + 1


class _Hook:
    """Wraps the lossy coder's frame kernel. With a filter set it codes the frame
    against refined references: mode "all" filters every reference the frame may use
    (the refinement on every unit), mode "unit" puts the filtered newest reference
    first and the plain one second (each unit chooses, paying its reference index:
    the refinement switched per unit). It records the frame's motion-compensated
    prediction from the motion a plain pass chose."""

    def __init__(self) -> None:
        from fpcodec.codec.lossy import coder

        self.coder = coder
        self.kernel = coder.code_frame
        self.coef: np.ndarray | None = None
        self.mode = "all"
        self.pred: np.ndarray | None = None
        self.target: np.ndarray | None = None
        self.record_levels = False  # keep the zstd baseline's symbols (context_headroom)
        self.levels: np.ndarray | None = None

    def __enter__(self) -> _Hook:
        self.coder.code_frame = self._code_frame
        return self

    def __exit__(self, *exc) -> None:
        self.coder.code_frame = self.kernel

    def _refine(self, planes: np.ndarray) -> np.ndarray:
        # coefficients of a fitted filter, or a learned refinement (a callable)
        return self.coef(planes) if callable(self.coef) else apply(self.coef, planes)

    def _code_frame(self, enc, tgt, ring, order, intra, *rest):
        if self.coef is None or intra:
            result = self.kernel(enc, tgt, ring, order, intra, *rest)
            if self.record_levels:
                self.levels = rest[6].copy()
            if not intra:
                mvf, urefs, mv1s = rest[7], rest[9], rest[10]
                self.pred = np.zeros(tgt.shape, np.int16)
                mc_frame(ring, order, urefs, mvf, mv1s, self.pred)
                self.target = tgt.copy()
            return result
        if self.mode == "unit":
            refined = self._refine(ring[order[0]])
            ring2 = np.concatenate([ring, refined[None]])
            order2 = np.array([ring.shape[0], *order], np.int64)
            return self.kernel(enc, tgt, ring2, order2, intra, *rest)
        # the references go back before the frame is kept (and the next one reads them)
        saved = {}
        for s in {int(s) for s in (order[:1] if self.mode == "first" else order)}:
            saved[s] = ring[s].copy()
            ring[s] = self._refine(ring[s])
        try:
            return self.kernel(enc, tgt, ring, order, intra, *rest)
        finally:
            for s, planes in saved.items():
                ring[s] = planes


def _frame_cost(recon_rgb: np.ndarray, target_rgb: np.ndarray, nbytes: int, lam: float) -> float:
    from fpcodec.codec.lossy.loop_filter import pixel_distance
    from fpcodec.codec.lossy.transform_quant import PLANE_WEIGHT

    a, b = rgb_to_planes(recon_rgb), rgb_to_planes(target_rgb)
    return float(pixel_distance(a, b, PLANE_WEIGHT).sum()) + lam * 8 * nbytes


def code_clip(
    clip: np.ndarray,
    quality: int,
    hook: _Hook,
    refine: bool,
    classes: int = 1,
    learned=None,
) -> dict:
    """Code a clip (first frame intra, then `last` predictions), plainly or with the
    oracle refinement switched per frame. Returns bytes and distances."""
    from fpcodec.bench.metrics import perceptual_distance
    from fpcodec.codec.lossy.coder import encode_lossy
    from fpcodec.codec.lossy.models import LossyModels
    from fpcodec.codec.lossy.transform_quant import step_tables

    models = LossyModels(True)
    vis = np.ones(clip.shape[1:3], bool)
    lam = step_tables(quality, False)[3]
    pred = None
    total = paid = 0
    used = {"all": 0, "first": 0, "unit": 0}
    dist = []
    for f in clip:
        f = np.ascontiguousarray(f)
        hook.coef = None
        start = copy.deepcopy(models) if refine and pred is not None else None
        data, recon = encode_lossy(f, pred, vis, quality, models)
        nbytes, extra = len(data), 1 if start is not None else 0  # the frame's flag
        chosen = None
        if start is not None and hook.pred is not None:
            if learned is None:
                hook.coef = fit(hook.pred, hook.target, classes)
                side = coefficient_bytes(hook.coef)
                modes = ("all", "unit")
            else:  # the decoder runs the network itself: a flag is all it is told
                hook.coef = learned(quality)
                side, modes = 1, ("first", "unit")
            # one filter's 31 bytes are weighed; a classed oracle's 361 would decide
            # alone, so it is chosen as if free (its `paid` then only reports them)
            weighed = side if classes == 1 else 0
            best = _frame_cost(recon, f, nbytes, lam)
            for mode in modes:
                trial = copy.deepcopy(start)
                hook.mode = mode
                data_b, recon_b = encode_lossy(f, pred, vis, quality, trial)
                cost = _frame_cost(recon_b, f, len(data_b) + weighed, lam)
                if cost < best:
                    best, models, recon, nbytes, extra = (
                        cost, trial, recon_b, len(data_b), side,
                    )  # fmt: skip
                    chosen = mode
            hook.coef = None
            if chosen is not None:
                used[chosen] += 1
        hook.pred = None
        total += nbytes
        paid += nbytes + extra
        dist.append(perceptual_distance(recon, f))
        pred = recon
    return {
        "bytes": total,
        "bytes_paid": paid,
        "distance": float(np.mean(dist)),
        "frames_refined": used,
        "frames": int(clip.shape[0]),
    }


def measure(clips: list[Path], frames: int, max_side: int, classes: int = 1, learned=None) -> dict:
    """learned: a function of the quality giving the refinement (learned_refine.py),
    measured in place of the fitted oracle."""
    from fpcodec.bench.bdrate import bd_rate

    per_clip: dict[str, dict] = {}
    with _Hook() as hook:
        for path, clip in loaded_clips(clips, frames, max_side):
            rows = {"plain": {}, "refined": {}}
            for q in QUALITIES:
                rows["plain"][str(q)] = code_clip(clip, q, hook, False)
                rows["refined"][str(q)] = code_clip(clip, q, hook, True, classes, learned)
            pl = [rows["plain"][str(q)] for q in QUALITIES]
            rf = [rows["refined"][str(q)] for q in QUALITIES]
            d0 = [r["distance"] for r in pl]
            d1 = [r["distance"] for r in rf]
            rows["bd_free"] = bd_rate([r["bytes"] for r in pl], d0, [r["bytes"] for r in rf], d1)
            rows["bd_paid"] = bd_rate(
                [r["bytes"] for r in pl], d0, [r["bytes_paid"] for r in rf], d1
            )
            per_clip[path.name] = rows
            print(
                path.name,
                f"free {rows['bd_free']:+.2f}%  paid {rows['bd_paid']:+.2f}%",
                {q: list(rows["refined"][str(q)]["frames_refined"].values()) for q in QUALITIES},
                flush=True,
            )
    free = [r["bd_free"] for r in per_clip.values()]
    paid = [r["bd_paid"] for r in per_clip.values()]
    agg = {}
    for key, col in (("plain", "bytes"), ("refined", "bytes"), ("refined_paid", "bytes_paid")):
        src = "refined" if key.startswith("refined") else "plain"
        agg[key] = {str(q): sum(r[src][str(q)][col] for r in per_clip.values()) for q in QUALITIES}
    return {
        "qualities": list(QUALITIES),
        "frames_per_clip": frames,
        "classes": classes,
        "bd_free": {"mean": float(np.mean(free)), "median": float(np.median(free))},
        "bd_paid": {"mean": float(np.mean(paid)), "median": float(np.median(paid))},
        "total_bytes": agg,
        "per_clip": per_clip,
    }


def main(argv: list[str] | None = None) -> int:
    ap = study_parser(__doc__, frames=24)
    ap.add_argument(
        "--classes", type=int, choices=(1, 12), default=1, help="filters per plane (classify)"
    )
    ap.add_argument(
        "--learned", metavar="PT", help="measure this learned refinement (learned_refine.py)"
    )
    a = ap.parse_args(argv)
    learned = None
    if a.learned:
        from .learned_refine import load_refinement

        learned = load_refinement(a.learned)
    clips = study_clips(a.corpus, a.clips)
    result = measure(clips, a.frames, a.max_side, a.classes, learned)
    result["learned"] = a.learned
    write_study(result, a.output, "fpcodec.bench.mc_refine_headroom")
    return 0


if __name__ == "__main__":
    sys.exit(main())
