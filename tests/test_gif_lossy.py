"""Lossy and near-lossless settings on GIF sources start from the GIF's own coding.

Every frame of a GIF can be coded exactly as a palette frame, and an exact frame is
valid at every setting, so no setting may give a larger file than lossless; with
--max-error the palette frames may also move indices within the bound, which must
hold on every pixel.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fpcodec

from .conftest import read_frames
from .gifbuild import GifFrame, build_gif

SETTINGS = [("max_error", e) for e in (1, 2, 4, 8)] + [
    ("quality", q) for q in (25, 40, 55, 70, 85, 95)
]


def dithered_gif(n: int = 6, h: int = 32, w: int = 40, seed: int = 0) -> bytes:
    """A moving gradient, ordered-dithered into a dense palette (64 greys 4 apart and
    64 colours): webcam-like, many palette colours within a few levels of each other."""
    rng = np.random.default_rng(seed)
    greys = np.repeat(np.arange(0, 256, 4)[:, None], 3, axis=1)
    pal = np.concatenate([greys, rng.integers(0, 256, (64, 3))]).astype(np.uint8)
    bayer = np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]]) / 16
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for t in range(n):
        v = (xx * 5 + yy * 3 + 7 * t) % 256 / 4.0 + bayer[yy % 4, xx % 4] - 0.5
        idx = np.clip(np.round(v), 0, 63).astype(np.uint8)
        blob = (yy - 10 - t) ** 2 + (xx - 12 - 2 * t) ** 2 < 30
        idx[blob] = 64 + rng.integers(0, 64, int(blob.sum()))
        frames.append(GifFrame(idx, delay_cs=4))
    return build_gif(w, h, frames, global_palette=pal, loop=0)


def cartoon_gif(n: int = 6, h: int = 32, w: int = 40) -> bytes:
    """Flat colours far apart, a shape moving in partial, transparent frames."""
    pal = np.array(
        [[255, 255, 255], [0, 0, 0], [230, 40, 40], [40, 200, 60], [30, 60, 220], [250, 220, 0]],
        np.uint8,
    )
    pal = np.concatenate([pal, np.zeros((2, 3), np.uint8)])
    yy, xx = np.mgrid[0:h, 0:w]
    first = np.where((yy // 8 + xx // 8) % 2 == 0, 0, 3).astype(np.uint8)
    frames = [GifFrame(first, delay_cs=6)]
    for t in range(1, n):
        x0, y0 = 2 + 3 * t, 4 + t
        sub = np.full((12, 14), 7, np.uint8)  # 7: transparent, the canvas shows
        sy, sx = np.mgrid[0:12, 0:14]
        sub[(sy - 6) ** 2 + (sx - 7) ** 2 < 20] = 2 + t % 3
        sub[5:7, 6:8] = 1
        frames.append(GifFrame(sub, x=x0, y=y0, transparency=7, disposal=1, delay_cs=6))
    return build_gif(w, h, frames, global_palette=pal, loop=0)


SOURCES = {"dithered": dithered_gif, "cartoon": cartoon_gif}


def _encode(tmp, name: str, **kw) -> int:
    src = tmp / f"{name}.gif"
    if not src.exists():
        src.write_bytes(SOURCES[name]())
    out = tmp / f"{name}-{'-'.join(f'{k}{v}' for k, v in kw.items()) or 'lossless'}.fpc"
    return fpcodec.encode(src, out, force=True, **kw).bytes


@pytest.mark.parametrize("name", sorted(SOURCES))
@pytest.mark.parametrize("setting", SETTINGS, ids=[f"{k}{v}" for k, v in SETTINGS])
def test_no_setting_is_larger_than_lossless(tmp, name, setting):
    lossless = _encode(tmp, name)
    lossy = _encode(tmp, name, **{setting[0]: setting[1]})
    assert lossy <= lossless, f"{setting}: {lossy} bytes, lossless {lossless}"


def _distortion(tmp, path) -> int:
    ref, _, _ = read_frames(tmp / "src.gif")
    _, out, _ = fpcodec.decode_frames(path)
    return sum(
        int(((a[..., :3].astype(np.int64) - b[..., :3]) ** 2).sum())
        for a, b in zip(ref, out, strict=True)
    )


def test_quality_is_monotone_on_a_gif(tmp):
    (tmp / "src.gif").write_bytes(dithered_gif(n=5, seed=3))
    points = []
    for q in (25, 40, 55, 70, 85, 95):
        out = tmp / f"q{q}.fpc"
        size = fpcodec.encode(tmp / "src.gif", out, quality=q, force=True).bytes
        points.append((q, size, _distortion(tmp, out)))
    for (q0, b0, d0), (q1, b1, d1) in itertools.pairwise(points):
        assert not (b1 < b0 and d1 > d0), f"Q{q1} is worse on both counts than Q{q0}: {points}"
        assert d1 <= d0, f"Q{q1} more distorted than Q{q0}: {points}"


@pytest.mark.parametrize("setting", [("max_error", 4), ("quality", 95), ("quality", 40)])
def test_lossy_gif_decodes_to_a_gif_of_its_reconstruction(tmp, setting):
    (tmp / "src.gif").write_bytes(cartoon_gif())
    fpcodec.encode(tmp / "src.gif", tmp / "s.fpc", force=True, **{setting[0]: setting[1]})
    codings = fpcodec.info(tmp / "s.fpc")["codings"]
    _, recon, _ = fpcodec.decode_frames(tmp / "s.fpc")
    fpcodec.decode(tmp / "s.fpc", tmp / "back.gif", force=True)
    back, _, _ = read_frames(tmp / "back.gif")
    assert len(back) == len(recon)
    if set(codings) == {"palette"}:  # palette frames travel as palette frames, unquantised
        for a, b in zip(recon, back, strict=True):
            np.testing.assert_array_equal(a, b)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**16),
    max_error=st.integers(1, 12),
    spread=st.integers(1, 6),
    partial=st.booleans(),
)
def test_palette_near_lossless_keeps_the_bound_on_every_pixel(
    tmp, seed, max_error, spread, partial
):
    """Dense random palettes (colours `spread` apart), partial transparent frames and
    every disposal: each decoded pixel is within max_error of the source."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 200, 3)
    pal = np.clip(base + spread * rng.integers(0, 12, (32, 3)), 0, 255).astype(np.uint8)
    h, w = 14, 17
    frames = [GifFrame(rng.integers(0, 32, (h, w)).astype(np.uint8), disposal=1)]
    for i in range(4):
        if partial:
            fh, fw = int(rng.integers(2, h)), int(rng.integers(2, w))
            x, y = int(rng.integers(0, w - fw + 1)), int(rng.integers(0, h - fh + 1))
        else:
            fh, fw, x, y = h, w, 0, 0
        idx = rng.integers(0, 32, (fh, fw)).astype(np.uint8)
        frames.append(
            GifFrame(
                idx,
                x=x,
                y=y,
                disposal=int(rng.integers(0, 4)),
                transparency=int(rng.integers(0, 32)) if i % 2 else None,
            )
        )
    (tmp / "src.gif").write_bytes(build_gif(w, h, frames, global_palette=pal, loop=0))
    fpcodec.encode(
        tmp / "src.gif", tmp / "s.fpc", max_error=max_error, keyframe_interval=3, force=True
    )
    ref, _, _ = read_frames(tmp / "src.gif")
    _, out, _ = fpcodec.decode_frames(tmp / "s.fpc")
    assert len(out) == len(ref)
    for a, b in zip(ref, out, strict=True):
        np.testing.assert_array_equal(a[..., 3], b[..., 3])
        d = np.abs(a[..., :3].astype(np.int16) - b[..., :3])
        assert int(d.max(initial=0)) <= max_error


