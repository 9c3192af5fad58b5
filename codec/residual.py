"""Prediction residuals <-> symbol planes, lossless or within a per-channel error bound.

A predicted frame's residual is `target - prediction` per channel; a keyframe's is
`target - MED(west, north, north-west)` (LOCO-I's median edge detector), computed
on the reconstruction as it is built so encoder and decoder agree.

Lossless (max_error 0): residuals are taken modulo 256, which maps them one-to-one
onto [-128, 127], so the symbols always fit a byte.
Near-lossless (max_error E > 0): JPEG-LS quantisation, q = sign(e) * ((|e| + E) //
(2E + 1)); the reconstruction prediction + q (2E + 1), clamped to 0..255, is within
+-E of the source on every channel of every coded pixel (clamping only moves it
towards the source, which lies in 0..255 too).

Colour decorrelation: planes are coded as [G, R - G, B - G] (in int8 arithmetic on
the quantised residuals), because residual errors of the three channels move
together. Transparent pixels carry no symbols; their reconstruction is black, the
canonical colour of an invisible pixel.
"""

from __future__ import annotations

import numpy as np
from numba import njit

ORDER = (1, 0, 2)  # code G first: R and B are coded relative to it


def _encoder_arrays(shape: tuple[int, ...], out: np.ndarray | None):
    """The encoder's symbols, int8 (every symbol fits a byte: see the module
    docstring; int16 was 6 bytes a pixel), and where its reconstruction goes."""
    H, W = shape[:2]
    sym = np.empty((3, H, W), np.int8)
    return sym, (np.empty((H, W, 3), np.uint8) if out is None else out)


def inter_symbols(
    target: np.ndarray,
    pred: np.ndarray,
    mask: np.ndarray,
    max_error: int,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Symbols (3, H, W) int8 and the reconstruction (H, W, 3) uint8 of a predicted
    frame, written into `out` when given (the colour of an RGBA frame, say)."""
    sym, recon = _encoder_arrays(target.shape, out)
    _inter(target, sym, pred, mask, max_error, recon, True)
    return sym, recon


def inter_reconstruct(
    sym: np.ndarray, pred: np.ndarray, mask: np.ndarray, max_error: int
) -> np.ndarray:
    out = np.empty(pred.shape, np.uint8)
    _inter(np.zeros((1, 1, 3), np.uint8), sym, pred, mask, max_error, out, False)
    return out


@njit(cache=True, inline="always")
def _wrap8(v):
    return ((v + 128) & 255) - 128


@njit(cache=True, inline="always")
def _quantise(e, max_error, step):
    """A channel's quantised residual (the module docstring's JPEG-LS rule)."""
    if max_error == 0:
        return _wrap8(e)
    if e >= 0:
        return (e + max_error) // step
    return -((max_error - e) // step)


@njit(cache=True, inline="always")
def _pack_symbols(q, sym, y, x):
    """The pixel's quantised residuals (R, G, B) as G-relative symbols."""
    sym[0, y, x] = q[1]
    sym[1, y, x] = _wrap8(q[0] - q[1])
    sym[2, y, x] = _wrap8(q[2] - q[1])


@njit(cache=True, inline="always")
def _unpack_symbols(sym, y, x, q):
    """The pixel's quantised residuals in R, G, B order from its G-relative symbols."""
    g = np.int64(sym[0, y, x])
    q[0] = _wrap8(sym[1, y, x] + g)
    q[1] = g
    q[2] = _wrap8(sym[2, y, x] + g)


@njit(cache=True, inline="always")
def _dequantise(p, qc, max_error, step):
    """A channel's value from its prediction and quantised residual."""
    if max_error == 0:
        return (p + qc) & 255
    v = p + qc * step
    return 0 if v < 0 else (255 if v > 255 else v)


@njit(cache=True)
def _inter(target, sym, pred, mask, max_error, out, enc):
    """A predicted frame coded (enc: symbols from `target`) or decoded, one pixel at a
    time: the same arithmetic in NumPy took 40-60 bytes a pixel of int16 temporaries."""
    H, W, _ = out.shape
    step = 2 * max_error + 1
    q = np.zeros(3, np.int64)
    for y in range(H):
        for x in range(W):
            if not mask[y, x]:
                for c in range(3):
                    out[y, x, c] = 0
                    if enc:
                        sym[c, y, x] = 0
                continue
            if not enc:
                _unpack_symbols(sym, y, x, q)
            for c in range(3):
                p = np.int64(pred[y, x, c])
                if enc:
                    q[c] = _quantise(np.int64(target[y, x, c]) - p, max_error, step)
                out[y, x, c] = _dequantise(p, q[c], max_error, step)
            if enc:
                _pack_symbols(q, sym, y, x)


@njit(cache=True, inline="always")
def med(plane, y, x):
    """MED (LOCO-I's median edge detector) at (y, x) of a 2-D plane, from the causal
    W, N and NW neighbours. Edges: W missing takes N (128 when both are missing), N
    missing takes W, NW missing takes N. Codings 1 and 8 both predict with it."""
    if x > 0:
        a = np.int64(plane[y, x - 1])
    elif y > 0:
        a = np.int64(plane[y - 1, x])
    else:
        a = np.int64(128)
    b = np.int64(plane[y - 1, x]) if y > 0 else a
    d = np.int64(plane[y - 1, x - 1]) if (y > 0 and x > 0) else b
    if d >= max(a, b):
        return min(a, b)
    if d <= min(a, b):
        return max(a, b)
    return a + b - d


@njit(cache=True)
def _intra(target, sym, recon, mask, max_error, enc):
    H, W, _ = recon.shape
    step = 2 * max_error + 1
    q = np.zeros(3, np.int64)
    for y in range(H):
        for x in range(W):
            if not mask[y, x]:
                for c in range(3):
                    recon[y, x, c] = 0
                    if enc:
                        sym[c, y, x] = 0
                continue
            if not enc:
                _unpack_symbols(sym, y, x, q)
            for c in range(3):
                p = med(recon[:, :, c], y, x)
                if enc:
                    q[c] = _quantise(np.int64(target[y, x, c]) - p, max_error, step)
                recon[y, x, c] = _dequantise(p, q[c], max_error, step)
            if enc:
                _pack_symbols(q, sym, y, x)


def intra_symbols(
    target: np.ndarray, mask: np.ndarray, max_error: int, out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A keyframe's symbols and reconstruction, as inter_symbols'."""
    sym, recon = _encoder_arrays(target.shape, out)
    _intra(target, sym, recon, mask, max_error, True)
    return sym, recon


def intra_reconstruct(sym: np.ndarray, mask: np.ndarray, max_error: int) -> np.ndarray:
    _, H, W = sym.shape
    recon = np.zeros((H, W, 3), np.uint8)
    _intra(np.zeros((1, 1, 3), np.uint8), sym, recon, mask, max_error, False)
    return recon
