"""One frame through the codec, the same steps in both directions.

`StreamState` holds everything adaptive that encoder and decoder must keep in
lock-step: the predictor, the entropy models, the previous reconstruction. A
keyframe resets all of it. `encode_frame` / `decode_frame` pick the coding:

* residual -- colour residuals against the predictor (intra MED on keyframes),
  lossless or within --max-error; alpha coded losslessly beside them;
* palette  -- lossless index coding for GIF-like frames (palette.py);
* lossy    -- transform coding at --quality (lossy.py);
* raw      -- stored RGB(A): the fallback that bounds every frame's size. It is
  always a keyframe, so a failed coding attempt can never leave the two sides'
  adaptive state apart.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from fpcodec.models.predictor import Predictor

from . import rangecoder
from .alpha import (
    ALPHA_BINARY,
    ALPHA_FULL,
    ALPHA_OPAQUE,
    AlphaState,
    alpha_mode,
    decode_alpha,
    encode_alpha,
)
from .container import CODING_RAW, CODING_RESIDUAL, KEY, PREDICTED, StreamHeader
from .errors import FormatError
from .planecoder import CoderState, get_plane_coder
from .residual import inter_reconstruct, inter_symbols, intra_reconstruct, intra_symbols
from .sections import Reader, pack


def frame_crc(rgba: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(rgba).data) & 0xFFFFFFFF


class StreamState:
    def __init__(self, header: StreamHeader, predictor: Predictor) -> None:
        h, w = header.height, header.width
        self.header = header
        self.predictor = predictor
        self.plane_coder = get_plane_coder(header.entropy)
        self.coder = CoderState(h, w, 3)
        self.alpha = AlphaState(h, w)
        self.prev: np.ndarray | None = None  # last reconstructed RGBA frame

    def start_gop(self) -> None:
        h, w = self.header.height, self.header.width
        self.coder.reset()
        self.alpha.reset()
        self.predictor.reset(h, w)
        self.prev = None

    def finish_frame(self, recon: np.ndarray) -> None:
        self.predictor.observe(np.ascontiguousarray(recon[..., :3]))
        self.prev = recon


@dataclass(frozen=True)
class CodedFrame:
    frame_type: int
    coding: int
    body: bytes
    recon: np.ndarray  # (H, W, 4) uint8, canonical (RGB zero where alpha is zero)


def _with_alpha(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    out = np.empty((*rgb.shape[:2], 4), np.uint8)
    out[..., :3] = rgb
    out[..., 3] = alpha
    out[alpha == 0, :3] = 0
    return out


# ---------------------------------------------------------------- encoding


def encode_frame(state: StreamState, rgba: np.ndarray, key: bool) -> CodedFrame:
    """Code one canonical RGBA frame; updates `state` exactly as decode_frame will."""
    header = state.header
    if key:
        state.start_gop()
    try:
        coded = _encode_residual(state, rgba, key)
        if len(coded.body) <= _raw_size(rgba):
            state.finish_frame(coded.recon)
            return coded
    except rangecoder.CodingOverflow:
        pass
    # Incompressible: store it raw, as a keyframe so both sides restart their models.
    state.start_gop()
    coded = _encode_raw(rgba, header)
    state.finish_frame(coded.recon)
    return coded


def _raw_size(rgba: np.ndarray) -> int:
    h, w = rgba.shape[:2]
    return 1 + h * w * 4


def _encode_raw(rgba: np.ndarray, header: StreamHeader) -> CodedFrame:
    amode = alpha_mode(rgba[..., 3])
    parts = [bytes([amode]), np.ascontiguousarray(rgba[..., :3]).tobytes()]
    if amode != ALPHA_OPAQUE:
        parts.append(np.ascontiguousarray(rgba[..., 3]).tobytes())
    return CodedFrame(KEY, CODING_RAW, b"".join(parts), rgba)


def _encode_residual(state: StreamState, rgba: np.ndarray, key: bool) -> CodedFrame:
    header = state.header
    alpha = rgba[..., 3]
    amode = alpha_mode(alpha)
    mask = alpha != 0
    parts = [bytes([amode])]
    if amode != ALPHA_OPAQUE:
        parts.append(
            pack(encode_alpha(alpha, amode, state.alpha, header.entropy, state.plane_coder))
        )
    else:
        state.alpha.prev = alpha.copy()
    spread = None
    if key:
        sym, rgb = intra_symbols(rgba, mask, header.max_error)
    else:
        prediction = state.predictor.predict()
        spread = prediction.spread
        sym, rgb = inter_symbols(rgba[..., :3], prediction.rgb, mask, header.max_error)
    parts.append(
        pack(state.plane_coder.encode(sym, mask, state.coder, spread=spread, temporal=not key))
    )
    recon = _with_alpha(rgb, alpha)
    return CodedFrame(KEY if key else PREDICTED, CODING_RESIDUAL, b"".join(parts), recon)


# ---------------------------------------------------------------- decoding


def decode_frame(
    state: StreamState, frame_type: int, coding: int, body: bytes, index: int
) -> np.ndarray:
    """Reconstruct one frame from its body; updates `state` exactly as encode_frame did."""
    key = frame_type == KEY
    if key:
        state.start_gop()
    elif state.prev is None:
        raise FormatError(f"frame {index}: predicted frame without a keyframe before it")
    what = f"frame {index}"
    if coding == CODING_RAW:
        if not key:
            raise FormatError(f"{what}: raw frames must be keyframes")
        recon = _decode_raw(body, state.header, what)
    elif coding == CODING_RESIDUAL:
        if state.header.quality:
            raise FormatError(f"{what}: residual frame in a lossy stream")
        recon = _decode_residual(state, body, key, what)
    else:
        raise FormatError(f"{what}: coding {coding} is not supported by this decoder")
    state.finish_frame(recon)
    return recon


def _decode_alpha_mode(r: Reader, what: str) -> int:
    amode = r.u8()
    if amode not in (ALPHA_OPAQUE, ALPHA_BINARY, ALPHA_FULL):
        raise FormatError(f"{what}: unknown alpha mode {amode}")
    return amode


def _decode_raw(body: bytes, header: StreamHeader, what: str) -> np.ndarray:
    h, w = header.height, header.width
    r = Reader(body, what)
    amode = _decode_alpha_mode(r, what)
    rgb = np.frombuffer(r.take(h * w * 3), np.uint8).reshape(h, w, 3)
    alpha = (
        np.full((h, w), 255, np.uint8)
        if amode == ALPHA_OPAQUE
        else np.frombuffer(r.take(h * w), np.uint8).reshape(h, w)
    )
    r.done()
    return _with_alpha(rgb, alpha)


def _decode_residual(state: StreamState, body: bytes, key: bool, what: str) -> np.ndarray:
    header = state.header
    h, w = header.height, header.width
    r = Reader(body, what)
    amode = _decode_alpha_mode(r, what)
    if amode != ALPHA_OPAQUE:
        alpha = decode_alpha(r.section(), amode, state.alpha, header.entropy, state.plane_coder)
        if amode == ALPHA_BINARY and not np.all((alpha == 0) | (alpha == 255)):
            raise FormatError(f"{what}: binary alpha plane decoded to other values")
    else:
        alpha = np.full((h, w), 255, np.uint8)
        state.alpha.prev = alpha.copy()
    mask = alpha != 0
    spread = None
    pred = None
    if not key:
        prediction = state.predictor.predict()
        spread = prediction.spread
        pred = prediction.rgb
    sym = state.plane_coder.decode(
        r.section(), (3, h, w), mask, state.coder, spread=spread, temporal=not key
    )
    r.done()
    if header.max_error == 0:
        bad = (sym < -128) | (sym > 127)
    else:
        qmax = (255 + header.max_error) // (2 * header.max_error + 1)
        bad = (sym < -128) | (sym > 127) | (np.abs(sym[0]) > qmax)
    if bad.any():
        raise FormatError(f"{what}: residual symbols out of range (damaged stream)")
    rgb = (
        intra_reconstruct(sym, mask, header.max_error)
        if key
        else inter_reconstruct(sym, pred, mask, header.max_error)
    )
    return _with_alpha(rgb, alpha)
