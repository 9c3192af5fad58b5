"""`convlstm-ae`: an encoder-decoder stack of ConvLSTMs.

Down: space-to-depth to 1/2, ConvLSTM; pool to 1/4, ConvLSTM. Up: upsample, fuse
with the 1/2-resolution state, upsample to full resolution, concatenate with the
last frame (and its change) and fuse with a 1x1 convolution into the correction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .framenet import FrameNet, frame_diff, split_head, to_q5
from .intnet import IN_BITS, QConv, QConvLSTMCell, avg_pool2, relu, upsample


class ConvLSTMAENet(FrameNet):
    name = "convlstm-ae"
    align = 4
    # unshuffle (1) + cell1 conv at 1/2 (2) + pool (2) + cell2 conv at 1/4 (4) +
    # upsample to 1/2 (2) + up conv at 1/2 (2) + upsample (1): 14, rounded up.
    reach = 16

    def __init__(self, c1: int = 16, c2: int = 24, fuse: int = 16) -> None:
        super().__init__()
        self.c1, self.c2, self.fuse_ch = c1, c2, fuse
        self.embed = QConv(6 * 4, c1, 1, f_in=IN_BITS)
        self.cell1 = QConvLSTMCell(c1, c1)
        self.cell2 = QConvLSTMCell(c1, c2)
        self.up = QConv(c1 + c2, fuse, 3)
        self.fuse = QConv(fuse + 6, 4, 1, f_out=IN_BITS, zero_init=True, out_min=-255, out_max=255)

    def config(self) -> dict:
        return {"c1": self.c1, "c2": self.c2, "fuse": self.fuse_ch}

    def work_per_pixel(self) -> int:
        return 6 * (self.c1 + self.c2) + 4 * self.fuse_ch + 32

    def state_bytes_per_pixel(self) -> float:
        return self.c1 * 3 / 4 + self.c2 * 3 / 16  # int8 h, int16 c at 1/2 and 1/4

    def state_dtype(self, i: int) -> torch.dtype:
        return torch.int16 if i in (1, 3) else torch.int8  # cell states span 10 bits

    def init_state(self, n, h, w, device):
        z1 = torch.zeros(n, self.c1, h // 2, w // 2, device=device)
        z2 = torch.zeros(n, self.c2, h // 4, w // 4, device=device)
        return [z1, z1.clone(), z2, z2.clone(), None]

    def step(self, x, state, quant):
        h1, c1, h2, c2, prev = state
        if prev is None:
            prev = x
        d = frame_diff(x, prev)
        xd = torch.cat([x, d], 1)
        e = relu(self.embed(F.pixel_unshuffle(xd, 2), quant))
        h1, c1 = self.cell1(e, h1, c1, quant)
        h2, c2 = self.cell2(avg_pool2(h1, quant), h2, c2, quant)
        u = relu(self.up(torch.cat([h1, upsample(h2, 2)], 1), quant))
        out = self.fuse(torch.cat([upsample(u, 2), to_q5(xd, quant)], 1), quant)
        delta, spread = split_head(out)
        return delta, spread, [h1, c1, h2, c2, x]
