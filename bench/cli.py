"""`fpcodec bench CORPUS_DIR -o REPORT_DIR [...]`: one command, one report."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

QUICK_QUALITIES = [30, 60, 85]
QUALITIES = [1, 10, 25, 40, 55, 70]  # Q 1 to 55 span x264 CRF 34 to 10 in PD
MAX_ERRORS = [0, 1, 2, 4, 8]


def add_bench_parser(sub: argparse._SubParsersAction) -> None:
    from fpcodec.argtypes import Formatter, examples, int_in, int_list

    p = sub.add_parser(
        "bench",
        help="bitrate / distortion report against last-frame and classic codecs",
        description="Encode and decode every clip at every setting (fpcodec and the "
        "anchors), then write results.json, report.md and plots. Results are cached in "
        "OUT/cache, so an interrupted run resumes.",
        formatter_class=Formatter,
        epilog=examples(
            "fpcodec bench ../shared/corpus -o bench-out --quick",
            "fpcodec bench ../shared/corpus -o bench-out --predictors last,convlstm --jobs 2",
        ),
    )
    p.add_argument("corpus", help="directory of GIFs and videos")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="DIR",
        help="report directory (results.json, report.md, plots, cache/)",
    )
    p.add_argument(
        "--predictors",
        default=None,
        help="comma-separated predictors, 'none' for anchors only "
        "(default: last and the default predictor)",
    )
    p.add_argument(
        "--max-errors",
        type=int_list(0, 64),
        default=MAX_ERRORS,
        help="near-lossless settings, 0 = lossless",
    )
    p.add_argument(
        "--qualities",
        type=int_list(1, 100),
        default=None,
        help=f"lossy --quality settings (default {','.join(map(str, QUALITIES))}; "
        f"--quick: {','.join(map(str, QUICK_QUALITIES))})",
    )
    p.add_argument(
        "--anchors", default=None, help="comma-separated anchors (default: all; 'none' for none)"
    )
    p.add_argument("--jobs", type=int_in(1, 256), default=2, help="parallel processes")
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="ray: run the tasks on Ray (a local cluster of --jobs CPUs, or --address)",
    )
    p.add_argument("--address", default=None, help="--engine ray: join this cluster")
    p.add_argument(
        "--limit",
        type=int_in(0),
        default=0,
        help="only the first K clips (in name order, spread over the corpus; 0: all)",
    )
    p.add_argument("--quick", action="store_true", help="few settings, few clips: a smoke run")
    p.add_argument(
        "--strips", type=int_in(0), default=3, help="prediction strips for this many clips"
    )
    p.add_argument(
        "--report-only",
        nargs="+",
        metavar="RESULTS_JSON",
        help="run nothing: rebuild the report in OUTPUT from these results.json files "
        "(merged; a later file's result for the same clip and setting wins)",
    )
    p.add_argument(
        "-f",
        "--force",
        action="store_true",
        help="replace the report already in OUTPUT (its cache/ is kept, so a rerun resumes)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    p.set_defaults(handler=run_bench)


def _check_report_dir(out: Path, force: bool) -> None:
    """A finished report is replaced only when asked: results.json holds measurements
    that can take hours to make again."""
    from fpcodec.codec.errors import OutputError

    held = [n for n in ("results.json", "report.md") if (out / n).exists()]
    if held and not force:
        raise OutputError(
            f"{out} already holds a report ({', '.join(held)}); use --force to replace it"
        )


def _report_default(predictors: list[str], default: str) -> str:
    """The predictor the report's headline rows are about."""
    return default if default in predictors or not predictors else predictors[-1]


def _problems(results: list[dict]) -> tuple[list[str], list[str]]:
    """What the report lists as skipped and as failed."""
    skipped = [f"{r['family']}: {r['skipped']}" for r in results if "skipped" in r]
    errors = [
        f"{r['family']} {r['setting']} on {r['clip']}: {r['error']}"
        for r in results
        if "error" in r
    ]
    return skipped, errors


