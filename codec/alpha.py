"""Alpha plane coding. Always lossless, whatever the colour setting.

GIF transparency is binary, so the common case is a bit mask, coded against the
previous frame's mask: with the arith backend every bit is coded under a context of
its causal neighbours in this frame and the co-located bits of the previous mask
(a transparent background that stays put costs almost nothing); with the zstd
backend the XOR with the previous mask is bit-packed and compressed. Sources with
graded alpha (some videos, APNG) get a full 8-bit plane, coded as residuals
against the previous frame's alpha by the same plane coders as colour.

Alpha modes, stored in each frame: 0 every pixel opaque, 1 binary (0/255), 2 8-bit.
"""

from __future__ import annotations

import numpy as np
import zstandard
from numba import njit

from . import rangecoder as rc
from .errors import CorruptError
from .planecoder import CoderState
from .zstd_bounded import decompress

ALPHA_OPAQUE = 0
ALPHA_BINARY = 1
ALPHA_FULL = 2

N_MASK_CTX = 1 << 8
LIMIT = 5


def alpha_mode(alpha: np.ndarray) -> int:
    if alpha.min() == 255:
        return ALPHA_OPAQUE
    if np.all((alpha == 0) | (alpha == 255)):
        return ALPHA_BINARY
    return ALPHA_FULL


class AlphaState:
    def __init__(self, height: int, width: int) -> None:
        self.probs, self.counts = rc.new_models(N_MASK_CTX)
        self.prev = np.full((height, width), 255, np.uint8)
        self._opaque_plane = self.prev
        self._full: CoderState | None = None

    @property
    def full(self) -> CoderState:
        """Models for 8-bit alpha planes, made on first use: a frame-sized context
        plane that GIFs and opaque clips never need (a fresh state is a reset one)."""
        if self._full is None:
            self._full = CoderState(*self.prev.shape, 1)
        return self._full

    def opaque(self) -> np.ndarray:
        """An opaque frame's plane, made the previous one: the plane already there
        when it is the one made here. Nothing writes into a previous plane but
        `reset`, which fills it with 255, so the shared plane stays what it is (a new
        plane per frame was a byte a pixel more wherever a trial's checkpoint held
        the one before)."""
        if self.prev is not self._opaque_plane:
            self._opaque_plane = np.full(self.prev.shape, 255, np.uint8)
            self.prev = self._opaque_plane
        return self.prev

    def reset(self) -> None:
        self.probs[:] = rc.PROB_HALF
        self.counts[:] = 0
        self.prev[:] = 255
        if self._full is not None:
            self._full.reset()


@njit(cache=True)
def _code_mask(bits, prev, probs, counts, buf, enc):
    """bits: (H, W) uint8 in {0, 1} (1 = visible). prev likewise, from the last frame."""
    H, W = bits.shape
    st = np.zeros(rc.STATE_SIZE, np.int64)
    if enc:
        rc.rc_init_enc(st)
    else:
        rc.rc_init_dec(st, buf)
    for y in range(H):
        for x in range(W):
            w = bits[y, x - 1] if x > 0 else (bits[y - 1, x] if y > 0 else 1)
            n = bits[y - 1, x] if y > 0 else w
            nw = bits[y - 1, x - 1] if (y > 0 and x > 0) else n
            ne = bits[y - 1, x + 1] if (y > 0 and x + 1 < W) else n
            p0 = prev[y, x]
            p1 = prev[y, x + 1] if x + 1 < W else p0
            p2 = prev[y + 1, x] if y + 1 < H else p0
            ctx = w | (n << 1) | (nw << 2) | (ne << 3) | (p0 << 4) | (p1 << 5) | (p2 << 6)
            b = rc.code_adaptive(st, buf, probs, counts, ctx, bits[y, x] if enc else 0, enc, LIMIT)
            if not enc:
                bits[y, x] = b
    if enc:
        return rc.rc_finish_enc(st, buf), st[7]
    return st[4], 1 if st[6] > 8 else 0


def encode_alpha(
    alpha: np.ndarray, mode: int, state: AlphaState, entropy: str, plane_coder
) -> bytes:
    """Code one frame's alpha (H, W) uint8; updates `state` to this frame."""
    prev = state.prev
    if mode == ALPHA_BINARY:
        bits = (alpha != 0).astype(np.uint8)
        if entropy == "zstd":
            data = zstandard.ZstdCompressor(level=12).compress(
                np.packbits(bits ^ (prev != 0)).tobytes()
            )
        else:
            H, W = bits.shape
            buf = np.zeros(H * W // 2 + 256, np.uint8)
            n, err = _code_mask(
                bits, (prev != 0).astype(np.uint8), state.probs, state.counts, buf, True
            )
            if err:
                raise rc.CodingOverflow()
            data = buf[:n].tobytes()
    else:
        sym = (((alpha.astype(np.int16) - prev.astype(np.int16)) + 128) & 255) - 128
        full = np.ones(alpha.shape, bool)
        data = plane_coder.encode(sym[None].astype(np.int16), full, state.full, slot0=3)
    state.prev = alpha.copy()
    return data


def decode_alpha(
    data: bytes, mode: int, state: AlphaState, entropy: str, plane_coder
) -> np.ndarray:
    H, W = state.prev.shape
    prev = state.prev
    if mode == ALPHA_BINARY:
        if entropy == "zstd":
            raw = decompress(data, (H * W + 7) // 8, "alpha stream")
            if len(raw) != (H * W + 7) // 8:
                raise CorruptError("alpha stream has the wrong length")
            bits = np.unpackbits(np.frombuffer(raw, np.uint8))[: H * W].reshape(H, W)
            bits ^= (prev != 0).astype(np.uint8)
        else:
            bits = np.zeros((H, W), np.uint8)
            buf = rc.input_buffer(data)
            n, err = _code_mask(
                bits, (prev != 0).astype(np.uint8), state.probs, state.counts, buf, False
            )
            if err or n > len(data) + 8:
                raise CorruptError("alpha stream is damaged")
        alpha = bits * np.uint8(255)
    else:
        full = np.ones((H, W), bool)
        sym = plane_coder.decode(data, (1, H, W), full, state.full, slot0=3)
        alpha = ((prev.astype(np.int16) + sym[0]) & 255).astype(np.uint8)
    state.prev = alpha.copy()
    return alpha
