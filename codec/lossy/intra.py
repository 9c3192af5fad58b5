"""Intra prediction of a 4x4 block from its reconstructed neighbours (both sides), and
the encoder's choice of mode.

Modes: 0 DC (the rounded mean of the row above and the column to the left, whichever
exist; 128 for Y and 0 for Co/Cg when neither does), 1 vertical (the row above),
2 horizontal (the column to the left); a mode whose neighbours do not exist falls
back to DC. One mode per block serves its three planes.
"""

from __future__ import annotations

from numba import njit


@njit(cache=True)
def predict_block(recon, p, y0, x0, mode, out):
    """Intra prediction of a 4x4 block from reconstructed neighbours."""
    has_up = y0 > 0
    has_left = x0 > 0
    base = 128 if p == 0 else 0
    if mode == 1 and has_up:
        for i in range(4):
            for j in range(4):
                out[i, j] = recon[p, y0 - 1, x0 + j]
        return
    if mode == 2 and has_left:
        for i in range(4):
            for j in range(4):
                out[i, j] = recon[p, y0 + i, x0 - 1]
        return
    s = 0
    n = 0
    if has_up:
        for j in range(4):
            s += recon[p, y0 - 1, x0 + j]
        n += 4
    if has_left:
        for i in range(4):
            s += recon[p, y0 + i, x0 - 1]
        n += 4
    dc = base if n == 0 else (s + n // 2) // n if s >= 0 else -((-s + n // 2) // n)
    for i in range(4):
        for j in range(4):
            out[i, j] = dc


@njit(cache=True)
def best_intra_mode(src, tgt, y0, x0, pb):
    """Encoder: the intra mode (predicted from `src`) with the least Y SAD against
    the target at a 4x4 block, and that SAD."""
    best, mode = -1, 0
    for m in range(3):
        predict_block(src, 0, y0, x0, m, pb)
        sad = 0
        for i in range(4):
            for j in range(4):
                sad += abs(tgt[0, y0 + i, x0 + j] - pb[i, j])
        if best < 0 or sad < best:
            best, mode = sad, m
    return mode, best
