"""Decoder robustness: thousands of damaged files, each must fail cleanly or decode.

Two kinds of damage: raw mutations (bit flips, truncation, insertion), which the
CRCs must catch; and structure-aware mutations that rewrite a frame body and then
fix its CRC, so the damage reaches the inner decoders (entropy decoders, residual
reconstruction, alpha), which must still only ever raise FpcError subclasses.
"""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from fpcodec.codec.container import StreamHeader
from fpcodec.codec.decoder import Decoder
from fpcodec.codec.encoder import Encoder
from fpcodec.codec.errors import FpcError
from fpcodec.models.last import LastFramePredictor

from .conftest import moving_clip


def _valid(entropy: str, max_error: int, alpha: bool) -> bytes:
    frames = moving_clip(5, 9, 11, seed=3, alpha=alpha)
    buf = io.BytesIO()
    enc = Encoder(
        buf,
        StreamHeader(11, 9, entropy=entropy, max_error=max_error, keyframe_interval=3),
        LastFramePredictor(),
    )
    for f in frames:
        enc.add(f, 50)
    enc.close()
    return buf.getvalue()


def _decode_all(data: bytes) -> None:
    for _ in Decoder(io.BytesIO(data)):
        pass


def _chunks(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of every chunk payload after the header."""
    (hlen,) = struct.unpack_from("<I", data, 12)
    pos = 16 + hlen + 4
    out = []
    while pos + 8 <= len(data):
        (n,) = struct.unpack_from("<I", data, pos + 4)
        out.append((pos + 8, n))
        pos += 8 + n + 4
    return out


def _fix_crc(data: bytearray, off: int, n: int) -> None:
    crc = zlib.crc32(bytes(data[off - 8 : off + n]))
    struct.pack_into("<I", data, off + n, crc)


def _mutate(rng: np.random.Generator, data: bytes, structured: bool) -> bytes:
    d = bytearray(data)
    if structured:
        chunks = [c for c in _chunks(data) if c[1] > 10]
        off, n = chunks[rng.integers(len(chunks))]
        for _ in range(rng.integers(1, 4)):
            i = off + 10 + rng.integers(n - 10)  # keep the frame head, hit the body
            d[i] = rng.integers(256) if rng.random() < 0.5 else d[i] ^ (1 << rng.integers(8))
        _fix_crc(d, off, n)
        return bytes(d)
    op = rng.integers(4)
    if op == 0:
        i = rng.integers(len(d))
        d[i] ^= 1 << rng.integers(8)
    elif op == 1:
        d = d[: rng.integers(len(d))]
    elif op == 2:
        i = rng.integers(len(d))
        d[i:i] = bytes(rng.integers(0, 256, rng.integers(1, 9)).astype(np.uint8))
    else:
        i = rng.integers(len(d))
        del d[i : i + rng.integers(1, 9)]
    return bytes(d)


def _frames(data: bytes) -> list[tuple[bytes, int]]:
    return [(f.rgba.tobytes(), f.duration_ms) for f in Decoder(io.BytesIO(data))]


GOLDEN = Path(__file__).parent / "golden"
# Every coding and backend the encoder writes (tests/golden/make_golden.py), each
# fuzzed from a seed fixed here, so a failure replays exactly.
FUZZED = sorted(p.stem for p in GOLDEN.glob("*.fpc"))


@pytest.mark.parametrize("name", FUZZED)
def test_damage_is_refused_or_changes_nothing(name):
    data = (GOLDEN / f"{name}.fpc").read_bytes()
    clean = _frames(data)
    t = time.perf_counter()
    _frames(data)
    clean_s = time.perf_counter() - t
    seed = zlib.crc32(name.encode())
    rng = np.random.default_rng(seed)
    outcomes = {"error": 0, "decoded": 0}
    worst = 0.0
    # a learned predictor's network and the palette coder's large models are set up
    # again for every decode: fewer mutations keep those files' share of the suite sane
    n = 60 if "convlstm" in name or "palette" in name else 240
    for i in range(n):
        bad = _mutate(rng, data, structured=i % 2 == 0)
        t = time.perf_counter()
        try:
            got = _frames(bad)
        except FpcError as e:
            assert str(e) and "\n" not in str(e), f"seed {seed}, mutation {i}"
            outcomes["error"] += 1
        else:
            # A damaged file that decodes must give exactly what the clean one gives:
            # anything else is silent corruption.
            assert got == clean, f"seed {seed}, mutation {i}: decoded to other frames"
            outcomes["decoded"] += 1
        worst = max(worst, time.perf_counter() - t)
    assert outcomes["error"] > 0.85 * n, (seed, outcomes)  # nearly every mutation detected
    # Damage must not make decoding much slower than decoding the clean file (an
    # amplification); relative, so a loaded machine does not fail it.
    assert worst < 20 * clean_s + 2.0, (seed, worst, clean_s)


def test_structured_damage_is_caught_by_crcs_or_decoders():
    data = _valid("arith", 0, True)
    rng = np.random.default_rng(7)
    caught = 0
    for _ in range(300):
        try:
            _decode_all(_mutate(rng, data, structured=True))
        except FpcError:
            caught += 1
    # A rewritten body with a fixed chunk CRC can only be caught by the decoders
    # themselves or by the reconstruction CRC; it must be, nearly always.
    assert caught >= 295
