"""One frame through the codec, the same steps in both directions.

`StreamState` holds everything adaptive that encoder and decoder must keep in
lock-step: the predictor, the entropy models, the GIF compositor, the previous
reconstruction. A keyframe resets all of it. For every predicted frame the
predictor is asked once, before the frame's coding is chosen, on both sides.
`encode_frame` / `decode_frame` pick the coding:

* palette  -- lossless: the GIF frame itself (palette.py), when the source is a GIF
  the parser can represent and its compositing matches Pillow's for this frame;
* switched -- lossless colour residuals, each pixel predicted spatially or from the
  prediction, whichever its neighbours say worked (switched.py); alpha coded
  losslessly beside them;
* residual -- colour residuals against the prediction (intra MED on keyframes)
  within --max-error (near-lossless only);
* lossy    -- transform coding at --quality (the lossy/ package);
* raw      -- stored RGB(A): the fallback that bounds every frame's size. It is
  always a keyframe, so a failed coding attempt can never leave the two sides'
  adaptive state apart.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from fpcodec.models.predictor import Prediction, Predictor

from . import lossy, rangecoder
from .alpha import (
    ALPHA_BINARY,
    ALPHA_FULL,
    ALPHA_OPAQUE,
    AlphaState,
    alpha_mode,
    decode_alpha,
    encode_alpha,
)
from .container import (
    CODING_LOSSY,
    CODING_PALETTE,
    CODING_RAW,
    CODING_RESIDUAL,
    CODING_SWITCHED,
    KEY,
    PREDICTED,
    StreamHeader,
)
from .errors import FormatError
from .gifcompose import CompositorState, composite, same_pixels
from .gifparse import GifFrame, GifScreen
from .lossy.presets import DEFAULT_PRESET
from .lossy.presets import preset as lossy_preset
from .palette import (
    F_KEYSTATE,
    PaletteModels,
    PaletteStream,
    decode_palette_frame,
    encode_palette_frame,
)
from .planecoder import CoderState, PlaneCoder, get_plane_coder
from .residual import inter_reconstruct, inter_symbols, intra_reconstruct, intra_symbols
from .sections import Reader, pack
from .switched import switched_reconstruct, switched_symbols


def frame_crc(rgba: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(rgba).data) & 0xFFFFFFFF


class StreamState:
    def __init__(
        self,
        header: StreamHeader,
        predictor: Predictor,
        gif_screen: GifScreen | None = None,
        allow_palette: bool = True,
    ) -> None:
        h, w = header.height, header.width
        self.header = header
        self.predictor = predictor
        self.plane_coder = get_plane_coder(header.entropy)
        self._coder: CoderState | None = None
        self.alpha = AlphaState(h, w)
        self.prev: np.ndarray | None = None  # last reconstructed RGBA frame
        self._palette: PaletteStream | None = None
        self.prev_was_palette = False
        self.lossy = (
            lossy.LossyModels(
                getattr(predictor, "prediction_is_decoded", False),
                getattr(predictor, "loop_filter", None),
            )
            if header.quality
            else None
        )
        self.lossy_search = lossy_preset(DEFAULT_PRESET)  # encoder only: --speed
        self._start_gop_choices()
        # Encoder only: the GIF as parsed, composited frame by frame (exactly, whatever
        # the decoder's compositor shows in a lossy stream).
        self.gif_screen = gif_screen if allow_palette else None
        self.enc_compositor: CompositorState | None = None
        if self.gif_screen is not None:
            self.enc_compositor = CompositorState(
                np.zeros((h, w, 4), np.uint8), background=self.gif_screen.background
            )

    @property
    def coder(self) -> CoderState:
        """The residual codings' models, made on first use: a lossy stream's frames
        never need their frame-sized context plane (a fresh state is a reset one)."""
        if self._coder is None:
            h, w = self.header.height, self.header.width
            self._coder = CoderState(h, w, 3)
        return self._coder

    @property
    def palette(self) -> PaletteStream:
        if self._palette is None:  # its models are large: made on first use
            self._palette = PaletteStream(PaletteModels())
        return self._palette

    def start_gop(self) -> None:
        h, w = self.header.height, self.header.width
        if self._coder is not None:
            self._coder.reset()
        self.alpha.reset()
        if self.lossy is not None:
            self.lossy.reset()
        self.predictor.reset(h, w)
        self.prev = None
        self.prev_was_palette = False
        self._start_gop_choices()
        if self._palette is not None:
            self._palette.fresh = True  # palette models restart with the GOP's first one

    def _start_gop_choices(self) -> None:
        """Encoder only, lossy GIF streams (gifchoice.py): the GOP's frames so far,
        whether they are all the lossless stream's own, the lossless GOP once they are
        not, and the back-off of pixel trials at --quality."""
        self.gop_frames: list[HeldFrame] = []
        self.gop_pure = True
        self.shadow = None
        self.pixel_losses = 0  # pixel trials lost heavily in a row
        self.pixel_skips = 0  # ...and how many frames' pixel trials to skip now
        self.pixel_loss_changed = 0  # ...unless a frame changes fewer pixels than this

    def take_prediction(self) -> np.ndarray:
        """The prediction's colour for a coding that is its only reader (a stream
        without GIF trials): neither the state nor a predictor whose prediction is the
        frame it holds keeps the previous frame after this (Predictor.hand_over)."""
        self.prev = None
        return self.predictor.hand_over()

    def finish_frame(self, recon: np.ndarray, coding: int) -> None:
        # a view: the `last` predictor keeps it as it is, and a copy was 3 bytes a pixel
        self.predictor.observe(recon[..., :3])
        self.prev = recon
        self.prev_was_palette = coding == CODING_PALETTE
        if coding == CODING_PALETTE and self.lossy is not None:
            lossy.keep_decoded(recon[..., :3], self.lossy)
        if coding != CODING_PALETTE and self._palette is not None:
            # after a frame of another coding the next palette frame is a keyframe or
            # a resync drawn over this reconstruction: the canvas the last palette
            # frame drew is never read again (a frame held through a run of pixels)
            self._palette.compositor = None


@dataclass(frozen=True)
class CodedFrame:
    frame_type: int
    coding: int
    body: bytes
    recon: np.ndarray  # (H, W, 4) uint8, canonical (RGB zero where alpha is zero)

    def held(self) -> HeldFrame:
        return HeldFrame(
            self.frame_type,
            self.coding,
            self.body,
            frame_crc(self.recon),
            bool((self.recon[..., 3] != 255).any()),
        )


@dataclass(frozen=True)
class HeldFrame:
    """A coded frame waiting to be written, without its pixels: a lossy GIF stream holds
    a whole GOP (and its lossless twin) back, and a GOP of reconstructions at the size
    cap would be gigabytes."""

    frame_type: int
    coding: int
    body: bytes
    crc: int
    has_alpha: bool


def with_alpha(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    out = np.empty((*rgb.shape[:2], 4), np.uint8)
    out[..., :3] = rgb
    return set_alpha(out, alpha)


def set_alpha(rgba: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Complete a frame whose colour a coder wrote into it (np.empty, so that its pages
    cost nothing while the coder's own buffers are held): alpha, and the canonical
    black where it is 0."""
    rgba[..., 3] = alpha
    if not alpha.all():
        np.copyto(rgba[..., :3], 0, where=(alpha == 0)[..., None])
    return rgba


