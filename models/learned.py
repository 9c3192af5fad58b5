"""The codec's view of a trained network: a Predictor running exact integer inference."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .framenet import FrameNet, snap_to_neighbours
from .intnet import check_bounds, exact_inference, qconvs
from .predictor import Prediction, Predictor
from .registry import FLOAT_SUFFIX

# Spread (expected |error| in pixels) -> confidence bucket for the entropy coder.
SPREAD_EDGES = (2, 6, 16)


def spread_buckets(spread: np.ndarray) -> np.ndarray:
    out = np.zeros(spread.shape, np.uint8)
    for edge in SPREAD_EDGES:
        out += spread >= edge
    return out


class LearnedPredictor(Predictor):
    """float_path: run the float network instead (the benchmark's reference for how
    much the integer network costs). Its name carries FLOAT_SUFFIX so its files can
    never pass for integer-path files; they decode only where float inference happens
    to repeat exactly (same machine, same threads), which is why the codec never
    chooses it by itself."""

    def __init__(
        self,
        net: FrameNet,
        sha256: bytes,
        device: str | torch.device = "cpu",
        float_path: bool = False,
    ) -> None:
        self.float_path = float_path
        self.name = net.name + (FLOAT_SUFFIX if float_path else "")
        self.weights_sha256 = sha256
        self.net = net.eval()
        for conv in qconvs(net):
            conv.freeze()
        check_bounds(net, 128.0)  # proves exactness of every layer, or refuses the weights
        self.device = torch.device(device)
        self.net.to(self.device)
        for conv in qconvs(net):  # frozen integer weights travel with the module
            conv.q_weight = conv.q_weight.to(self.device)
            conv.q_bias = conv.q_bias.to(self.device)
        self._state: list | None = None
        self._last: np.ndarray | None = None
        self._pred: Prediction | None = None
        self._shape = (0, 0)
        self._fast: dict[tuple[int, int], bool] = {}  # padded size -> fast path verified

    def reset(self, height: int, width: int) -> None:
        self._state = None
        self._last = None
        self._pred = None
        self._shape = (height, width)

    def _pad(self, frame: np.ndarray) -> torch.Tensor:
        h, w = frame.shape[:2]
        a = self.net.align
        t = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device)
        t = t.permute(2, 0, 1)[None].to(torch.float32) - 128.0
        ph, pw = (-h) % a, (-w) % a
        if ph or pw:
            t = F.pad(t, (0, pw, 0, ph), mode="replicate")
        return t

    def _fast_ok(self, hp: int, wp: int) -> bool:
        """Does the fast convolution path give the GEMM path's exact results here?

        Both must be exact by the accumulator bounds; this catches a library that
        would pick a non-direct algorithm (e.g. Winograd) for some shape. Checked
        once per padded frame size on a deterministic probe clip.
        """
        key = (hp, wp)
        if key not in self._fast:
            g = torch.Generator().manual_seed(hp * 65537 + wp)
            probe = [
                torch.randint(-128, 128, (1, 3, hp, wp), generator=g).float().to(self.device)
                for _ in range(3)
            ]
            outs = []
            for fast in (True, False):
                with exact_inference(fast):
                    state = self.net.init_state(1, hp, wp, self.device)
                    res = []
                    for x in probe:
                        d, s, state = self.net.step(x, state, quant=True)
                        res += [d, s]
                    outs.append(res)
            self._fast[key] = all(torch.equal(a, b) for a, b in zip(*outs, strict=True))
        return self._fast[key]

    def observe(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        x = self._pad(frame)
        fast = self.float_path or (
            self.device.type == "cpu" and self._fast_ok(x.shape[2], x.shape[3])
        )
        with exact_inference(fast):
            if self._state is None:
                self._state = self.net.init_state(1, x.shape[2], x.shape[3], self.device)
            delta, spread, self._state = self.net.step(x, self._state, quant=not self.float_path)
            if self.float_path:
                delta, spread = delta.round(), spread.round()
            pix = x + 128.0
            pred = (pix + delta).clamp(0, 255)
            if self.net.snap:
                pred = snap_to_neighbours(pred, pix, self.net.snap)
        rgb = pred[0, :, :h, :w].to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        s = spread[0, 0, :h, :w].to(torch.int16).cpu().numpy()
        self._pred = Prediction(rgb, spread_buckets(s))
        self._last = frame

    def predict(self) -> Prediction:
        if self._pred is None:
            raise RuntimeError("predict() before any frame was observed")
        return self._pred
