"""The level-coding context measure (bench/context_headroom.py) codes the encoder's
own symbols through the real coder, and its class split is what it claims: a class
the same for every unit changes nothing, a class that knows the levels saves bytes,
and one that knows nothing pays for the split."""

from __future__ import annotations

import numpy as np
from fpcodec.bench import context_headroom as c
from fpcodec.bench.mc_refine_headroom import _Hook
from fpcodec.codec import rangecoder as rc
from fpcodec.codec.lossy.coder import encode_lossy
from fpcodec.codec.lossy.models import N_MODELS, LossyModels


def _clip(n: int = 6, side: int = 64) -> np.ndarray:
    """Noise on grey that changes every frame, its strength different from unit to
    unit (a fixed random map): units that differ in how many levels they carry."""
    rng = np.random.default_rng(5)
    amp = np.kron(rng.choice([2, 8, 40, 120], (side // 8, side // 8)), np.ones((8, 8)))
    frames = []
    for _ in range(n):
        noise = rng.standard_normal((side, side, 3)) * amp[..., None]
        frames.append(np.clip(128 + noise, 0, 255).astype(np.uint8))
    return np.stack(frames)


def _symbols(clip: np.ndarray, quality: int) -> list[np.ndarray]:
    vis = np.ones(clip.shape[1:3], bool)
    models, pred, out = LossyModels(True), None, []
    with _Hook() as hook:
        hook.record_levels = True
        for f in clip:
            _, pred = encode_lossy(np.ascontiguousarray(f), pred, vis, quality, models, "zstd")
            out.append(hook.levels)
    return out


def _coded(frames: list[np.ndarray], classes) -> int:
    nuy = nux = 8
    tables = (
        np.full((c.N_CLASSES, N_MODELS), rc.PROB_HALF, np.int32),
        np.zeros((c.N_CLASSES, N_MODELS), np.uint8),
    )
    return sum(
        c.code_levels(lv, classes(lv, k), c.N_CLASSES, nuy, nux, tables)
        for k, lv in enumerate(frames)
    )


def test_a_class_the_same_for_every_unit_changes_nothing():
    frames = _symbols(_clip(), 50)
    one = _coded(frames, lambda lv, k: np.zeros((8, 8), np.int64))
    other = _coded(frames, lambda lv, k: np.full((8, 8), 5, np.int64))
    assert one == other > 0


def test_a_class_that_knows_the_levels_saves_and_one_that_knows_nothing_pays():
    frames = _symbols(_clip(), 50)
    pred = np.zeros((3, 64, 64), np.int16)
    none = _coded(frames, lambda lv, k: np.zeros((8, 8), np.int64))
    oracle = _coded(
        frames, lambda lv, k: c.unit_classes("oracle", lv, pred, np.zeros((8, 8), bool), 1.0)
    )
    rng = np.random.default_rng(0)
    noise = _coded(frames, lambda lv, k: rng.integers(1, 9, (8, 8)))
    assert oracle < none < noise
