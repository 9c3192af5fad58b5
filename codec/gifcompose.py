"""Compositing GIF frames exactly as Pillow's `convert("RGBA")` shows them.

Pillow is the reference reader (what a lossless round trip must reproduce). Its
rules, mirrored here:

* The first frame is a palette image: pixels outside its rectangle take the
  transparent index when the frame has one (so they are invisible), else index 0.
  Whether that first frame declares a transparent index decides, for the whole
  animation, whether later frames can be transparent at all ("RGBA" vs "RGB").
* A frame's disposal applies before the next frame is drawn: 2 fills the frame's
  rectangle with this frame's transparent index if it has one (invisible, except
  in an RGB animation where that index's colour shows), else with the background
  colour (opaque); 3 (and the undefined 4..7) restores what was there before.
  A disposal of 0 keeps the previous frame's method (Pillow remembers it).
* Later frames paint their rectangle except where they use their transparent index.

The encoder checks every composited frame against Pillow's and falls back to
RGBA coding on any difference, so a mismatch here costs bytes, never correctness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .gifparse import GifFrame, interlace_rows
from .limits import row_bands


@dataclass
class CompositorState:
    """What must be known to draw the next frame (all of it travels in keyframes)."""

    canvas: np.ndarray  # (H, W, 4) uint8, canonical: what is shown now
    first: bool = True  # the next frame is the animation's first
    rgba_mode: bool = False  # the first frame declared a transparent index
    disposal: int = 0  # Pillow's remembered disposal method
    background: int = 0
    # disposal of the last drawn frame, applied before the next one
    pending: tuple[int, int, int, int, np.ndarray] | None = None

    def copy(self) -> CompositorState:
        """A state to go back to. The canvas is shared, not copied: `composite` never
        writes into a canvas it was given (it draws on a copy and replaces it), and the
        canvases are the frames it returned, which are never modified either. A copy
        was a frame-sized pass per GIF frame (a 1x1 frame on a 4096x4096 screen)."""
        pending = None
        if self.pending is not None:
            *rect, patch = self.pending
            pending = (*rect, patch.copy())
        return CompositorState(
            self.canvas, self.first, self.rgba_mode, self.disposal, self.background, pending
        )

    def without_canvas(self) -> CompositorState:
        """The flags and the pending disposal alone, for a predicted frame's trials in
        a lossy or near-lossless stream (gifchoice.py): they draw over the palette
        stream's own canvas or, in a resync, over the previous reconstruction, never
        over the GIF's previous frame, which this state's canvas was. Holding it kept
        that frame through the pixel trial (128 MiB at the size cap)."""
        return CompositorState(
            NO_CANVAS, self.first, self.rgba_mode, self.disposal, self.background, self.pending
        )


# the canvas of a state that draws on none (CompositorState.without_canvas)
NO_CANVAS = np.zeros((0, 0, 4), np.uint8)
NO_CANVAS.flags.writeable = False


def _palette_rgb(frame: GifFrame, global_palette: np.ndarray | None) -> np.ndarray:
    """(256, 3) colour lookup for the frame's indices (Pillow pads with black)."""
    pal = frame.local_palette if frame.local_palette is not None else global_palette
    lut = np.zeros((256, 3), np.uint8)
    if pal is None:
        lut[:] = np.arange(256, dtype=np.uint8)[:, None]  # no palette: greyscale
    else:
        lut[: len(pal)] = pal
    return lut


def frame_pixels(frame: GifFrame) -> np.ndarray:
    """The frame's indices as an (h, w) image (de-interlaced)."""
    img = frame.indices.reshape(frame.h, frame.w)
    if frame.interlace:
        out = np.empty_like(img)
        out[interlace_rows(frame.h)] = img
        return out
    return img


