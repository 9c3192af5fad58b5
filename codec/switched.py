"""Lossless colour residuals of coding 8: a per-pixel switch between a spatial and a
temporal predictor, in a reversible colour space.

Coding 1 predicts every pixel from the predictor's frame alone and decorrelates
colour on the residuals. Camera video defeats that: noise, pans and lighting changes
make the previous frame a poor guess where the picture's own neighbours are a good
one (FFV1, which only predicts spatially, coded the corpus's bikes clip in 27% fewer
bytes). Here each pixel is predicted in the planes

    P0 = G,  P1 = (R - G + 128) mod 256,  P2 = (B - G + 128) mod 256

(JPEG-LS's reversible colour transform: spatial prediction works on the smooth
colour differences instead of three correlated channels; the offset puts grey,
the common case, far from the wrap) by one of two predictors:

* spatial: MED (LOCO-I's median edge detector) on the reconstructed W, N, NW;
* temporal: the predictor's frame at the pixel plus how MED's guess changed
  between that frame and this one (T + MED - MED_T): exact where the picture
  did not change, and it follows a change of brightness the way MED does.

Which one a pixel uses is decided from what both sides already know: the one whose
summed error (over the three planes) on the causal neighbours W, N (counted twice),
NW, NE, WW and NN was smaller, the spatial one on ties. No side information is
coded. Keyframes use the spatial predictor alone. Residuals are taken modulo 256
into [-128, 127], so symbols fit a byte and the plane coder codes them as it codes
coding 1's. Transparent pixels carry no symbol and reconstruct to black.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .residual import med


@njit(cache=True, inline="always")
def _wrap(e):
    return ((e + 128) & 255) - 128


@njit(cache=True)
def _code(tgt, tpl, sym, rec, mask, temporal, enc):
    """tgt, tpl, rec: (3, H, W) uint8 planes (target, temporal prediction, the
    reconstruction being built). Encoder: fills sym and rec; decoder: rec from sym."""
    _, H, W = rec.shape
    # errors of (spatial, temporal) at each pixel, three rows kept (NN is 2 rows up)
    err = np.zeros((2, 3, W), np.int64)
    p = np.zeros((2, 3), np.int64)
    cost = np.zeros(2, np.int64)
    for y in range(H):
        r0, r1, r2 = y % 3, (y + 2) % 3, (y + 1) % 3  # this row, the one above, two above
        for x in range(W):
            if not mask[y, x]:
                for c in range(3):
                    rec[c, y, x] = 0 if c == 0 else 128  # black
                    if enc:
                        sym[c, y, x] = 0
                err[0, r0, x] = 0
                err[1, r0, x] = 0
                continue
            for c in range(3):
                m = med(rec[c], y, x)
                p[0, c] = m
                if temporal:
                    v = np.int64(tpl[c, y, x]) + m - med(tpl[c], y, x)
                    p[1, c] = 0 if v < 0 else (255 if v > 255 else v)
            use = 0
            if temporal:
                for i in range(2):
                    s = 0
                    if x > 0:
                        s += 2 * err[i, r0, x - 1]
                    if x > 1:
                        s += err[i, r0, x - 2]
                    if y > 0:
                        s += 2 * err[i, r1, x]
                        if x > 0:
                            s += err[i, r1, x - 1]
                        if x + 1 < W:
                            s += err[i, r1, x + 1]
                    if y > 1:
                        s += err[i, r2, x]
                    cost[i] = s
                if cost[1] < cost[0]:
                    use = 1
            e0 = 0
            e1 = 0
            for c in range(3):
                if enc:
                    q = _wrap(np.int64(tgt[c, y, x]) - p[use, c])
                    sym[c, y, x] = q
                else:
                    q = np.int64(sym[c, y, x])
                v = (p[use, c] + q) & 255
                rec[c, y, x] = v
                e0 += abs(_wrap(v - p[0, c]))
                e1 += abs(_wrap(v - p[1, c]))
            err[0, r0, x] = e0
            err[1, r0, x] = e1


def _to_planes(rgb: np.ndarray) -> np.ndarray:
    # uint8 arithmetic wraps modulo 256, which is the transform's own arithmetic
    g = rgb[..., 1]
    planes = [g, rgb[..., 0] - g + np.uint8(128), rgb[..., 2] - g + np.uint8(128)]
    return np.ascontiguousarray(np.stack(planes), dtype=np.uint8)


def _to_rgb(pl: np.ndarray) -> np.ndarray:
    g = pl[0]
    return np.stack([pl[1] + g - np.uint8(128), g, pl[2] + g - np.uint8(128)], -1)


def switched_symbols(
    target: np.ndarray, pred: np.ndarray | None, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Symbols (3, H, W) int16 and the reconstruction (H, W, 3) uint8 (equal to the
    target where mask is set, black elsewhere). pred None: a keyframe."""
    H, W = mask.shape
    tgt = _to_planes(target)
    tpl = _to_planes(pred) if pred is not None else np.zeros((3, 1, 1), np.uint8)
    sym = np.zeros((3, H, W), np.int16)
    rec = np.zeros((3, H, W), np.uint8)
    _code(tgt, tpl, sym, rec, mask, pred is not None, True)
    return sym, _to_rgb(rec)


def switched_reconstruct(sym: np.ndarray, pred: np.ndarray | None, mask: np.ndarray) -> np.ndarray:
    """The decoder's side of switched_symbols."""
    H, W = mask.shape
    tpl = _to_planes(pred) if pred is not None else np.zeros((3, 1, 1), np.uint8)
    rec = np.zeros((3, H, W), np.uint8)
    _code(np.zeros((3, 1, 1), np.uint8), tpl, sym, rec, mask, pred is not None, False)
    return _to_rgb(rec)
