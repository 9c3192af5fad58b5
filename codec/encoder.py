"""The encoder: frames in, an .fpc stream out, one frame at a time.

Closed loop: every frame is predicted from the encoder's own reconstructions, the
frames the decoder will have, never from the originals. `add` returns the
reconstruction so callers (and the tests) can compare it with the source without
a second pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from fpcodec.models.predictor import Predictor

from .container import KEY, ContainerWriter, StreamHeader, frame_overhead
from .errors import InputError
from .framecodec import StreamState, encode_frame
from .gifparse import GifFrame, GifScreen
from .heap import release_free_memory
from .limits import DEFAULT_KEYFRAME_INTERVAL, MAX_DURATION_MS, MAX_FRAMES
from .lossy.presets import DEFAULT_PRESET, preset


@dataclass(frozen=True)
class FrameReport:
    index: int
    frame_type: int
    coding: int
    nbytes: int  # bytes the frame takes in the file, framing included
    recon: np.ndarray  # what the decoder will reconstruct, (H, W, 4) uint8


class Encoder:
    def __init__(
        self,
        sink: BinaryIO,
        header: StreamHeader,
        predictor: Predictor,
        gif_screen: GifScreen | None = None,
        palette: bool = True,
        speed: str = DEFAULT_PRESET,
    ) -> None:
        """gif_screen: the source GIF's screen (enables palette frames when lossless).
        speed: the lossy encoder's search preset (lossy/presets.py; not in the stream)."""
        if header.max_error and header.quality:
            raise ValueError("--max-error and --quality are exclusive")
        self.header = header
        self._writer = ContainerWriter(sink, header)
        self._state = StreamState(header, predictor, gif_screen, palette)
        self._state.lossy_search = preset(speed)
        self._index = 0
        self._pending: list = []  # (coded frame, duration) not yet written

    def add(
        self,
        rgba: np.ndarray | list[np.ndarray],
        duration_ms: int,
        gif: GifFrame | None = None,
    ) -> FrameReport:
        """Code the next frame. A list holding the frame hands it over: with no other
        reference, the frame's memory goes as soon as the coder has read it (the
        lossy coder: once it is in planes)."""
        h, w = self.header.height, self.header.width
        frame = rgba[0] if isinstance(rgba, list) else rgba
        if frame.shape != (h, w, 4) or frame.dtype != np.uint8:
            raise InputError(f"frame {self._index} has shape {frame.shape}, expected {(h, w, 4)}")
        del frame
        if self._index >= MAX_FRAMES:
            raise InputError(f"more than {MAX_FRAMES} frames")
        kint = self.header.keyframe_interval
        key = self._index == 0 or (kint > 0 and self._index % kint == 0)
        if key:
            self._flush()
        duration = int(min(max(duration_ms, 0), MAX_DURATION_MS))
        # what reading the frame left free (Pillow draws a frame in 16 MiB blocks and
        # frees its RGBA conversion once copied out: heap holes of 256 MiB at the cap)
        release_free_memory(h * w)
        coded = encode_frame(self._state, rgba, key, gif)
        state = self._state
        self._pending.append((coded.held(), duration))
        if not (state.gop_frames and (state.gop_pure or state.shadow is not None)):
            self._flush()  # no lossless twin of this GOP to weigh it against
        n = len(coded.body) + frame_overhead()
        report = FrameReport(self._index, coded.frame_type, coded.coding, n, coded.recon)
        self._index += 1
        return report

    def _flush(self) -> None:
        """Write the frames held back. A lossy GIF stream holds a GOP until it ends;
        its lossless twin (gifchoice.Shadow) is written instead when that is smaller, so
        the frames `add` reported for it may be replaced."""
        frames = self._pending
        shadow = self._state.shadow
        if shadow is not None and len(shadow.frames) == len(frames):
            if shadow.nbytes < sum(len(c.body) for c, _ in frames):
                frames = [(s, d) for s, (_, d) in zip(shadow.frames, frames, strict=True)]
            self._state.shadow = None
        for coded, duration in frames:
            n = self._writer.write_frame(
                coded.frame_type,
                coded.coding,
                duration,
                coded.crc,
                coded.body,
                has_alpha=coded.has_alpha,
            )
            assert n == len(coded.body) + frame_overhead()
        self._pending = []

    def close(self) -> StreamHeader:
        self._flush()
        return self._writer.close()

    @property
    def frames(self) -> int:
        return self._index


__all__ = ["DEFAULT_KEYFRAME_INTERVAL", "KEY", "Encoder", "FrameReport"]