def composite(
    state: CompositorState, frame: GifFrame, global_palette: np.ndarray | None
) -> np.ndarray:
    """Draw `frame`; returns the canonical RGBA result and advances `state`."""
    lut = _palette_rgb(frame, global_palette)
    img = frame_pixels(frame)
    x0, y0, x1, y1 = frame.x, frame.y, frame.x + frame.w, frame.y + frame.h
    H, W = state.canvas.shape[:2]
    if x1 > W or y1 > H:
        # the compiled drawing checks no bounds (the parser and the decoder refuse such
        # frames before they get here; a caller of the library might not)
        raise ValueError(f"a {frame.w}x{frame.h} frame at ({x0}, {y0}) outside {W}x{H}")
    if frame.disposal:
        state.disposal = frame.disposal
    t = -1 if frame.transparency is None else frame.transparency
    if state.first:
        state.rgba_mode = t >= 0
        canvas = np.empty((H, W, 4), np.uint8)
        _draw_first(canvas, img, x0, y0, lut, t)
        before = None  # disposal 3 of the first frame restores "nothing": see below
        restore_first = t >= 0
        changed = [(0, 0, W, H)]
    else:
        canvas = state.canvas.copy()  # the returned frames are never modified later
        changed = []  # the previous canvas is canonical: only these need making so
        if state.pending is not None:
            px0, py0, px1, py1, patch = state.pending
            canvas[py0:py1, px0:px1] = patch
            changed.append((px0, py0, px1, py1))
        # Only the frame's own rectangle can be restored by its disposal, and only
        # "restore previous" needs it: copying the whole canvas for it cost a
        # full-screen pass per frame (a 1x1 frame on a 4096x4096 screen), and copying
        # the rectangle for every disposal a frame's worth of memory.
        before = canvas[y0:y1, x0:x1].copy() if state.disposal >= 3 else None
        _paint(canvas[y0:y1, x0:x1], img, lut, t)
        restore_first = False
        changed.append((x0, y0, x1, y1))
    state.pending = _disposal(state, frame, lut, before, restore_first)
    state.first = False
    for cx0, cy0, cx1, cy1 in changed:
        _canonical(canvas[cy0:cy1, cx0:cx1], state.rgba_mode)
    state.canvas = canvas
    return canvas


# Compiled: NumPy's lookups and masked copies took 3 ms a frame of 500x400 (a band at
# a time, to bound their temporaries at the size cap), and the encoder draws every
# GIF frame, its source reading draws it twice (source.py), the decoder once more.


@njit(cache=True)
def _draw_first(canvas, img, x0, y0, lut, t):
    """The first frame over a screen of its transparent index (invisible, all zero),
    else of index 0, which shows."""
    h, w = img.shape
    fill = t if t >= 0 else 0
    for y in range(canvas.shape[0]):
        for x in range(canvas.shape[1]):
            v = fill
            if y0 <= y < y0 + h and x0 <= x < x0 + w:
                v = img[y - y0, x - x0]
            if v == t:
                canvas[y, x, 0] = canvas[y, x, 1] = canvas[y, x, 2] = canvas[y, x, 3] = 0
            else:
                canvas[y, x, 0] = lut[v, 0]
                canvas[y, x, 1] = lut[v, 1]
                canvas[y, x, 2] = lut[v, 2]
                canvas[y, x, 3] = 255


@njit(cache=True)
def _paint(region, img, lut, t):
    """A later frame's pixels over its rectangle, but where it uses its transparent
    index (t, -1 for none)."""
    for y in range(img.shape[0]):
        for x in range(img.shape[1]):
            v = img[y, x]
            if v != t:
                region[y, x, 0] = lut[v, 0]
                region[y, x, 1] = lut[v, 1]
                region[y, x, 2] = lut[v, 2]
                region[y, x, 3] = 255


@njit(cache=True)
def _canonical(region, rgba_mode):
    """Opaque everywhere in an RGB animation; colour zero where nothing shows."""
    for y in range(region.shape[0]):
        for x in range(region.shape[1]):
            if not rgba_mode:
                region[y, x, 3] = 255
            elif region[y, x, 3] == 0:
                region[y, x, 0] = region[y, x, 1] = region[y, x, 2] = 0


def _disposal(
    state: CompositorState,
    frame: GifFrame,
    lut: np.ndarray,
    before: np.ndarray | None,
    first_transparent_fill: bool,
):
    x0, y0, x1, y1 = frame.x, frame.y, frame.x + frame.w, frame.y + frame.h
    h, w = y1 - y0, x1 - x0
    method = state.disposal
    if method == 2:
        colour = frame.transparency
        patch = np.empty((h, w, 4), np.uint8)
        if colour is not None:
            patch[..., :3] = lut[colour]
            patch[..., 3] = 0
            if not state.rgba_mode:
                patch[..., 3] = 255  # pasted into an RGB image: the colour shows
        else:
            patch[..., :3] = lut[state.background]
            patch[..., 3] = 255
        return (x0, y0, x1, y1, patch)
    if method >= 3:  # Pillow treats the undefined methods 4..7 as "restore previous"
        if state.first:
            if first_transparent_fill:
                patch = np.zeros((h, w, 4), np.uint8)
                return (x0, y0, x1, y1, patch)
            return None
        assert before is not None
        return (x0, y0, x1, y1, before)
    return None


def same_pixels(a: np.ndarray, b: np.ndarray) -> bool:
    """np.array_equal a band of rows at a time: its comparison of whole frames built a
    boolean frame beside them (128 MiB at the size cap)."""
    if a is b:
        return True
    if a.shape != b.shape:
        return False
    return all(np.array_equal(a[y0:y1], b[y0:y1]) for y0, y1 in row_bands(*a.shape[:2]))
