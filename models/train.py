"""Training the frame predictors (`fpcodec train`).

Losses: `pd` (the catz perceptual distance), `mse`, `l1`, or `rate` (estimated
lossless coding bits of the residual, with the spread head as the residual scale:
what the codec pays).

Windows of six frames: the network steps through frames 1..5 (predicting 2..6 as
it goes, as it does inside the codec) and is scored on every prediction, the sixth
frame weighing most. Inputs get Gaussian noise (sigma on the 0..1 scale, 0.1 by
default), which also prepares the model for the quantisation noise of a
near-lossless encoder. Adam; a float phase, then quantisation-aware training so
the integer network the codec runs is the one that was optimised. Reports per
epoch the training loss, and on held-out clips the validation MSE (0..1) and
perceptual distance of the model (integer path) and of the last frame.

Runs on CPU or CUDA, and under `torchrun` on several GPUs (DistributedDataParallel;
each rank draws its own windows, rank 0 validates and saves).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from fpcodec.codec.errors import FpcError
from tqdm import tqdm

from .data import WindowStream, fixed_windows, list_clips, split_clips
from .framenet import FrameNet, snap_to_neighbours
from .intnet import check_bounds, exact_inference, qconvs
from .train_config import TrainConfig
from .weights import load_net, save_weights
from .zoo import build, check_config


def redmean_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Differentiable catz perceptual distance on 0..255 values (N, 3, H, W)."""
    d = pred - target
    rbar = (pred[:, 0] + target[:, 0]) / 2
    sq = (512 + rbar) * d[:, 0] ** 2 / 256 + 4 * d[:, 1] ** 2 + (767 - rbar) * d[:, 2] ** 2 / 256
    return torch.sqrt(sq + 1e-2).mean()


