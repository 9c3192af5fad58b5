"""The `fpcodec` command line. Exit status: 0 success, 1 failure, 2 usage error.

Only argparse and the small modules that describe options are imported before a
command runs, so `fpcodec`, `--help` and `--version` answer at once; numba's
kernels and torch load when a command needs them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence

from fpcodec.argtypes import Formatter, Parser, examples, int_in
from fpcodec.codec.atomic import Terminated, terminate_on_signals
from fpcodec.codec.errors import FpcError, UsageError
from fpcodec.codec.limits import DEFAULT_KEYFRAME_INTERVAL, MAX_FRAMES, SPEED_PRESETS
from fpcodec.codec.numbastart import skip_the_exit_collection


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-f", "--force", action="store_true", help="overwrite an existing output (never an input)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")


def _output(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("output", nargs="?", metavar="OUT", help=help)
    p.add_argument(
        "-o", "--output", dest="output_opt", metavar="OUT", help="same as the positional OUT"
    )


def _sub(sub, name: str, help: str, description: str, *example: str) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help,
        description=description,
        formatter_class=Formatter,
        epilog=examples(*example),
    )


def build_parser() -> argparse.ArgumentParser:
    from fpcodec import __version__
    from fpcodec.models.registry import (
        DEFAULT_LOSSLESS_PREDICTOR,
        available_predictors,
        describe_defaults,
    )

    parser = Parser(
        prog="fpcodec",
        description="Learned closed-loop codec for animated GIFs and short clips. "
        "Exit status: 0 success, 1 an error (one line on stderr), 2 a usage error.",
        formatter_class=Formatter,
        epilog=examples(
            "fpcodec encode cat.gif cat.fpc",
            "fpcodec decode cat.fpc back.gif",
            "fpcodec COMMAND --help",
        ),
    )
    parser.add_argument("-V", "--version", action="version", version=f"fpcodec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    p = _sub(
        sub,
        "encode",
        "encode a GIF/video to .fpc",
        "Encode a GIF, PNG/APNG, WebP or video to .fpc: lossless by default. "
        "OUT must be a .fpc name or '-' (standard output); IN may be '-' (standard input).",
        "fpcodec encode cat.gif cat.fpc",
        "fpcodec encode clip.mp4 clip.fpc --quality 60",
        "cat cat.gif | fpcodec encode - - > cat.fpc",
    )
    p.add_argument("input", metavar="IN", help="GIF, PNG/APNG, WebP or any video PyAV reads")
    _output(p, "output .fpc file, or '-' (default: IN with .fpc)")
    p.add_argument(
        "--predictor",
        default=None,
        choices=available_predictors(),
        help=f"frame predictor (default: {describe_defaults()}); convlstm-loop adds the "
        "learned in-loop filter to lossy coding, 'last' is the baseline with no learned stage",
    )
    p.add_argument(
        "--weights",
        metavar="PT",
        help="weight file for a trained predictor (default: the shipped one)",
    )
    p.add_argument(
        "--max-error",
        type=int_in(0, 64),
        default=0,
        metavar="E",
        help="near-lossless: every channel within +-E, 0..64 (default 0: lossless)",
    )
    p.add_argument(
        "--quality",
        type=int_in(1, 100),
        default=None,
        metavar="Q",
        help="lossy mode at quality 1..100, higher is better (default: not lossy)",
    )
    p.add_argument(
        "--speed",
        choices=SPEED_PRESETS,
        default="slow",
        help="lossy encoder's search: fast searches fewer vectors and references "
        "(quicker, a few percent more bytes at equal distance; the decoder does not care)",
    )
    p.add_argument(
        "--keyframe-interval",
        type=int_in(0, MAX_FRAMES),
        default=DEFAULT_KEYFRAME_INTERVAL,
        metavar="N",
        help=f"a keyframe every N frames (default {DEFAULT_KEYFRAME_INTERVAL}; 0: first only)",
    )
    p.add_argument(
        "--entropy",
        choices=("arith", "zstd"),
        default="arith",
        help="entropy coder (zstd is the baseline)",
    )
    p.add_argument(
        "--no-palette",
        dest="palette",
        action="store_false",
        help="GIF input: code pixels instead of the GIF's own palette frames",
    )
    _common(p)

    p = _sub(
        sub,
        "decode",
        "decode .fpc to GIF/WebP/APNG/video or a PNG directory",
        "Decode .fpc; the output's suffix names the format, or --to does (needed for "
        "'-', standard output). IN may be '-' (standard input).",
        "fpcodec decode cat.fpc back.gif",
        "fpcodec decode cat.fpc back.mkv --lossless",
        "fpcodec decode cat.fpc - --to webp > back.webp",
    )
    p.add_argument("input", metavar="IN", help=".fpc file, or '-'")
    _output(
        p,
        "output: .gif .webp .png/.apng .mp4 .mkv .mov .webm, DIR/ for PNG frames, or '-' with --to",
    )
    p.add_argument(
        "--to",
        choices=("gif", "webp", "png", "apng", "mp4", "mkv", "mov", "webm"),
        help="output format (default: from OUT's suffix)",
    )
    p.add_argument(
        "--crf",
        type=int_in(0, 51),
        metavar="N",
        help="lossy video (.mp4 .mov .mkv: H.264; .webm: VP9) constant-rate factor "
        "0..51, lower is better (default: 18 for H.264, 20 for VP9)",
    )
    p.add_argument(
        "--lossless",
        action="store_true",
        help="video: lossless FFV1 in .mkv (RGB, alpha kept, no padding)",
    )
    p.add_argument(
        "--weights",
        metavar="PT",
        help="weight file, when the predictor's weights are not installed",
    )
    p.add_argument(
        "--large-frames",
        action="store_true",
        help="decode a file of a catz frame predictor (convlstm, convlstm-ae, cnn2d, "
        "hybrid3d) above its 2^23-pixel memory cap (it can take 2.2 GiB of memory)",
    )
    _common(p)

    p = _sub(
        sub,
        "info",
        "describe an .fpc file",
        "Describe an .fpc file without decoding it (prints to standard output).",
        "fpcodec info cat.fpc",
        "fpcodec info cat.fpc --frames --json",
    )
    p.add_argument("input", metavar="IN", help=".fpc file, or '-'")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--frames",
        action="store_true",
        help="one line per frame: index, type, coding, bytes, duration",
    )

    p = _sub(
        sub,
        "predict",
        "write one-step-ahead predictions as PNGs",
        "Write each frame's one-step-ahead prediction (from the true previous frames) "
        "as a PNG, and print the predictor's perceptual distance and that of 'last'.",
        "fpcodec predict cat.gif preds/ --predictor convlstm",
    )
    p.add_argument("input", metavar="IN", help="GIF or video, or '-'")
    _output(p, "output directory")
    p.add_argument(
        "--predictor",
        default=DEFAULT_LOSSLESS_PREDICTOR,
        choices=available_predictors(),
        help="frame predictor",
    )
    p.add_argument("--weights", metavar="PT", help="weight file for a trained predictor")
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
        raise UsageError("give the output once (positional or -o)")
    out = args.output or args.output_opt
    if out is None:
        if default is None or args.input == "-":
            raise UsageError("missing output")
        out = default(args.input)
    if out == "-" and sys.stdout.isatty():
        raise UsageError("refusing to write binary data to a terminal: redirect it or name a file")
    return out


def _compile_kernels_first(args: argparse.Namespace) -> None:
    """On a cold numba cache, compile the kernels in a child process (warmup.py says
    why: what a compilation leaves behind would sit beside the frame buffers). The
    first run says why it is slow."""
    from fpcodec import warmup

    if args.input != "-" and not os.path.exists(args.input):
        return  # the command fails at once; no reason to make it wait
    warmup.ensure_compiled(lambda: _say(args, warmup.NOTE))


def cmd_encode(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import fpcodec
    from fpcodec.api import check_encode_output

    out = _resolve_output(args, parser, lambda p: os.path.splitext(p)[0] + ".fpc")
    check_encode_output(out)
    _compile_kernels_first(args)
    r = fpcodec.encode(
        args.input,
        out,
        predictor=args.predictor,
        weights=args.weights,
        max_error=args.max_error,
        quality=args.quality or 0,
        keyframe_interval=args.keyframe_interval,
        entropy=args.entropy,
        palette=args.palette,
        speed=args.speed,
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
    _compile_kernels_first(args)
    r = fpcodec.decode(
        args.input,
        out,
        weights=args.weights,
        force=args.force,
        progress=_progress(args),
        to=args.to,
        crf=args.crf,
        lossless_video=args.lossless,
        large_frames=args.large_frames,
    )
    note = f", {r.quantised_frames} frames quantised to 255 colours" if r.quantised_frames else ""
    if r.padded_to:
        _say(
            args,
            f"fpcodec: note: {r.width}x{r.height} padded to {r.padded_to[0]}x{r.padded_to[1]} "
            "(4:2:0 video needs even sizes; edge pixels repeated; --lossless keeps the size)",
        )
    _say(
        args,
        f"{args.input} -> {out}: {r.frames} frames {r.width}x{r.height}, "
        f"{r.seconds:.1f} s ({r.fps:.1f} frames/s){note}",
    )
    return 0


def cmd_info(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import fpcodec

    d = fpcodec.info(args.input, frames=args.frames)
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
    if args.frames:
        lines += ["", f"{'frame':>7}  {'type':<9}  {'coding':<9}  {'bytes':>10}  {'ms':>6}"]
        lines += [
            f"{f['index']:>7}  {f['type']:<9}  {f['coding']:<9}  {f['bytes']:>10,}  "
            f"{f['duration_ms']:>6}"
            for f in d["frame_list"]
        ]
    print("\n".join(lines))
    return 0


def cmd_predict(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import fpcodec

    out = _resolve_output(args, parser)
    _compile_kernels_first(args)
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
    if args.command is None:  # bare `fpcodec`: the help, as a usage error
        parser.print_help(sys.stderr)
        return 2
    terminate_on_signals()  # SIGTERM/SIGHUP unwind like Ctrl-C: no .part debris
    skip_the_exit_collection()  # our own process: see numbastart.py
    try:
        if args.command in COMMANDS:
            return COMMANDS[args.command](args, parser)
        return args.handler(args, parser)
    except UsageError as e:
        print(f"fpcodec {args.command}: error: {e}", file=sys.stderr)
        return 2
    except FpcError as e:
        print(f"fpcodec: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fpcodec: interrupted", file=sys.stderr)
        return 130
    except Terminated as e:
        print(f"fpcodec: {e}", file=sys.stderr)
        return 128 + e.signo
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