def _rebuild_report(args: argparse.Namespace, default_predictor: str) -> int:
    """Re-aggregate raw results (e.g. after a report change, or to merge an anchor
    measured later) without re-running anything: the numbers stay the measured ones."""
    import json
    import shutil

    from fpcodec.bench.report import speed_rows, write_report

    out = Path(args.output)
    _check_report_dir(out, args.force)
    out.mkdir(parents=True, exist_ok=True)
    merged: dict[tuple, dict] = {}
    leaderboard: dict[tuple, dict] = {}  # a later file's row for a clip and predictor wins
    meta: dict = {}
    commands = []
    versions: list[str] = []
    for f in args.report_only:
        src = Path(f)
        data = json.loads(src.read_text())
        meta = meta or dict(data["meta"])
        commands.append(data["meta"].get("command", ""))
        versions.append(data["meta"].get("code_version", ""))
        meta.setdefault("anchor_settings", {}).update(data["meta"].get("anchor_settings", {}))
        meta.setdefault("tools", {}).update(data["meta"].get("tools", {}))  # a later run's tools
        for r in data["results"]:
            # rows measured before rows carried their code version get their file's
            r.setdefault("code_version", data["meta"].get("code_version", "unknown"))
            key = (r["clip"], r["family"], r["setting"])
            if "skipped" not in r or key not in merged:
                merged[key] = r
        for r in data.get("leaderboard_raw", []):
            leaderboard[(r["clip"], r["predictor"])] = r
        if args.strips == 0:  # e.g. a report to publish, of clips whose licence forbids it
            meta["strips"] = []
            continue
        for name in data["meta"].get("strips", []):
            if (src.parent / name).exists() and src.parent.resolve() != out.resolve():
                shutil.copyfile(src.parent / name, out / name)
    results = list(merged.values())
    meta["command"] = " && ".join(c for c in commands if c)
    # every run's code, oldest first: merged rows come from more than one
    meta["code_version"] = ", ".join(dict.fromkeys(v for v in versions if v))
    meta["clips"] = len({r["clip"] for r in results})
    meta["skipped"], meta["errors"] = _problems(results)
    default = _report_default(meta.get("predictors") or [], default_predictor)
    meta["speed"] = speed_rows(results, default)
    write_report(out, results, list(leaderboard.values()), meta, default)
    if not args.quiet:
        print(f"report: {out / 'report.md'}", file=sys.stderr)
    return 0


def run_bench(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from fpcodec.bench import anchors
    from fpcodec.bench.leaderboard import one_step, strip_image
    from fpcodec.bench.report import speed_rows, write_report
    from fpcodec.bench.runner import (
        DEFAULT_ANCHORS,
        anchor_variants,
        code_version,
        fpcodec_variants,
        load_clip,
        run_all,
    )
    from fpcodec.codec.errors import FpcError
    from fpcodec.models.data import list_clips
    from fpcodec.models.registry import (
        DEFAULT_PREDICTOR,
        FLOAT_PATH_NAMES,
        FLOAT_SUFFIX,
        available_predictors,
    )

    import fpcodec

    corpus = Path(args.corpus)
    if not corpus.is_dir():
        raise FpcError(f"{corpus} is not a directory")
    if args.report_only:
        return _rebuild_report(args, DEFAULT_PREDICTOR)
    clips = list_clips(corpus)
    if args.quick and not args.limit:
        args.limit = 4
    if args.limit:
        step = max(1, len(clips) // args.limit)
        clips = clips[::step][: args.limit]
    if args.predictors == "none":  # anchors only
        predictors = []
    else:
        predictors = (
            args.predictors.split(",") if args.predictors else sorted({"last", DEFAULT_PREDICTOR})
        )
    for p in predictors:
        if p not in available_predictors():
            raise FpcError(f"unknown predictor {p!r}")
    max_errors = args.max_errors
    qualities = (
        args.qualities
        if args.qualities is not None
        else (QUICK_QUALITIES if args.quick else QUALITIES)
    )
    if args.anchors is None:
        names = ["gif", "gifsicle", "webp", "x264"] if args.quick else DEFAULT_ANCHORS
    elif args.anchors == "none":
        names = []
    else:
        names = args.anchors.split(",")
    variants = fpcodec_variants(
        predictors, max_errors, qualities, extras=not args.quick
    ) + anchor_variants(names)
    out = Path(args.output)
    _check_report_dir(out, args.force)
    out.mkdir(parents=True, exist_ok=True)
    progress = not args.quiet and sys.stderr.isatty()
    version = code_version()  # before running: the code the results were measured with
    results = run_all(
        clips, variants, out / "cache", args.jobs, progress, args.engine, args.address
    )

    leaderboard = []
    strip_clips = clips[: args.strips]
    strips = []
    for c in clips:
        per_pred = {}
        frames = None
        if c in strip_clips:
            frames, _, _ = load_clip(c)
        t = len(frames) // 2 if frames is not None and len(frames) > 1 else None
        for p in predictors:
            r = one_step(c, p, strip_at=t)
            if r["strip"] is not None:
                per_pred[p] = r["strip"][0]
            leaderboard.append(r)
            if p in FLOAT_PATH_NAMES:  # the float network it was quantised from
                leaderboard.append(one_step(c, p + FLOAT_SUFFIX))
        if frames is not None and t and per_pred:
            name = f"strip_{c.stem[:40]}.png"
            strip_image(frames, t, per_pred, out / name)
            strips.append(name)
    default = _report_default(predictors, DEFAULT_PREDICTOR)
    skipped, errors = _problems(results)
    meta = {
        "corpus": str(corpus),
        "clips": len(clips),
        "version": fpcodec.__version__,
        "code_version": version,
        "tools": anchors.tool_versions(),
        "anchor_settings": {
            n: anchors.SETTINGS_NOTES[n] for n in names if n in anchors.SETTINGS_NOTES
        },
        "predictors": predictors,
        "command": "fpcodec " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        if sys.argv[0].endswith("fpcodec")
        else "fpcodec bench ...",
        "skipped": skipped,
        "errors": errors,
        "strips": strips,
        "speed": speed_rows(results, default),
    }
    write_report(out, results, leaderboard, meta, default)
    if not args.quiet:
        print(f"report: {out / 'report.md'}", file=sys.stderr)
    return 0
