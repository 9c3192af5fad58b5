"""How much any one-step predictor could gain over `last` on a corpus: measured bounds.

The predictor issue asks for a learned predictor at 0.85x the perceptual distance
(PD) of `last`. Before spending training time it pays to know what the data allow.
For every frame t >= 1 of every clip, from true frames (the catz protocol), this
measures the PD of:

* `last`: frame t-1;
* `extrapolated`: a causal motion predictor -- 8x8 block motion found between t-2
  and t-1 (full search, a zero-vector bonus so static dither does not pick noise
  vectors) applied once more to t-1, i.e. constant motion;
* `oracle_choice`: per 8x8 block, the better of `last` and `extrapolated`, chosen
  by looking at the truth: the bound of any predictor that switches between them;
* `oracle_motion`: block motion searched between t-1 and the true frame t -- what
  a codec transmits as motion vectors, the bound of a block-translation predictor
  that could foresee motion;
* `oracle_past`: the best whole past frame (up to `PAST` back), chosen with the
  truth: the bound of a predictor exploiting loops and repeated frames.

Oracle rows need the frame being predicted, so no causal predictor reaches them;
they say where the headroom is, not how to get it. Writes JSON (per clip and
means, each also as a ratio to `last`) from which the tables are made.

    python -m fpcodec.bench.headroom CORPUS -o headroom.json [--max-frames 120]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from numba import njit

from .metrics import redmean_distance_map

BLOCK = 8
RADIUS = 8
ZERO_BONUS = 512  # SAD a non-zero vector must save over the zero vector (8x8x3 values)
PAST = 60
ROWS = ("last", "extrapolated", "oracle_choice", "oracle_motion", "oracle_past")


@njit(cache=True)
def block_motion(cur: np.ndarray, ref: np.ndarray, block: int, radius: int, bonus: int):
    """Per block of `cur` (H, W, 3 uint8), the offset (dy, dx) into `ref` with the
    smallest SAD (full search within radius, blocks kept inside the frame); the zero
    vector wins unless another saves more than `bonus`."""
    h, w, _ = cur.shape
    nby, nbx = (h + block - 1) // block, (w + block - 1) // block
    mv = np.zeros((nby, nbx, 2), np.int32)
    for by in range(nby):
        for bx in range(nbx):
            y0, x0 = by * block, bx * block
            y1, x1 = min(y0 + block, h), min(x0 + block, w)
            best = np.int64(1) << 62
            for dy in range(-radius, radius + 1):
                for dx in range(-radius, radius + 1):
                    if y0 + dy < 0 or y1 + dy > h or x0 + dx < 0 or x1 + dx > w:
                        continue
                    s = np.int64(0) if (dy == 0 and dx == 0) else np.int64(bonus)
                    for y in range(y0, y1):
                        for x in range(x0, x1):
                            for c in range(3):
                                s += abs(np.int32(cur[y, x, c]) - np.int32(ref[y + dy, x + dx, c]))
                    if s < best:
                        best = s
                        mv[by, bx, 0], mv[by, bx, 1] = dy, dx
    return mv


@njit(cache=True)
def apply_motion(ref: np.ndarray, mv: np.ndarray, block: int) -> np.ndarray:
    """Each pixel taken from `ref` at its block's offset (edges repeated)."""
    h, w, _ = ref.shape
    out = np.empty_like(ref)
    for y in range(h):
        for x in range(w):
            yy = min(max(y + mv[y // block, x // block, 0], 0), h - 1)
            xx = min(max(x + mv[y // block, x // block, 1], 0), w - 1)
            for c in range(3):
                out[y, x, c] = ref[yy, xx, c]
    return out


def _block_sums(dist: np.ndarray, block: int) -> np.ndarray:
    h, w = dist.shape
    ph, pw = -h % block, -w % block
    d = np.pad(dist, ((0, ph), (0, pw)))
    return d.reshape(d.shape[0] // block, block, d.shape[1] // block, block).sum((1, 3))


def _split(frames: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """RGB planes and visibility masks (None: all visible) of RGB or RGBA frames."""
    rgb = [np.ascontiguousarray(f[..., :3]) for f in frames]  # no copy when already RGB
    vis = [None if f.shape[-1] == 3 else f[..., 3] != 0 for f in frames]
    return rgb, vis


def _bounds_at(rgb: list[np.ndarray], visible: np.ndarray | None, t: int) -> dict[str, float]:
    truth, last = rgb[t], rgb[t - 1]
    vis = np.ones(truth.shape[:2]) if visible is None else visible * 1.0
    n = vis.sum()
    if n == 0:
        return dict.fromkeys(ROWS, 0.0)

    def pd(pred: np.ndarray) -> np.ndarray:  # per-pixel distance, invisible pixels zeroed
        return redmean_distance_map(pred, truth) * vis

    if t >= 2:
        ext = apply_motion(last, block_motion(last, rgb[t - 2], BLOCK, RADIUS, ZERO_BONUS), BLOCK)
    else:
        ext = last
    d_last, d_ext = pd(last), pd(ext)
    choice = np.minimum(_block_sums(d_last, BLOCK), _block_sums(d_ext, BLOCK)).sum()
    moved = apply_motion(last, block_motion(truth, last, BLOCK, RADIUS, 0), BLOCK)
    past = min(float(pd(rgb[t - k]).sum()) for k in range(1, min(PAST, t) + 1))
    return {
        "last": float(d_last.sum() / n),
        "extrapolated": float(d_ext.sum() / n),
        "oracle_choice": float(choice / n),
        "oracle_motion": float(pd(moved).sum() / n),
        "oracle_past": past / n,
    }


def frame_bounds(frames: list[np.ndarray], t: int) -> dict[str, float]:
    """PD of each row for predicting frames[t] (t >= 1) from frames[:t].

    Frames are RGB or RGBA uint8; with alpha, distances average over the pixels
    visible in frame t, as the leaderboard's do (0 when none is)."""
    rgb, vis = _split(frames[: t + 1])
    return _bounds_at(rgb, vis[t], t)


def clip_bounds(frames: list[np.ndarray]) -> dict[str, float]:
    """Mean over frames t >= 1 of each row (frames: RGB or RGBA uint8 (H, W, C))."""
    rgb, vis = _split(frames)  # once a clip, not once a frame
    per = [_bounds_at(rgb, vis[t], t) for t in range(1, len(frames))]
    return {k: float(np.mean([p[k] for p in per])) if per else 0.0 for k in ROWS}


def corpus_bounds(paths: list[Path], max_frames: int = 120) -> dict:
    from .runner import load_clip

    clips = {}
    for path in paths:
        frames, _, _ = load_clip(path)
        clips[path.name] = clip_bounds(frames[:max_frames])
    means = {k: float(np.mean([c[k] for c in clips.values()])) for k in ROWS}
    ratio = {k: means[k] / max(means["last"], 1e-9) for k in ROWS}
    return {
        "protocol": f"one-step PD from true frames over visible pixels, first {max_frames} "
        "frames a clip, mean over frames then clips (the leaderboard's)",
        "block": BLOCK,
        "radius": RADIUS,
        "mean": means,
        "ratio_to_last": ratio,
        "clips": clips,
    }


def main(argv: list[str] | None = None) -> int:
    from fpcodec.models.data import list_clips

    p = argparse.ArgumentParser(prog="python -m fpcodec.bench.headroom", description=__doc__)
    p.add_argument("corpus")
    p.add_argument("-o", "--output", required=True, help="JSON file to write")
    p.add_argument("--max-frames", type=int, default=120)
    args = p.parse_args(argv)
    result = corpus_bounds(list_clips(args.corpus), args.max_frames)
    tmp = Path(args.output).with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(args.output)
    for k in ROWS:
        print(f"{k:14s} {result['mean'][k]:8.3f}  x last {result['ratio_to_last'][k]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
