"""The .fpc byte layout: preamble, CRC-checked header, length-prefixed CRC-checked chunks.

Layout (all integers little-endian; docs/FORMAT.md is the normative description):

    preamble  magic(8) major(u8) minor(u8) flags(u16) header_len(u32)
    header    header_len bytes, then CRC32 of preamble+header (u32)
    chunks    type(4 ASCII) length(u32) payload(length) CRC32(type+length+payload)(u32)

Chunks are 'FRAM' (one per frame, in display order) and a final 'TEND'. A chunk
type whose first letter is lower-case is ancillary: readers skip it when they do
not know it. An unknown upper-case (critical) chunk is refused.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import BinaryIO

from .errors import CorruptError, FormatError, VersionError
from .limits import (
    MAX_FRAMES,
    MAX_HEADER_BYTES,
    MAX_NAME_BYTES,
    check_dimensions,
    max_frame_payload,
)

MAGIC = b"\x89FPC\r\n\x1a\n"
MAJOR = 1
MINOR = 0

FLAG_ALPHA = 1 << 0
FLAG_LOOP = 1 << 1
KNOWN_FLAGS = FLAG_ALPHA | FLAG_LOOP

_PREAMBLE = struct.Struct("<8sBBHI")
_HEAD_FIXED = struct.Struct("<IIIIIBBBBB")
_CHUNK_HEAD = struct.Struct("<4sI")
_FRAME_HEAD = struct.Struct("<BBII")
_U32 = struct.Struct("<I")

# Frame types and codings, as stored in a frame chunk.
KEY = 0
PREDICTED = 1
FRAME_TYPES = {KEY: "key", PREDICTED: "predicted"}

CODING_RAW = 0  # uncompressed RGB(A); the fallback that bounds every frame's size
CODING_RESIDUAL = 1  # prediction residuals within --max-error (near-lossless only)
CODING_PALETTE = 2  # lossless palette/index coding for GIF-like sources
# 3 to 7 are reserved: never written by format 1.0 (docs/FORMAT.md), refused
CODING_SWITCHED = 8  # lossless residuals, spatial/temporal predictor switched per pixel
CODING_LOSSY = 9  # transform-coded residuals (--quality)
CODINGS = {
    CODING_RAW: "raw",
    CODING_RESIDUAL: "residual",
    CODING_PALETTE: "palette",
    CODING_SWITCHED: "switched",
    CODING_LOSSY: "lossy",
}

SOURCE_KINDS = ("unknown", "gif", "video", "image")
ENTROPY_BACKENDS = ("arith", "zstd")


@dataclass(frozen=True)
class StreamHeader:
    width: int
    height: int
    frame_count: int = 0
    loop: int | None = None  # None: play once (no loop extension); 0: forever; n: n repeats
    has_alpha: bool = False
    max_error: int = 0
    quality: int = 0  # 0: not lossy; 1..100 lossy quality
    keyframe_interval: int = 0
    entropy: str = "arith"
    source_kind: str = "unknown"
    predictor: str = "last"
    predictor_sha256: bytes = field(default=bytes(32))

    @property
    def lossless(self) -> bool:
        return self.max_error == 0 and self.quality == 0

    def pack(self) -> bytes:
        flags = (FLAG_ALPHA if self.has_alpha else 0) | (FLAG_LOOP if self.loop is not None else 0)
        name = self.predictor.encode("utf-8")
        if len(name) > MAX_NAME_BYTES:
            raise ValueError("predictor name too long")
        if len(self.predictor_sha256) != 32:
            raise ValueError("predictor_sha256 must be 32 bytes")
        body = (
            _HEAD_FIXED.pack(
                self.width,
                self.height,
                self.frame_count,
                self.loop or 0,
                self.keyframe_interval,
                self.max_error,
                self.quality,
                ENTROPY_BACKENDS.index(self.entropy),
                SOURCE_KINDS.index(self.source_kind),
                len(name),
            )
            + name
            + self.predictor_sha256
        )
        pre = _PREAMBLE.pack(MAGIC, MAJOR, MINOR, flags, len(body))
        return pre + body + _U32.pack(zlib.crc32(pre + body))


def _parse_header(pre: bytes, body: bytes) -> StreamHeader:
    _, _, _, flags, _ = _PREAMBLE.unpack(pre)
    if len(body) < _HEAD_FIXED.size:
        raise FormatError("header too short")
    (w, h, n, loop, kint, max_error, quality, ent, kind, name_len) = _HEAD_FIXED.unpack_from(body)
    rest = body[_HEAD_FIXED.size :]
    if name_len > MAX_NAME_BYTES or len(rest) != name_len + 32:
        raise FormatError("header has an inconsistent predictor field")
    check_dimensions(w, h)
    if n > MAX_FRAMES:
        raise FormatError(f"frame count {n} exceeds the cap of {MAX_FRAMES}")
    if ent >= len(ENTROPY_BACKENDS):
        raise FormatError(f"unknown entropy backend id {ent}")
    if kind >= len(SOURCE_KINDS):
        raise FormatError(f"unknown source kind id {kind}")
    if quality > 100:
        raise FormatError(f"quality {quality} outside 0..100")
    if quality and max_error:
        raise FormatError("header sets both --quality and --max-error")
    try:
        name = rest[:name_len].decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("predictor name is not UTF-8") from None
    return StreamHeader(
        width=w,
        height=h,
        frame_count=n,
        loop=loop if flags & FLAG_LOOP else None,
        has_alpha=bool(flags & FLAG_ALPHA),
        max_error=max_error,
        quality=quality,
        keyframe_interval=kint,
        entropy=ENTROPY_BACKENDS[ent],
        source_kind=SOURCE_KINDS[kind],
        predictor=name,
        predictor_sha256=bytes(rest[name_len:]),
    )


@dataclass(frozen=True)
class FrameChunk:
    index: int
    frame_type: int
    coding: int
    duration_ms: int
    recon_crc: int
    body: bytes

    @property
    def size(self) -> int:
        """Bytes this frame occupies in the file, chunk framing included."""
        return _CHUNK_HEAD.size + _FRAME_HEAD.size + len(self.body) + 4


class ContainerReader:
    """Streams the chunks of an .fpc file, validating every length and CRC."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._pos = 0  # bytes of the stream read so far
        self.stream_bytes: int | None = None  # the whole stream's, once its end is read
        pre = self._read(_PREAMBLE.size)
        if len(pre) < 8 or pre[:8] != MAGIC:
            raise FormatError("not an .fpc file (bad magic)")
        if len(pre) != _PREAMBLE.size:
            raise FormatError("file truncated in the preamble")
        _, major, minor, flags, hlen = _PREAMBLE.unpack(pre)
        if major != MAJOR:
            raise VersionError(
                f".fpc format version {major}.{minor} is not supported by this fpcodec "
                f"(reads {MAJOR}.x); upgrade fpcodec"
            )
        if flags & ~KNOWN_FLAGS:
            raise FormatError(f"unknown header flags 0x{flags:04x}")
        if hlen > MAX_HEADER_BYTES:
            raise FormatError(f"header length {hlen} exceeds the cap")
        body = self._read_exact(hlen, "the header")
        (crc,) = _U32.unpack(self._read_exact(4, "the header CRC"))
        if zlib.crc32(pre + body) != crc:
            raise CorruptError("header CRC mismatch (file damaged)")
        self.minor = minor
        self.header = _parse_header(pre, body)
        self._max_payload = max_frame_payload(self.header.width, self.header.height)

    def _read(self, n: int) -> bytes:
        data = self._f.read(n)
        self._pos += len(data)
        return data

    def _read_exact(self, n: int, what: str) -> bytes:
        data = self._read(n)
        if len(data) != n:
            raise FormatError(f"file truncated while reading {what}")
        return data

    def _chunk(self) -> tuple[bytes, bytes]:
        head = self._read(_CHUNK_HEAD.size)
        if len(head) != _CHUNK_HEAD.size:
            raise FormatError("file truncated: missing chunks (no end marker)")
        ctype, length = _CHUNK_HEAD.unpack(head)
        if length > self._max_payload:
            raise FormatError(f"chunk {ctype!r} claims {length} bytes, more than a frame can hold")
        payload = self._read_exact(length, f"chunk {ctype!r}")
        (crc,) = _U32.unpack(self._read_exact(4, "a chunk CRC"))
        if zlib.crc32(head + payload) != crc:
            raise CorruptError(f"chunk {ctype!r} CRC mismatch (file damaged)")
        return ctype, payload

    def _check_end(self) -> None:
        """Nothing may follow the end marker: bytes there are a second file appended to
        this one or damage, and either way not this stream's. Refused (after the last
        frame, which a decoder may already have shown) rather than silently dropped."""
        self.stream_bytes = self._pos
        extra = self._f.read(1)
        if not extra:
            return
        if self._f.seekable():
            what = f"{self._f.seek(0, 2) - self._pos:,} bytes"
        else:  # a pipe: count no further than a bound
            n = 1 + len(self._f.read(1 << 16))
            what = f"{n:,} bytes" if n <= 1 << 16 else f"more than {1 << 16:,} bytes"
        more = " (another .fpc file appended?)" if extra == MAGIC[:1] else ""
        raise FormatError(f"{what} after the end marker{more}: not part of this stream")

    def frames(self) -> Iterator[FrameChunk]:
        index = 0
        expected = self.header.frame_count
        while True:
            ctype, payload = self._chunk()
            if ctype == b"FRAM":
                if index >= expected:
                    raise FormatError(f"more frames than the {expected} the header declares")
                if len(payload) < _FRAME_HEAD.size:
                    raise FormatError(f"frame {index}: chunk too short")
                ftype, coding, dur, rcrc = _FRAME_HEAD.unpack_from(payload)
                if ftype not in FRAME_TYPES:
                    raise FormatError(f"frame {index}: unknown frame type {ftype}")
                if coding not in CODINGS:
                    raise FormatError(f"frame {index}: unknown coding {coding}")
                if index == 0 and ftype != KEY:
                    raise FormatError("first frame is not a keyframe")
                yield FrameChunk(index, ftype, coding, dur, rcrc, payload[_FRAME_HEAD.size :])
                index += 1
            elif ctype == b"TEND":
                if len(payload) != 4 or _U32.unpack(payload)[0] != index or index != expected:
                    raise FormatError(
                        f"end marker disagrees with the frame count ({index} read, "
                        f"{expected} declared)"
                    )
                self._check_end()
                return
            elif ctype[:1].islower():
                continue
            else:
                raise FormatError(f"unknown critical chunk {ctype!r}")


