"""A GIF frame in a lossy or near-lossless stream: its own coding unless pixels are cheaper.

The palette coding (coding 2) is the best representation of a GIF frame at zero
distortion, and an exact frame is a valid reconstruction at every setting, so a
lossy point of a GIF starts from it and can only go down: every frame is coded as
pixels (coding 9 at --quality, coding 1 at --max-error) and as palette frames (the
GIF frame itself; at --max-error also with its indices moved within the bound,
palette_nearlossless.py), each a trial from the same state (trial.py), and the
smallest valid one is kept.

A palette frame is drawn over the decoder's compositor. After a palette frame that
is the one the GIF frames drew; after a frame of another coding it is the previous
reconstruction (a resync, palette_resync.py), which is no longer exact: at
--max-error the composited frame must still keep the bound everywhere, at
--quality it must be no more distorted than the pixel coding's frame (squared
error), or the pixels win. A GIF's disposal of a frame coded as pixels is what
such a frame misses.

Frame by frame the smaller coding is not always the smaller GOP: a frame coded as
pixels leaves the palette models behind, and the next palette frame pays for it
(after a keyframe of pixels the models start again). So once a GOP leaves the
pure palette chain, a shadow keeps coding it as the lossless stream would (exact
palette frames, its own predictor), and the encoder writes whichever of the two
GOPs is smaller (encoder.py): every setting is then at most the lossless file's
size, GOP by GOP, wherever the lossless file is all palette frames.
"""

from __future__ import annotations

import copy
import math

import numpy as np
from fpcodec.models.predictor import Prediction
from numba import njit

from . import rangecoder
from .container import CODING_PALETTE, KEY, PREDICTED
from .gifcompose import CompositorState, composite, same_pixels
from .gifparse import GifFrame
from .palette import PaletteStream, encode_palette_frame
from .palette_nearlossless import near_lossless_frame
from .palette_resync import resync_compositor
from .trial import Checkpoint, LossyCheckpoint

KEY_SWITCH = 0.75  # a keyframe coded as pixels must cost at most this much of the palette's
LEAVE_CHAIN = 0.9  # ...and a frame after a palette frame this much
# At --quality a GIF frame covering at most 1/SMALL_FRAME of the screen tries its
# palette coding first (choose)
SMALL_FRAME = 8
LOSE_BY = 2  # a pixel trial this many times the kept palette frame's bytes lost heavily
MAX_SKIPS = 16  # ...and the most frames skipped after a run of such losses (_back_off)


@njit(cache=True)
def _changed_pixels(a: np.ndarray, b: np.ndarray) -> int:
    """How many pixels of two RGBA frames differ (no frame-sized temporaries)."""
    n = 0
    for y in range(a.shape[0]):
        for x in range(a.shape[1]):
            for c in range(4):
                if a[y, x, c] != b[y, x, c]:
                    n += 1
                    break
    return n


@njit(cache=True)
def _colour_sse(a: np.ndarray, b: np.ndarray) -> int:
    """Sum of squared differences of the colour channels of two RGBA frames."""
    total = 0
    for y in range(a.shape[0]):
        for x in range(a.shape[1]):
            for c in range(3):
                d = np.int64(a[y, x, c]) - np.int64(b[y, x, c])
                total += d * d
    return total


@njit(cache=True)
def _colour_within(a: np.ndarray, b: np.ndarray, bound: int) -> bool:
    """Alpha equal and every colour channel within `bound`."""
    for y in range(a.shape[0]):
        for x in range(a.shape[1]):
            if a[y, x, 3] != b[y, x, 3]:
                return False
            for c in range(3):
                if abs(np.int64(a[y, x, c]) - np.int64(b[y, x, c])) > bound:
                    return False
    return True


def _sse(recon: np.ndarray, rgba: np.ndarray) -> int:
    """Compiled: the NumPy expression held an int64 copy of a band of the frame
    (48 MB at 4 megapixels)."""
    if recon is rgba:  # an exact trial's frame is the source's (_palette_trial)
        return 0
    return int(_colour_sse(recon, rgba))


def _within(recon: np.ndarray, rgba: np.ndarray, max_error: int) -> bool:
    """The near-lossless bound: alpha exact, every visible channel within max_error."""
    if recon is rgba:
        return True
    return bool(_colour_within(recon, rgba, max_error))


