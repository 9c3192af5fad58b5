"""The baseline predictor: the next frame is the last one."""

from __future__ import annotations

import numpy as np

from .predictor import Prediction, Predictor


class LastFramePredictor(Predictor):
    name = "last"
    # the lossy coder then does not list the newest decoded frame twice as a reference
    prediction_is_decoded = True

    def __init__(self) -> None:
        self._last: np.ndarray | None = None

    def reset(self, height: int, width: int) -> None:
        self._last = None

    def observe(self, frame: np.ndarray) -> None:
        self._last = frame

    def predict(self) -> Prediction:
        if self._last is None:
            raise RuntimeError("predict() before any frame was observed")
        return Prediction(self._last)

    def hand_over(self) -> np.ndarray:
        frame = self.predict().rgb
        self._last = None
        return frame
