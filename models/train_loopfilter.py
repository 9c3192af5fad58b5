"""Training the in-loop filter (`fpcodec train --model convlstm-loop`) on what the
real encoder produces.

Tuples come from the lossy coder itself: every training clip is coded at several
qualities (the first frame intra, the rest predicted from the last reconstruction,
as `--predictor last` codes them), and for every frame the deblocked
reconstruction, the source, the quantiser step and the coded-block map are kept
(the filter stage is replaced by a recorder that corrects nothing). The network
then learns the correction that lowers the perceptual distance the encoder decides
on: per pixel sqrt(9 eY^2 + 1.25 eCo^2 + 2.25 eCg^2), the quantity loop_filter.py's
map switches on.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from fpcodec.codec.lossy import LossyModels, encode_lossy
from fpcodec.codec.lossy.coder import _padded
from fpcodec.codec.lossy.planes import rgb_to_planes
from fpcodec.codec.lossy.transform_quant import PLANE_WEIGHT
from tqdm import tqdm

from .data import list_clips, load_clip, split_clips
from .intnet import check_bounds
from .loopfilter import LoopFilterNet, filter_inputs
from .weights import save_weights

# Qualities the tuples are coded at: the benchmark's lossy range (1..70), where
# quantisation error is large enough to repair.
CAPTURE_QUALITIES = (10, 25, 40, 55, 70)


@dataclass
class LoopFilterTrainConfig:
    corpus: str
    out: str
    epochs: int = 8
    steps_per_epoch: int = 150
    batch: int = 12
    crop: int = 64
    unroll: int = 2  # frames per training sequence (the recurrent state's reach)
    # "mse": the weighted squared error (mean-seeking: learns the correction where
    # errors lean one way; the encoder's map keeps it only where the distance falls);
    # "pd": the distance itself (median-seeking: stays at zero where most pixels are
    # exact, as in most GIF frames)
    loss: str = "mse"
    lr: float = 2e-3
    quant_from: float = 0.6
    frames: int = 6  # frames per clip and quality
    max_side: int = 256
    seed: int = 0
    threads: int = 0
    device: str = "cpu"
    holdout: list[str] = field(default_factory=list)  # clip names never trained on
    arch_config: dict | None = None


class _Recorder:
    """Stands in for the filter while tuples are captured: records, corrects nothing."""

    def __init__(self) -> None:
        self.frames: list[tuple[np.ndarray, int, np.ndarray]] = []

    def reset(self) -> None:
        pass

    def weigh(self, planes: np.ndarray, step_y: int, act: np.ndarray, gains) -> None:
        # no band reaches `gains`: a map that gains nothing is off
        self.frames.append((planes.astype(np.int16), step_y, act.astype(np.uint8)))

    def keep(self, *args) -> None:
        pass

    def discard(self) -> None:
        pass


@dataclass
class Sequence:
    """One clip coded at one quality: per frame recon, source (int16 YCoCg-R planes),
    Y step and coded-block map."""

    recon: np.ndarray  # (T, 3, H, W)
    target: np.ndarray  # (T, 3, H, W)
    steps: np.ndarray  # (T,)
    act: np.ndarray  # (T, H/4, W/4)


def capture(clip: np.ndarray, quality: int) -> Sequence:
    """Code the clip's frames as the lossy encoder does and keep the tuples."""
    h, w = clip.shape[1:3]
    hp, wp = _padded(h, w)
    rec = _Recorder()
    models = LossyModels(True, rec)
    vis = np.ones((h, w), bool)
    pred = None
    for f in clip:
        _, pred = encode_lossy(np.ascontiguousarray(f), pred, vis, quality, models)
    recon = np.stack([r[0] for r in rec.frames])
    target = np.stack([rgb_to_planes(f, hp, wp) for f in clip])
    steps = np.array([r[1] for r in rec.frames], np.int64)
    act = np.stack([r[2] for r in rec.frames])
    return Sequence(recon, target, steps, act)


def capture_corpus(clips: list[Path], cfg: LoopFilterTrainConfig, progress: bool) -> list[Sequence]:
    seqs = []
    for path in tqdm(clips, desc="coding tuples", disable=not progress, leave=False):
        clip = load_clip(path, cfg.frames, cfg.max_side)
        if clip is None or min(clip.shape[1:3]) < cfg.crop:
            continue
        for q in CAPTURE_QUALITIES:
            seqs.append(capture(clip, q))
    return seqs