def _palette_trial(
    state, rgba, key, frame: GifFrame, prediction, before: CompositorState, limit: float
):
    """One palette coding of `frame` on a fork of the palette state; returns (coded
    frame, the state after it but for the index map, which the fork shares and the
    frame kept updates) or None when it cannot be coded, or when its body is over
    `limit` bytes (_keep_limit)."""
    from .framecodec import CodedFrame, encode_intra_image

    resync = not key and not state.prev_was_palette
    if key:
        ps = state.palette.fork(before.copy())
        ps.global_palette = state.gif_screen.global_palette
    elif resync:
        ps = state.palette.fork(resync_compositor(state.prev, before))
        if ps.fresh:
            ps.global_palette = state.gif_screen.global_palette
    else:
        ps = state.palette.fork()
    try:
        body = encode_palette_frame(
            ps,
            frame,
            key,
            None if prediction is None else prediction.rgb,
            lambda base: encode_intra_image(base, state.header.entropy),
            resync=resync,
            remember=False,
        )
    except (ValueError, rangecoder.CodingOverflow):
        return None
    if len(body) > limit:
        # at --quality, after the pixel trial: a frame that cannot be kept is not
        # drawn (its canvas was a frame beside the pixel trial's, at the peak)
        return None
    recon = composite(ps.compositor, frame, ps.global_palette)
    if same_pixels(recon, rgba):
        recon = ps.compositor.canvas = rgba  # the same pixels, held once
    return CodedFrame(KEY if key else PREDICTED, CODING_PALETTE, body, recon), ps


class _PixelCheckpoint:
    """What a pixel trial changes: the alpha coder's models (its previous plane is
    replaced, not written into), and the pixel coder's or the lossy models. A class at
    module level: one made per call, closing over the copies, lived in a reference
    cycle, and the copies with it, until the garbage collector ran."""

    def __init__(self, state) -> None:
        alpha = (state.alpha, ("probs", "counts", "_full"), ("prev",))
        if state.lossy is not None:
            self.lossy = LossyCheckpoint(state.lossy)
            self.rest = Checkpoint(alpha)
        else:
            self.lossy = None
            self.rest = Checkpoint(alpha, (state, ("_coder",)))

    def restore(self) -> None:
        self.rest.restore()
        if self.lossy is not None:
            self.lossy.restore()


class Shadow:
    """The GOP as the lossless stream codes it, from the frame the mixed one left it."""

    def __init__(self, frames: list, ps: PaletteStream, predictor) -> None:
        self.frames = frames  # HeldFrame per frame of the GOP so far
        self.ps = ps
        self.predictor = predictor

    def step(self, gif: GifFrame, after: CompositorState) -> bool:
        """Code the next frame as an exact palette continuation; False: it cannot be.
        after: the encoder's exact compositor after this frame (framecodec._gif_step),
        which reproduced the source frame (choose runs only then). A shadow starts
        from the lossless stream's own frame in a GOP of nothing else
        (_track_shadow), so its compositor is the exact one before every step, and
        after drawing the frame it would be `after`: drawing it again made a
        frame-sized canvas beside the source's identical one."""
        from .framecodec import CodedFrame

        prediction = self.predictor.predict()
        try:
            body = encode_palette_frame(self.ps, gif, False, prediction.rgb, lambda base: b"")
        except (ValueError, rangecoder.CodingOverflow):
            return False
        self.ps.compositor = after.copy()
        recon = after.canvas
        self.frames.append(CodedFrame(PREDICTED, CODING_PALETTE, body, recon).held())
        # a view of the canvas the shadow keeps anyway (a contiguous copy was 3 bytes
        # a pixel); predictors never write into what they observe
        self.predictor.observe(recon[..., :3])
        return True

    @property
    def nbytes(self) -> int:
        return sum(len(f.body) for f in self.frames)


def drop_shadow(state) -> None:
    """The lossless stream could not code this frame as palette either: no shadow."""
    state.shadow = None
    state.gop_pure = False


def _step_shadow(state, gif: GifFrame) -> None:
    """A shadow under way codes this frame before the trials: it reads nothing they
    change (its palette state, index map and predictor are its own), and once it has
    drawn the frame nothing holds the frame before it, whose canvas it kept (128 MiB
    at the size cap, beside the pixel trial's planes)."""
    if state.shadow is not None and not state.shadow.step(gif, state.enc_compositor):
        drop_shadow(state)