# ---------------------------------------------------------------- residual coding


def residual_body(
    rgba: np.ndarray,
    prediction: Prediction | None,
    max_error: int,
    coder: CoderState,
    alpha_state: AlphaState,
    plane_coder: PlaneCoder,
    switched: bool = False,
) -> tuple[bytes, np.ndarray]:
    """Body of a residual frame (intra when prediction is None) and its reconstruction:
    coding 8 when `switched` (lossless only), else coding 1."""
    alpha = rgba[..., 3]
    amode = alpha_mode(alpha)
    mask = alpha != 0
    parts = [bytes([amode])]
    if amode != ALPHA_OPAQUE:
        parts.append(pack(encode_alpha(alpha, amode, alpha_state, plane_coder.name, plane_coder)))
    else:
        alpha_state.opaque()
    if switched:
        sym, rgb = switched_symbols(rgba, None if prediction is None else prediction.rgb, mask)
        recon = with_alpha(rgb, alpha)
        spread = None if prediction is None else prediction.spread
    else:
        # the colour is reconstructed into the RGBA frame itself: an RGB copy was 3
        # bytes a pixel
        recon = np.empty(rgba.shape, np.uint8)
        if prediction is None:
            sym, _ = intra_symbols(rgba, mask, max_error, recon[..., :3])
            spread = None
        else:
            sym, _ = inter_symbols(rgba, prediction.rgb, mask, max_error, recon[..., :3])
            spread = prediction.spread
        set_alpha(recon, alpha)
    data = plane_coder.encode(sym, mask, coder, spread=spread, temporal=prediction is not None)
    parts.append(pack(data))
    return b"".join(parts), recon