class ContainerWriter:
    """Writes chunks as frames arrive; patches the header's totals on close.

    The sink must be seekable (the CLI writes to a temporary file that is renamed
    into place only after close succeeds).
    """

    def __init__(self, f: BinaryIO, header: StreamHeader) -> None:
        self._f = f
        self.header = header
        self._start = f.tell()
        self._head_len = len(header.pack())
        f.write(header.pack())
        self.frames_written = 0
        self.has_alpha = header.has_alpha

    def _write_chunk(self, ctype: bytes, payload: bytes) -> int:
        head = _CHUNK_HEAD.pack(ctype, len(payload))
        self._f.write(head)
        self._f.write(payload)
        self._f.write(_U32.pack(zlib.crc32(payload, zlib.crc32(head))))
        return len(head) + len(payload) + 4

    def write_frame(
        self,
        frame_type: int,
        coding: int,
        duration_ms: int,
        recon_crc: int,
        body: bytes,
        has_alpha: bool = False,
    ) -> int:
        """Append one frame; returns the bytes it took in the file."""
        w, h = self.header.width, self.header.height
        if _FRAME_HEAD.size + len(body) > max_frame_payload(w, h):
            raise ValueError(
                "frame body exceeds the format's cap; the caller must fall back to raw"
            )
        self.has_alpha |= has_alpha
        payload = _FRAME_HEAD.pack(frame_type, coding, duration_ms, recon_crc) + body
        self.frames_written += 1
        return self._write_chunk(b"FRAM", payload)

    def close(self) -> StreamHeader:
        self._write_chunk(b"TEND", _U32.pack(self.frames_written))
        end = self._f.tell()
        final = replace(self.header, frame_count=self.frames_written, has_alpha=self.has_alpha)
        packed = final.pack()
        assert len(packed) == self._head_len
        self._f.seek(self._start)
        self._f.write(packed)
        self._f.seek(end)
        self.header = final
        return final


def frame_overhead() -> int:
    """Bytes of framing around each frame body (chunk head, frame head, CRC)."""
    return _CHUNK_HEAD.size + _FRAME_HEAD.size + 4
