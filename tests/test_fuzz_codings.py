"""Structure-aware mutations of every coding the encoder writes (issue 20).

Each clean file is cut into its chunks; a mutation damages one frame body (bit
flips, overwritten bytes, a section length edited, a truncation) or the header's
fields, and then recomputes the chunk's (or header's) CRC, so the damage reaches the
decoders behind the CRC check. A damaged file must either be refused with an
FpcError carrying a one-line message, or decode to exactly the clean frames. Seeds
are fixed and printed with every failure.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from fpcodec.codec.container import CODINGS
from fpcodec.codec.decoder import Decoder
from fpcodec.codec.errors import FpcError

import fpcodec

from .conftest import moving_clip, palette_clip, save_gif

_PRE = struct.Struct("<8sBBHI")
_CHUNK = struct.Struct("<4sI")

# setting -> (encode keywords, the coding it must produce at least once)
SETTINGS = {
    "palette": ({}, "palette"),
    "switched": ({"palette": False}, "switched"),
    "residual": ({"palette": False, "max_error": 2}, "residual"),
    "lossy": ({"palette": False, "quality": 50}, "lossy"),
    # a GIF at low quality: palette and lossy frames, palette frames that resync
    "gif-lossy": ({"quality": 10}, "palette"),
    "gif-near-lossless": ({"max_error": 4}, "palette"),
    "zstd": ({"palette": False, "entropy": "zstd"}, "switched"),
    "raw": ({}, "raw"),
}
MUTATIONS = 30


def _clip(setting: str) -> list[np.ndarray]:
    if setting in ("palette", "gif-lossy", "gif-near-lossless"):
        # at quality 10 this GIF mixes palette and lossy frames (palette resyncs)
        return palette_clip(5, 14, 18, colours=16, seed=3)
    # (This clip's first frames cost more coded than stored: raw, checked below.)
    return moving_clip(5, 14, 18, seed=3)


def _split(data: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    hlen = _PRE.unpack_from(data)[4]
    head_end = _PRE.size + hlen + 4
    chunks, pos = [], head_end
    while pos < len(data):
        ctype, n = _CHUNK.unpack_from(data, pos)
        chunks.append((ctype, data[pos + 8 : pos + 8 + n]))
        pos += 8 + n + 4
    return data[:head_end], chunks


def _join(head: bytes, chunks: list[tuple[bytes, bytes]]) -> bytes:
    out = bytearray(head)
    for ctype, payload in chunks:
        h = _CHUNK.pack(ctype, len(payload))
        out += h + payload + struct.pack("<I", zlib.crc32(payload, zlib.crc32(h)))
    return bytes(out)


def _reheader(head: bytes, body: bytes) -> bytes:
    pre = bytearray(head[: _PRE.size])
    struct.pack_into("<I", pre, _PRE.size - 4, len(body))
    return bytes(pre) + body + struct.pack("<I", zlib.crc32(bytes(pre) + body))


def _mutate(rng: np.random.Generator, data: bytes) -> bytes:
    head, chunks = _split(data)
    frames = [i for i, (t, _) in enumerate(chunks) if t == b"FRAM"]
    kind = rng.integers(0, 6)
    if kind == 5:  # a header field (sizes kept small: a larger frame is only slower)
        body = bytearray(head[_PRE.size : -4])
        field = int(rng.integers(0, 9))
        if field < 2:  # width, height: by a little
            v = struct.unpack_from("<I", body, 4 * field)[0]
            struct.pack_into("<I", body, 4 * field, max(0, v + int(rng.integers(-3, 4))))
        elif field < 5:  # frame count, loop, keyframe interval
            struct.pack_into("<I", body, 4 * field, int(rng.integers(0, 12)))
        else:  # max error, quality, entropy, source kind
            body[20 + field - 5] = int(rng.integers(0, 256)) if rng.random() < 0.5 else 1
        return _join(_reheader(head, bytes(body)), chunks)
    i = int(rng.choice(frames))
    ctype, payload = chunks[i]
    p = bytearray(payload)
    body_at = 10  # frame type, coding, duration, recon CRC
    if kind == 0:  # bit flips in the body
        for _ in range(int(rng.integers(1, 4))):
            j = int(rng.integers(body_at, len(p))) if len(p) > body_at else 0
            p[j] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:  # overwrite a run of bytes
        j = int(rng.integers(body_at, max(body_at + 1, len(p))))
        n = int(rng.integers(1, 9))
        p[j : j + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    elif kind == 2:  # a u32 that may be a section length: made larger, smaller, huge
        j = int(rng.integers(body_at, max(body_at + 1, len(p) - 3)))
        v = struct.unpack_from("<I", p, j)[0] if j + 4 <= len(p) else 0
        new = [v + 1, max(0, v - 1), 0xFFFFFFFF, v * 2, 0][int(rng.integers(0, 5))]
        if j + 4 <= len(p):
            struct.pack_into("<I", p, j, new & 0xFFFFFFFF)
    elif kind == 3:  # truncate the body
        p = p[: int(rng.integers(0, len(p)))]
    else:  # the frame head: coding, frame type
        p[int(rng.integers(0, 2))] = int(rng.integers(0, 12))
    chunks[i] = (ctype, bytes(p))
    return _join(head, chunks)


def _decode(data: bytes) -> list[np.ndarray]:
    return [f.rgba for f in Decoder(io.BytesIO(data))]


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_structure_aware_mutations_of_every_coding(tmp, setting):
    kw, coding = SETTINGS[setting]
    src = save_gif(tmp / "in.gif", _clip(setting), durations=40)
    fpcodec.encode(src, tmp / "a.fpc", keyframe_interval=3, **kw)
    clean_bytes = (tmp / "a.fpc").read_bytes()
    assert coding in fpcodec.info(tmp / "a.fpc")["codings"], setting
    clean = _decode(clean_bytes)
    seed0 = 20_000 + 1_000 * sorted(SETTINGS).index(setting)
    refused = 0
    for k in range(MUTATIONS):
        seed = seed0 + k
        damaged = _mutate(np.random.default_rng(seed), clean_bytes)
        try:
            got = _decode(damaged)
        except FpcError as e:
            refused += 1
            msg = str(e)
            assert msg and "\n" not in msg, f"seed {seed}: {msg!r}"
            continue
        except Exception as e:  # anything else is a decoder bug
            pytest.fail(f"{setting} seed {seed}: {type(e).__name__}: {e}")
        assert len(got) == len(clean) and all(
            np.array_equal(a, b) for a, b in zip(got, clean, strict=True)
        ), f"{setting} seed {seed}: decoded to frames the encoder never wrote"
    assert refused > 0  # the mutations do reach the decoder


def test_every_coding_the_encoder_writes_is_fuzzed():
    written = {c for c in CODINGS.values() if not c.startswith("lossy-v")}  # v1..v5: read only
    assert written == {coding for _, coding in SETTINGS.values()}
