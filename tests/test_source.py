"""Reading sources: a GIF's frames converted where they changed, band by band, equal
Pillow's whole frames, on every disposal, transparency, interlace and palette layout,
the malformed inputs and the corpus."""

from __future__ import annotations

import numpy as np
import pytest
from fpcodec.codec.errors import FpcError
from fpcodec.codec.source import open_source

from .conftest import BADINPUT, CORPUS, needs
from .gifbuild import GifFrame, build_gif
from .test_palette import structured_gif


def _both(path):
    out = []
    for incremental in (True, False):
        with open_source(path) as src:
            src.incremental = incremental
            out.append([(f.rgba, f.duration_ms) for f in src.frames()])
    return out


def _assert_same(path) -> int:
    changed, whole = _both(path)
    assert len(changed) == len(whole)
    for (a, da), (b, db) in zip(changed, whole, strict=True):
        np.testing.assert_array_equal(a, b)
        assert da == db
    return len(whole)


def _layout(seed: int, disposals: tuple | None = None) -> bytes:
    """A structured GIF whose disposals, interlace, palette and transparency vary with
    the seed."""
    if disposals is None:
        disposals = [(1, 2, 3, 0), (2, 3, 0, 2), (1, 4, 5, 7), (0, 3, 3, 1)][seed % 4]
    return structured_gif(
        seed,
        disposals,
        interlace=seed % 2 == 1,
        global_palette=seed % 3 != 2,
        transparency_first=seed % 3 == 0,
    )


@pytest.mark.parametrize("seed", range(12))
def test_frames_converted_where_they_changed_equal_whole_frames(tmp, seed, monkeypatch):
    import fpcodec.codec.source as source

    boxes = []
    real = source._update
    monkeypatch.setattr(source, "_update", lambda b, im, box: boxes.append(box) or real(b, im, box))
    (tmp / "s.gif").write_bytes(_layout(seed))
    assert _assert_same(tmp / "s.gif") == 7
    assert boxes  # some frames were converted in part (the rest: most of the screen)


@pytest.mark.parametrize("seed", range(0, 12, 3))
def test_frames_converted_band_by_band_equal_whole_frames(tmp, seed, monkeypatch):
    """source.pillow_rgba converts CONVERT_PIXELS at a time (at most a band's copies
    beside the frame): bands of a few rows, whole frames and changed boxes alike, with
    transparent pixels' colour zeroed in each band, are Pillow's whole conversion."""
    import fpcodec.codec.source as source

    bands = []
    real = source.row_bands
    monkeypatch.setattr(
        source, "row_bands", lambda h, w, px: bands.append(len(real(h, w, px))) or real(h, w, px)
    )
    monkeypatch.setattr(source, "CONVERT_PIXELS", 97)
    data = structured_gif(seed, (1, 2, 3, 0), interlace=seed % 2 == 1, transparency_first=True)
    (tmp / "s.gif").write_bytes(data)
    assert _assert_same(tmp / "s.gif") == 7
    assert max(bands) > 3


def test_a_one_pixel_frame_converts_one_pixel(tmp, monkeypatch):
    """What the third frame on converts is the two frames' rectangles, not the screen."""
    import fpcodec.codec.source as source

    base = (np.arange(64 * 48).reshape(48, 64) % 4).astype(np.uint8)
    frames = [GifFrame(base)] + [
        GifFrame(np.array([[t % 4]], np.uint8), x=3 * t, y=2 * t, disposal=1 + t % 3)
        for t in range(6)
    ]
    pal = np.array([[0, 0, 0], [250, 20, 20], [20, 240, 40], [200, 200, 50]], np.uint8)
    (tmp / "one.gif").write_bytes(build_gif(64, 48, frames, pal))
    boxes = []
    real = source._update
    monkeypatch.setattr(source, "_update", lambda b, im, box: boxes.append(box) or real(b, im, box))
    assert _assert_same(tmp / "one.gif") == 7
    assert len(boxes) == 5  # every frame after the second
    assert all((x1 - x0) * (y1 - y0) <= 16 for x0, y0, x1, y1 in boxes)