def _pixel_trials_with_and_without_the_skip(tmp, monkeypatch, h, w, n, **settings):
    """A GIF of n one-pixel frames over an h x w first frame, encoded with the pixel
    trials that cannot win skipped and with every trial run (the lossy trial first, as
    before the skip); the files must be the same. Returns the two trial counts."""
    from fpcodec.codec import gifchoice

    pal = np.array([[0, 0, 0], [250, 0, 0], [0, 250, 0], [0, 0, 250]], np.uint8)
    frames = [GifFrame(np.zeros((h, w), np.uint8))]
    frames += [GifFrame(np.array([[1 + i % 3]], np.uint8), x=7 * i, y=5 * i) for i in range(n)]
    src = tmp / "dots.gif"
    src.write_bytes(build_gif(w, h, frames, pal))
    trials = []
    real = gifchoice._PixelTrial

    def counted(*a):
        trials.append(1)
        return real(*a)

    counts = []
    with monkeypatch.context() as m:
        m.setattr(gifchoice, "_PixelTrial", counted)
        for name in ("skip", "all"):
            if name == "all":
                m.setattr(gifchoice, "_pixels_cannot_win", lambda *a: False)
                m.setattr(gifchoice, "SMALL_FRAME", 10**9)
            trials.clear()
            fpcodec.encode(src, tmp / f"{name}.fpc", **settings)
            counts.append(len(trials))
    assert (tmp / "skip.fpc").read_bytes() == (tmp / "all.fpc").read_bytes()
    return tuple(counts)