def residual_decode(
    body: bytes,
    prediction: Prediction | None,
    max_error: int,
    coder: CoderState,
    alpha_state: AlphaState,
    plane_coder: PlaneCoder,
    what: str,
    switched: bool = False,
) -> np.ndarray:
    h, w = alpha_state.prev.shape
    r = Reader(body, what)
    amode = r.u8()
    if amode not in (ALPHA_OPAQUE, ALPHA_BINARY, ALPHA_FULL):
        raise FormatError(f"{what}: unknown alpha mode {amode}")
    if amode != ALPHA_OPAQUE:
        alpha = decode_alpha(r.section(), amode, alpha_state, plane_coder.name, plane_coder)
        if amode == ALPHA_BINARY and not np.all((alpha == 0) | (alpha == 255)):
            raise FormatError(f"{what}: binary alpha plane decoded to other values")
    else:
        alpha = alpha_state.opaque()
    mask = alpha != 0
    spread = prediction.spread if prediction is not None else None
    sym = plane_coder.decode(
        r.section(), (3, h, w), mask, coder, spread=spread, temporal=prediction is not None
    )
    r.done()
    # extremes rather than masks: three int16-sized boolean temporaries of a frame at
    # the size cap were 300 MB
    bad = sym.size and (int(sym.min()) < -128 or int(sym.max()) > 127)
    if max_error and not bad:
        qmax = (255 + max_error) // (2 * max_error + 1)
        bad = sym[0].size and (int(sym[0].min()) < -qmax or int(sym[0].max()) > qmax)
    if bad:
        raise FormatError(f"{what}: residual symbols out of range (damaged stream)")
    if switched:
        rgb = switched_reconstruct(sym, None if prediction is None else prediction.rgb, mask)
    elif prediction is None:
        rgb = intra_reconstruct(sym, mask, max_error)
    else:
        rgb = inter_reconstruct(sym, prediction.rgb, mask, max_error)
    return with_alpha(rgb, alpha)


def encode_intra_image(rgba: np.ndarray, entropy: str) -> bytes:
    """A self-contained lossless intra coding of an RGBA image (fresh models)."""
    h, w = rgba.shape[:2]
    body, _ = residual_body(
        rgba, None, 0, CoderState(h, w, 3), AlphaState(h, w), get_plane_coder(entropy)
    )
    return body


def decode_intra_image(data: bytes, height: int, width: int, entropy: str, what: str) -> np.ndarray:
    return residual_decode(
        data,
        None,
        0,
        CoderState(height, width, 3),
        AlphaState(height, width),
        get_plane_coder(entropy),
        what,
    )


# ---------------------------------------------------------------- encoding