def sample(
    seqs: list[Sequence], n: int, crop: int, length: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n random crops of `length` consecutive frames: inputs (L, N, 7, c, c) in Q7
    units, recon and target (L, N, 3, c, c) in pixel units."""
    xs, rs, ts = [], [], []
    for _ in range(n):
        s = seqs[rng.integers(len(seqs))]
        t0 = rng.integers(0, s.recon.shape[0] - length + 1)
        y0 = rng.integers(0, (s.recon.shape[2] - crop) // 4 + 1) * 4
        x0 = rng.integers(0, (s.recon.shape[3] - crop) // 4 + 1) * 4
        sl = (slice(t0, t0 + length), slice(None), slice(y0, y0 + crop), slice(x0, x0 + crop))
        r, tg = s.recon[sl], s.target[sl]
        a = s.act[t0 : t0 + length, y0 // 4 : (y0 + crop) // 4, x0 // 4 : (x0 + crop) // 4]
        xs.append(
            np.stack([filter_inputs(r[k], int(s.steps[t0 + k]), a[k]) for k in range(length)])
        )
        rs.append(r)
        ts.append(tg)
    f = torch.from_numpy
    return (
        f(np.stack(xs, 1)).float(),
        f(np.stack(rs, 1)).float(),
        f(np.stack(ts, 1)).float(),
    )


_WPLANE = torch.tensor(PLANE_WEIGHT, dtype=torch.float32).view(1, 3, 1, 1)


def distance(planes: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel colour distance, as the encoder's filter map measures it."""
    e = planes - target
    return torch.sqrt((_WPLANE.to(e.device) * e * e).sum(1) + 1e-3).mean()


def squared_error(planes: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    e = planes - target
    return (_WPLANE.to(e.device) * e * e).sum(1).mean()


def unrolled_loss(
    net: LoopFilterNet,
    x: torch.Tensor,
    recon: torch.Tensor,
    target: torch.Tensor,
    quant: bool,
    loss: str = "pd",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(filtered, unfiltered) distance ("pd") or squared error ("mse") over an
    unrolled sequence."""
    fn = distance if loss == "pd" else squared_error
    n, c = x.shape[1], x.shape[3]
    state = net.init_state(n, c, x.shape[4], x.device)
    total = base = 0.0
    for k in range(x.shape[0]):
        corr, state = net.step(x[k], state, quant)
        total = total + fn(recon[k] + corr, target[k])
        base = base + fn(recon[k], target[k])
    return total / x.shape[0], base / x.shape[0]


def switched_ratio(
    net: LoopFilterNet, x: torch.Tensor, recon: torch.Tensor, target: torch.Tensor, side: int = 16
) -> float:
    """Distance with the correction kept only in the side x side blocks where it lowers
    the distance (what the encoder's map does, its bits aside), relative to none."""
    n, c = x.shape[1], x.shape[3]
    w = _WPLANE.to(x.device)
    with torch.no_grad():
        state = net.init_state(n, c, x.shape[4], x.device)
        gain = base = 0.0
        for k in range(x.shape[0]):
            corr, state = net.step(x[k], state, True)
            d0 = torch.sqrt((w * (recon[k] - target[k]) ** 2).sum(1))
            d1 = torch.sqrt((w * (recon[k] + corr - target[k]) ** 2).sum(1))
            g = (d0 - d1).view(n, c // side, side, -1, side).sum((2, 4))
            gain, base = gain + g.clamp(min=0).sum(), base + d0.sum()
    return float(1 - gain / base)


def train_loopfilter(cfg: LoopFilterTrainConfig, progress: bool = True) -> Path:
    """Capture tuples, train, save hash-named weights; returns the weight path."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = torch.device(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    clips = [c for c in list_clips(cfg.corpus) if c.name not in set(cfg.holdout)]
    train_clips, val_clips = split_clips(clips)
    if not train_clips or not val_clips:
        train_clips = val_clips = clips
    t0 = time.time()
    train_seqs = capture_corpus(train_clips, cfg, progress)
    val_seqs = capture_corpus(val_clips, cfg, progress)
    if not train_seqs:
        raise ValueError(f"no clip of {cfg.corpus} is at least {cfg.crop} pixels on each side")
    if not val_seqs:
        val_seqs = train_seqs
    val = sample(val_seqs, 48, cfg.crop, cfg.unroll, np.random.default_rng(1))
    net = LoopFilterNet(**(cfg.arch_config or {}))
    with torch.no_grad():  # a little noise: a zero head starts with zero gradients below it
        net.head2.weight.normal_(0.0, 0.02)
    net = net.to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    total = cfg.epochs * cfg.steps_per_epoch
    history: list[dict] = []
    path = out
    for epoch in range(cfg.epochs):
        losses = []
        bar = tqdm(
            range(cfg.steps_per_epoch),
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=not progress,
            leave=False,
        )
        for i in bar:
            step = epoch * cfg.steps_per_epoch + i
            for g in opt.param_groups:
                g["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            quant = step >= int(cfg.quant_from * total)
            batch = sample(train_seqs, cfg.batch, cfg.crop, cfg.unroll, rng)
            x, r, tg = (v.to(device) for v in batch)
            loss, base = unrolled_loss(net, x, r, tg, quant, cfg.loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            losses.append(float((loss / base).detach()))
            bar.set_postfix(ratio=f"{np.mean(losses[-20:]):.4f}", q=int(quant))
        with torch.no_grad():
            vl, vb = unrolled_loss(net, *(v.to(device) for v in val), quant=True)
        metrics = {
            "epoch": epoch + 1,
            "train_ratio": float(np.mean(losses)),
            "val_distance": float(vl),
            "val_unfiltered": float(vb),
            "val_ratio": float(vl / vb),
            "val_switched_ratio": switched_ratio(net, *(v.to(device) for v in val)),
            "seconds": time.time() - t0,
        }
        history.append(metrics)
        print(
            f"epoch {epoch + 1}: train {metrics['train_ratio']:.4f}  val distance "
            f"{metrics['val_distance']:.4f} (unfiltered {metrics['val_unfiltered']:.4f}, "
            f"ratio {metrics['val_ratio']:.4f}, switched per 16x16 block "
            f"{metrics['val_switched_ratio']:.4f})",
            flush=True,
        )
        # weights after every epoch: a run stopped early leaves its latest
        check_bounds(net, 128.0)
        card = {
            "data": str(cfg.corpus),
            "train_clips": len(train_clips),
            "val_clips": len(val_clips),
            "holdout": sorted(cfg.holdout),
            "capture_qualities": list(CAPTURE_QUALITIES),
            "config": asdict(cfg),
            "history": history,
            "validation": history[-1],
        }
        path = save_weights(net.cpu(), out, card)
        net.to(device)
        (out / "history.json").write_text(json.dumps(history, indent=2) + "\n")
    return path