def _track_shadow(state, gif: GifFrame, chosen, exact, gop_frames: list) -> None:
    """Start `state.shadow` (the pure palette GOP) where this frame leaves it; one under
    way has already coded this frame (_step_shadow)."""
    if state.shadow is not None:
        return
    if not state.gop_pure:
        return
    if exact is not None and chosen is exact[0]:
        return  # still the lossless stream's own frames: no shadow needed
    if exact is None:
        drop_shadow(state)
        return
    state.gop_pure = False
    coded, ps = exact
    ps.own_index_map()  # the trial left it to the frame kept (_palette_trial)
    ps.remember(gif)
    predictor = copy.deepcopy(state.predictor)
    predictor.observe(coded.recon[..., :3])
    state.shadow = Shadow([*gop_frames, coded.held()], ps, predictor)


def choose(
    state,
    rgba: np.ndarray,
    key: bool,
    gif: GifFrame,
    prediction: Prediction | None,
    before: CompositorState,
    gop_frames: list,
):
    """The smallest valid coding of a GIF frame; `state` advances as for that one.
    gop_frames: the frames of the GOP so far (a shadow starts from them)."""
    header = state.header
    _step_shadow(state, gif)
    # Whichever trial needs the larger buffers runs first, while nothing of the other
    # is held: the lossy coder's at --quality (48 MB less at the size cap than the
    # other order), else the palette trials' (a moved frame and its reconstruction:
    # 160 MB less). A small GIF frame's palette trial goes first at --quality too:
    # its frame is the source's, and the lossy trial may then be known to lose.
    small = not key and SMALL_FRAME * gif.w * gif.h <= rgba.shape[0] * rgba.shape[1]
    changed = -1
    if header.quality and not key and state.prev is not None:
        changed = int(_changed_pixels(rgba, state.prev))
    skip = changed >= 0 and state.pixel_skips > 0 and 2 * changed >= state.pixel_loss_changed
    if skip:
        state.pixel_skips -= 1
    trial = header.quality and not small and not skip
    pixels = _PixelTrial(state, rgba, key, prediction) if trial else None
    frames = [gif]
    if header.max_error:
        moved = near_lossless_frame(
            gif,
            state.gif_screen.global_palette,
            header.max_error,
            _drawn_on_canvas(state, key, before),
            predicted=None if prediction is None else prediction.rgb,
        )
        if moved is not None:
            frames.append(moved)
    palettes = []
    exact = None
    for frame in frames:
        own = frame is gif and (key or state.prev_was_palette)
        limit = math.inf if own else _keep_limit(state, key, pixels)
        got = _palette_trial(state, rgba, key, frame, prediction, before, limit)
        if got is None:
            continue
        coded, ps = got
        if own:
            exact = got  # what the lossless stream writes, while the GOP is pure
        if header.max_error and not _within(coded.recon, rgba, header.max_error):
            continue  # a resync over pixels the GIF's disposal would have cleared
        candidate = (len(coded.body), _sse(coded.recon, rgba), coded, ps, frame)
        if header.quality or not palettes:
            palettes.append(candidate)
        elif candidate[0] < palettes[0][0]:
            # without --quality only the bytes decide (_choose), so the smallest is all
            # that need be kept: each candidate holds a frame and a palette state
            palettes[0] = candidate
    if pixels is None and not skip and not _pixels_cannot_win(state, rgba, key, palettes):
        pixels = _PixelTrial(state, rgba, key, prediction)
    chosen = _choose(state, rgba, key, pixels, palettes)
    if header.quality and pixels is not None:
        _back_off(state, pixels.coded, chosen, changed)
    # the candidates not kept each hold a palette state (60 MB of models) and a frame:
    # gone before a shadow starts beside them (its index map and predictor are copies)
    del palettes, pixels
    if state.shadow is not None:
        exact = None  # a shadow under way coded its own frame (_step_shadow)
    _track_shadow(state, gif, chosen, exact, gop_frames)
    return chosen


def _back_off(state, pixels, chosen, changed: int) -> None:
    """At --quality a GIF's pixel trial costs more than its palette trials (the lossy
    coder's whole pass), and where a GIF's own frames are what fits the quality it
    loses frame after frame, by far: at Q 70 every frame of the held-out 480x270 clips
    kept its palette frame, a fifth to a quarter of the pixels' bytes. After each heavy
    loss in a row (by LOSE_BY or more) the next 1, 2, 4, ... (at most MAX_SKIPS) frames
    that change at least half as many pixels as the least changed of those losses skip
    it: a frame that changes little (a GIF's repeated frame: a few skipped units, tens
    of bytes against hundreds for its palette frame) is tried whatever came before. A
    keyframe, or a trial that wins or loses narrowly, starts again; bytes decide, so
    the files stay the same on every thread count. changed: pixels that differ from
    the previous frame, -1 where there is none."""
    heavy = (
        pixels is not None
        and chosen is not pixels
        and changed >= 0
        and len(pixels.body) >= LOSE_BY * len(chosen.body)
    )
    if heavy:
        first = state.pixel_losses == 0
        state.pixel_losses += 1
        state.pixel_skips = min(1 << (state.pixel_losses - 1), MAX_SKIPS)
        state.pixel_loss_changed = changed if first else min(state.pixel_loss_changed, changed)
    else:
        state.pixel_losses = 0
        state.pixel_skips = 0


