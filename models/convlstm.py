"""`convlstm`: a ConvLSTM at quarter resolution, a conv head, added to the last frame.

The recurrent state lives at 1/4 resolution (space-to-depth of the frame and its
change since the previous frame), which keeps the cost at about 1 GMAC per 480x270
frame; the head works at full resolution on the upsampled state plus the frame and
its change, so it can keep static pixels exactly (a zero correction rounds to
zero) and correct where things move. The head starts at zero: an untrained model
is the last-frame predictor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .framenet import FrameNet, frame_diff, split_head, static_gate, to_q5
from .intnet import IN_BITS, QConv, QConvLSTMCell, relu, upsample


class ConvLSTMNet(FrameNet):
    name = "convlstm"
    align = 4
    # unshuffle (3) + cell conv at 1/4 (4) + upsample (3) + two 3x3 head convs (2),
    # static gate (1): 13, rounded up to the alignment.
    reach = 16

    def __init__(self, hidden: int = 24, head: int = 16) -> None:
        super().__init__()
        self.hidden, self.head_ch = hidden, head
        self.embed = QConv(6 * 16, hidden, 1, f_in=IN_BITS)
        self.cell = QConvLSTMCell(hidden, hidden)
        self.head1 = QConv(hidden + 6, head, 3)
        self.head2 = QConv(head, 4, 3, f_out=IN_BITS, zero_init=True, out_min=-255, out_max=255)

    def config(self) -> dict:
        return {"hidden": self.hidden, "head": self.head_ch}

    def work_per_pixel(self) -> int:
        return 8 * (self.hidden + 6) + 8 * self.head_ch + 3 * self.hidden

    def state_bytes_per_pixel(self) -> float:
        return self.hidden * 3 / 16  # h int8 and c int16 at 1/4 resolution

    def state_dtype(self, i: int) -> torch.dtype:
        return torch.int16 if i == 1 else torch.int8  # the cell state spans 10 bits

    def init_state(self, n, h, w, device):
        z = torch.zeros(n, self.hidden, h // 4, w // 4, device=device)
        return [z, z.clone(), None]

    def step(self, x, state, quant):
        h, c, prev = state
        if prev is None:
            prev = x
        d = frame_diff(x, prev)
        xd = torch.cat([x, d], 1)
        e = relu(self.embed(F.pixel_unshuffle(xd, 4), quant))
        h, c = self.cell(e, h, c, quant)
        feat = torch.cat([upsample(h, 4), to_q5(xd, quant)], 1)
        out = self.head2(relu(self.head1(feat, quant)), quant)
        delta, spread = split_head(out)
        return static_gate(delta, d), spread, [h, c, x]
