"""The predictor-headroom bounds: each row measures what it says on clips whose answer is known."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fpcodec.bench.headroom import ROWS, clip_bounds, frame_bounds, main

from .conftest import moving_corpus


def panning_clip(n: int = 5, h: int = 32, w: int = 48, speed: int = 2) -> list[np.ndarray]:
    """A window sliding over a random texture at constant speed: content moves left."""
    tex = np.random.default_rng(1).integers(0, 256, (h, w + speed * n, 3), dtype=np.uint8)
    return [np.ascontiguousarray(tex[:, speed * t : speed * t + w]) for t in range(n)]


def test_constant_motion_is_extrapolated_and_oracles_never_lose_to_their_inputs():
    frames = panning_clip()
    b = frame_bounds(frames, 3)
    # Only the rightmost column of blocks cannot follow the pan (its match would
    # leave the frame), so the causal extrapolation is close to exact.
    assert b["extrapolated"] < 0.2 * b["last"]
    assert b["oracle_motion"] <= b["extrapolated"] + 1e-9
    assert b["oracle_choice"] <= min(b["last"], b["extrapolated"]) + 1e-9
    assert b["oracle_past"] <= b["last"] + 1e-9


def test_static_clip_costs_nothing_anywhere():
    frame = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    b = clip_bounds([frame.copy() for _ in range(4)])
    assert all(b[k] == 0.0 for k in ROWS)


def test_a_repeated_frame_is_found_by_the_past_oracle_only():
    rng = np.random.default_rng(2)
    a, b, c = (rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(3))
    r = frame_bounds([a, b, c, a], 3)
    assert r["oracle_past"] == 0.0 and r["last"] > 0.0
    assert r["oracle_choice"] <= min(r["last"], r["extrapolated"]) + 1e-9


def test_command_writes_json_with_means_and_ratios(tmp_path, capsys):
    corpus = moving_corpus(tmp_path / "c", 2, 5, 24, 32)
    out = tmp_path / "h.json"
    assert main([str(corpus), "-o", str(out), "--max-frames", "4"]) == 0
    res = json.loads(out.read_text())
    assert set(res["clips"]) == {"c0.gif", "c1.gif"}
    assert res["ratio_to_last"]["last"] == pytest.approx(1.0)
    assert res["mean"]["last"] > 0
    assert res["ratio_to_last"]["oracle_choice"] <= 1.0 + 1e-9
    assert "oracle_motion" in capsys.readouterr().out


def test_distances_average_over_visible_pixels_like_the_leaderboard():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    b = a.copy()
    b[:8, :, :3] = 255 - b[:8, :, :3]  # the top half changes...
    b[..., 3] = 255
    hidden = b.copy()
    hidden[:8, :, 3] = 0  # ...but is transparent here
    assert frame_bounds([a, hidden], 1)["last"] == 0.0
    full = frame_bounds([a, b], 1)["last"]
    bottom_only = b.copy()
    bottom_only[8:, :, 3] = 0
    assert frame_bounds([a, bottom_only], 1)["last"] == pytest.approx(2 * full)
