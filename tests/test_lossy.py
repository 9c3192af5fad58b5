"""Lossy mode: exact transforms, quality monotone, damage reported."""

from __future__ import annotations

import io

import numpy as np
from fpcodec.bench.metrics import perceptual_distance
from fpcodec.codec.container import CODING_LOSSY, StreamHeader
from fpcodec.codec.decoder import Decoder
from fpcodec.codec.encoder import Encoder
from fpcodec.codec.errors import FpcError
from fpcodec.codec.lossy import LossyModels, decode_lossy, encode_lossy
from fpcodec.codec.transform import block_scales, fdct4x4, idct4x4, ycocg_forward, ycocg_inverse
from fpcodec.models.last import LastFramePredictor
from hypothesis import given, settings
from hypothesis import strategies as st

from .conftest import moving_clip


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-4096, 4096), min_size=16, max_size=16))
def test_integer_dct_inverse_is_exact(values):
    b = np.array(values, np.int64).reshape(4, 4)
    c = b.copy()
    fdct4x4(c)
    idct4x4(c)
    np.testing.assert_array_equal(c, b)


def test_integer_dct_compacts_smooth_blocks():
    yy, xx = np.mgrid[0:4, 0:4]
    b = (10 * xx + 7 * yy + 100).astype(np.int64)
    c = b.copy()
    fdct4x4(c)
    energy = (c.ravel() / block_scales()) ** 2  # in orthonormal units
    assert energy[0] / energy.sum() > 0.95


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-255, 255), min_size=3, max_size=3))
def test_ycocg_r_is_exact(rgb):
    x = np.array([rgb])
    np.testing.assert_array_equal(ycocg_inverse(ycocg_forward(x)), x)


def _lossy_stream(frames, quality, entropy="arith"):
    h, w = frames[0].shape[:2]
    buf = io.BytesIO()
    enc = Encoder(
        buf,
        StreamHeader(w, h, quality=quality, keyframe_interval=4, entropy=entropy),
        LastFramePredictor(),
    )
    recons = [enc.add(f, 40).recon for f in frames]
    enc.close()
    return buf.getvalue(), recons


def test_quality_knob_is_monotone():
    frames = moving_clip(6, 32, 40, seed=2)
    sizes, dists = [], []
    for q in (10, 30, 50, 70, 90):
        data, recons = _lossy_stream(frames, q)
        decoded = [f.rgba for f in Decoder(io.BytesIO(data))]
        for r, d in zip(recons, decoded, strict=True):
            np.testing.assert_array_equal(r, d)  # the encoder's reconstruction is the decoder's
        sizes.append(len(data))
        dists.append(
            np.mean(
                [
                    perceptual_distance(d[..., :3], f[..., :3])
                    for d, f in zip(decoded, frames, strict=True)
                ]
            )
        )
    assert sizes == sorted(sizes), sizes
    assert dists == sorted(dists, reverse=True), dists


def test_lossy_keeps_alpha_exact_and_marks_frames_lossy():
    frames = moving_clip(5, 20, 24, alpha=True)
    data, recons = _lossy_stream(frames, 60)
    for f, _r, d in zip(frames, recons, Decoder(io.BytesIO(data)), strict=True):
        np.testing.assert_array_equal(d.rgba[..., 3], f[..., 3])
        assert d.coding == CODING_LOSSY or d.coding == 0


def test_truncated_lossy_payload_is_flagged():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (24, 24, 3)).astype(np.uint8)
    data, _ = encode_lossy(frame, None, np.ones((24, 24), bool), 80, LossyModels())
    _, damaged = decode_lossy(data[: len(data) // 3], None, 24, 24, 80, LossyModels())
    assert damaged


def test_corrupted_lossy_stream_fails_cleanly_through_the_decoder():
    import struct
    import zlib

    frames = moving_clip(4, 24, 24)
    data, _ = _lossy_stream(frames, 70)
    d = bytearray(data)
    (hlen,) = struct.unpack_from("<I", d, 12)
    pos = 16 + hlen + 4
    (n,) = struct.unpack_from("<I", d, pos + 4)
    caught = 0
    for k in range(20):
        m = bytearray(d)
        m[pos + 8 + 10 + 6 + (k * 7) % max(1, n - 20)] ^= 0xA5
        struct.pack_into("<I", m, pos + 8 + n, zlib.crc32(bytes(m[pos : pos + 8 + n])))
        try:
            for _ in Decoder(io.BytesIO(bytes(m))):
                pass
        except FpcError:
            caught += 1
    assert caught >= 18


def test_zstd_backend_reconstructs_the_same_frames_and_the_range_coder_is_smaller():
    """Entropy coding is the only difference between the two backends."""
    frames = moving_clip(6, 32, 40, seed=4)
    arith, rec_a = _lossy_stream(frames, 55, "arith")
    zstd, rec_z = _lossy_stream(frames, 55, "zstd")
    for a, z, d in zip(rec_a, rec_z, Decoder(io.BytesIO(zstd)), strict=True):
        np.testing.assert_array_equal(a, z)
        np.testing.assert_array_equal(z, d.rgba)
    assert len(arith) < len(zstd)


def test_damaged_zstd_levels_are_flagged():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (24, 24, 3)).astype(np.uint8)
    vis = np.ones((24, 24), bool)
    data, rec = encode_lossy(frame, None, vis, 80, LossyModels(), "zstd")
    good, damaged = decode_lossy(data, None, 24, 24, 80, LossyModels(), "zstd")
    assert not damaged
    np.testing.assert_array_equal(good, rec)
    for bad in (data[: len(data) // 2], b"\x03" + data[1:], b""):
        _, damaged = decode_lossy(bad, None, 24, 24, 80, LossyModels(), "zstd")
        assert damaged
