"""Training settings: a module of their own so that the CLI can show their defaults
in `fpcodec train --help` without importing torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    corpus: str
    out: str
    model: str = "convlstm"
    epochs: int = 10
    steps_per_epoch: int = 200
    batch: int = 8
    crop: int = 64
    window: int = 6
    lr: float = 1e-3
    noise: float = 0.1
    loss: str = "pd"
    quant_from: float = 0.5  # fraction of training after which QAT starts
    val_windows: int = 96
    # decoded clips kept in memory: more clips per batch, more memory (a GPU run that
    # waits on decoding wants the whole training split)
    clip_cache: int = 8
    seed: int = 0
    device: str = "cpu"
    threads: int = 0
    init: str | None = None  # start from these weights
    # constructor arguments of the architecture (e.g. {"hidden": 40}); None: its defaults
    arch_config: dict | None = None
