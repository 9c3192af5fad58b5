"""Length-prefixed sections inside a frame body, read with bounds checks."""

from __future__ import annotations

import struct

from .errors import FormatError

_U32 = struct.Struct("<I")


def pack(*parts: bytes) -> bytes:
    return b"".join(_U32.pack(len(p)) + p for p in parts)


class Reader:
    """Sequential reader over a frame body that never reads past its end."""

    def __init__(self, data: bytes, what: str) -> None:
        self._data = data
        self._pos = 0
        self._what = what

    def take(self, n: int) -> bytes:
        if n < 0 or self._pos + n > len(self._data):
            raise FormatError(f"{self._what}: truncated body")
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "little")

    def u32(self) -> int:
        return _U32.unpack(self.take(4))[0]

    def section(self) -> bytes:
        return self.take(self.u32())

    def rest(self) -> bytes:
        return self.take(len(self._data) - self._pos)

    def done(self) -> None:
        if self._pos != len(self._data):
            raise FormatError(f"{self._what}: {len(self._data) - self._pos} trailing bytes")
