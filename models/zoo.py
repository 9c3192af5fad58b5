"""Trained predictor architectures by name."""

from __future__ import annotations

from .cnn2d import CNN2DNet
from .convlstm import ConvLSTMNet
from .convlstm_ae import ConvLSTMAENet
from .framenet import FrameNet
from .hybrid3d import Hybrid3DNet

ARCHITECTURES: dict[str, type[FrameNet]] = {
    "convlstm": ConvLSTMNet,
    "convlstm-ae": ConvLSTMAENet,
    "cnn2d": CNN2DNet,
    "hybrid3d": Hybrid3DNet,
}


def build(name: str, config: dict | None = None) -> FrameNet:
    return ARCHITECTURES[name](**(config or {}))
