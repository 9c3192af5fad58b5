"""The predictor interface the codec drives, identically in encoder and decoder.

A predictor is stateful: the codec calls `reset` at every keyframe, `observe` with
each frame as the *decoder* reconstructs it, and `predict` for the next frame.
Predictions must be a pure function of what was observed since the last reset,
bit-for-bit on any machine; trained predictors meet that by running exact integer
inference (see models/intnet.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Prediction:
    rgb: np.ndarray  # (H, W, 3) uint8: the predicted next frame
    # (H, W) uint8 in 0..3, how unsure the predictor is per pixel (0 = confident), or
    # None. The entropy coder uses it as a context; it never changes what is decoded.
    spread: np.ndarray | None = None


class Predictor(ABC):
    """Predicts the next frame from the reconstructed frames observed since reset."""

    name: str = "base"
    weights_sha256: bytes = bytes(32)  # identity of trained weights; zeros when none

    @abstractmethod
    def reset(self, height: int, width: int) -> None:
        """Forget all history (called at every keyframe)."""

    @abstractmethod
    def observe(self, frame: np.ndarray) -> None:
        """Take in the next reconstructed frame, (H, W, 3) uint8: maybe a view of an RGBA
        frame, never to be written into (a predictor may keep it as it is)."""

    @abstractmethod
    def predict(self) -> Prediction:
        """Predict the frame after the last observed one. Requires one observed frame."""

    def hand_over(self) -> np.ndarray:
        """The prediction's colour for a coding that is its only reader: a predictor
        whose prediction is the frame it holds lets go of it, so that the frame can
        go once it is converted (the next `observe` follows before any `predict`)."""
        return self.predict().rgb

    @property
    def identity(self) -> str:
        """Human-readable identity: name plus a short weights hash when trained."""
        if any(self.weights_sha256):
            return f"{self.name}@{self.weights_sha256.hex()[:12]}"
        return self.name