class _PixelTrial:
    """The frame coded as pixels (`coded`; None when it overflowed), and the state to
    go back to if a palette frame is kept instead."""

    def __init__(self, state, rgba, key, prediction) -> None:
        from .framecodec import _pixel_frame

        self.checkpoint = _PixelCheckpoint(state)
        try:
            self.coded = _pixel_frame(state, rgba, key, prediction)
        except rangecoder.CodingOverflow:
            self.coded = None


def _keep_limit(state, key: bool, pixels: _PixelTrial | None) -> float:
    """The most bytes a palette frame may have and still be kept against the pixel
    trial already run (the bound _choose applies); infinite before one has run. A frame over it need
    not be drawn (_palette_trial), and the lossless stream's own frame is drawn
    anyway, since a shadow may start from it (_track_shadow)."""
    if pixels is None or pixels.coded is None:
        return math.inf
    return len(pixels.coded.body) / _margin(state, key)


def _margin(state, key: bool) -> float:
    """Leaving the palette chain costs the frames after it (their models miss this
    frame; on a keyframe they start afresh at the next palette frame), so pixels
    must be clearly smaller to be taken there: at most this much of the palette's."""
    return KEY_SWITCH if key else (LEAVE_CHAIN if state.prev_was_palette else 1.0)


def _pixels_cannot_win(state, rgba: np.ndarray, key: bool, palettes: list) -> bool:
    """Pixels are kept only when their body is smaller than the smallest palette
    frame over the margin (_choose; at --quality a palette frame must also be no more
    distorted, which an exact one never is). The arithmetic-coded residual codes a
    zero flag for each channel of each visible pixel, a predicted lossy frame a skip
    flag for each unit, and so each writes at least rangecoder.min_coded_bytes of
    them; when that already loses, the trial need not run (a one-pixel GIF frame on a
    large screen: the whole screen coded each frame for nothing). The choice, and so
    every byte, is the trial's."""
    header = state.header
    if header.quality:
        palettes = [c for c in palettes if c[1] == 0]
    if not palettes or state.plane_coder.name != "arith":
        return False
    if header.quality:
        if key or header.entropy != "arith":
            return False
        h, w = rgba.shape[:2]
        least = rangecoder.min_coded_bytes(-(-h // 8) * -(-w // 8))
    else:
        least = rangecoder.min_coded_bytes(3 * int(np.count_nonzero(rgba[..., 3])))
    return min(c[0] for c in palettes) <= least / _margin(state, key)


def _choose(state, rgba, key, trial: _PixelTrial | None, palettes):
    """The pixel coding or the smallest valid palette frame (trial None: the pixels
    were known to lose, _pixels_cannot_win)."""
    pixels = None if trial is None else trial.coded
    if not palettes:
        if pixels is None:
            raise rangecoder.CodingOverflow()
        return pixels
    palettes.sort(key=lambda c: c[0])
    best = palettes[0]
    if pixels is not None:
        limit = _keep_limit(state, key, trial)
        if state.header.quality:
            # at --quality a palette frame must be no larger and no more distorted
            sse = _sse(pixels.recon, rgba)
            ok = [c for c in palettes if c[0] <= limit and c[1] <= sse]
        else:
            ok = [c for c in palettes if c[0] <= limit]
        if not ok:
            return pixels
        best = ok[0]
    if trial is not None:
        trial.checkpoint.restore()
    state._palette = best[3]
    best[3].remember(best[4])  # the trials left the shared index map to the frame kept
    return best[2]


def _drawn_on_canvas(state, key: bool, before: CompositorState) -> np.ndarray:
    """What the decoder will draw this frame over (see _palette_trial)."""
    from .palette import _drawn_on

    if key:
        return _drawn_on(before)
    if state.prev_was_palette:
        return _drawn_on(state.palette.compositor)
    return _drawn_on(resync_compositor(state.prev, before))