def test_near_lossless_skips_pixel_trials_that_cannot_win_with_the_same_bytes(tmp, monkeypatch):
    """One-pixel frames on a large screen: the whole-screen pixel trial is skipped when
    the range coder's lower bound already loses to the palette frame, and the file is
    the one the trials would have written."""
    skipped, every = _pixel_trials_with_and_without_the_skip(
        tmp, monkeypatch, 400, 512, 6, max_error=2
    )
    assert every == 7 and skipped < every


def test_a_lossy_trial_is_skipped_only_where_its_bound_loses():
    """At --quality the lossy trial is skipped only after a predicted frame's exact
    palette coding is no larger than the range coder's bound on the lossy frame (a
    skip flag for each 8x8 unit, rangecoder.min_coded_bytes) over the margin: not on
    a keyframe, nor with the zstd baseline, nor against an inexact palette frame."""
    from types import SimpleNamespace

    from fpcodec.codec import gifchoice, rangecoder

    rgba = np.zeros((4096, 4096, 4), np.uint8)
    least = rangecoder.min_coded_bytes(512 * 512)
    assert least >= 20

    def state(entropy="arith", quality=50, after_palette=True):
        header = SimpleNamespace(quality=quality, entropy=entropy)
        return SimpleNamespace(
            header=header, plane_coder=SimpleNamespace(name=entropy), prev_was_palette=after_palette
        )

    small, large = least * gifchoice.LEAVE_CHAIN, least / gifchoice.LEAVE_CHAIN + 1
    assert gifchoice._pixels_cannot_win(state(), rgba, False, [(small, 0)])
    assert gifchoice._pixels_cannot_win(state(), rgba, False, [(large, 0), (least, 0)])
    assert not gifchoice._pixels_cannot_win(state(), rgba, False, [(large, 0)])
    assert not gifchoice._pixels_cannot_win(state(), rgba, False, [(small, 1)])  # inexact
    assert not gifchoice._pixels_cannot_win(state(), rgba, True, [(small, 0)])  # keyframe
    assert not gifchoice._pixels_cannot_win(state("zstd"), rgba, False, [(small, 0)])
    assert not gifchoice._pixels_cannot_win(state(), rgba, False, [])


