"""Where a frame keeps the learned in-loop filter's correction: its filter map.

A stream whose predictor carries a loop filter (models/loopfilter.py) starts each
lossy frame body with a filter map: one mode byte, then for the block modes one bit
per square block of the padded frame (raster order, packed least significant bit
first). The encoder picks the mode and the blocks by rate-distortion decision on
the perceptual distance against the source, so the filter can never cost more than
its map. The decoder runs the network only when the mode is not OFF.
"""

from __future__ import annotations

import numpy as np

from ..errors import FormatError
from ..limits import row_bands

MODE_OFF = 0
MODE_ALL = 1
# block modes: the side of a block that one bit switches
BLOCK_SIDE = {2: 64, 3: 32, 4: 16}
_FINEST = min(BLOCK_SIDE.values())
N_MODES = 2 + len(BLOCK_SIDE)
PLANE_RANGE = ((0, 255), (-255, 255), (-255, 255))  # Y, Co, Cg of 8-bit RGB


def map_shape(hp: int, wp: int, side: int) -> tuple[int, int]:
    return -(-hp // side), -(-wp // side)


def write_map(mode: int, bits: np.ndarray | None) -> bytes:
    if mode < 2:
        return bytes([mode])
    assert bits is not None
    return bytes([mode]) + np.packbits(bits.ravel().astype(np.uint8), bitorder="little").tobytes()


def read_map(data: bytes, hp: int, wp: int, what: str) -> tuple[int, np.ndarray | None, int]:
    """(mode, per-block bits or None, bytes used) from the start of a frame body."""
    if not data:
        raise FormatError(f"{what}: lossy frame without its filter map")
    mode = data[0]
    if mode >= N_MODES:
        raise FormatError(f"{what}: unknown loop filter mode {mode}")
    if mode < 2:
        return mode, None, 1
    nby, nbx = map_shape(hp, wp, BLOCK_SIDE[mode])
    n = nby * nbx
    size = -(-n // 8)
    if len(data) < 1 + size:
        raise FormatError(f"{what}: loop filter map is cut short")
    raw = np.frombuffer(data, np.uint8, size, 1)
    bits = np.unpackbits(raw, count=n, bitorder="little").astype(bool).reshape(nby, nbx)
    return mode, bits, 1 + size


def _distance(planes: np.ndarray, tgt: np.ndarray, wplane: np.ndarray) -> np.ndarray:
    e = (planes - tgt).astype(np.float64)
    return np.sqrt(np.einsum("p,pyx->yx", wplane, e * e))


def pixel_distance(planes: np.ndarray, tgt: np.ndarray, wplane: np.ndarray) -> np.ndarray:
    """Each pixel's colour distance as the mode decision measures it (encoder only)."""
    _, hp, wp = planes.shape
    out = np.empty((hp, wp))
    for y0, y1 in row_bands(hp, wp):
        out[y0:y1] = _distance(planes[:, y0:y1], tgt[:, y0:y1], wplane)
    return out


def block_mask(
    mode: int, bits: np.ndarray | None, hp: int, wp: int, y0: int = 0
) -> np.ndarray | None:
    """Per-pixel switch of a block mode for rows y0..y0+hp (None for OFF and ALL)."""
    if mode < 2:
        return None
    side = BLOCK_SIDE[mode]
    rows = np.repeat(bits[y0 // side : -(-(y0 + hp) // side)], side, 0)
    return np.repeat(rows, side, 1)[y0 % side : y0 % side + hp, :wp]


ADD_PIXELS = 1 << 18  # MapGains.add's rows at a time


class MapGains:
    """What keeping the correction gains, gathered band by band, and the map chosen
    from it. Each row's gain is summed per 16 columns (the smallest block side, half
    a byte a pixel), blocks of every side from those row sums: the sums, and so the
    map, are the same bit for bit however the frame was cut into bands (the encoder
    cuts along the network's bands, whose height follows from memory)."""

    def __init__(self, hp: int, wp: int, wplane: np.ndarray) -> None:
        self.wp, self.wplane = wp, wplane
        self.rows = np.zeros((hp, map_shape(1, wp, _FINEST)[1]))

    def add(self, tgt: np.ndarray, recon: np.ndarray, corr: np.ndarray, y0: int) -> None:
        """Rows y0.. of the frame: target, reconstruction and correction bands. The
        frame is weighed corrected, not the correction (weighing the correction
        itself against the source kept the filter off on every frame). A few rows at
        a time (every value is a row's own): the float64 distances of a whole band of
        the network's were 150 MiB beside the frame at the size cap."""
        nbx = self.rows.shape[1]
        for a, b in row_bands(recon.shape[1], self.wp, ADD_PIXELS):
            band = recon[:, a:b]
            corrected = band.copy()
            apply_map(corrected, corr[:, a:b], MODE_ALL, None)
            gain = _distance(band, tgt[:, a:b], self.wplane)
            gain -= _distance(corrected, tgt[:, a:b], self.wplane)
            padded = np.zeros((b - a, nbx * _FINEST))
            padded[:, : self.wp] = gain
            self.rows[y0 + a : y0 + b] = padded.reshape(b - a, nbx, _FINEST).sum(axis=2)

    def _sums(self, side: int) -> np.ndarray:
        hp, nbx = self.rows.shape
        nby = -(-hp // side)
        rows = np.zeros((nby * side, nbx))
        rows[:hp] = self.rows
        by_rows = rows.reshape(nby, side, nbx).sum(axis=1)
        k = side // _FINEST
        cols = np.zeros((nby, -(-nbx // k) * k))
        cols[:, :nbx] = by_rows
        return cols.reshape(nby, -1, k).sum(axis=2)

    def choose(self, lam: float) -> tuple[int, np.ndarray | None]:
        """The mode and block bits of least distance + lam * bits (distance relative
        to the unfiltered frame's)."""
        finest = self._sums(_FINEST)
        best = (0.0, MODE_OFF, None)
        if -float(finest.sum()) < best[0]:
            best = (-float(finest.sum()), MODE_ALL, None)
        for mode, side in BLOCK_SIDE.items():
            sums = finest if side == _FINEST else self._sums(side)
            bits = sums > 0
            cost = -float(sums[bits].sum()) + lam * 8 * -(-bits.size // 8)
            if cost < best[0]:
                best = (cost, mode, bits)
        return best[1], best[2]


def apply_map(
    recon: np.ndarray, corr: np.ndarray, mode: int, bits: np.ndarray | None, y0: int = 0
) -> None:
    """Add the correction where the map switches it on, within each plane's range;
    recon and corr may be a band of the frame that starts at row y0."""
    _, hp, wp = recon.shape
    mask = block_mask(mode, bits, hp, wp, y0)
    for p, (lo, hi) in enumerate(PLANE_RANGE):
        c = corr[p] if mask is None else np.where(mask, corr[p], 0)
        np.clip(recon[p] + c, lo, hi, out=recon[p])