def redmean_distance(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    d = pred - target
    rbar = (pred[:, 0] + target[:, 0]) / 2
    sq = (512 + rbar) * d[:, 0] ** 2 / 256 + 4 * d[:, 1] ** 2 + (767 - rbar) * d[:, 2] ** 2 / 256
    return torch.sqrt(sq).mean()


def rate_loss(pred: torch.Tensor, target: torch.Tensor, spread: torch.Tensor) -> torch.Tensor:
    """Estimated bits per channel value of coding target - pred losslessly.

    The residual is modelled as a discretised logistic centred on zero whose scale
    comes from the spread head, as the codec's entropy coder conditions on it: the
    predictor learns to make residuals cheap (exact zeros where frames are static)
    and to say where they will not be.
    """
    r = target - pred
    scale = torch.nn.functional.softplus(spread / 8.0) * 4.0 + 0.3
    upper = torch.sigmoid((r + 0.5) / scale)
    lower = torch.sigmoid((r - 0.5) / scale)
    p = (upper - lower).clamp_min(1e-6)
    return -torch.log2(p).mean()


def pixel_loss(kind: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if kind == "pd":
        return redmean_loss(pred, target)
    if kind == "mse":
        return ((pred - target) / 255.0).pow(2).mean()
    if kind == "l1":
        return (pred - target).abs().mean()
    raise ValueError(f"unknown loss {kind!r} (pd, mse or l1)")


def unroll(
    net: FrameNet, frames: torch.Tensor, quant: bool, noise: float = 0.0
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """frames (N, T, 3, H, W) pixel values. Returns predictions of frames 1..T-1 and spreads."""
    n, t, _, h, w = frames.shape
    state = net.init_state(n, h, w, frames.device)
    preds, spreads = [], []
    for i in range(t - 1):
        x = frames[:, i] - 128.0
        if noise > 0:
            x = (x + torch.randn_like(x) * (noise * 255.0)).clamp(-128, 127)
            if quant:
                x = x + (torch.round(x) - x).detach()
        delta, spread, state = net.step(x, state, quant)
        preds.append((frames[:, i] + delta).clamp(0, 255))
        spreads.append(spread)
    return preds, spreads


def step_weights(t: int) -> list[float]:
    w = [1.0] * (t - 2) + [2.0]
    s = sum(w)
    return [x / s for x in w]


def evaluate(net: FrameNet, windows: np.ndarray, device: torch.device, batch: int = 16) -> dict:
    """Validation on the last prediction of each window, through the exact integer path."""
    mse = pd = last_pd = last_mse = 0.0
    n = 0
    net.eval()
    for conv in qconvs(net):
        conv.freeze()
    with exact_inference():
        for i in range(0, len(windows), batch):
            fr = torch.from_numpy(windows[i : i + batch]).to(device=device, dtype=torch.float32)
            preds, _ = unroll(net, fr, quant=True)
            p, tgt, last = preds[-1], fr[:, -1], fr[:, -2]
            if net.snap:  # what the codec predicts
                p = snap_to_neighbours(p, last, net.snap)
            k = fr.shape[0]
            mse += float(((p - tgt) / 255).pow(2).mean()) * k
            pd += float(redmean_distance(p, tgt)) * k
            last_mse += float(((last - tgt) / 255).pow(2).mean()) * k
            last_pd += float(redmean_distance(last, tgt)) * k
            n += k
    for conv in qconvs(net):
        conv.frozen_bits = None
    net.train()
    n = max(n, 1)
    return {"val_mse": mse / n, "val_pd": pd / n, "last_mse": last_mse / n, "last_pd": last_pd / n}


def train(cfg: TrainConfig, progress: bool = True) -> Path:
    """Train; returns the path of the final weight file."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = torch.device(cfg.device)
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + rank)
    np.random.seed(cfg.seed + rank)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    clips = list_clips(cfg.corpus)
    train_clips, val_clips = split_clips(clips)
    if not train_clips or not val_clips:
        train_clips = val_clips = clips
    stream = WindowStream(
        train_clips, cfg.window, cfg.crop, cache=cfg.clip_cache, seed=cfg.seed * 1000 + rank
    )
    val = fixed_windows(val_clips, cfg.val_windows, cfg.window, cfg.crop) if rank == 0 else None

    if cfg.arch_config:
        if cfg.init:
            raise FpcError("--arch-config with --init: a fine-tuned network keeps its shape")
        check_config(cfg.model, cfg.arch_config)
    net = load_net(cfg.init)[0] if cfg.init else build(cfg.model, cfg.arch_config)
    net = net.to(device).train()
    model: torch.nn.Module = net
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(net)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    ckpt = out / "checkpoint.pt"
    start_step, history = 0, []
    if ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        start_step = int(state["step"])
        history = json.loads(state["history"])
    total = cfg.epochs * cfg.steps_per_epoch
    quant_from = int(cfg.quant_from * total)
    weights = step_weights(cfg.window)
    t0 = time.time()
    path = None
    for epoch in range(start_step // cfg.steps_per_epoch, cfg.epochs):
        losses = []
        bar = tqdm(
            range(cfg.steps_per_epoch),
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=not progress or rank != 0,
            leave=False,
        )
        for i in bar:
            step = epoch * cfg.steps_per_epoch + i
            if step < start_step:
                continue
            lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            for g in opt.param_groups:
                g["lr"] = lr
            quant = step >= quant_from
            fr = torch.from_numpy(stream.batch(cfg.batch)).to(device=device, dtype=torch.float32)
            preds, spreads = unroll(net if world == 1 else model.module, fr, quant, cfg.noise)
            loss = 0.0
            for k, (p, s) in enumerate(zip(preds, spreads, strict=True)):
                tgt = fr[:, k + 1]
                if cfg.loss == "rate":
                    loss = loss + weights[k] * rate_loss(p, tgt, s)
                    continue
                err = (p - tgt).abs().amax(1, keepdim=True).detach()
                loss = loss + weights[k] * (
                    pixel_loss(cfg.loss, p, tgt) + 0.05 * (s - err).abs().mean()
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", q=int(quant))
        if rank == 0:
            metrics = evaluate(net, val, device)
            metrics.update(
                epoch=epoch + 1,
                train_loss=float(np.mean(losses)) if losses else None,
                seconds=time.time() - t0,
            )
            history.append(metrics)
            print(
                f"epoch {epoch + 1}: loss {metrics['train_loss'] or 0:.4f}  "
                f"val mse {metrics['val_mse']:.5f}  "
                f"val pd {metrics['val_pd']:.3f} (last {metrics['last_pd']:.3f}, ratio "
                f"{metrics['val_pd'] / max(metrics['last_pd'], 1e-9):.3f})",
                flush=True,
            )
            torch.save(
                {
                    "model": net.state_dict(),
                    "optim": opt.state_dict(),
                    "step": (epoch + 1) * cfg.steps_per_epoch,
                    "history": json.dumps(history),
                },
                ckpt,
            )
            check_bounds(net, 128.0)
            card = {
                "data": str(cfg.corpus),
                "train_clips": len(train_clips),
                "val_clips": len(val_clips),
                "steps": (epoch + 1) * cfg.steps_per_epoch,
                "config": asdict(cfg),
                "history": history,
                "validation": history[-1],
            }
            path = save_weights(net, out, card)
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return path
