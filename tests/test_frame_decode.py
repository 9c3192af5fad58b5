"""The decoder's band loop (codec/lossy/frame_decode.py) against the one-kernel loop it
splits (frame.code_frame, decoding): every frame of real streams, intact and damaged,
with the reconstruction on the parse's thread and on a second one."""

from __future__ import annotations

import multiprocessing
import zlib

import numba
import numpy as np
import pytest
from fpcodec.codec.lossy import coder, frame_decode
from fpcodec.codec.lossy.frame import code_frame
from fpcodec.codec.lossy.presets import SLOW
from fpcodec.codec.lossy.transform_quant import DECISION_WEIGHTS

import fpcodec

from .conftest import moving_clip, save_gif


def _reference(ring, order, intra, steps, probs, counts, buf, recon, lv, mvf, act, urefs, mv1s):
    """code_frame decoding the same frame; returns its result and every array it writes."""
    out = [a.copy() for a in (probs, counts, recon, mvf, act, urefs, mv1s)]
    quant = (steps, steps // 3, 1.0, DECISION_WEIGHTS)
    r = code_frame(False, recon, ring, order, intra, quant, 1.0, out[0], out[1], buf, out[2],
                   lv, out[3], out[4], out[5], out[6], SLOW)  # fmt: skip
    return (int(r[0]), int(r[1])), out


def _bands(ring, order, intra, steps, probs, counts, buf, recon, lv, mvf, act, urefs, mv1s):
    out = [a.copy() for a in (probs, counts, recon, mvf, act, urefs, mv1s)]
    r = frame_decode.decode_units(ring, order, intra, steps, out[0], out[1], buf, out[2], lv,
                                  out[3], out[4], out[5], out[6])  # fmt: skip
    return r, out


def _damaged(buf: np.ndarray, lv: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The frame's symbols spoilt three ways: bytes flipped in the middle, cut in half,
    and (zstd baseline) levels and unit symbols overwritten."""
    rng = np.random.default_rng(seed)
    if lv.size:
        spoilt = lv.copy()
        at = rng.integers(0, lv.size, max(1, lv.size // 50))
        spoilt[at] = rng.integers(-(1 << 21), 1 << 21, at.size)
        return [(buf, spoilt)]
    flipped = buf.copy()
    mid = buf.size // 2
    flipped[mid : mid + 16] ^= rng.integers(1, 256, min(16, buf.size - mid)).astype(np.uint8)
    return [(flipped, lv), (buf[: max(1, mid)].copy(), lv)]


@pytest.mark.parametrize("entropy", ["arith", "zstd"])
@pytest.mark.parametrize("threads", [1, 2])
def test_the_band_decoder_gives_what_code_frame_gives(tmp, monkeypatch, entropy, threads):
    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("numba is allowed one thread here")
    # 75 rows: 10 unit rows, so the last band is short; keyframes every 4 frames
    src = save_gif(tmp / "in.gif", moving_clip(9, 75, 88, seed=11), durations=40)
    fpcodec.encode(src, tmp / "q.fpc", quality=40, palette=False, entropy=entropy,
                   keyframe_interval=4)  # fmt: skip
    seen = {"frames": 0, "intra": 0, "damaged": 0}
    decode_units = frame_decode.decode_units

    def both(*args):
        ring, order, intra, steps, probs, counts, buf, recon, lv, *rest = args
        for i, (b, v) in enumerate(_damaged(buf, lv, seen["frames"])):
            spoilt = (ring, order, intra, steps, probs, counts, b, recon, v, *rest)
            want, want_out = _reference(*spoilt)
            got, got_out = _bands(*spoilt)
            assert got == want, f"frame {seen['frames']}, damage {i}"
            if want[1]:  # a damaged frame's units before the damage are rebuilt alike
                seen["damaged"] += 1
                assert np.array_equal(got_out[2], want_out[2])
            else:
                for g, w in zip(got_out, want_out, strict=True):
                    assert np.array_equal(g, w)
        want, want_out = _reference(*args)
        got = decode_units(*args)
        assert got == want
        for g, w in zip((probs, counts, recon, *rest), want_out, strict=True):
            assert np.array_equal(g, w)
        seen["frames"] += 1
        seen["intra"] += bool(intra)
        return got

    numba.set_num_threads(threads)
    try:
        assert (frame_decode._second_thread() is None) == (threads == 1)
        monkeypatch.setattr(coder, "decode_units", both)
        _, frames, _ = fpcodec.decode_frames(tmp / "q.fpc")  # every frame's CRC checked
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert len(frames) == 9
    assert seen["frames"] == 9 and seen["intra"] == 3
    assert seen["damaged"] > 0


def _crc_of_decode(path: str) -> int:
    _, frames, _ = fpcodec.decode_frames(path)
    return zlib.crc32(b"".join(f.tobytes() for f in frames))


def test_a_forked_child_decodes_after_its_parent_did(tmp):
    """The reconstruction thread does not survive a fork (the batch workers fork): a
    child of a process that decoded must start its own, not wait on its parent's."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba is allowed one thread here")
    src = save_gif(tmp / "in.gif", moving_clip(4, 40, 48, seed=2), durations=40)
    fpcodec.encode(src, tmp / "q.fpc", quality=40, palette=False)
    here = _crc_of_decode(str(tmp / "q.fpc"))
    assert frame_decode._pool is not None
    with multiprocessing.get_context("fork").Pool(1) as pool:
        there = pool.apply_async(_crc_of_decode, (str(tmp / "q.fpc"),)).get(timeout=120)
    assert there == here


_HOST = """
import gc, multiprocessing, sys
import fpcodec
from fpcodec.codec import numbastart
from numba.np.ufunc import parallel
fpcodec.decode_frames(sys.argv[1])
fpcodec.decode(sys.argv[1], sys.argv[2], force=True)
multiprocessing.set_start_method("spawn")  # still the host's to choose
assert not parallel._is_initialized, "numba's threading layer started"
assert not numbastart._exit_collection_skipped, "the host's exit changed"
print(gc.isenabled())
"""


def test_decoding_leaves_the_host_process_as_it_was(tmp):
    """A program that decodes through the API keeps its start method to choose, its
    collector on and its exit as it was, and numba's threading layer unstarted (no
    decode kernel is parallel: the second thread is the decoder's own)."""
    import subprocess
    import sys

    src = save_gif(tmp / "in.gif", moving_clip(4, 40, 48, seed=2), durations=40)
    fpcodec.encode(src, tmp / "q.fpc", quality=40, palette=False)
    r = subprocess.run(
        [sys.executable, "-c", _HOST, str(tmp / "q.fpc"), str(tmp / "back.gif")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "True"
