"""Encode -> .fpc -> decode through the public API and the real decoder."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fpcodec.codec.container import CODING_RAW, KEY, StreamHeader
from fpcodec.codec.decoder import Decoder
from fpcodec.codec.encoder import Encoder
from fpcodec.models.last import LastFramePredictor
from hypothesis import given, settings
from hypothesis import strategies as st

import fpcodec

from .conftest import CORPUS, assert_same_visible, moving_clip, needs, read_frames, save_gif


def _encode_memory(frames, durations=None, **kw) -> tuple[bytes, list[np.ndarray]]:
    h, w = frames[0].shape[:2]
    buf = io.BytesIO()
    enc = Encoder(buf, StreamHeader(w, h, **kw), LastFramePredictor())
    recons = [enc.add(f, (durations or [40] * len(frames))[i]).recon for i, f in enumerate(frames)]
    enc.close()
    return buf.getvalue(), recons


def _decode_memory(data: bytes) -> list[np.ndarray]:
    return [f.rgba for f in Decoder(io.BytesIO(data))]


@pytest.mark.parametrize("entropy", ["arith", "zstd"])
@pytest.mark.parametrize("alpha", [False, True])
def test_lossless_gif_round_trip_keeps_frames_durations_loop(tmp, entropy, alpha):
    frames = moving_clip(7, 19, 27, alpha=alpha)
    src = save_gif(tmp / "in.gif", frames, durations=[30, 40, 50, 60, 70, 80, 90], loop=2)
    ref, durations, loop = read_frames(src)
    fpcodec.encode(src, tmp / "a.fpc", entropy=entropy, predictor="last")
    header, out, out_durations = fpcodec.decode_frames(tmp / "a.fpc")
    assert len(out) == len(ref) and out_durations == durations and header.loop == loop
    assert header.has_alpha == alpha
    for a, b in zip(ref, out, strict=True):
        assert_same_visible(a, b)


def test_encoder_reconstruction_is_what_the_decoder_produces():
    frames = moving_clip(9, 16, 16, alpha=True)
    data, recons = _encode_memory(frames, max_error=3, keyframe_interval=4)
    for r, d in zip(recons, _decode_memory(data), strict=True):
        np.testing.assert_array_equal(r, d)


@settings(max_examples=25, deadline=None)
@given(
    e=st.integers(0, 10),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    n=st.integers(1, 5),
    kint=st.integers(0, 3),
    entropy=st.sampled_from(["arith", "zstd"]),
    seed=st.integers(0, 2**31),
)
def test_max_error_bound_holds_on_every_pixel(e, h, w, n, kint, entropy, seed):
    rng = np.random.default_rng(seed)
    frames = []
    base = rng.integers(0, 256, (h, w, 3))
    for _ in range(n):
        base = np.clip(base + rng.integers(-20, 21, base.shape), 0, 255)
        alpha = np.where(rng.random((h, w)) < 0.2, 0, 255)
        f = np.concatenate([base, alpha[..., None]], -1).astype(np.uint8)
        f[f[..., 3] == 0, :3] = 0
        frames.append(f)
    data, recons = _encode_memory(frames, max_error=e, keyframe_interval=kint, entropy=entropy)
    decoded = _decode_memory(data)
    for src, rec, dec in zip(frames, recons, decoded, strict=True):
        np.testing.assert_array_equal(rec, dec)
        assert_same_visible(src, dec, tol=e)


def test_keyframes_follow_the_interval():
    frames = moving_clip(10, 8, 8)
    h, w = 8, 8
    buf = io.BytesIO()
    enc = Encoder(buf, StreamHeader(w, h, keyframe_interval=4), LastFramePredictor())
    types = [enc.add(f, 10).frame_type for f in frames]
    enc.close()
    assert [i for i, t in enumerate(types) if t == KEY] == [0, 4, 8]


def test_single_frame_and_odd_sizes(tmp):
    for h, w in ((1, 1), (1, 7), (9, 1), (13, 17)):
        frames = moving_clip(1, h, w)
        data, _ = _encode_memory(frames)
        (out,) = _decode_memory(data)
        assert_same_visible(frames[0], out)


def test_incompressible_frames_fall_back_to_raw_and_stay_exact():
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (16, 16, 4)).astype(np.uint8) for _ in range(4)]
    for f in frames:
        f[f[..., 3] == 0, :3] = 0
    data, _recons = _encode_memory(frames)
    decoded = list(Decoder(io.BytesIO(data)))
    assert [d.coding for d in decoded] == [CODING_RAW] * len(frames)
    for a, b in zip(frames, decoded, strict=True):
        np.testing.assert_array_equal(a, b.rgba)


def test_graded_alpha_is_lossless():
    rng = np.random.default_rng(4)
    frames = moving_clip(4, 12, 12)
    for f in frames:
        f[..., 3] = rng.integers(0, 256, (12, 12))
        f[f[..., 3] == 0, :3] = 0
    data, _ = _encode_memory(frames, max_error=4)
    for a, b in zip(frames, _decode_memory(data), strict=True):
        assert_same_visible(a, b, tol=4)


def test_video_input_round_trip(tmp):
    import av

    path = tmp / "clip.mkv"
    frames = moving_clip(6, 24, 32)
    with av.open(str(path), "w") as out:
        s = out.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = 32, 24, "bgr0"
        for f in frames:
            for p in s.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(f[..., :3]), format="rgb24")
            ):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    ref, durations, _ = read_frames(path)
    assert len(ref) == 6 and all(d == 40 for d in durations)
    fpcodec.encode(path, tmp / "v.fpc", predictor="last")
    _, out, _ = fpcodec.decode_frames(tmp / "v.fpc")
    for a, b in zip(ref, out, strict=True):
        assert_same_visible(a, b)


@needs(CORPUS)
@pytest.mark.parametrize("name", ["mtcat-0002.gif", "mtcat-0035.gif", "tnc-ryan-gosling-drive.gif"])
def test_real_gifs_round_trip_exactly(tmp, name):
    src = CORPUS / name
    ref, durations, loop = read_frames(src)
    r = fpcodec.encode(src, tmp / "c.fpc")
    header, out, out_durations = fpcodec.decode_frames(tmp / "c.fpc")
    assert r.frames == len(ref) == len(out)
    assert out_durations == durations and header.loop == loop
    for a, b in zip(ref, out, strict=True):
        assert_same_visible(a, b)