def encode_frame(
    state: StreamState,
    rgba: np.ndarray | list[np.ndarray],
    key: bool,
    gif: GifFrame | None = None,
) -> CodedFrame:
    """Code one canonical RGBA frame; updates `state` exactly as decode_frame will.
    A list holding the frame hands it over (the caller keeps no other reference):
    the lossy coder lets it go once it is in planes."""
    header = state.header
    if key:
        state.start_gop()
    if header.quality and state.gif_screen is None:
        # the lossy coder is the only reader of the prediction and of the frame: both
        # are handed over, and go once in planes (128 MiB each at the size cap)
        held = rgba if isinstance(rgba, list) else [rgba]
        rgba = None
        coded = _try(lambda: _encode_lossy_frame(state, held, key, None, hand_over=True))
        return _finish(state, held[0] if held else None, coded)
    if isinstance(rgba, list):
        rgba = rgba.pop()
    prediction = None if key else state.predictor.predict()
    coded = None
    try:
        if header.lossless:
            coded = _try_palette(state, rgba, key, gif, prediction)
        else:
            before = _gif_step(state, rgba, gif)
            if before is not None:
                if not key:
                    before = before.without_canvas()
                coded = choose_gif_coding(state, rgba, key, gif, prediction, before)
            else:
                drop_shadow(state)
                coded = _pixel_frame(state, rgba, key, prediction)
        if coded is None:
            coded = _pixel_frame(state, rgba, key, prediction)
    except rangecoder.CodingOverflow:
        coded = None
    return _finish(state, rgba, coded)


def _try(code) -> CodedFrame | None:
    try:
        return code()
    except rangecoder.CodingOverflow:
        return None


def _finish(state: StreamState, rgba: np.ndarray | None, coded: CodedFrame | None) -> CodedFrame:
    """The frame as coded, or raw where that is no smaller; `state` follows. rgba is
    None where the lossy coder kept the frame it was handed: its coding is smaller
    than raw (it gives the frame back otherwise)."""
    if coded is not None and (rgba is None or len(coded.body) <= _raw_size(rgba)):
        state.finish_frame(coded.recon, coded.coding)
        if state.gif_screen is not None and not state.header.lossless:
            state.gop_frames.append(coded.held())
        return coded
    # Incompressible: store it raw, as a keyframe so both sides restart their models.
    state.start_gop()
    drop_shadow(state)  # the GOP's lossless twin ends here too
    coded = _encode_raw(rgba)
    state.finish_frame(coded.recon, coded.coding)
    return coded


def _pixel_frame(
    state: StreamState, rgba: np.ndarray, key: bool, prediction: Prediction | None
) -> CodedFrame:
    """The frame coded as pixels: lossy (coding 9), else residuals. Lossless pixels
    switch predictors per pixel (coding 8); the per-channel error bound of
    --max-error needs coding 1's RGB residuals."""
    header = state.header
    if header.quality:
        return _encode_lossy_frame(state, rgba, key, prediction)
    switched = header.max_error == 0
    body, recon = residual_body(
        rgba,
        prediction,
        header.max_error,
        state.coder,
        state.alpha,
        state.plane_coder,
        switched,
    )
    coding = CODING_SWITCHED if switched else CODING_RESIDUAL
    return CodedFrame(KEY if key else PREDICTED, coding, body, recon)


def _gif_step(state: StreamState, rgba: np.ndarray, gif: GifFrame | None):
    """Advance the encoder's exact compositor by the parsed GIF frame; returns its
    state before the frame when the GIF frame reproduces `rgba` exactly, else None."""
    comp = state.enc_compositor
    if comp is None:
        return None
    if gif is None:
        state.enc_compositor = None  # the parse stopped: no palette frames from here on
        return None
    before = comp.copy()
    result = composite(comp, gif, state.gif_screen.global_palette)
    if not same_pixels(result, rgba):
        return None
    comp.canvas = rgba  # the same pixels, held once (composite never writes into it)
    return before


def choose_gif_coding(
    state: StreamState,
    rgba: np.ndarray,
    key: bool,
    gif: GifFrame,
    prediction: Prediction | None,
    before: CompositorState,
) -> CodedFrame:
    """A lossy or near-lossless stream's GIF frame: the GIF's own coding (exact, or
    with indices moved within --max-error) against the pixel coding; the smaller
    wins (gifchoice.py)."""
    from .gifchoice import choose

    return choose(state, rgba, key, gif, prediction, before, state.gop_frames)


def drop_shadow(state: StreamState) -> None:
    from .gifchoice import drop_shadow

    drop_shadow(state)


