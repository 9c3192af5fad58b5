"""The motion-compensated refinement bound (bench/mc_refine_headroom.py) measures what
it says: an identity filter gives the plain encoder's bytes, the fit recovers a known
filter, and where the frames really are a filtered copy of the last one the refined
coding wins."""

from __future__ import annotations

import numpy as np
from fpcodec.bench import mc_refine_headroom as m
from fpcodec.codec.lossy.coder import encode_lossy
from fpcodec.codec.lossy.models import LossyModels

BLUR = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.int64)


def _blur(rgb: np.ndarray) -> np.ndarray:
    pad = np.pad(rgb.astype(np.int64), ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = rgb.shape[:2]
    acc = sum(BLUR[i, j] * pad[i : i + h, j : j + w] for i in range(3) for j in range(3))
    return ((acc + 8) >> 4).astype(np.uint8)


def _blurring_clip(n: int = 4, side: int = 48) -> np.ndarray:
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (side, side, 3)).astype(np.uint8)]
    for _ in range(n - 1):
        frames.append(_blur(frames[-1]))
    return np.stack(frames)


def _inverting_clip(n: int = 5, side: int = 64) -> np.ndarray:
    """Each frame the last one inverted and faded (255 - 7x/8): a linear filter of the
    last frame, which no motion and no older reference reproduces."""
    rng = np.random.default_rng(4)
    frames = [rng.integers(0, 256, (side, side, 3)).astype(np.uint8)]
    for _ in range(n - 1):
        frames.append((255 - (7 * frames[-1].astype(np.int64)) // 8).astype(np.uint8))
    return np.stack(frames)


def _plain_sizes(clip: np.ndarray, hook: m._Hook, coef: np.ndarray | None) -> list[int]:
    hook.coef, hook.mode = coef, "all"
    models, pred, sizes = LossyModels(True), None, []
    vis = np.ones(clip.shape[1:3], bool)
    for f in clip:
        data, pred = encode_lossy(np.ascontiguousarray(f), pred, vis, 50, models)
        sizes.append(len(data))
    hook.coef = None
    return sizes


def test_the_identity_filter_gives_the_plain_encoders_bytes():
    clip = _blurring_clip()
    identity = np.zeros((3, 10), np.int64)
    identity[:, 4] = 1 << m.FRACTION_BITS
    with m._Hook() as hook:
        assert _plain_sizes(clip, hook, identity) == _plain_sizes(clip, hook, None)


def test_the_fit_recovers_a_known_filter():
    rng = np.random.default_rng(0)
    planes = rng.integers(-200, 200, (3, 40, 40)).astype(np.int16)
    known = np.zeros((3, 10), np.int64)
    known[:, :9] = BLUR.ravel() * (1 << m.FRACTION_BITS) // 16
    known[:, 9] = 5 << m.FRACTION_BITS
    # within a 64th, the offset within three (it absorbs the rounding of apply)
    fitted = m.fit(planes, m.apply(known, planes))[:, 0]
    assert np.abs(fitted[:, :9] - known[:, :9]).max() <= 1
    assert np.abs(fitted[:, 9] - known[:, 9]).max() <= 3


def test_a_refinement_that_helps_is_chosen_and_pays():
    clip = _inverting_clip()
    with m._Hook() as hook:
        plain = m.code_clip(clip, 50, hook, refine=False)
        refined = m.code_clip(clip, 50, hook, refine=True)
    assert sum(refined["frames_refined"].values()) >= 2
    assert refined["bytes_paid"] < 0.8 * plain["bytes"]
    assert refined["distance"] <= plain["distance"] * 1.05


def test_classes_split_the_plane_and_fit_a_filter_each():
    rng = np.random.default_rng(1)
    quiet = (40 + rng.integers(-1, 2, (3, 24, 48))).astype(np.int16)
    busy = rng.integers(-200, 200, (3, 24, 48)).astype(np.int16)
    planes = np.concatenate([quiet, busy], axis=1)
    cls = m.classify(planes[0], 12)
    assert set(np.unique(cls[:20])).isdisjoint(np.unique(cls[28:]))
    # a different filter on each part: blur the busy rows, brighten the quiet ones
    target = planes.copy()
    target[:, 24:] = m.apply(_blur_coef(), busy)
    target[:, :24] += 7
    out = m.apply(m.fit(planes, target, 12), planes)
    one = m.apply(m.fit(planes, target), planes)
    inner = (slice(None), slice(2, -2), slice(2, -2))
    assert np.abs(out - target)[inner].mean() < 0.5 * np.abs(one - target)[inner].mean()


def _blur_coef() -> np.ndarray:
    coef = np.zeros((3, 1, 10), np.int64)
    coef[:, 0, :9] = BLUR.ravel() * (1 << m.FRACTION_BITS) // 16
    return coef


def test_a_refinement_the_decoder_runs_itself_is_measured_through_the_same_loop():
    """A 'learned' refinement is a function of the quality giving one of the planes:
    here the fitted filter of the inverting clip, known in advance, in place of a
    network; it must be chosen and save as the fitted oracle does, costing a flag."""
    clip = _inverting_clip()
    with m._Hook() as hook:
        plain = m.code_clip(clip, 50, hook, refine=False)
        # the filter that inverts and fades, fitted once on a frame pair
        f0 = m.rgb_to_planes(clip[0])
        f1 = m.rgb_to_planes(clip[1])
        coef = m.fit(f0, f1)
        known = m.code_clip(
            clip, 50, hook, refine=True, learned=lambda q: lambda p: m.apply(coef, p)
        )
    assert sum(known["frames_refined"].values()) >= 2
    assert known["bytes_paid"] < 0.8 * plain["bytes"]
    assert known["bytes_paid"] - known["bytes"] == len(clip) - 1  # a flag a predicted frame


def test_the_refinement_network_starts_as_the_identity_and_learns():
    import torch
    from fpcodec.bench import learned_refine as lr

    net = lr.RefineNet()
    planes = torch.randint(-200, 200, (2, 3, 16, 16)).float()
    assert torch.equal(net(planes, torch.tensor([4.0, 8.0])), planes)
    rng = np.random.default_rng(2)
    pairs = []
    for _ in range(16):  # the source is the prediction brightened by 6 in luma
        p = rng.integers(0, 255, (3, 16, 16)).astype(np.int16)
        t = p.copy()
        t[0] += 6
        pairs.append((p, t, 4.0))
    curve = lr.train(pairs, steps=60, batch=8, lr=3e-3)["curve"]
    assert curve[-1][1] < 0.5 * curve[0][1]
