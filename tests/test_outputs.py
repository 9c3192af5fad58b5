"""Decoded output files: each format read back gives the frames that went in."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import fpcodec

from .conftest import assert_same_visible, moving_clip, read_frames, save_gif
from .gifbuild import GifFrame, build_gif


@pytest.fixture
def coded(tmp):
    frames = moving_clip(5, 21, 26, alpha=True)
    src = save_gif(tmp / "in.gif", frames, durations=[20, 30, 40, 50, 60], loop=0)
    fpcodec.encode(src, tmp / "in.fpc", predictor="last")
    return src, tmp / "in.fpc"


@pytest.mark.parametrize("suffix", [".gif", ".webp", ".png", ".apng"])
def test_lossless_animated_outputs_are_exact(tmp, coded, suffix):
    src, fpc = coded
    ref, durations, loop = read_frames(src)
    fpcodec.decode(fpc, tmp / f"out{suffix}")
    back, back_durations, back_loop = read_frames(tmp / f"out{suffix}")
    assert len(back) == len(ref)
    for a, b in zip(ref, back, strict=True):
        assert_same_visible(a, b)
    assert back_durations == durations
    if suffix == ".gif":
        assert back_loop == loop


def test_png_directory_sorted_and_rgba(tmp, coded):
    src, fpc = coded
    ref, _, _ = read_frames(src)
    fpcodec.decode(fpc, str(tmp / "frames") + "/")
    files = sorted((tmp / "frames").iterdir())
    assert [f.name for f in files] == [f"frame_{i:06d}.png" for i in range(len(ref))]
    for a, f in zip(ref, files, strict=True):
        im = Image.open(f)
        assert im.mode == "RGBA"
        assert_same_visible(a, np.asarray(im))


def test_mp4_output_decodes_with_right_frame_count(tmp, coded):
    import av

    _, fpc = coded
    fpcodec.decode(fpc, tmp / "out.mp4")
    with av.open(str(tmp / "out.mp4")) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == 5 and (frames[0].width, frames[0].height) == (26, 22)


def _disposal_gif() -> bytes:
    """Every disposal method, local palettes, transparency, partial and interlaced frames."""
    rng = np.random.default_rng(0)
    gpal = rng.integers(0, 256, (8, 3))
    frames = [
        GifFrame(rng.integers(0, 8, (12, 16)).astype(np.uint8), disposal=1),
        GifFrame(
            rng.integers(0, 4, (5, 6)).astype(np.uint8),
            x=3,
            y=2,
            palette=rng.integers(0, 256, (4, 3)),
            disposal=2,
            transparency=1,
        ),
        GifFrame(
            rng.integers(0, 8, (7, 9)).astype(np.uint8),
            x=5,
            y=4,
            disposal=3,
            interlace=True,
            transparency=0,
        ),
        GifFrame(
            rng.integers(0, 16, (12, 16)).astype(np.uint8),
            palette=rng.integers(0, 256, (16, 3)),
            disposal=0,
            transparency=3,
        ),
        GifFrame(
            rng.integers(0, 8, (3, 3)).astype(np.uint8), x=13, y=9, disposal=2, transparency=2
        ),
        GifFrame(rng.integers(0, 8, (2, 2)).astype(np.uint8), x=0, y=0, disposal=1),
    ]
    return build_gif(16, 12, frames, global_palette=gpal, loop=None)


@pytest.mark.parametrize("predictor", ["last"])
def test_structured_gif_survives_fpc_and_gif_output(tmp, predictor):
    src = tmp / "d.gif"
    src.write_bytes(_disposal_gif())
    ref, durations, loop = read_frames(src)
    assert loop is None and len(ref) == 6
    fpcodec.encode(src, tmp / "d.fpc", predictor=predictor)
    fpcodec.decode(tmp / "d.fpc", tmp / "back.gif")
    back, back_durations, back_loop = read_frames(tmp / "back.gif")
    assert back_loop is None and back_durations == durations
    for a, b in zip(ref, back, strict=True):
        assert_same_visible(a, b)


def test_a_large_frame_is_quantised_from_a_sample_to_its_nearest_table_colours(tmp, monkeypatch):
    """Beyond QUANTISE_WHOLE painted pixels the table comes from a sample; every pixel
    still shows the table colour nearest to the decoder's reconstruction."""
    from fpcodec.codec import gifwriter

    monkeypatch.setattr(gifwriter, "QUANTISE_WHOLE", 100)
    rng = np.random.default_rng(1)
    src = tmp / "many.png"
    Image.fromarray(rng.integers(0, 256, (30, 40, 3)).astype(np.uint8)).save(src)
    fpcodec.encode(src, tmp / "m.fpc", predictor="last")
    assert fpcodec.decode(tmp / "m.fpc", tmp / "m.gif").quantised_frames == 1
    recon = fpcodec.decode_frames(tmp / "m.fpc")[1][0][..., :3].reshape(-1, 1, 3).astype(int)
    shown, _, _ = read_frames(tmp / "m.gif")
    out = shown[0][..., :3].reshape(-1, 3).astype(int)
    used = np.unique(out, axis=0)
    assert 50 < len(used) <= 100  # the table of a sample of 100 pixels
    nearest = ((recon - used[None]) ** 2).sum(axis=2).min(axis=1)
    np.testing.assert_array_equal(((recon[:, 0] - out) ** 2).sum(axis=1), nearest)