def _try_palette(
    state: StreamState,
    rgba: np.ndarray,
    key: bool,
    gif: GifFrame | None,
    prediction: Prediction | None,
) -> CodedFrame | None:
    """Palette-code the frame if the parsed GIF frame reproduces it exactly."""
    before = _gif_step(state, rgba, gif)
    if before is None or not (key or state.prev_was_palette):
        return None
    comp = state.enc_compositor
    ps = state.palette
    ps.compositor = before
    if key:
        ps.global_palette = state.gif_screen.global_palette
    try:
        body = encode_palette_frame(
            ps,
            gif,
            key,
            None if prediction is None else prediction.rgb,
            lambda base: encode_intra_image(base, state.header.entropy),
        )
    except ValueError:
        return None  # a code stream this coder cannot represent: code the pixels
    ps.compositor = comp.copy()
    return CodedFrame(KEY if key else PREDICTED, CODING_PALETTE, body, rgba)


def _encode_lossy_frame(
    state: StreamState,
    frame: np.ndarray | list[np.ndarray],
    key: bool,
    prediction: Prediction | None,
    hand_over: bool = False,
) -> CodedFrame:
    """Lossy colour (the lossy/ package) beside lossless alpha. hand_over: the
    prediction is taken from the state here (StreamState.take_prediction), not given.
    frame: the RGBA frame, or a list holding it, which hands it over: the list is
    emptied once the colour is in planes, and holds the frame again (rebuilt from its
    planes, which are the frame exactly) where the coding may not beat raw storage."""
    rgba = frame[0] if isinstance(frame, list) else frame
    alpha = rgba[..., 3]
    amode = alpha_mode(alpha)
    parts = [bytes([amode])]
    if amode != ALPHA_OPAQUE:
        parts.append(
            pack(encode_alpha(alpha, amode, state.alpha, state.plane_coder.name, state.plane_coder))
        )
    else:
        state.alpha.opaque()
    alpha = state.alpha.prev  # this frame's alpha, not a view: the frame itself can go
    colour: np.ndarray | list[np.ndarray] = rgba[..., :3]
    handed = isinstance(frame, list)
    if handed:
        frame.clear()
        colour = [colour]
    del rgba
    if hand_over and not key:
        pred = [state.take_prediction()]  # encode_lossy empties it: the last reference
    else:
        pred = None if prediction is None else prediction.rgb
    recon = np.empty((*alpha.shape, 4), np.uint8)  # the colour is decoded into it
    try:
        data, _ = lossy.encode_lossy(
            colour,
            pred,
            alpha,  # nonzero where visible: no boolean copy of the plane
            state.header.quality,
            state.lossy,
            state.header.entropy,
            state.lossy_search,
            recon[..., :3],
            # conservative: the frame decides against raw storage with its whole body
            give_back_over=_raw_size(alpha) - sum(map(len, parts)) - 16,
        )
    finally:
        if handed and colour:  # given back: stored raw, unless the coding still wins
            frame.append(with_alpha(colour.pop(), alpha))
    parts.append(pack(data))
    return CodedFrame(
        KEY if key else PREDICTED, CODING_LOSSY, b"".join(parts), set_alpha(recon, alpha)
    )


def _raw_size(rgba: np.ndarray) -> int:
    h, w = rgba.shape[:2]
    return 1 + h * w * 4


def _encode_raw(rgba: np.ndarray) -> CodedFrame:
    amode = alpha_mode(rgba[..., 3])
    parts = [bytes([amode]), np.ascontiguousarray(rgba[..., :3]).tobytes()]
    if amode != ALPHA_OPAQUE:
        parts.append(np.ascontiguousarray(rgba[..., 3]).tobytes())
    return CodedFrame(KEY, CODING_RAW, b"".join(parts), rgba)


# ---------------------------------------------------------------- decoding