def _read_or_refuse(path, incremental: bool):
    try:
        with open_source(path) as src:
            src.incremental = incremental
            return [f.rgba for f in src.frames()]
    except FpcError as e:
        return str(e)


@needs(BADINPUT)
def test_malformed_inputs_read_alike_either_way():
    paths = sorted(BADINPUT.glob("*.gif"))
    assert paths
    for path in paths:
        a, b = _read_or_refuse(path, True), _read_or_refuse(path, False)
        if isinstance(b, str):
            assert a == b, path.name  # the same one-line refusal
        else:
            assert len(a) == len(b), path.name
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(x, y, err_msg=path.name)


@needs(CORPUS)
def test_corpus_gifs_read_alike_either_way(monkeypatch):
    import fpcodec.codec.source as source

    paths = sorted(CORPUS.glob("*.gif"))[::12]
    assert paths
    for path in paths:
        _assert_same(path)
    monkeypatch.setattr(source, "CONVERT_PIXELS", 1 << 12)  # bands of a few rows
    for path in paths[::3]:
        _assert_same(path)


def test_a_whole_screen_frame_handed_out_is_not_kept_by_the_source(tmp):
    """The encode loop hands each frame to the coder, which lets it go once in planes
    (128 MiB at the size cap); the source must not keep it meanwhile. It keeps the
    frame before only where the next frame's changed box can use it (a small frame)."""
    import weakref

    import fpcodec

    from .conftest import moving_clip, save_gif

    rng = np.random.default_rng(3)
    pal = rng.integers(0, 256, (4, 3))
    gif = tmp / "whole.gif"  # every frame covers the screen
    gif.write_bytes(
        build_gif(32, 24, [GifFrame(rng.integers(0, 4, (24, 32))) for _ in range(4)], pal)
    )
    fpcodec.encode(
        save_gif(tmp / "m.gif", moving_clip(4, 24, 32, seed=2)), tmp / "m.fpc", quality=60
    )
    fpcodec.decode(tmp / "m.fpc", tmp / "m.mkv", lossless_video=True)
    small = tmp / "small.gif"  # one-pixel frames after the first: the frame before is kept
    first = GifFrame(np.zeros((32, 32), np.uint8))
    dots = [GifFrame(np.ones((1, 1), np.uint8), x=i, y=i) for i in range(1, 4)]
    small.write_bytes(build_gif(32, 32, [first, *dots], np.array([[0, 0, 0], [255, 0, 0]])))
    # read without the parsed GIF frames: Pillow's path. With them, the compositor
    # keeps the frame it drew as its canvas, the array the encoder's exact compositor
    # keeps too (framecodec._gif_step): no frame beside the encoder's
    cases = ((gif, False, False), (tmp / "m.mkv", True, False), (small, False, True))
    for path, parsed, kept in (*cases, (gif, True, True)):
        with open_source(path) as src:
            frames = src.frames(gif=parsed)
            n = 0
            for frame in frames:
                ref = weakref.ref(frame.rgba)
                del frame
                if n >= 1:  # from the second frame on (the first has no extent to keep)
                    assert (ref() is not None) == kept, path
                n += 1
            assert n == 4, path


def _composited(path) -> tuple[int, int]:
    with open_source(path) as src:
        n = len(list(src.frames()))
        return src.composited, n


