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
    snap = 1  # radius of the neighbour snap applied to predictions (0: off)
    # How far (in frame pixels, snap excluded) one step's outputs and new state can
    # lie from the inputs and old state they depend on. Tiled inference keeps this
    # much halo around every tile, so a tile's results equal the whole frame's.
    reach = 0

    def work_per_pixel(self) -> int:
        """Float32 values one step keeps alive per frame pixel at most (im2col buffers
        of the GEMM convolution path included): sizes the tiles of bounded inference."""
        raise NotImplementedError

    def state_bytes_per_pixel(self) -> float:
        """Bytes of recurrent state (computed each step, not passed-on frames) per
        frame pixel: tiled inference buffers two bands of it."""
        return 0.0

    def state_dtype(self, i: int) -> torch.dtype:
        """Smallest integer type holding state element i exactly (int8 unless a net
        says otherwise: activations and frames in integer units both fit)."""
        return torch.int8

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


def static_gate(delta: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Zero the correction wherever the 3x3 neighbourhood did not change last frame.

    GIF frames keep static pixels exactly; a correction there can only turn a free
    zero residual into a costly one. Exact in integer arithmetic (a max and a 0/1
    product).
    """
    moving = (d.abs().amax(1, keepdim=True) > 0).to(delta.dtype)
    moving = torch.nn.functional.max_pool2d(moving, 3, 1, 1)
    return delta * moving


def snap_to_neighbours(pred: torch.Tensor, last: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """Replace each predicted colour by the closest colour among the last frame's
    (2r+1)^2 neighbours of that pixel (the co-located one wins ties).

    GIF frames draw every pixel from a small palette, usually dithered: a smooth
    regression output lies between palette colours, where every residual is large
    and unpredictable, while the nearest neighbouring colour is usually the one the
    next frame shows (moved or not). Integer distances and a first-minimum argmin:
    exact and deterministic. pred, last: (N, 3, H, W) integer pixel values.
    """
    n, c, h, w = last.shape
    k = 2 * radius + 1
    cand = torch.nn.functional.unfold(
        torch.nn.functional.pad(last, (radius,) * 4, mode="replicate"), k
    )
    cand = cand.view(n, c, k * k, h, w)
    centre = (k * k) // 2
    order = [centre] + [
        i for i in range(k * k) if i != centre
    ]  # co-located first: argmin keeps the first minimum
    cand = cand[:, :, order]
    wgt = torch.tensor([3.0, 4.0, 2.0], dtype=pred.dtype, device=pred.device).view(1, 3, 1, 1, 1)
    dist = (wgt * (cand - pred.unsqueeze(2)) ** 2).sum(1)
    idx = dist.argmin(1, keepdim=True)
    return torch.gather(cand, 2, idx.unsqueeze(1).expand(n, c, 1, h, w)).squeeze(2)


def split_head(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Head output (N, 4, H, W) in pixel units -> delta (3 ch), spread (1 ch, >= 0)."""
    return out[:, :3].clamp(-DELTA_MAX, DELTA_MAX), out[:, 3:4].clamp(0, DELTA_MAX)