def decode_frame(
    state: StreamState, frame_type: int, coding: int, body: bytes, index: int
) -> np.ndarray:
    """Reconstruct one frame from its body; updates `state` exactly as encode_frame did."""
    header = state.header
    key = frame_type == KEY
    what = f"frame {index}"
    if key:
        state.start_gop()
    elif state.prev is None:
        raise FormatError(f"{what}: predicted frame without a keyframe before it")
    if coding == CODING_RAW:
        if not key:
            raise FormatError(f"{what}: raw frames must be keyframes")
        recon = _decode_raw(body, header, what)
        state.finish_frame(recon, coding)
        return recon
    prediction = None if key else state.predictor.predict()
    if coding in (CODING_RESIDUAL, CODING_SWITCHED):
        if header.quality:
            raise FormatError(f"{what}: residual frame in a lossy stream")
        switched = coding == CODING_SWITCHED
        if switched and header.max_error:
            raise FormatError(f"{what}: switched (lossless) frame in a near-lossless stream")
        if not switched and not header.max_error:
            raise FormatError(f"{what}: residual (coding 1) frame in a lossless stream")
        recon = residual_decode(
            body,
            prediction,
            header.max_error,
            state.coder,
            state.alpha,
            state.plane_coder,
            what,
            switched,
        )
    elif coding == CODING_LOSSY:
        if not header.quality:
            raise FormatError(f"{what}: lossy frame in a lossless stream")
        recon = _decode_lossy_frame(state, body, prediction, what)
    elif coding == CODING_PALETTE:
        # lossless streams hold palette frames only in runs from a palette keyframe;
        # lossy and near-lossless ones may resync after frames of other codings
        resync_ok = not key and not header.lossless
        carries_state = len(body) > 0 and body[0] & F_KEYSTATE
        if not key and not state.prev_was_palette and not (resync_ok and carries_state):
            raise FormatError(f"{what}: palette frame must follow a palette frame or be a keyframe")
        ps = state.palette
        frame = decode_palette_frame(
            ps,
            body,
            key,
            None if prediction is None else prediction.rgb,
            header.width,
            header.height,
            lambda data: decode_intra_image(
                data, header.height, header.width, header.entropy, what
            ),
            what,
            state.prev if resync_ok else None,
        )
        recon = composite(ps.compositor, frame, ps.global_palette)
    else:
        raise FormatError(f"{what}: coding {coding} is not supported by this decoder")
    state.finish_frame(recon, coding)
    return recon


def _decode_lossy_frame(
    state: StreamState, body: bytes, prediction: Prediction | None, what: str
) -> np.ndarray:
    header = state.header
    h, w = header.height, header.width
    r = Reader(body, what)
    amode = r.u8()
    if amode not in (ALPHA_OPAQUE, ALPHA_BINARY, ALPHA_FULL):
        raise FormatError(f"{what}: unknown alpha mode {amode}")
    if amode != ALPHA_OPAQUE:
        alpha = decode_alpha(
            r.section(), amode, state.alpha, state.plane_coder.name, state.plane_coder
        )
    else:
        alpha = state.alpha.opaque()
    data = r.section()
    r.done()
    pred = None if prediction is None else prediction.rgb
    recon = np.empty((h, w, 4), np.uint8)  # the colour is decoded into it, as the encoder's
    _, damaged = lossy.decode_lossy(
        data, pred, h, w, header.quality, state.lossy, header.entropy, what, recon[..., :3]
    )
    if damaged:
        raise FormatError(f"{what}: lossy stream is damaged")
    return set_alpha(recon, alpha)


def _decode_raw(body: bytes, header: StreamHeader, what: str) -> np.ndarray:
    h, w = header.height, header.width
    r = Reader(body, what)
    amode = r.u8()
    if amode not in (ALPHA_OPAQUE, ALPHA_BINARY, ALPHA_FULL):
        raise FormatError(f"{what}: unknown alpha mode {amode}")
    rgb = np.frombuffer(r.take(h * w * 3), np.uint8).reshape(h, w, 3)
    alpha = (
        np.full((h, w), 255, np.uint8)
        if amode == ALPHA_OPAQUE
        else np.frombuffer(r.take(h * w), np.uint8).reshape(h, w)
    )
    r.done()
    return with_alpha(rgb, alpha)
