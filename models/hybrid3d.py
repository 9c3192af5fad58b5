"""`hybrid3d`: the last frame plus a Conv3D correction.

A small Conv3D network runs over (frames x height x width) of each colour plane
separately (the planes share weights); its per-plane corrections are added to the
last frame. The time axis (the last five frames) is consumed by the final layer.
"""

from __future__ import annotations

import torch

from .framenet import DELTA_MAX, FrameNet
from .intnet import IN_BITS, QConv, relu

WINDOW = 5


class Hybrid3DNet(FrameNet):
    name = "hybrid3d"
    history = WINDOW
    reach = 3  # three 3x3 spatial kernels

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.width = width
        self.c1 = QConv(1, width, 3, f_in=IN_BITS, dims=3)
        self.c2 = QConv(width, width, 3, dims=3)
        self.c3 = QConv(
            width,
            2,
            (WINDOW, 3, 3),
            f_out=IN_BITS,
            dims=3,
            zero_init=True,
            out_min=-255,
            out_max=255,
        )
        self.c3.padding = (0, 1, 1)  # consume the time axis

    def config(self) -> dict:
        return {"width": self.width}

    def work_per_pixel(self) -> int:
        # per colour plane and window frame: im2col of a 3x3x3 conv, plus activations
        return 3 * WINDOW * (30 * self.width + 8)

    def init_state(self, n, h, w, device):
        return []

    def step(self, x, state, quant):
        window = ([*state, x] if state else [x] * WINDOW)[-WINDOW:]
        window = [window[0]] * (WINDOW - len(window)) + window
        n, _, h, w = x.shape
        vol = torch.stack(window, 2)  # (N, 3, T, H, W)
        planes = vol.reshape(n * 3, 1, WINDOW, h, w)
        out = self.c3(
            relu(self.c2(relu(self.c1(planes, quant)), quant)), quant
        )  # (N*3, 2, 1, H, W)
        out = out.reshape(n, 3, 2, h, w)
        delta = out[:, :, 0].clamp(-DELTA_MAX, DELTA_MAX)
        spread = out[:, :, 1].abs().amax(1, keepdim=True).clamp(0, DELTA_MAX)
        return delta, spread, window
