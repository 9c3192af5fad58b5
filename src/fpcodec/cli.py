"""The `fpcodec` command line. Exit status: 0 success, 1 failure, 2 usage error."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence

from fpcodec.codec.encoder import DEFAULT_KEYFRAME_INTERVAL
from fpcodec.codec.errors import FpcError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"fpcodec: error: {message} (see --help)\n")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")


def _output(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("output", nargs="?", help=help)
    p.add_argument(
        "-o", "--output", dest="output_opt", metavar="OUT", help="same as the positional OUT"
    )


def build_parser() -> argparse.ArgumentParser:
    from fpcodec import __version__
    from fpcodec.models.registry import DEFAULT_PREDICTOR, available_predictors

    parser = _Parser(
        prog="fpcodec", description="Learned closed-loop codec for animated GIFs and short clips."
    )
    parser.add_argument("--version", action="version", version=f"fpcodec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("encode", help="encode a GIF/video to .fpc")
    p.add_argument("input", help="GIF, PNG/APNG, WebP or any video PyAV reads")
    _output(p, "output .fpc file")
    p.add_argument(
        "--predictor",
        default=None,
        choices=available_predictors(),
        help=f"frame predictor (default: {DEFAULT_PREDICTOR})",
    )
    p.add_argument(
        "--weights", help="weight file for a trained predictor (default: the shipped one)"
    )
    p.add_argument(
        "--max-error",
        type=int,
        default=0,
        metavar="E",
        help="near-lossless: every channel within +-E (default 0: lossless)",
    )
    p.add_argument(
        "--quality",
        type=int,
        default=0,
        metavar="Q",
        help="lossy mode at quality 1..100 (higher is better)",
    )
    p.add_argument(
        "--keyframe-interval",
        type=int,
        default=DEFAULT_KEYFRAME_INTERVAL,
        metavar="N",
        help=f"a keyframe every N frames (default {DEFAULT_KEYFRAME_INTERVAL}; 0: first only)",
    )
    p.add_argument(
        "--entropy",
        choices=("arith", "zstd"),
        default="arith",
        help="entropy coder (default arith; zstd is the baseline)",
    )
    p.add_argument(
        "--no-palette",
        dest="palette",
        action="store_false",
        help="GIF input: code pixels instead of the GIF's own palette frames",
    )
    _common(p)

    p = sub.add_parser("decode", help="decode .fpc to GIF/WebP/APNG/MP4 or a PNG directory")
    p.add_argument("input", help=".fpc file")
    _output(p, "output: .gif .webp .png/.apng .mp4 .mkv .mov .webm, or DIR/ for PNG frames")
    p.add_argument("--weights", help="weight file, when the predictor's weights are not installed")
    _common(p)

    p = sub.add_parser("info", help="describe an .fpc file")
    p.add_argument("input", help=".fpc file")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("predict", help="write one-step-ahead predictions as PNGs")
    p.add_argument("input", help="GIF or video")
    _output(p, "output directory")
    p.add_argument("--predictor", default=None, choices=available_predictors())
    p.add_argument("--weights", help="weight file for a trained predictor")
    _common(p)

    from fpcodec.models.train_cli import add_train_parser

    add_train_parser(sub)
    from fpcodec.bench.cli import add_bench_parser

    add_bench_parser(sub)
    from fpcodec.batch import add_batch_parser

    add_batch_parser(sub)
    return parser


def _say(args: argparse.Namespace, msg: str) -> None:
    if not getattr(args, "quiet", False):
        print(msg, file=sys.stderr)


def _progress(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


def _resolve_output(
    args: argparse.Namespace,
    parser: argparse.ArgumentParser,
    default: Callable[[str], str] | None = None,
) -> str:
    if args.output and args.output_opt and args.output != args.output_opt:
        parser.error("give the output once (positional or -o)")
    out = args.output or args.output_opt
    if out is None:
        if default is None:
            parser.error("missing output")
        out = default(args.input)
    return out


def cmd_encode(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import fpcodec

    out = _resolve_output(args, parser, lambda p: os.path.splitext(p)[0] + ".fpc")
    r = fpcodec.encode(
        args.input,
        out,
        predictor=args.predictor,
        weights=args.weights,
        max_error=args.max_error,
        quality=args.quality,
        keyframe_interval=args.keyframe_interval,
        entropy=args.entropy,
        palette=args.palette,
        force=args.force,
        progress=_progress(args),
    )
    _say(
        args,
        f"{args.input} -> {out}: {r.frames} frames {r.width}x{r.height}, {r.bytes:,} bytes "
        f"({r.ratio:.3f}x source, {r.bpp:.3f} bpp), {r.seconds:.1f} s ({r.fps:.1f} frames/s), "
        f"predictor {r.predictor}",
    )
    return 0


def cmd_decode(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import fpcodec

    out = _resolve_output(args, parser)
    r = fpcodec.decode(
        args.input, out, weights=args.weights, force=args.force, progress=_progress(args)
    )
    note = f", {r.quantised_frames} frames quantised to 255 colours" if r.quantised_frames else ""
    _say(
        args,
        f"{args.input} -> {out}: {r.frames} frames {r.width}x{r.height}, "
        f"{r.seconds:.1f} s ({r.fps:.1f} frames/s){note}",
    )
    return 0


def cmd_info(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import fpcodec

    d = fpcodec.info(args.input)
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    loop = (
        "none (plays once)"
        if d["loop"] is None
        else ("forever" if d["loop"] == 0 else str(d["loop"]))
    )
    lines = [
        f"file              {d['file']} ({d['bytes']:,} bytes, format {d['format_version']})",
        f"size              {d['width']}x{d['height']}, {d['frames']} frames, "
        f"{d['duration_ms'] / 1000:.2f} s, loop {loop}",
        f"alpha             {'yes' if d['has_alpha'] else 'no'}",
        f"mode              {d['mode']}"
        + (f" (max error {d['max_error']})" if d["max_error"] else "")
        + (f" (quality {d['quality']})" if d["quality"] else ""),
        f"predictor         {d['predictor']}"
        + (f" ({d['predictor_sha256'][:16]})" if d["predictor_sha256"].strip("0") else ""),
        f"entropy           {d['entropy']}, keyframe interval {d['keyframe_interval']}",
        f"bits/pixel        {d['bits_per_pixel']:.4f}",
    ]
    for t, v in d["frame_types"].items():
        lines.append(f"{t + ' frames':<18}{v['frames']}, {v['bytes']:,} bytes")
    lines.append("codings           " + ", ".join(f"{k} {v}" for k, v in d["codings"].items()))
    print("\n".join(lines))
    return 0


def cmd_predict(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import fpcodec

    out = _resolve_output(args, parser)
    r = fpcodec.predict(
        args.input,
        out,
        predictor=args.predictor,
        weights=args.weights,
        force=args.force,
        progress=_progress(args),
    )
    _say(
        args,
        f"{r.frames} predictions -> {out}: perceptual distance {r.distance:.3f} "
        f"(last frame: {r.last_distance:.3f})",
    )
    return 0


COMMANDS = {"encode": cmd_encode, "decode": cmd_decode, "info": cmd_info, "predict": cmd_predict}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command in COMMANDS:
            return COMMANDS[args.command](args, parser)
        return args.handler(args, parser)
    except FpcError as e:
        print(f"fpcodec: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fpcodec: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except OSError as e:
        print(
            f"fpcodec: error: {e.strerror or e}" + (f": {e.filename}" if e.filename else ""),
            file=sys.stderr,
        )
        return 1
    except MemoryError:
        print("fpcodec: error: out of memory", file=sys.stderr)
        return 1
    except Exception as e:  # a bug: still one line, unless asked for the traceback
        if os.environ.get("FPCODEC_DEBUG"):
            raise
        print(
            f"fpcodec: internal error: {type(e).__name__}: {e} "
            "(set FPCODEC_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
