"""How much any in-loop restoration could lower the lossy coder's distance: a bound.

The learned-stage issue asks a network inside the coding loop for 5% fewer bytes
than `last` at equal perceptual distance. Before spending training time it pays to
know what the reconstructions allow. For every frame of every clip this codes the
clip as the lossy encoder does (`models/train_loopfilter.capture`: the first frame
intra, the rest predicted from the last reconstruction, at each quality) and fits,
*with the source*, the least-squares 3x3 filter (plus offset) per plane and frame
that maps the deblocked reconstruction closest to it: the adaptive loop filter of
VVC without the cost of its coefficients. Rows:

* `wiener_frame`: the fitted filter on the whole frame;
* `wiener_switched`: kept only on the 16x16 blocks where it lowers the distance
  (what the filter map does, its bits free).

Both are ratios of the mean per-pixel distance (as the encoder measures it, in
YCoCg-R with the plane weights) to the unfiltered reconstruction's. Oracle rows
use the source, so no decoder-side filter reaches them with a linear 3x3 filter;
a nonlinear network can do better than linear, but the published ratio of CNN
filters to ALF (about 1.5-2x the gain) puts the bound in perspective.

    python -m fpcodec.bench.filter_headroom CORPUS -o filter-headroom.json
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .study import loaded_clips, study_clips, study_parser, write_study

QUALITIES = (10, 25, 40, 55, 70)
SIDE = 16


def _distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from fpcodec.codec.lossy.loop_filter import pixel_distance
    from fpcodec.codec.lossy.transform_quant import PLANE_WEIGHT

    return pixel_distance(a, b, PLANE_WEIGHT)


def wiener(recon: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The least-squares 3x3 filter plus offset per plane, applied and rounded."""
    out = np.empty(recon.shape, np.float64)
    _, h, w = recon.shape
    for p in range(3):
        pad = np.pad(recon[p].astype(np.float64), 1, mode="edge")
        cols = [pad[i : i + h, j : j + w].ravel() for i in range(3) for j in range(3)]
        a = np.stack([*cols, np.ones(h * w)], 1)
        coef, *_ = np.linalg.lstsq(a, target[p].ravel().astype(np.float64), rcond=None)
        out[p] = np.round(a @ coef).reshape(h, w)
    return out


def frame_rows(recon: np.ndarray, target: np.ndarray) -> tuple[float, float, float]:
    """(unfiltered, whole-frame filtered, block-switched) distance sums of a frame."""
    d0 = _distance(recon, target)
    d1 = _distance(wiener(recon, target), target)
    h, w = d0.shape[0] // SIDE * SIDE, d0.shape[1] // SIDE * SIDE
    gain = (d0 - d1)[:h, :w].reshape(h // SIDE, SIDE, w // SIDE, SIDE).sum((1, 3))
    return float(d0.sum()), float(d1.sum()), float(d0.sum() - np.clip(gain, 0, None).sum())


def measure(clips: list[Path], frames: int, max_side: int) -> dict:
    from fpcodec.models.train_loopfilter import capture

    per_clip: dict[str, dict] = {}
    totals = {q: np.zeros(3) for q in QUALITIES}
    for path, clip in loaded_clips(clips, frames, max_side):
        rows = {}
        for q in QUALITIES:
            seq = capture(clip, q)
            s = np.zeros(3)
            for k in range(seq.recon.shape[0]):
                s += frame_rows(seq.recon[k], seq.target[k])
            totals[q] += s
            rows[str(q)] = {"wiener_frame": s[1] / s[0], "wiener_switched": s[2] / s[0]}
        per_clip[path.name] = rows
        print(path.name, {q: round(r["wiener_switched"], 4) for q, r in rows.items()}, flush=True)
    return {
        "qualities": list(QUALITIES),
        "mean": {
            str(q): {"wiener_frame": t[1] / t[0], "wiener_switched": t[2] / t[0]}
            for q, t in totals.items()
            if t[0] > 0
        },
        "per_clip": per_clip,
    }


def main(argv: list[str] | None = None) -> int:
    a = study_parser(__doc__, frames=6).parse_args(argv)
    result = measure(study_clips(a.corpus, a.clips), a.frames, a.max_side)
    write_study(result, a.output, "fpcodec.bench.filter_headroom")
    return 0


if __name__ == "__main__":
    sys.exit(main())
