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

import argparse
import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from fpcodec.codec.lossy.motion_comp import mc_pred
from numba import njit

QUALITIES = (25, 40, 55, 70)
COEF_BYTES = 3 * 10 + 1  # per frame that uses the filter: 8-bit coefficients and a flag
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


def _neighbourhood(plane: np.ndarray) -> np.ndarray:
    h, w = plane.shape
    pad = np.pad(plane.astype(np.float64), 1, mode="edge")
    cols = [pad[i : i + h, j : j + w].ravel() for i in range(3) for j in range(3)]
    return np.stack([*cols, np.ones(h * w)], 1)


def fit(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(3, 10) integer coefficients in 1/2^FRACTION_BITS: the least-squares 3x3 filter
    plus offset per plane from pred to target, rounded as a syntax would send them."""
    coef = np.zeros((3, 10), np.int64)
    for p in range(3):
        c, *_ = np.linalg.lstsq(
            _neighbourhood(pred[p]), target[p].ravel().astype(np.float64), rcond=None
        )
        coef[p] = np.round(c * (1 << FRACTION_BITS))
    return coef


def apply(coef: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """The filter on (3, H, W) int16 planes, in integers. Clipped only to what the
    ring holds (+-1024), not to each plane's range: reconstructions can leave it, and
    the identity filter must give the plain encoder's bytes exactly (a test)."""
    out = np.empty_like(planes)
    _, h, w = planes.shape
    half = 1 << (FRACTION_BITS - 1)
    for p in range(3):
        a = _neighbourhood(planes[p]).astype(np.int64)  # the offset's column is 1
        out[p] = np.clip(((a @ coef[p] + half) >> FRACTION_BITS).reshape(h, w), -1024, 1023)
    return out


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
            refined = apply(self.coef, ring[order[0]])
            ring2 = np.concatenate([ring, refined[None]])
            order2 = np.array([ring.shape[0], *order], np.int64)
            return self.kernel(enc, tgt, ring2, order2, intra, *rest)
        # the references go back before the frame is kept (and the next one reads them)
        saved = {}
        for s in {int(s) for s in order}:
            saved[s] = ring[s].copy()
            ring[s] = apply(self.coef, ring[s])
        try:
            return self.kernel(enc, tgt, ring, order, intra, *rest)
        finally:
            for s, planes in saved.items():
                ring[s] = planes


def _frame_cost(recon_rgb: np.ndarray, target_rgb: np.ndarray, nbytes: int, lam: float) -> float:
    from fpcodec.codec.lossy.loop_filter import pixel_distance
    from fpcodec.codec.lossy.planes import rgb_to_planes
    from fpcodec.codec.lossy.transform_quant import PLANE_WEIGHT

    h, w = target_rgb.shape[:2]
    a, b = rgb_to_planes(recon_rgb, h, w), rgb_to_planes(target_rgb, h, w)
    return float(pixel_distance(a, b, PLANE_WEIGHT).sum()) + lam * 8 * nbytes


def code_clip(clip: np.ndarray, quality: int, hook: _Hook, refine: bool) -> dict:
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
    used = {"all": 0, "unit": 0}
    dist = []
    for f in clip:
        f = np.ascontiguousarray(f)
        hook.coef = None
        start = copy.deepcopy(models) if refine and pred is not None else None
        data, recon = encode_lossy(f, pred, vis, quality, models)
        nbytes, extra = len(data), 1 if start is not None else 0
        if start is not None and hook.pred is not None:
            hook.coef = fit(hook.pred, hook.target)
            best = _frame_cost(recon, f, nbytes, lam)
            for mode in ("all", "unit"):
                trial = copy.deepcopy(start)
                hook.mode = mode
                data_b, recon_b = encode_lossy(f, pred, vis, quality, trial)
                cost = _frame_cost(recon_b, f, len(data_b) + COEF_BYTES, lam)
                if cost < best:
                    best, models, recon, nbytes, extra = (
                        cost, trial, recon_b, len(data_b), COEF_BYTES,
                    )  # fmt: skip
                    chosen = mode
            hook.coef = None
            if extra == COEF_BYTES:
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


def measure(clips: list[Path], frames: int, max_side: int) -> dict:
    from fpcodec.bench.bdrate import bd_rate
    from fpcodec.models.data import load_clip

    per_clip: dict[str, dict] = {}
    with _Hook() as hook:
        for path in clips:
            clip = load_clip(path, frames, max_side)
            if clip is None:
                continue
            rows = {"plain": {}, "refined": {}}
            for q in QUALITIES:
                rows["plain"][str(q)] = code_clip(clip, q, hook, False)
                rows["refined"][str(q)] = code_clip(clip, q, hook, True)
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
        "bd_free": {"mean": float(np.mean(free)), "median": float(np.median(free))},
        "bd_paid": {"mean": float(np.mean(paid)), "median": float(np.median(paid))},
        "total_bytes": agg,
        "per_clip": per_clip,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--clips", help="a file listing the clips to measure (# comments)")
    ap.add_argument("--frames", type=int, default=24, help="frames per clip (from its start)")
    ap.add_argument("--max-side", type=int, default=512, help="halve clips larger than this")
    a = ap.parse_args(argv)
    from fpcodec.models.data import list_clips

    clips = list_clips(a.corpus)
    if a.clips:
        names = {
            ln.strip() for ln in Path(a.clips).read_text().splitlines() if ln.strip()[:1] != "#"
        }
        clips = [c for c in clips if c.name in names]
    result = measure(clips, a.frames, a.max_side)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    result["command"] = "python -m fpcodec.bench.mc_refine_headroom " + " ".join(sys.argv[1:])
    result["commit"] = commit
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
