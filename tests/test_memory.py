"""Memory: bounded per coding and predictor (process peak RSS), and independent of
the clip's length (encoding and decoding stream)."""

from __future__ import annotations

import os
import sys
import tracemalloc

import numpy as np
import pytest
from fpcodec.bench.encoder_growth import ONE_SLOT, encode_peak
from fpcodec.bench.encoder_growth import few_colour_gif as _few_colour_gif
from fpcodec.bench.encoder_growth import ring_bytes as _ring_bytes
from fpcodec.codec.gifwriter import GifWriter
from PIL import Image

import fpcodec

from .conftest import moving_clip, save_gif


def _long_gif(path, n: int, size: int = 48) -> None:
    yy, xx = np.mgrid[0:size, 0:size]
    with open(path, "wb") as f:
        w = GifWriter(f, size, size, loop=0, has_alpha=False)
        for t in range(n):
            v = ((xx + 3 * t) // 6 + (yy + t) // 6) % 8 * 32
            frame = np.stack([v, 255 - v, (v * 3) % 256, np.full_like(v, 255)], -1).astype(np.uint8)
            w.add(frame, 20)
        w.close()


def _peak(fn) -> int:
    # Python's own allocations only (tracemalloc cannot see torch or numba memory):
    # enough to show that nothing per frame is kept; the absolute caps below use RSS.
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_is_independent_of_clip_length(tmp):
    short, long_ = tmp / "short.gif", tmp / "long.gif"
    # Both clips span several keyframes (every 120 frames), so both peaks include
    # the transient cost of restarting the models.
    _long_gif(short, 300)
    _long_gif(long_, 1200)
    fpcodec.encode(
        short, tmp / "warm.fpc", predictor="last"
    )  # JIT and caches outside the measurement
    fpcodec.decode(tmp / "warm.fpc", tmp / "warm.gif")
    enc_short = _peak(lambda: fpcodec.encode(short, tmp / "s.fpc", predictor="last"))
    enc_long = _peak(lambda: fpcodec.encode(long_, tmp / "l.fpc", predictor="last"))
    dec_short = _peak(lambda: fpcodec.decode(tmp / "s.fpc", tmp / "s.gif"))
    dec_long = _peak(lambda: fpcodec.decode(tmp / "l.fpc", tmp / "l.gif"))
    # Model tables are a fixed cost; holding the extra 900 frames would add
    # 900 * 48 * 48 * 4 = 8.3 MB to the long run's peak. Allow a fifth of that.
    growth = 900 * 48 * 48 * 4 // 5
    assert enc_long < enc_short + growth
    assert dec_long < dec_short + growth


# Peak resident set of a whole process that encodes and then decodes a 160x120 clip,
# MiB, measured at commit eba03da: importing fpcodec with torch is ~170; palette 407,
# switched 347, residual 347, lossy 362; convlstm 412, convlstm-ae 392, cnn2d 435,
# hybrid3d 676 (its 3D convolution holds every time step at full resolution). The
# caps leave about 40% for allocator and library noise, far less than a frame-sized
# buffer too many at the largest sizes.
GIF_LOSSY_CAP = 800
RSS_CASES = {
    "palette": ({}, 560),
    "switched": ({"palette": False}, 500),
    # the pixel codings alone: a GIF's frames also trial palette coding (below)
    "residual": ({"max_error": 2, "palette": False}, 500),
    "lossy": ({"quality": 50, "palette": False}, 520),
    # a GIF at --max-error / --quality: palette trials hold copies of the palette
    # models (tens of MB each) beside the pixel coding's state
    "gif-near-lossless": ({"max_error": 2}, GIF_LOSSY_CAP),
    "gif-lossy": ({"quality": 50}, GIF_LOSSY_CAP),
    "raw": ({"noise": True}, 500),
    "convlstm": ({"palette": False, "predictor": "convlstm"}, 580),
    "convlstm-ae": ({"palette": False, "predictor": "convlstm-ae"}, 560),
    "cnn2d": ({"palette": False, "predictor": "cnn2d"}, 610),
    "hybrid3d": ({"palette": False, "predictor": "hybrid3d"}, 950),
}


@pytest.mark.parametrize("case", sorted(RSS_CASES))
def test_process_peak_memory_is_capped_for_every_coding_and_predictor(tmp, case):
    from fpcodec.bench.peakrss import run_child

    kw, cap_mb = RSS_CASES[case]
    kw = dict(kw)
    if kw.pop("noise", False):  # incompressible: stored raw
        rng = np.random.default_rng(0)
        frames = [rng.integers(0, 256, (120, 160, 4)).astype(np.uint8) for _ in range(3)]
        src = tmp / "in.png"
        ims = [Image.fromarray(f, "RGBA") for f in frames]
        ims[0].save(src, save_all=True, append_images=ims[1:], duration=40)
    else:
        src = save_gif(tmp / "in.gif", moving_clip(6, 120, 160, seed=3), durations=40)
    code = (
        "import fpcodec, sys; r = fpcodec.encode(sys.argv[1], sys.argv[2], **eval(sys.argv[3]));"
        "fpcodec.decode(sys.argv[2], sys.argv[4]);"
        "print(fpcodec.info(sys.argv[2])['codings'], file=sys.stderr)"
    )
    argv = [sys.executable, "-c", code, str(src), str(tmp / "a.fpc"), repr(kw), str(tmp / "b.gif")]
    rc, peak, err = run_child(argv, timeout=300)
    assert rc == 0, err
    want = {"gif-near-lossless": "palette", "gif-lossy": "palette"}.get(case, case)
    assert (want if want in ("palette", "raw", "lossy", "residual") else "switched") in err
    assert peak <= cap_mb, f"{case}: peak RSS {peak:.0f} MiB over its cap {cap_mb}"


# Issue 20: a decoder's memory is a few frame buffers. The bound is on growth with the
# frame's area (the fixed costs, interpreter and model tables, cancel between the two
# sizes): at the size cap (MAX_PIXELS, 33.5 Mpx) 40 bytes a pixel plus the ~200 MiB
# of a process that has imported fpcodec stays within 1.5 GB. One RGBA frame is 4
# bytes a pixel. The lossy reference ring is counted as it is at the cap (one slot of
# 6 bytes a pixel): below REF_PIXELS it holds more frames, a total bounded by
# REF_PIXELS rather than by the frame's area.
DECODE_BYTES_PER_PIXEL = 40
DECODE_CASES = {
    "palette": {},
    "switched": {"palette": False},
    "residual": {"max_error": 2, "palette": False},
    "lossy": {"quality": 50, "palette": False},
}


@pytest.mark.parametrize("case", sorted(DECODE_CASES))
def test_decoder_memory_is_a_few_frame_buffers(tmp, case):
    from fpcodec.bench.peakrss import run_child

    peaks = {}
    for h, w in ((64, 64), (2048, 2048)):
        src = _few_colour_gif(tmp / f"{h}.gif", h, w)
        fpc = tmp / f"{h}.fpc"
        fpcodec.encode(src, fpc, predictor="last", **DECODE_CASES[case])
        assert case in fpcodec.info(fpc)["codings"], fpcodec.info(fpc)["codings"]
        out = tmp / f"{h}-back.gif"
        argv = [sys.executable, "-m", "fpcodec.cli", "decode", str(fpc), str(out)]
        rc, peak, err = run_child(argv, timeout=300)
        assert rc == 0, err
        peaks[h * w] = peak * 2**20 - _ring_bytes(case == "lossy", h, w)
    (small, p_small), (big, p_big) = sorted(peaks.items())
    per_pixel = (p_big - p_small) / (big - small) + (ONE_SLOT if case == "lossy" else 0)
    print(f"{case}: {per_pixel:.1f} bytes a pixel")
    assert per_pixel <= DECODE_BYTES_PER_PIXEL, f"{case}: {per_pixel:.1f} bytes a pixel"


# Issue 20, the encoders: the same measure of growth with the frame's area, between
# 1 and 4 megapixels (below 1 Mpx the band-sized temporaries, limits.row_bands, still
# grow with the frame). A GIF encode at --max-error or --quality trials palette frames
# beside the pixel coding, so its fixed costs are larger (~350 MiB with the palette
# models' copies): 36 bytes a pixel keeps the whole process at the cap within 1.5 GB.
# The lossy GIF encode is measured on one path ("gif-lossy-one-path") and at the cap
# itself (the slow test below): between 1 and 4 Mpx this GIF's frames change coding
# (palette frames win at 1 Mpx, pixels at 4) and the ring its size, so a slope there
# subtracts one encoder's peak from another's (it read 82.5 bytes a pixel at 7cc5c26,
# 96 at f7824d9, while the peak at the cap went from 1,815 to 1,318 MiB; bench/
# RESULTS.md, "The lossy GIF encoder at the cap when pixels win").
# At these sizes a GIF near-lossless encode peaks where its fixed costs do (model
# copies, band temporaries), so its slope reads low (about -7 here, ~30 at the cap): the
# test catches a new frame-sized temporary of ten bytes a pixel, not one of one.
ENCODE_BYTES_PER_PIXEL = 36
# "gif-lossy-one-path" measures the lossy GIF encode between two sizes where it takes
# the same path (a palette keyframe, then two frames the pixel coding wins; checked)
# with the same reference count (two, so the ring's capacity and its resident slots
# are the same three): 20 bytes a pixel at 7cc5c26, 32 at 832acf4, 51 before it. It
# guards what those commits removed (a frame-sized copy adds 4); it is not the cap's
# path (one reference, the slow test below).
ENCODE_CASES = {
    "residual": {"max_error": 2, "palette": False},
    "gif-near-lossless": {"max_error": 2},
    "gif-lossy-one-path": {"quality": 50},
}
ENCODE_SIZES = {"gif-lossy-one-path": ((2048, 3072), (2048, 4096))}


@pytest.mark.parametrize("case", sorted(ENCODE_CASES))
def test_encoder_memory_is_a_few_frame_buffers(tmp, case):
    peaks, paths = {}, set()
    for h, w in ENCODE_SIZES.get(case, ((1024, 1024), (2048, 2048))):
        src = _few_colour_gif(tmp / f"{h}x{w}.gif", h, w)
        fpc = tmp / f"{h}x{w}.fpc"
        peak = encode_peak(src, fpc, {"predictor": "last", **ENCODE_CASES[case]}, timeout=300)
        peaks[h * w] = peak * 2**20 - _ring_bytes("quality" in ENCODE_CASES[case], h, w)
        paths.add(tuple(sorted(fpcodec.info(fpc)["codings"].items())))
    if case in ENCODE_SIZES:
        assert len(paths) == 1, paths  # one path at both sizes, or the slope mixes two
    (small, p_small), (big, p_big) = sorted(peaks.items())
    lossy = "quality" in ENCODE_CASES[case]
    per_pixel = (p_big - p_small) / (big - small) + (ONE_SLOT if lossy else 0)
    print(f"{case}: {per_pixel:.1f} bytes a pixel")
    assert per_pixel <= ENCODE_BYTES_PER_PIXEL, f"{case}: {per_pixel:.1f} bytes a pixel"


# Issue 20, item 1: a GIF whose pixel trials win every frame after the first, at the
# size cap (one reference). Earlier rounds measured the cap on pictures whose palette
# frames win or whose pixel trials back off (1,407 MiB); this one keeps a shadow and
# a pixel trial per frame: 1,815 MiB at f7824d9, 1,559 at 832acf4, 1,318 at 7cc5c26
# (bench/RESULTS.md, "The lossy GIF encoder at the cap when pixels win").
@pytest.mark.skipif(
    not os.environ.get("FPCODEC_SLOW_TESTS"), reason="a minute; set FPCODEC_SLOW_TESTS=1 to run"
)
def test_a_gif_whose_pixel_frames_win_encodes_at_the_size_cap_within_1_5_gb(tmp):
    from fpcodec.codec.limits import MAX_PIXELS, MAX_SIDE

    src = _few_colour_gif(tmp / "cap.gif", MAX_PIXELS // MAX_SIDE, MAX_SIDE)
    fpc = tmp / "cap.fpc"
    peak = encode_peak(src, fpc, {"quality": 50, "predictor": "last"}, timeout=900)
    codings = fpcodec.info(fpc)["codings"]
    if "lossy" not in codings:
        pytest.fail(f"the pixel trials no longer win here ({codings}): not this path")
    assert peak * 2**20 <= 1.5e9, f"peak {peak:.0f} MiB"


def test_free_heap_pages_go_back_to_the_system_between_phases():
    """codec/heap.py: the free pages a large frame's band temporaries leave between
    blocks that live on are resident until trimmed (glibc); a frame under
    TRIM_PIXELS does not pay for the walk."""
    from fpcodec.codec import heap

    if heap._TRIM is None:
        pytest.skip("no malloc_trim here (not glibc)")

    def resident_mib() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20

    # blocks under the mmap threshold, each followed by a small one that stays:
    # freeing the large ones leaves holes that the heap cannot shrink past
    big, kept = [], []
    for _ in range(400):
        big.append(np.ones(100_000, np.uint8))
        kept.append(np.ones(64, np.uint8))
    del big
    before = resident_mib()
    heap.release_free_memory(heap.TRIM_PIXELS - 1)
    assert resident_mib() > before - 5  # below the threshold: nothing is walked
    heap.release_free_memory(heap.TRIM_PIXELS)
    assert resident_mib() < before - 20
    assert len(kept) == 400


def test_opaque_frames_leave_one_alpha_plane():
    """An opaque frame after an opaque one keeps the alpha plane already there (a new
    plane per frame was a byte a pixel more wherever a trial's checkpoint held the one
    before); after a plane with transparency an opaque frame gets a fresh one, and the
    models' reset, the only writer of a previous plane, leaves it opaque."""
    from fpcodec.codec.alpha import AlphaState

    state = AlphaState(4, 5)
    first = state.opaque()
    assert state.opaque() is first and (first == 255).all()
    state.prev = np.zeros((4, 5), np.uint8)  # a frame with transparent pixels
    assert state.opaque() is not first
    state.reset()
    assert state.opaque() is state.prev and (state.prev == 255).all() and (first == 255).all()


def test_encoder_growth_reports_every_size_and_the_growth_between(tmp):
    """bench/encoder_growth.py, the command behind the issue-20 tables in RESULTS.md."""
    import json

    from fpcodec.bench import encoder_growth

    out = tmp / "growth.json"
    assert encoder_growth.main(["64x128", "64x64", "-o", str(out)]) == 0
    got = json.loads(out.read_text())
    assert [(r["height"], r["width"]) for r in got["rows"]] == [(64, 64), (64, 128)]
    assert all(r["peak_mib"] > 50 and r["bytes"] > 0 and r["codings"] for r in got["rows"])
    assert [(g["from"], g["to"]) for g in got["growth"]] == [(4096, 8192)]


@pytest.mark.parametrize(
    "kw", [{"palette": False}, {"max_error": 2, "palette": False}, {"quality": 40}]
)
def test_alpha_survives_runs_of_opaque_frames_between_transparent_ones(tmp, kw):
    """The shared opaque plane (AlphaState.opaque) on every pixel coding, encoder and
    decoder: opaque, opaque, holes, opaque, holes, opaque decodes with every frame's
    alpha exact (alpha is lossless at every setting) and, lossless, every pixel."""
    rng = np.random.default_rng(2)
    frames = []
    for t, holes in enumerate((0, 0, 1, 0, 1, 0)):
        f = np.zeros((24, 32, 4), np.uint8)
        f[..., :3] = np.arange(32)[None, :, None] * 7 + 5 * t + rng.integers(0, 3, (24, 32, 3))
        f[..., 3] = 255
        if holes:
            f[3 + t : 12 + t, 4:20, 3] = 0
            f[f[..., 3] == 0, :3] = 0
        frames.append(f)
    src = tmp / "in.png"
    ims = [Image.fromarray(f, "RGBA") for f in frames]
    ims[0].save(src, save_all=True, append_images=ims[1:], duration=40)
    fpcodec.encode(src, tmp / "a.fpc", predictor="last", force=True, **kw)
    _, out, _ = fpcodec.decode_frames(tmp / "a.fpc")
    assert len(out) == len(frames)
    for a, b in zip(frames, out, strict=True):
        np.testing.assert_array_equal(a[..., 3], b[..., 3])
        if not kw.get("quality") and not kw.get("max_error"):
            np.testing.assert_array_equal(a, b)