@pytest.mark.parametrize("seed", range(8))
def test_a_gif_read_for_the_encoder_is_drawn_by_the_compositor(tmp, seed):
    """Every frame of these GIFs, through every disposal (the first frame's too),
    transparency, interlace and palette layout, is drawn by fpcodec's compositor (the
    first pass found it draws them as Pillow does), and the frames are Pillow's
    whole conversions."""
    if seed < 4:  # each disposal on the first frame
        (tmp / "s.gif").write_bytes(_layout(seed, (1, 2, 3, 0)[seed:] + (1, 2, 3, 0)[:seed]))
    else:
        (tmp / "s.gif").write_bytes(_layout(seed))
    assert _assert_same(tmp / "s.gif") == 7
    assert _composited(tmp / "s.gif") == (7, 7)


@pytest.mark.parametrize("differs_at", [0, 1, 4, 6])
def test_pillow_reads_on_from_the_first_frame_the_compositor_draws_otherwise(
    tmp, monkeypatch, differs_at
):
    """Where the compositor would draw a frame otherwise than Pillow (here it is made
    to), the frames before it are the compositor's and Pillow reads from that one on:
    every frame is still Pillow's, with its parsed GIF frame and duration."""
    import fpcodec.codec.source as source

    data = structured_gif(3, (1, 2, 3, 0), interlace=False, transparency_first=True)
    (tmp / "s.gif").write_bytes(data)
    ref = _both(tmp / "s.gif")[1]
    drawn = []
    real = source.composite

    def composite(state, frame, palette):
        out = real(state, frame, palette)
        drawn.append(1)
        if len(drawn) == differs_at + 1:  # the first pass's frame `differs_at`
            out = out.copy()
            out[0, 0, 3] ^= 1
        return out

    monkeypatch.setattr(source, "composite", composite)
    with open_source(tmp / "s.gif") as src:
        got = list(src.frames())
        assert src.composited == differs_at
    assert len(got) == len(ref) == 7
    for frame, (rgba, duration) in zip(got, ref, strict=True):
        np.testing.assert_array_equal(frame.rgba, rgba)
        assert frame.duration_ms == duration
        assert frame.gif is not None
    with open_source(tmp / "s.gif") as src:
        parsed = [f.gif for f in src.frames()]
    for a, b in zip(got, parsed, strict=True):
        assert (a.gif.x, a.gif.y, a.gif.w, a.gif.h) == (b.x, b.y, b.w, b.h)
        np.testing.assert_array_equal(a.gif.indices, b.indices)


@needs(CORPUS)
def test_corpus_gifs_are_drawn_by_the_compositor():
    """The compositor draws the corpus's GIFs as Pillow does, frame for frame (where it
    did not, the encoder would have coded those frames as pixels all along)."""
    paths = sorted(CORPUS.glob("*.gif"))[::6]
    short = {p.name: c for p in paths for c in [_composited(p)] if c[0] != c[1]}
    assert not short, short


def test_composited_frames_are_read_only(tmp):
    """The compositor draws the next frame over the one it handed out: a frame
    written into would show in every later frame, with no Pillow frame to catch it."""
    data = structured_gif(1, (1, 2, 3, 0), interlace=False, transparency_first=False)
    (tmp / "s.gif").write_bytes(data)
    with open_source(tmp / "s.gif") as src:
        frames = list(src.frames())
        assert src.composited == len(frames)
    for f in frames:
        with pytest.raises(ValueError):
            f.rgba[0, 0, 0] = 1


def test_a_gif_that_changes_between_the_passes_is_refused_in_one_line(tmp, monkeypatch):
    """The second pass reads the frames the first one found drawn alike; a file cut
    short in between is an input error, not frames silently lost."""
    from fpcodec.codec.source import PillowSource

    data = structured_gif(2, (1, 2, 3, 0), interlace=False, transparency_first=False)
    path = tmp / "s.gif"
    path.write_bytes(data)
    first_pass = PillowSource._composited_alike

    def then_cut(self):
        durations = first_pass(self)
        path.write_bytes(data[: len(data) // 2])
        return durations

    monkeypatch.setattr(PillowSource, "_composited_alike", then_cut)
    with open_source(path) as src, pytest.raises(FpcError, match="changed while it was read"):
        list(src.frames())
