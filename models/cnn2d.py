"""`cnn2d`: a 2D CNN over the last five frames stacked on channels (15 in, RGB out).

The catz benchmark's first learned baseline. It has no recurrent state beyond the
five-frame window; at the start of a clip the window is filled by repeating the
first frame.
"""

from __future__ import annotations

import torch

from .framenet import FrameNet, split_head
from .intnet import IN_BITS, QConv, relu

WINDOW = 5


class CNN2DNet(FrameNet):
    name = "cnn2d"
    history = WINDOW
    reach = 3  # three 3x3 convolutions

    def __init__(self, width: int = 24) -> None:
        super().__init__()
        self.width = width
        self.c1 = QConv(3 * WINDOW, width, 3, f_in=IN_BITS)
        self.c2 = QConv(width, width, 3)
        self.c3 = QConv(width, 4, 3, f_out=IN_BITS, zero_init=True, out_min=-255, out_max=255)

    def config(self) -> dict:
        return {"width": self.width}

    def work_per_pixel(self) -> int:
        return 9 * 3 * WINDOW + 15 * self.width + 32

    def init_state(self, n, h, w, device):
        return []

    def step(self, x, state, quant):
        window = ([*state, x] if state else [x] * WINDOW)[-WINDOW:]
        window = [window[0]] * (WINDOW - len(window)) + window
        stack = torch.cat(window, 1)
        out = self.c3(relu(self.c2(relu(self.c1(stack, quant)), quant)), quant)
        delta, spread = split_head(out)
        return delta, spread, window
