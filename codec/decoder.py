"""The decoder: an .fpc stream in, RGBA frames out, one at a time.

Every frame's reconstruction is checked against the CRC the encoder recorded;
the first mismatch stops decoding with the frame index (a closed-loop decoder that
diverged would otherwise produce garbage for every later frame).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from fpcodec.models.registry import check_frame_size, predictor_for_stream

from .container import ContainerReader, StreamHeader
from .errors import DivergenceError, PredictorUnavailable
from .framecodec import StreamState, decode_frame, frame_crc


@dataclass(frozen=True)
class DecodedFrame:
    index: int
    rgba: np.ndarray  # (H, W, 4) uint8
    duration_ms: int
    frame_type: int
    coding: int
    nbytes: int


class Decoder:
    def __init__(
        self,
        source: BinaryIO,
        weights: str | Path | None = None,
        float_path: bool = False,
        large_frames: bool = False,
    ) -> None:
        """float_path: also decode files of a float reference predictor (benchmark only;
        they decode only where float inference repeats exactly). large_frames: decode a
        frame predictor's file above that predictor's memory cap (registry.py), which
        takes more memory than the codec's bound."""
        self._reader = ContainerReader(source)
        self.header: StreamHeader = self._reader.header
        if not large_frames:
            h = self.header
            check_frame_size(
                h.predictor,
                h.width,
                h.height,
                PredictorUnavailable,
                " (decoding it can take 2.2 GiB: allow it with --large-frames)",
            )
        predictor = predictor_for_stream(
            self.header.predictor, self.header.predictor_sha256, weights, float_path
        )
        self._state = StreamState(self.header, predictor)

    def __iter__(self) -> Iterator[DecodedFrame]:
        for chunk in self._reader.frames():
            rgba = decode_frame(
                self._state, chunk.frame_type, chunk.coding, chunk.body, chunk.index
            )
            if frame_crc(rgba) != chunk.recon_crc:
                raise DivergenceError(chunk.index)
            yield DecodedFrame(
                chunk.index, rgba, chunk.duration_ms, chunk.frame_type, chunk.coding, chunk.size
            )
        # The stream is over: its models, references and the learned stage's state
        # (600 MB at the size cap) go before the consumer's last work, a GIF writer's
        # last frame, which it emits at close.
        self._state = None
