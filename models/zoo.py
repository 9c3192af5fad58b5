"""Trained predictor architectures by name."""

from __future__ import annotations

import inspect

from fpcodec.codec.errors import FpcError

from .cnn2d import CNN2DNet
from .convlstm import ConvLSTMNet
from .convlstm_ae import ConvLSTMAENet
from .framenet import FrameNet
from .hybrid3d import Hybrid3DNet
from .loopfilter import LoopFilterNet

ARCHITECTURES: dict[str, type[FrameNet]] = {
    "convlstm": ConvLSTMNet,
    "convlstm-ae": ConvLSTMAENet,
    "cnn2d": CNN2DNet,
    "hybrid3d": Hybrid3DNet,
}
# Networks of the lossy coding loop rather than frame predictors (no FrameNet step).
LOOP_FILTERS: dict[str, type] = {"convlstm-loop": LoopFilterNet}
NETWORKS: dict[str, type] = {**ARCHITECTURES, **LOOP_FILTERS}


def build(name: str, config: dict | None = None) -> FrameNet:
    return NETWORKS[name](**(config or {}))


def check_config(name: str, config: dict) -> None:
    """Refuse constructor arguments the architecture does not take, or that are not
    positive integers (every size argument of the zoo is a channel count)."""
    params = inspect.signature(NETWORKS[name]).parameters
    for key, value in config.items():
        if key not in params:
            known = ", ".join(params) or "none"
            raise FpcError(f"{name} has no setting {key!r} (settings: {known})")
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 256:
            raise FpcError(f"{name} setting {key!r} must be an integer in 1..256, not {value!r}")