def test_gif_output_with_many_colours_is_quantised_and_counted(tmp):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (20, 20, 3)).astype(np.uint8) for _ in range(2)]
    src = tmp / "many.png"
    Image.fromarray(frames[0]).save(src)
    fpcodec.encode(src, tmp / "m.fpc", predictor="last")
    r = fpcodec.decode(tmp / "m.fpc", tmp / "m.gif")
    assert r.quantised_frames == 1


def _decode_with_overlap(tmp, coded, out, overlap: bool, monkeypatch) -> bytes:
    from fpcodec.codec import sinks

    monkeypatch.setattr(sinks, "OVERLAP_PIXELS", 1 << 21 if overlap else 0)
    fpcodec.decode(coded, out, force=True)
    return out.read_bytes()


@pytest.mark.parametrize("suffix", [".gif", ".png"])
def test_writing_beside_the_decoder_writes_the_same_file(tmp, monkeypatch, suffix):
    """Frames written on a second thread while the next is decoded make the file that
    writing in turn makes (lossy frames: the GIF writer quantises each)."""
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba is allowed one thread here")
    src = save_gif(tmp / "in.gif", moving_clip(7, 40, 56, seed=8), durations=30)
    fpcodec.encode(src, tmp / "q.fpc", quality=30, palette=False)
    turns = _decode_with_overlap(tmp, tmp / "q.fpc", tmp / f"a{suffix}", False, monkeypatch)
    beside = _decode_with_overlap(tmp, tmp / "q.fpc", tmp / f"b{suffix}", True, monkeypatch)
    assert beside == turns


def test_a_writer_error_reaches_the_caller_and_the_frame_in_flight_is_waited_for(monkeypatch):
    """The writer's error is raised in the caller's thread; when the caller fails, it
    leaves only after the frame being written is done (the output's temporary file
    goes next)."""
    import threading
    import time

    import numba
    from fpcodec.codec import sinks

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba is allowed one thread here")

    class Failing(sinks.Sink):
        def __init__(self) -> None:
            self.added: list[int] = []
            self.threads: set[str] = set()

        def add(self, rgba, duration_ms):
            self.threads.add(threading.current_thread().name)
            time.sleep(0.05)
            if duration_ms == 3:
                raise OSError("disk full")
            self.added.append(duration_ms)

    frame = np.zeros((4, 4, 4), np.uint8)
    sink = Failing()
    with pytest.raises(OSError, match="disk full"), sinks.writing_beside(sink, 4, 4) as write:
        for d in range(10):
            write(frame, d)
    assert sink.added == [0, 1, 2]
    assert threading.current_thread().name not in sink.threads

    sink = Failing()
    with pytest.raises(KeyboardInterrupt), sinks.writing_beside(sink, 4, 4) as write:
        write(frame, 0)
        raise KeyboardInterrupt
    assert sink.added == [0]  # written before the caller's error left

    sink = Failing()
    with sinks.writing_beside(sink, 4096, 2048) as write:  # over OVERLAP_PIXELS: in turn
        write(frame, 0)
    assert sink.threads == {threading.current_thread().name}
