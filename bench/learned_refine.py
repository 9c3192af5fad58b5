"""A small network refining the lossy coder's references: what a learned refinement
of the motion-compensated prediction realises of the oracle's room.

bench/mc_refine_headroom.py measures how much a source-fitted filter on the
motion-compensated prediction could save. This trains a network for the same place
without the source -- the decoder could run it, so it costs only a flag -- and lets
mc_refine_headroom measure it the same way (`--learned PT`): the refined newest
reference replaces it, or is put first beside the plain one so that each unit
chooses.

Training pairs are what the encoder really meets: every training clip coded at
several qualities, and for every predicted frame its motion-compensated prediction
(from the motion the encoder chose) and the source, in YCoCg-R planes. The network
sees the prediction and the quantiser step and outputs a correction; the loss is the
encoder's plane-weighted squared error. A float network in a measurement, not a
coding tool: exact inference and a format for it come only if it pays.

    python -m fpcodec.bench.learned_refine CORPUS -o refine.pt --holdout LIST
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

QUALITIES = (25, 40, 55, 70)
CROP = 64


class RefineNet(nn.Module):
    """Three 3x3 convolutions, 24 channels (about 6.7 k multiply-adds a pixel): a
    correction of the prediction from its neighbourhood and the quantiser step."""

    def __init__(self, width: int = 24) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(4, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 3, 3, padding=1),
        )
        nn.init.zeros_(self.body[-1].weight)  # starts as the identity refinement
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, planes: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        """planes (N, 3, H, W) in plane units, step (N,): the refined planes."""
        x = planes / 128.0
        s = (step / 32.0).view(-1, 1, 1, 1).expand(-1, 1, *planes.shape[2:])
        return planes + 8.0 * self.body(torch.cat([x, s], 1))


def capture(clips: list[Path], frames: int, max_side: int, seed: int = 0) -> list:
    """(prediction, source, step) crops of every predicted frame of every clip, coded
    at each of QUALITIES as the lossy encoder codes them."""
    from fpcodec.codec.lossy.coder import encode_lossy
    from fpcodec.codec.lossy.models import LossyModels
    from fpcodec.codec.lossy.transform_quant import quality_step

    from .mc_refine_headroom import _Hook
    from .study import loaded_clips

    rng = np.random.default_rng(seed)
    pairs = []
    with _Hook() as hook:
        for _, clip in loaded_clips(clips, frames, max_side):
            if min(clip.shape[1:3]) < CROP:
                continue
            vis = np.ones(clip.shape[1:3], bool)
            for q in QUALITIES:
                models, pred = LossyModels(True), None
                for f in clip:
                    hook.pred = None
                    _, pred = encode_lossy(np.ascontiguousarray(f), pred, vis, q, models)
                    if hook.pred is None:
                        continue
                    h, w = clip.shape[1:3]
                    for _ in range(4):
                        y = rng.integers(0, h - CROP + 1)
                        x = rng.integers(0, w - CROP + 1)
                        sl = (slice(None), slice(y, y + CROP), slice(x, x + CROP))
                        pairs.append((hook.pred[sl].copy(), hook.target[sl].copy(), q))
    return [(p, t, quality_step(q)) for p, t, q in pairs]


def train(pairs: list, steps: int, batch: int = 32, lr: float = 1e-3, seed: int = 0) -> dict:
    """Train RefineNet on the pairs; returns its state dict and the loss curve."""
    from fpcodec.codec.lossy.transform_quant import PLANE_WEIGHT

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = RefineNet()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    w = torch.tensor(PLANE_WEIGHT, dtype=torch.float32).view(1, 3, 1, 1)
    pred = torch.from_numpy(np.stack([p for p, _, _ in pairs]).astype(np.float32))
    target = torch.from_numpy(np.stack([t for _, t, _ in pairs]).astype(np.float32))
    step = torch.tensor([s for _, _, s in pairs], dtype=torch.float32)
    curve = []
    for i in range(steps):
        idx = torch.from_numpy(rng.integers(0, len(pairs), batch))
        out = net(pred[idx], step[idx])
        loss = (w * (out - target[idx]) ** 2).mean()
        base = (w * (pred[idx] - target[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i % 100 == 0 or i == steps - 1:
            curve.append((i, loss.detach().item(), base.item()))
    return {"state_dict": net.state_dict(), "curve": curve}


def load_refinement(path: str):
    """The trained network as mc_refine_headroom wants it: quality -> (planes -> planes)."""
    from fpcodec.codec.lossy.transform_quant import quality_step

    net = RefineNet()
    net.load_state_dict(torch.load(path, weights_only=True)["state_dict"])
    net.eval()

    def for_quality(quality: int):
        step = torch.tensor([quality_step(quality)], dtype=torch.float32)

        def refine(planes: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                x = torch.from_numpy(planes.astype(np.float32))[None]
                out = net(x, step)[0].round().clamp(-1024, 1023)
            return out.numpy().astype(np.int16)

        return refine

    return for_quality


def main(argv: list[str] | None = None) -> int:
    from .study import study_clips

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus")
    ap.add_argument("-o", "--output", required=True, help="the weights (.pt)")
    ap.add_argument("--holdout", required=True, help="clips never trained on (a list)")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--max-side", type=int, default=512)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    held = {c.name for c in study_clips(a.corpus, a.holdout)}
    clips = [c for c in study_clips(a.corpus, None) if c.name not in held]
    t = time.perf_counter()
    pairs = capture(clips, a.frames, a.max_side, a.seed)
    print(f"{len(pairs)} pairs from {len(clips)} clips in {time.perf_counter() - t:.0f} s")
    t = time.perf_counter()
    result = train(pairs, a.steps, seed=a.seed)
    print(f"trained in {time.perf_counter() - t:.0f} s; loss (step, net, plain):")
    print(json.dumps(result["curve"][-5:]))
    result["command"] = "python -m fpcodec.bench.learned_refine " + " ".join(sys.argv[1:])
    torch.save(result, a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
