"""The catz prediction leaderboard: one-step-ahead perceptual distance per predictor.

Each predictor sees the true frames 0..t-1 of a clip (reset at the clip's start)
and predicts frame t; the score is the mean perceptual distance over every frame
t >= 1 of every clip, `last` being the reference. Strips show, for a few clips,
the last input frames, the truth, each prediction and its error map.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from fpcodec.bench.metrics import perceptual_distance, redmean_distance_map
from fpcodec.models.registry import create_predictor


def one_step(
    path: Path, predictor: str, weights: str | None = None, strip_at: int | None = None
) -> dict:
    from fpcodec.bench.runner import load_clip

    frames, _, _ = load_clip(path)
    pred = create_predictor(predictor, weights)
    h, w = frames[0].shape[:2]
    pred.reset(h, w)
    dists = []
    strip = None
    t0 = time.perf_counter()
    for t, f in enumerate(frames):
        rgb = np.ascontiguousarray(f[..., :3])
        if t > 0:
            p = pred.predict().rgb
            dists.append(perceptual_distance(p, rgb, f[..., 3] != 0))
            if strip_at is not None and t == strip_at:
                strip = (p.copy(), rgb.copy())
        pred.observe(rgb)
    secs = time.perf_counter() - t0
    return {
        "clip": path.name,
        "predictor": predictor,
        "pd": float(np.mean(dists)) if dists else 0.0,
        "frames": len(dists),
        "fps": len(frames) / max(secs, 1e-9),
        "strip": strip,
    }


def strip_image(
    frames: list[np.ndarray], t: int, predictions: dict[str, np.ndarray], out: Path
) -> None:
    """inputs (t-3..t-1) | truth, then per predictor: its name | prediction | error
    map; every tile captioned, so the strip reads without the code."""
    from PIL import Image, ImageDraw

    h, w = frames[0].shape[:2]
    truth = frames[t][..., :3]
    tiles = [frames[max(0, t - k)][..., :3] for k in (3, 2, 1)] + [truth]
    rows = [(np.concatenate(tiles, 1), [f"input t-{k}" for k in (3, 2, 1)] + [f"truth t={t}"])]
    for name, p in predictions.items():
        err = redmean_distance_map(p, truth)
        err = np.clip(err * 4, 0, 255).astype(np.uint8)
        err3 = np.stack([err, err, err], -1)
        blank = np.zeros((h, w, 3), np.uint8)
        rows.append(
            (np.concatenate([blank, blank, p, err3], 1), [name, "", "prediction", "error x4"])
        )
    band = 12  # a caption line above each row of tiles
    img = Image.new("RGB", (4 * w, len(rows) * (h + band)), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for i, (pixels, captions) in enumerate(rows):
        y = i * (h + band)
        img.paste(Image.fromarray(np.ascontiguousarray(pixels)), (0, y + band))
        for j, text in enumerate(captions):
            draw.text((j * w + 2, y + 1), text[: max(1, w // 6)], fill=(0, 0, 0))
    img.save(out)
