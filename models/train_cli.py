"""`fpcodec train CORPUS_DIR -o OUTDIR --model NAME [...]`."""

from __future__ import annotations

import argparse
import sys


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    from .train import TrainConfig
    from .zoo import ARCHITECTURES

    d = TrainConfig(corpus="", out="")
    p = sub.add_parser("train", help="train a frame predictor on a directory of GIFs/videos")
    p.add_argument("corpus", help="directory of GIFs and videos (searched recursively)")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="directory for weights, model cards and the checkpoint",
    )
    p.add_argument("--model", default=d.model, choices=sorted(ARCHITECTURES))
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--steps-per-epoch", type=int, default=d.steps_per_epoch)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--crop", type=int, default=d.crop, help="training crop side in pixels")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument(
        "--noise", type=float, default=d.noise, help="Gaussian input noise sigma on the 0..1 scale"
    )
    p.add_argument(
        "--loss",
        choices=("pd", "mse", "l1", "rate"),
        default=d.loss,
        help="training loss (rate: estimated coding bits)",
    )
    p.add_argument(
        "--quant-from",
        type=float,
        default=d.quant_from,
        help="fraction of training before QAT starts",
    )
    p.add_argument("--val-windows", type=int, default=d.val_windows)
    p.add_argument(
        "--clip-cache", type=int, default=d.clip_cache, help="decoded clips kept in memory"
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device, help="cpu or cuda")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--init", help="start from these weights (fine-tuning)")
    p.add_argument(
        "--arch-config",
        metavar="JSON",
        help='architecture sizes, e.g. \'{"hidden": 40, "head": 24}\' for convlstm '
        "(saved with the weights; default: the architecture's own)",
    )
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from pathlib import Path

    from fpcodec.codec.errors import FpcError

    from .train import TrainConfig, train

    if not Path(args.corpus).is_dir():
        raise FpcError(f"{args.corpus} is not a directory")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise FpcError("--device cuda: no CUDA device is available")
    arch_config = None
    if args.arch_config:
        import json

        try:
            arch_config = json.loads(args.arch_config)
        except json.JSONDecodeError as e:
            raise FpcError(f"--arch-config is not JSON: {e}") from None
        if not isinstance(arch_config, dict):
            raise FpcError("--arch-config must be a JSON object, e.g. '{\"hidden\": 40}'")
    cfg = TrainConfig(
        corpus=args.corpus,
        out=args.output,
        model=args.model,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        batch=args.batch,
        crop=args.crop,
        lr=args.lr,
        noise=args.noise,
        loss=args.loss,
        quant_from=args.quant_from,
        val_windows=args.val_windows,
        clip_cache=args.clip_cache,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        init=args.init,
        arch_config=arch_config,
    )
    path = train(cfg, progress=not args.quiet and sys.stderr.isatty())
    if not args.quiet and path is not None:  # only rank 0 saves under torchrun
        print(f"weights: {path}", file=sys.stderr)
    return 0
