"""Format 1.0: the codings it defines and nothing else (docs/FORMAT.md).

Codings 3 to 7 are reserved (never written by a 1.0 encoder) and coding 1 is
near-lossless only; a file that uses them anyway is refused with one line naming
the coding, never decoded as something else.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from fpcodec.codec.container import CODINGS

import fpcodec

GOLDEN = Path(__file__).parent / "golden"


def _with_coding(data: bytes, coding: int) -> bytes:
    """The file with every frame's coding byte set to `coding`, chunk CRCs redone."""
    out = bytearray(data)
    (hlen,) = struct.unpack_from("<I", out, 12)
    pos = 16 + hlen + 4
    while pos < len(out):
        ctype, n = struct.unpack_from("<4sI", out, pos)
        if ctype == b"FRAM":
            out[pos + 8 + 1] = coding
            crc = zlib.crc32(bytes(out[pos : pos + 8 + n]))
            struct.pack_into("<I", out, pos + 8 + n, crc)
        pos += 12 + n
    return bytes(out)


def test_format_1_0_codings_are_the_ones_the_encoder_writes():
    assert CODINGS == {0: "raw", 1: "residual", 2: "palette", 8: "switched", 9: "lossy"}


@pytest.mark.parametrize("coding", [3, 4, 5, 6, 7, 10, 255])
def test_a_reserved_or_unknown_coding_is_refused_naming_it(coding, tmp):
    bad = tmp / "bad.fpc"
    bad.write_bytes(_with_coding((GOLDEN / "lossy-q50-last.fpc").read_bytes(), coding))
    with pytest.raises(fpcodec.FpcError, match=rf"frame 0: unknown coding {coding}$"):
        fpcodec.decode_frames(bad)


def test_coding_1_in_a_lossless_stream_is_refused(tmp):
    bad = tmp / "bad.fpc"
    bad.write_bytes(_with_coding((GOLDEN / "switched-arith.fpc").read_bytes(), 1))
    msg = r"frame 0: residual \(coding 1\) frame in a lossless stream$"
    with pytest.raises(fpcodec.FpcError, match=msg):
        fpcodec.decode_frames(bad)
