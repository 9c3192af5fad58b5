"""Palette frames after frames of other codings: the resync state.

In a lossy or near-lossless stream a GIF frame may be coded as a palette frame
(coding 2) even when the frame before it was not, so the choice between the GIF's
own coding and a pixel coding is made afresh for every frame. The decoder's
compositor then no longer knows what the GIF drew before; a resync state says
what it needs: the frame is drawn over the previous reconstruction, after the
pending disposal when that is a fill, under the remembered disposal, background index and RGB/RGBA
mode the state names. On the stream's first palette frame since its keyframe
(a keyframe of another coding) the palette models start afresh and the global
palette travels too.

Layout (after the palette frame's head, flag 16 set on a predicted frame):
`kflags u8` (64 resync, 2 RGBA mode, 16 global palette follows, 128 a pending fill
follows), `disposal u8`, `background u8`, [fill: `x0, y0, x1, y1 u16`, `RGBA 4 x u8`],
[global palette: `n u16`, n x 3 bytes]. A fill is the GIF's "restore to
background" disposal of the frame before, applied to the previous reconstruction
before this frame is drawn (GIFs that clear every frame need it).
"""

from __future__ import annotations

import struct

import numpy as np

from .errors import FormatError
from .gifcompose import CompositorState
from .palette import K_GLOBAL, K_RESYNC, K_RGBA, PaletteStream
from .sections import Reader

K_FILL = 128  # a pending fill follows: the GIF's "restore to background" disposal
_FILL = struct.Struct("<HHHH4B")  # x0, y0, x1, y1, RGBA


def _uniform_fill(pending) -> tuple | None:
    """The exact compositor's pending disposal when it is one colour over a
    rectangle (disposal 2), else None (disposal 3 restores pixels: not sent)."""
    if pending is None:
        return None
    x0, y0, x1, y1, patch = pending
    flat = patch.reshape(-1, 4)
    if flat.shape[0] == 0 or not (flat == flat[0]).all():
        return None
    return (x0, y0, x1, y1, patch)


def resync_compositor(previous: np.ndarray, exact: CompositorState) -> CompositorState:
    """What a resync frame is drawn over: the previous reconstruction, under the
    flags of the encoder's exact compositor, with its pending disposal where that is a
    fill (GIFs that clear every frame to the background need it). Encoder only; the
    canvas is `previous` itself, as in CompositorState.copy: `composite` never writes
    into the canvas it is given, and the encoder's reconstructions are not modified."""
    return CompositorState(
        canvas=previous,
        first=False,
        rgba_mode=exact.rgba_mode,
        disposal=exact.disposal,
        background=exact.background,
        pending=_uniform_fill(exact.pending),
    )


def encode_resync_state(ps: PaletteStream, comp: CompositorState) -> bytes:
    send_global = ps.fresh and ps.global_palette is not None
    kflags = (
        K_RESYNC
        | (K_RGBA if comp.rgba_mode else 0)
        | (K_GLOBAL if send_global else 0)
        | (K_FILL if comp.pending is not None else 0)
    )
    out = struct.pack("<BBB", kflags, comp.disposal, comp.background)
    if comp.pending is not None:
        x0, y0, x1, y1, patch = comp.pending
        out += _FILL.pack(x0, y0, x1, y1, *(int(v) for v in patch.reshape(-1, 4)[0]))
    if send_global:
        out += struct.pack("<H", len(ps.global_palette)) + ps.global_palette.tobytes()
    if ps.fresh:
        ps.reset_models(*comp.canvas.shape[:2])
        ps.fresh = False
    return out


def decode_resync_state(ps: PaletteStream, r: Reader, previous: np.ndarray, what: str) -> None:
    kflags, disposal, background = struct.unpack("<BBB", r.take(3))
    if kflags & ~(K_RESYNC | K_RGBA | K_GLOBAL | K_FILL) or not kflags & K_RESYNC:
        raise FormatError(f"{what}: bad palette resync state")
    pending = None
    if kflags & K_FILL:
        x0, y0, x1, y1, *rgba = _FILL.unpack(r.take(_FILL.size))
        h, w = previous.shape[:2]
        if not (x0 < x1 <= w and y0 < y1 <= h):
            raise FormatError(f"{what}: resync fill outside the frame")
        pending = (x0, y0, x1, y1, np.full((y1 - y0, x1 - x0, 4), rgba, np.uint8))
    if kflags & K_GLOBAL:
        if not ps.fresh:
            raise FormatError(f"{what}: a global palette after the stream's first palette frame")
        n = struct.unpack("<H", r.take(2))[0]
        if not 1 <= n <= 256:
            raise FormatError(f"{what}: bad global palette size")
        ps.global_palette = np.frombuffer(r.take(3 * n), np.uint8).reshape(n, 3).copy()
    elif ps.fresh:
        ps.global_palette = None
    if ps.fresh:
        ps.reset_models(*previous.shape[:2])
        ps.fresh = False
    ps.compositor = CompositorState(
        canvas=previous.copy(),
        first=False,
        rgba_mode=bool(kflags & K_RGBA),
        disposal=disposal & 7,
        background=background,
        pending=pending,
    )
