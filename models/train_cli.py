"""`fpcodec train CORPUS_DIR -o OUTDIR --model NAME [...]`."""

from __future__ import annotations

import argparse
import sys

from fpcodec.argtypes import Formatter, examples, float_in, int_in

from .registry import TRAINED_NAMES
from .train_config import TrainConfig


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    d = TrainConfig(corpus="", out="")
    p = sub.add_parser(
        "train",
        help="train a frame predictor on a directory of GIFs/videos",
        description="Train a frame predictor: five frames in, the sixth as target; "
        "validation on held-out clips. Rerunning with the same -o resumes from "
        "OUT/checkpoint.pt.",
        formatter_class=Formatter,
        epilog=examples(
            "fpcodec train ../shared/corpus -o runs/convlstm --model convlstm --epochs 12",
        ),
    )
    p.add_argument("corpus", help="directory of GIFs and videos (searched recursively)")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="DIR",
        help="directory for weights, model cards and the checkpoint",
    )
    p.add_argument("--model", default=d.model, choices=TRAINED_NAMES, help="architecture")
    p.add_argument(
        "--epochs", type=int_in(1), default=d.epochs, help="epochs in all (a resumed run included)"
    )
    p.add_argument(
        "--steps-per-epoch", type=int_in(1), default=d.steps_per_epoch, help="batches per epoch"
    )
    p.add_argument("--batch", type=int_in(1), default=d.batch, help="windows per batch")
    p.add_argument(
        "--crop", type=int_in(8, 4096), default=d.crop, help="training crop side in pixels"
    )
    p.add_argument(
        "--lr",
        type=float_in(0, 1, open_lo=True),
        default=d.lr,
        help="peak learning rate (cosine decay)",
    )
    p.add_argument(
        "--noise",
        type=float_in(0, 1),
        default=d.noise,
        help="Gaussian input noise sigma on the 0..1 scale",
    )
    p.add_argument(
        "--loss",
        choices=("pd", "mse", "l1", "rate"),
        default=d.loss,
        help="training loss (rate: estimated coding bits)",
    )
    p.add_argument(
        "--quant-from",
        type=float_in(0, 1),
        default=d.quant_from,
        help="fraction of training before QAT starts",
    )
    p.add_argument(
        "--val-windows",
        type=int_in(1),
        default=d.val_windows,
        help="validation windows measured after each epoch",
    )
    p.add_argument(
        "--clip-cache", type=int_in(1), default=d.clip_cache, help="decoded clips kept in memory"
    )
    p.add_argument("--seed", type=int_in(0), default=d.seed, help="random seed")
    p.add_argument("--device", default=d.device, help="cpu or cuda")
    p.add_argument(
        "--threads", type=int_in(0), default=0, help="torch CPU threads (0: torch's default)"
    )
    p.add_argument("--init", metavar="PT", help="start from these weights (fine-tuning)")
    p.add_argument(
        "--holdout",
        metavar="FILE",
        help="clip names (one per line) never to train or validate on: the benchmark's "
        "held-out clips",
    )
    p.add_argument(
        "--arch-config",
        metavar="JSON",
        help='architecture sizes, e.g. \'{"hidden": 40, "head": 24}\' for convlstm '
        "(saved with the weights; default: the architecture's own)",
    )
    p.add_argument(
        "-f",
        "--force",
        action="store_true",
        help="start over: discard DIR/checkpoint.pt instead of resuming from it",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no notes")
    p.set_defaults(handler=run_train)


def _say(args: argparse.Namespace, msg: str) -> None:
    if not args.quiet:
        print(f"fpcodec: {msg}", file=sys.stderr)


def run_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import json
    from pathlib import Path

    from fpcodec.codec.errors import FpcError

    from .data import list_clips, split_clips

    if not Path(args.corpus).is_dir():
        raise FpcError(f"{args.corpus} is not a directory")
    arch_config = None
    if args.arch_config:
        try:
            arch_config = json.loads(args.arch_config)
        except json.JSONDecodeError as e:
            raise FpcError(f"--arch-config is not JSON: {e}") from None
        if not isinstance(arch_config, dict):
            raise FpcError("--arch-config must be a JSON object, e.g. '{\"hidden\": 40}'")
    holdout: list[str] = []
    if args.holdout:
        try:
            holdout = [ln.strip() for ln in Path(args.holdout).read_text().splitlines()]
        except OSError as e:
            raise FpcError(f"cannot read --holdout {args.holdout}: {e.strerror}") from None
        holdout = [n for n in holdout if n and not n.startswith("#")]
    if args.model == "convlstm-loop":
        return _train_loop_filter(args, arch_config, holdout)
    clips = list_clips(args.corpus)
    if not clips:
        raise FpcError(f"{args.corpus} holds no GIFs or videos")
    train_clips, val_clips = split_clips(clips)
    if not train_clips or not val_clips:
        # train.py then validates on the training clips; say so rather than let the
        # validation figures pass for held-out ones
        _say(
            args,
            f"note: {len(clips)} clip(s) cannot be split into training and validation; "
            "validation uses the training clips (it measures fit, not generalisation)",
        )
    ckpt = Path(args.output) / "checkpoint.pt"
    if ckpt.exists() and args.force:
        ckpt.unlink()
        _say(args, f"--force: starting over (removed {ckpt})")
    elif ckpt.exists():
        import torch

        try:
            step = int(torch.load(ckpt, map_location="cpu", weights_only=True)["step"])
        except Exception:  # unreadable: train() reports it when it loads the checkpoint
            step = 0
        done = step // args.steps_per_epoch
        if done >= args.epochs:
            # a finished run: say so instead of exiting 0 having done nothing unsaid
            _say(
                args,
                f"{ckpt} has already trained {done} epoch(s) of {args.steps_per_epoch} steps "
                f"(--epochs {args.epochs}); nothing to do. Raise --epochs to train further, "
                "or use -f to start over.",
            )
            return 0
        _say(args, f"resuming from {ckpt} after epoch {done} of {args.epochs}")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise FpcError("--device cuda: no CUDA device is available")
    from .train import train

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


def _train_loop_filter(
    args: argparse.Namespace, arch_config: dict | None, holdout: list[str]
) -> int:
    """The in-loop filter trains on tuples the lossy encoder produces, not on frame
    windows: its own loop (train_loopfilter.py); --noise, --loss and --window do not
    apply, and it does not resume (a run takes minutes)."""
    from .train_loopfilter import LoopFilterTrainConfig, train_loopfilter

    cfg = LoopFilterTrainConfig(
        corpus=args.corpus,
        out=args.output,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        batch=args.batch,
        crop=args.crop,
        lr=args.lr,
        quant_from=args.quant_from,
        seed=args.seed,
        threads=args.threads,
        device=args.device,
        holdout=holdout,
        arch_config=arch_config,
    )
    path = train_loopfilter(cfg, progress=not args.quiet and sys.stderr.isatty())
    if not args.quiet:
        print(f"weights: {path}", file=sys.stderr)
    return 0
