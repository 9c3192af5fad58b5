import io
import struct
import zlib

import pytest
from fpcodec.codec import container as C
from fpcodec.codec.errors import CorruptError, FormatError, VersionError


def _file(header: C.StreamHeader, frames: int = 2) -> bytes:
    buf = io.BytesIO()
    w = C.ContainerWriter(buf, header)
    for i in range(frames):
        w.write_frame(C.KEY if i == 0 else C.PREDICTED, C.CODING_RAW, 40, 123, b"x" * 10)
    w.close()
    return buf.getvalue()


def test_header_round_trip_and_patched_totals():
    h = C.StreamHeader(
        640,
        360,
        loop=3,
        has_alpha=False,
        max_error=2,
        keyframe_interval=30,
        entropy="zstd",
        source_kind="gif",
        predictor="convlstm",
        predictor_sha256=bytes(range(32)),
    )
    buf = io.BytesIO()
    w = C.ContainerWriter(buf, h)
    w.write_frame(C.KEY, C.CODING_RAW, 100, 7, b"abc", has_alpha=True)
    w.close()
    r = C.ContainerReader(io.BytesIO(buf.getvalue()))
    assert r.header.frame_count == 1 and r.header.has_alpha  # patched on close
    assert r.header.loop == 3 and r.header.predictor == "convlstm"
    assert r.header.predictor_sha256 == bytes(range(32))
    (chunk,) = list(r.frames())
    assert (chunk.duration_ms, chunk.recon_crc, chunk.body) == (100, 7, b"abc")


def test_loop_absent_is_distinct_from_forever():
    for loop in (None, 0):
        data = _file(C.StreamHeader(4, 4, loop=loop))
        assert C.ContainerReader(io.BytesIO(data)).header.loop == loop


def test_unknown_major_version_is_refused_by_name():
    data = bytearray(_file(C.StreamHeader(4, 4)))
    data[8] = 7
    with pytest.raises(VersionError, match="version 7"):
        C.ContainerReader(io.BytesIO(bytes(data)))


def test_bad_magic():
    with pytest.raises(FormatError, match="magic"):
        C.ContainerReader(io.BytesIO(b"GIF89a" + bytes(40)))


def test_header_crc_detects_damage():
    data = bytearray(_file(C.StreamHeader(4, 4)))
    data[20] ^= 1
    with pytest.raises(CorruptError, match="header CRC"):
        C.ContainerReader(io.BytesIO(bytes(data)))


def _forge_header(width: int, height: int, frames: int = 1) -> bytes:
    """A header with valid CRC but hostile sizes: only the caps stand in the way."""
    pre = struct.pack("<8sBBHI", C.MAGIC, C.MAJOR, 0, 0, 0)
    body = (
        struct.pack("<IIIIIBBBBB", width, height, frames, 0, 0, 0, 0, 0, 0, 4) + b"last" + bytes(32)
    )
    pre = struct.pack("<8sBBHI", C.MAGIC, C.MAJOR, 0, 0, len(body))
    return pre + body + struct.pack("<I", zlib.crc32(pre + body))


@pytest.mark.parametrize("w,h", [(0, 5), (5, 0), (70000, 10), (16384, 16384)])
def test_forged_dimensions_are_capped(w, h):
    with pytest.raises(FormatError, match="size"):
        C.ContainerReader(io.BytesIO(_forge_header(w, h)))


def test_forged_frame_count_is_capped():
    with pytest.raises(FormatError, match="frame count"):
        C.ContainerReader(io.BytesIO(_forge_header(4, 4, frames=10**9)))


def test_forged_chunk_length_is_refused_before_reading():
    head = _forge_header(4, 4)
    chunk = struct.pack("<4sI", b"FRAM", 2**31)
    with pytest.raises(FormatError, match="claims"):
        list(C.ContainerReader(io.BytesIO(head + chunk)).frames())


def test_chunk_crc_and_truncation():
    data = _file(C.StreamHeader(4, 4), frames=3)
    hlen = len(C.StreamHeader(4, 4).pack())
    damaged = bytearray(data)
    damaged[hlen + 12] ^= 0x10
    with pytest.raises(CorruptError, match="CRC"):
        list(C.ContainerReader(io.BytesIO(bytes(damaged))).frames())
    for cut in (len(data) - 1, len(data) - 12, hlen + 3):
        with pytest.raises(FormatError):
            list(C.ContainerReader(io.BytesIO(data[:cut])).frames())


def test_frame_count_must_match_end_marker():
    h = C.StreamHeader(4, 4)
    buf = io.BytesIO()
    w = C.ContainerWriter(buf, h)
    w.write_frame(C.KEY, C.CODING_RAW, 1, 1, b"")
    w.close()
    data = bytearray(buf.getvalue())
    # Drop the TEND chunk: decoder must notice the stream ended early.
    with pytest.raises(FormatError, match="no end marker"):
        list(C.ContainerReader(io.BytesIO(bytes(data[:-16]))).frames())


def test_unknown_chunks_ancillary_skipped_critical_refused():
    h = C.StreamHeader(4, 4)
    buf = io.BytesIO()
    w = C.ContainerWriter(buf, h)
    w.write_frame(C.KEY, C.CODING_RAW, 1, 1, b"")
    w._write_chunk(b"note", b"hello")
    w.close()
    assert len(list(C.ContainerReader(io.BytesIO(buf.getvalue())).frames())) == 1
    buf = io.BytesIO()
    w = C.ContainerWriter(buf, h)
    w._write_chunk(b"ZZZZ", b"")
    w.close()
    with pytest.raises(FormatError, match="critical"):
        list(C.ContainerReader(io.BytesIO(buf.getvalue())).frames())