@pytest.mark.skipif(
    not os.environ.get("FPCODEC_SLOW_TESTS"),
    reason="a minute; set FPCODEC_SLOW_TESTS=1 to run",
)
def test_a_lossy_trial_that_cannot_win_is_not_run(tmp, monkeypatch):
    """One-pixel frames on a 4096x3072 screen at --quality: a small GIF frame's exact
    palette coding is tried first, and the lossy trial is skipped where the bound on
    a predicted lossy frame already loses to it (the bound holds: a static frame's
    lossy coding is no smaller); the file is the one the trials would have written."""
    from fpcodec.codec import rangecoder
    from fpcodec.codec.lossy import LossyModels, encode_lossy

    h, w = 3072, 4096
    still = np.zeros((h, w, 3), np.uint8)
    m = LossyModels()
    _, rec = encode_lossy(still, None, np.ones((h, w), bool), 50, m)
    data, _ = encode_lossy(still, rec, np.ones((h, w), bool), 50, m)
    least = rangecoder.min_coded_bytes((h // 8) * (w // 8))
    assert 0 < least <= len(data)

    skipped, every = _pixel_trials_with_and_without_the_skip(tmp, monkeypatch, h, w, 2, quality=50)
    assert every == 3 and skipped < every


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 255))
def test_the_trials_error_measures_are_numpys(seed, bound):
    """gifchoice's compiled squared error and bound check, against the NumPy they
    replaced (an int64 copy of the frame per band)."""
    from fpcodec.codec.gifchoice import _sse, _within

    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (5, 7, 4), np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-bound, bound + 1, a.shape), 0, 255).astype(np.uint8)
    if seed % 3 == 0:
        b[..., 3] = a[..., 3]
    d = a[..., :3].astype(np.int64) - b[..., :3]
    assert _sse(a, b) == int((d * d).sum())
    want = np.array_equal(a[..., 3], b[..., 3]) and int(np.abs(d).max()) <= bound // 2
    assert _within(a, b, bound // 2) == want
    assert _sse(a, a.copy()) == 0 and _within(a, a.copy(), 0)


@pytest.mark.parametrize("interlace", [False, True])
def test_moved_indices_repeat_the_predicted_frame_where_the_canvas_is_cleared(interlace):
    """A GIF that clears each frame's rectangle (disposal 2) leaves no canvas to repeat;
    the moved indices then repeat the predictor's frame, which the palette coder sees
    as a context, wherever its colour is within the bound: noise that flickers between
    neighbouring palette colours stops flickering. The frame is a rectangle inside a
    larger screen, so the prediction must be read where the frame lies."""
    from fpcodec.codec.gifparse import GifFrame as ParsedFrame
    from fpcodec.codec.gifparse import interlace_rows
    from fpcodec.codec.palette_nearlossless import near_lossless_frame

    rng = np.random.default_rng(5)
    table = np.repeat(np.arange(0, 256, 2, dtype=np.uint8)[:, None], 3, axis=1)  # 2 apart
    table[1] = table[2]  # the transparent index shares a colour with an opaque one
    H, W, y0, x0, h, w = 40, 50, 9, 13, 24, 30
    src = rng.integers(2, 126, (h, w)).astype(np.uint8)
    rows = interlace_rows(h) if interlace else np.arange(h)
    frame = ParsedFrame(
        x=x0, y=y0, w=w, h=h, local_palette=None, transparency=1, disposal=2,
        has_gce=True, delay_cs=4, interlace=interlace, min_code_size=7,
        codes=np.zeros(1, np.int32), indices=src[rows].ravel(),
    )  # fmt: skip
    cleared = np.zeros((H, W, 4), np.uint8)
    # the previous frame showed a neighbour of each source colour (flicker of one level)
    # inside the rectangle, and something else around it
    shown = table[rng.integers(0, 126, (H, W))]
    step = rng.choice([-1, 1], (h, w))
    shown[y0 : y0 + h, x0 : x0 + w] = table[np.clip(src.astype(np.int16) + step, 2, 125)]
    want = shown[y0 : y0 + h, x0 : x0 + w][rows].reshape(-1, 3)
    without = near_lossless_frame(frame, table, 2, cleared)
    moved = near_lossless_frame(frame, table, 2, cleared, predicted=shown)
    for f in (without, moved):
        d = np.abs(table[f.indices].astype(np.int16) - table[src[rows].ravel()]).max(axis=1)
        assert d.max() <= 2
        assert not (f.indices == 1).any()  # opaque pixels stay opaque
    repeats = (table[moved.indices] == want).all(axis=1).mean()
    repeats_without = (table[without.indices] == want).all(axis=1).mean()
    assert repeats > 0.9 and repeats_without < 0.6, (repeats, repeats_without)


def flicker_gif(n: int = 6, h: int = 32, w: int = 40, seed: int = 1) -> bytes:
    """A sticker GIF as makers of reaction GIFs export them: every frame clears its
    rectangle (disposal 2) and redraws it, around a transparent border. The palette is
    64 colours and a twin of each two levels away; the picture is a still texture of
    them, a third of whose pixels flicker to the twin, beside a band of new texture
    every frame (which pixel coding cannot afford)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 250, (64, 3))
    pal = np.concatenate([base, base + 2]).astype(np.uint8)
    still = rng.integers(0, 63, (h, w))  # 127, the twin of 63, is transparent
    frames = []
    for _ in range(n):
        idx = (still + 64 * (rng.random((h, w)) < 1 / 3)).astype(np.uint8)
        idx[:, : w // 3] = rng.integers(0, 63, (h, w // 3))
        idx[:2] = 127
        frames.append(GifFrame(idx, transparency=127, disposal=2, delay_cs=4))
    return build_gif(w, h, frames, global_palette=pal, loop=0)


def test_near_lossless_pays_on_a_gif_that_clears_every_frame(tmp):
    (tmp / "flicker.gif").write_bytes(flicker_gif())
    lossless = fpcodec.encode(tmp / "flicker.gif", tmp / "l.fpc").bytes
    near = fpcodec.encode(tmp / "flicker.gif", tmp / "e2.fpc", max_error=2).bytes
    ref, _, _ = read_frames(tmp / "flicker.gif")
    _, out, _ = fpcodec.decode_frames(tmp / "e2.fpc")
    for a, b in zip(ref, out, strict=True):
        np.testing.assert_array_equal(a[..., 3], b[..., 3])
        assert int(np.abs(a[..., :3].astype(np.int16) - b[..., :3]).max()) <= 2
    # without the prediction to repeat, the moved frames saved 0.3% here
    assert near < 0.85 * lossless, (near, lossless)


def test_a_transparent_index_never_stands_for_the_colour_it_shares():
    """A table whose transparent entry repeats an opaque colour (GIF writers often
    leave it black): the canvas and prediction lookups find the opaque entry, which a
    moved pixel may take, not the transparent one, which it may not."""
    from fpcodec.codec.palette_nearlossless import _canvas_indices

    table = np.array([[0, 0, 0], [0, 0, 0], [90, 90, 90]], np.uint8)
    canvas = np.zeros((2, 3, 4), np.uint8)
    canvas[..., 3] = 255
    canvas[1, 2] = (90, 90, 90, 255)
    predicted = np.zeros((2, 3, 3), np.uint8)
    np.testing.assert_array_equal(
        _canvas_indices(table, canvas, predicted, 0), [[1, 1, 1], [1, 1, 2]]
    )
    canvas[..., 3] = 0  # cleared: the prediction's colours
    np.testing.assert_array_equal(
        _canvas_indices(table, canvas, predicted, 0), [[1, 1, 1], [1, 1, 1]]
    )
    np.testing.assert_array_equal(
        _canvas_indices(table, canvas, None, 0), [[-1, -1, -1], [-1, -1, -1]]
    )


def _trials_with_and_without_back_off(tmp, monkeypatch, frames, pal, quality):
    """Encode a GIF at --quality with the pixel trials' back-off and without it
    (a loss never counts as heavy); returns the two files' bytes and trial counts."""
    from fpcodec.codec import gifchoice

    src = tmp / "src.gif"
    src.write_bytes(build_gif(48, 40, frames, global_palette=pal, loop=0))
    real = gifchoice._PixelTrial
    counts, files = [], []
    with monkeypatch.context() as m:
        trials = []

        def counted(*a):
            trials.append(1)
            return real(*a)

        m.setattr(gifchoice, "_PixelTrial", counted)
        for name in ("back-off", "every"):
            if name == "every":
                m.setattr(gifchoice, "LOSE_BY", 10**9)
            trials.clear()
            fpcodec.encode(src, tmp / f"{name}.fpc", quality=quality, force=True)
            counts.append(len(trials))
            files.append((tmp / f"{name}.fpc").read_bytes())
    return files, counts


def test_pixel_trials_that_keep_losing_heavily_are_skipped_with_the_same_bytes(tmp, monkeypatch):
    """New noise every frame, in a 64-colour palette: at --quality 70 the palette frame
    is a fraction of the pixels' bytes on every frame, so after the first heavy losses
    the trials back off (1, 2, 4 frames), and the file is the one every trial gives."""
    rng = np.random.default_rng(9)
    pal = rng.integers(0, 256, (64, 3)).astype(np.uint8)
    frames = [GifFrame(rng.integers(0, 64, (40, 48)).astype(np.uint8)) for _ in range(10)]
    (backed, every), (n_backed, n_every) = _trials_with_and_without_back_off(
        tmp, monkeypatch, frames, pal, 70
    )
    assert backed == every
    assert n_every == 10 and n_backed == 4, (n_backed, n_every)  # frames 0, 1, 3, 6


def test_a_frame_that_changes_little_is_tried_after_heavy_losses(tmp, monkeypatch):
    """Runs of noise frames that pixels lose heavily, each run ending in a repeat of
    its last frame with one pixel changed, which pixels code for a few bytes: the
    trials back off within a run, the repeat is tried whatever came before, and the
    file is the one every trial gives."""
    rng = np.random.default_rng(11)
    pal = rng.integers(0, 256, (64, 3)).astype(np.uint8)
    frames = []
    for _ in range(2):
        for _ in range(4):
            frames.append(GifFrame(rng.integers(0, 64, (40, 48)).astype(np.uint8)))
        again = frames[-1].indices.copy()
        again[20, 20] = (again[20, 20] + 1) % 64
        frames.append(GifFrame(again))
    (backed, every), (n_backed, n_every) = _trials_with_and_without_back_off(
        tmp, monkeypatch, frames, pal, 70
    )
    assert backed == every
    # frames 0, 1, 3 and the repeat 4; 5, 7 and the repeat 9
    assert (n_backed, n_every) == (7, 10)
    assert "lossy" in fpcodec.info(tmp / "back-off.fpc")["codings"]  # the repeats


def _lzw_codes(indices: np.ndarray, mcs: int, clear_after: int | None) -> np.ndarray:
    """A greedy GIF LZW stream (gifparse's form: -1 for a clear) that clears after
    `clear_after` codes, or never: its table then stays full, as deferred-clear
    encoders leave it."""
    clear = 1 << mcs
    codes, table, nxt, since = [-1], {}, clear + 2, 0
    prefix = int(indices[0])
    for k in map(int, indices[1:]):
        if (prefix, k) in table:
            prefix = table[prefix, k]
            continue
        codes.append(prefix)
        since += 1
        if nxt < 4096:
            table[prefix, k] = nxt
            nxt += 1
        if clear_after is not None and since == clear_after:
            codes.append(-1)
            table, nxt, since = {}, clear + 2, 0
        prefix = k
    codes.append(prefix)
    return np.array(codes, np.int32)


@pytest.mark.parametrize("clear_after", [700, 3836, None])
def test_a_frame_that_moves_nothing_reparses_into_its_source_stream(clear_after):
    """Clearing where the source cleared, not on a full table: GIFs that clear a few
    codes early (3836 codes, the `tnc-*` clips) or never (a full table kept) came out
    of the re-parse with up to twice their codes, and a moved frame started far
    behind its exact one."""
    from fpcodec.codec.palette_nearlossless import _clear_positions, _greedy_lzw

    rng = np.random.default_rng(5)
    runs = rng.integers(1, 6, 12000)
    indices = np.repeat(rng.integers(0, 16, runs.size), runs).astype(np.uint8)[:40000]
    codes = _lzw_codes(indices, 4, clear_after)
    clear_at = _clear_positions(codes, 4)
    assert len(clear_at) - 1 == (codes[1:] == -1).sum()
    identity = np.arange(16, dtype=np.int32)[:, None]
    out_idx = np.empty_like(indices)
    out_codes = np.empty(indices.size + len(clear_at) + 1, np.int32)
    n = _greedy_lzw(
        indices,
        indices,
        identity,
        np.ones(16, np.int32),
        np.zeros(indices.size, np.bool_),
        0,
        True,
        4,
        clear_at,
        out_idx,
        out_codes,
    )
    assert (out_idx == indices).all()
    np.testing.assert_array_equal(out_codes[:n], codes)


def _lzw_indices(codes: np.ndarray, mcs: int) -> np.ndarray:
    """What a GIF decoder reads from a code stream (gifparse's form: -1 for a clear)."""
    clear = 1 << mcs
    out: list[int] = []
    strings: dict[int, list[int]] = {}
    nxt, prev = clear + 2, None
    for c in map(int, codes):
        if c < 0:
            strings, nxt, prev = {}, clear + 2, None
            continue
        if c < clear:
            s = [c]
        elif c in strings:
            s = strings[c]
        else:
            assert c == nxt and prev is not None, f"code {c} not in the dictionary"
            s = prev + prev[:1]
        if prev is not None and nxt < 4096:
            strings[nxt] = prev + s[:1]
            nxt += 1
        out += s
        prev = s
    return np.array(out, np.uint8)


@pytest.mark.parametrize("clear_after", [700, 3836, None])
def test_a_moved_frame_is_a_valid_lzw_stream_of_its_moved_indices(clear_after):
    """Phrases that go on through substitutes shift every later phrase against the
    source's clears: the moved stream must still decode to the moved indices, with
    each index within the bound of the source's."""
    from fpcodec.codec.gifparse import GifFrame as ParsedFrame
    from fpcodec.codec.palette_nearlossless import allowed_indices, reparse

    rng = np.random.default_rng(9)
    table = np.repeat(np.arange(0, 64, 4)[:, None], 3, axis=1).astype(np.uint8)  # 16 greys
    runs = rng.integers(1, 6, 12000)
    indices = np.repeat(rng.integers(0, 16, runs.size), runs).astype(np.uint8)[:40000]
    frame = ParsedFrame(
        0, 0, 200, 200, table, None, 1, True, 5, False, 4,
        _lzw_codes(indices, 4, clear_after), indices,
    )  # fmt: skip
    allowed, n_allowed = allowed_indices(table, 4, None)
    moved, codes = reparse(frame, indices, allowed, n_allowed)
    assert (moved != indices).mean() > 0.05  # phrases did go on through substitutes
    np.testing.assert_array_equal(_lzw_indices(codes, 4), moved)
    err = np.abs(table[moved].astype(int) - table[indices]).max()
    assert err <= 4


def _disposal_gif(n: int = 8, h: int = 32, w: int = 40) -> bytes:
    """A grey gradient, then partial frames with holes under every disposal (1, 2, 3)
    over it: at --quality 25 pixels win frames after the first, so a shadow keeps the
    lossless GOP through frames whose disposals the compositor must carry."""
    pal = np.concatenate(
        [np.repeat(np.arange(0, 256, 4)[:, None], 3, axis=1), np.zeros((64, 3), int)]
    ).astype(np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for t in range(n):
        v = (xx * 5 + yy * 3 + 11 * t) % 256 / 4.0
        idx = np.clip(np.round(v), 0, 63).astype(np.uint8)
        if t == 0:
            frames.append(GifFrame(idx, delay_cs=4))
            continue
        sub = idx[4 + t : 20 + t, 2 * t : 2 * t + 18].copy()
        sub[::3, ::4] = 127  # transparent: the canvas shows through
        frames.append(
            GifFrame(sub, x=2 * t, y=4 + t, transparency=127, disposal=1 + t % 3, delay_cs=4)
        )
    return build_gif(w, h, frames, global_palette=pal, loop=0)


def _noise_then_gradient_gif(first_transparent: bool, n: int = 7, h: int = 32, w: int = 40):
    """Two frames of index noise (the palette coding wins them), then partial frames
    of a moving gradient with holes under disposals 1, 2 and 3: at --quality 5 pixels
    win from the second or third frame, so a shadow starts from a predicted frame.
    With a transparent index in the first frame the compositor is in RGBA mode."""
    rng = np.random.default_rng(4)
    greys = np.repeat(np.arange(0, 256, 4)[:, None], 3, axis=1)
    pal = np.concatenate([greys, rng.integers(0, 256, (64, 3))]).astype(np.uint8)
    noise = rng.integers(64, 128, (h, w)).astype(np.uint8)
    frames = [GifFrame(noise, delay_cs=4, transparency=127 if first_transparent else None)]
    frames.append(GifFrame(rng.integers(64, 128, (4, 4)).astype(np.uint8), x=5, y=5))
    yy, xx = np.mgrid[0:h, 0:w]
    for t in range(2, n):
        g = np.clip(np.round(((xx + 2 * t) * 6 + yy * 2) % 256 / 4.0), 0, 63).astype(np.uint8)
        sub = g[2:30, 2:38].copy()
        sub[::5, ::7] = 127
        frames.append(GifFrame(sub, x=2, y=2, transparency=127, disposal=1 + t % 3, delay_cs=4))
    return build_gif(w, h, frames, global_palette=pal, loop=0)


SHADOW_CASES = {
    # name: (GIF, quality, whether the shadow starts from the keyframe)
    "from-keyframe": (_disposal_gif, 25, True),
    "from-predicted": (lambda: _noise_then_gradient_gif(False), 5, False),
    "rgba-mode": (lambda: _noise_then_gradient_gif(True), 5, False),
}


@pytest.mark.parametrize("case", sorted(SHADOW_CASES))
def test_the_shadow_ends_each_frame_where_drawing_the_frame_would(tmp, monkeypatch, case):
    """The lossless twin of a GOP (gifchoice.Shadow) takes the encoder's exact
    compositor after each frame instead of drawing the frame over its own: the two
    are the same state (the same canvas, flags and pending disposal) on every step,
    through disposals 1, 2 and 3, for a shadow started from a keyframe or from a
    predicted frame, in RGB and RGBA mode. And once a frame of another coding is
    kept, the palette stream has let go of the canvas its last palette frame drew,
    and the file still decodes (every frame's CRC checked)."""
    from fpcodec.codec import framecodec, gifchoice
    from fpcodec.codec.container import CODING_PALETTE
    from fpcodec.codec.gifcompose import composite, same_pixels

    make, quality, from_key = SHADOW_CASES[case]
    starts, steps, modes, dropped = [], [], set(), []
    start = gifchoice.Shadow.__init__
    step = gifchoice.Shadow.step

    def starting(self, frames, ps, predictor):
        starts.append(len(frames))  # the GOP's frames so far, this one included
        start(self, frames, ps, predictor)

    def drawing_step(self, gif, after):
        drawn_state = self.ps.compositor.copy()
        drawn = composite(drawn_state, gif, self.ps.global_palette)
        ok = step(self, gif, after)
        if ok:
            assert same_pixels(drawn, self.ps.compositor.canvas)
            for f in ("first", "rgba_mode", "disposal", "background"):
                assert getattr(drawn_state, f) == getattr(self.ps.compositor, f), f
            a, b = drawn_state.pending, self.ps.compositor.pending
            assert (a is None) == (b is None)
            if a is not None:
                assert a[:4] == b[:4] and np.array_equal(a[4], b[4])
            steps.append(gif.disposal)
            modes.add(drawn_state.rgba_mode)
        return ok

    finish = framecodec.StreamState.finish_frame

    def finishing(self, recon, coding):
        finish(self, recon, coding)
        if coding != CODING_PALETTE and self._palette is not None:
            dropped.append(self._palette.compositor is None)

    monkeypatch.setattr(gifchoice.Shadow, "__init__", starting)
    monkeypatch.setattr(gifchoice.Shadow, "step", drawing_step)
    monkeypatch.setattr(framecodec.StreamState, "finish_frame", finishing)
    (tmp / "src.gif").write_bytes(make())
    ref, _, _ = read_frames(tmp / "src.gif")
    fpcodec.encode(tmp / "src.gif", tmp / "q.fpc", quality=quality, force=True)
    assert starts and (starts[0] == 1) == from_key, starts  # the path this case is for
    assert {1, 2, 3} <= set(steps), steps  # every disposal went through the shadow
    assert modes == {case == "rgba-mode"}, modes
    assert dropped and all(dropped), dropped
    _, out, _ = fpcodec.decode_frames(tmp / "q.fpc")
    assert len(out) == len(ref)


def test_a_palette_frame_that_cannot_be_kept_is_not_drawn(tmp, monkeypatch):
    """At --quality the pixel trial runs first; a palette trial whose body is already
    over what _choose keeps is not drawn (its canvas was a frame at the encoder's
    peak), and the file is the one drawing every trial gives."""
    from fpcodec.codec import gifchoice

    drawn = []
    draw = gifchoice.composite
    monkeypatch.setattr(gifchoice, "composite", lambda *a: drawn.append(1) or draw(*a))
    (tmp / "src.gif").write_bytes(_disposal_gif())
    trial = gifchoice._palette_trial
    files = []
    # the same trials with no limit passed in: every frame is drawn (_choose keeps its
    # own bound, _keep_limit, either way)
    for palette_trial in (trial, lambda *a: trial(*a[:-1], float("inf"))):
        monkeypatch.setattr(gifchoice, "_palette_trial", palette_trial)
        drawn.clear()
        fpcodec.encode(tmp / "src.gif", tmp / "q.fpc", quality=25, force=True)
        files.append(((tmp / "q.fpc").read_bytes(), len(drawn)))
    (limited, n_limited), (every, n_every) = files
    assert limited == every
    assert n_limited < n_every, (n_limited, n_every)


@pytest.mark.parametrize("case", sorted(SHADOW_CASES))
def test_the_gif_frame_before_is_let_go_before_the_pixel_trial(tmp, monkeypatch, case):
    """With a shadow under way and the frame before coded as pixels, nothing holds
    that frame of the GIF once this one's trials start: the shadow has coded this
    frame first (_step_shadow) and a predicted frame's trials get the compositor's
    flags without its canvas (CompositorState.without_canvas). Holding it put a
    frame beside the pixel trial's planes at the encoder's peak."""
    import weakref

    from fpcodec.codec import encoder, gifchoice
    from fpcodec.codec.container import CODING_LOSSY

    make, quality, _ = SHADOW_CASES[case]
    frames = []  # [a weak reference to the source frame, its coding once known]
    add = encoder.Encoder.add

    def adding(self, rgba, duration, gif=None):
        frames.append([weakref.ref(rgba[0]), None])
        report = add(self, rgba, duration, gif)
        frames[-1][1] = report.coding
        return report

    let_go = []
    start_trial = gifchoice._PixelTrial.__init__

    def trial(self, state, rgba, key, prediction):
        if not key and state.shadow is not None and frames[-2][1] == CODING_LOSSY:
            let_go.append(frames[-2][0]() is None)
        start_trial(self, state, rgba, key, prediction)

    monkeypatch.setattr(encoder.Encoder, "add", adding)
    monkeypatch.setattr(gifchoice._PixelTrial, "__init__", trial)
    (tmp / "src.gif").write_bytes(make())
    fpcodec.encode(tmp / "src.gif", tmp / "q.fpc", quality=quality, force=True)
    assert len(let_go) >= 2 and all(let_go), let_go
