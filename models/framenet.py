"""What every trained frame predictor network shares.

A `FrameNet` is recurrent: `step` takes the newest decoded frame (integer units:
pixel - 128) and the state, and returns the predicted change of the next frame
relative to this one (integer pixel units), a spread estimate (expected |error| in
pixels, for the entropy coder) and the new state. Networks see only decoded frames
and carry their state from frame to frame, so the codec runs one step per frame.
"""

from __future__ import annotations

import torch
from torch import nn

from .intnet import IN_BITS, rshift_round

DELTA_MAX = 255


class FrameNet(nn.Module):
    name = "base"
    align = 1  # frame sides are padded to a multiple of this
    history = 1  # frames the state must remember (for stacked-frame models)

    def config(self) -> dict:
        """Constructor arguments, saved with the weights."""
        return {}

    def init_state(self, n: int, h: int, w: int, device: torch.device) -> list[torch.Tensor]:
        raise NotImplementedError

    def step(
        self, x: torch.Tensor, state: list[torch.Tensor], quant: bool
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """x: (N, 3, H, W) frame in Q7 integer units. Returns (delta, spread, state)."""
        raise NotImplementedError


def frame_diff(x: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
    """Change since the previous frame, saturated to the Q7 range."""
    return (x - prev).clamp(-128, 127)


def to_q5(x: torch.Tensor, quant: bool) -> torch.Tensor:
    """Q7 input units -> Q5 activation units."""
    return rshift_round(x, IN_BITS - 5, quant)


def split_head(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Head output (N, 4, H, W) in pixel units -> delta (3 ch), spread (1 ch, >= 0)."""
    return out[:, :3].clamp(-DELTA_MAX, DELTA_MAX), out[:, 3:4].clamp(0, DELTA_MAX)
