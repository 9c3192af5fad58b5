"""zstd decompression that never allocates more than the caller allows.

A zstd frame header may claim any content size; a forged one must not make the
decoder allocate it. Reading through a stream reader with an explicit byte budget
bounds memory by construction, whatever the header says.
"""

from __future__ import annotations

import zstandard

from .errors import CorruptError


def decompress(data: bytes, max_size: int, what: str = "stream") -> bytes:
    try:
        with zstandard.ZstdDecompressor().stream_reader(data) as reader:
            out = reader.read(max_size + 1)
    except zstandard.ZstdError as e:
        raise CorruptError(f"{what} is damaged ({e})") from None
    if len(out) > max_size:
        raise CorruptError(f"{what} inflates beyond its {max_size}-byte bound")
    return out
