"""Encoder tuning loop: one lossy rate-distortion curve per clip, compared clip by clip.

`fpcodec bench` answers "where do we stand"; this answers "did my change help", fast
enough to ask it after every change:

    python -m fpcodec.bench.tune run HELDOUT_DIR -o new.json --qualities 10,25,40,55
    python -m fpcodec.bench.tune compare base.json new.json \
        --anchor bench/results/heldout/results.json:x264

`run` encodes every clip at every quality with the real encoder, decodes the written
file with the real decoder (bench.runner.run_fpcodec) and records bytes and distance.
`compare` prints the BD-rate at equal perceptual distance of the second run against
the first on each clip's own curve, then mean, median and clips better (`--metrics
pd,psnr,ssim,ms_ssim` for each of those; SSIM and MS-SSIM in dB, as the report). Judge an
encoder change by these per-clip figures: the aggregate curve (PD averaged over clips,
bytes totalled) moves when bits move from one clip to another with no clip better.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from fpcodec.bench.bdrate import bd_rate

SOURCE_SUFFIXES = {".gif", ".mp4", ".webm", ".mkv", ".mov", ".png", ".webp"}


def _encode_point(path: str, quality: int, predictor: str) -> dict:
    # the pixel coder alone, as the benchmark's lossy rows (runner.variants): a GIF's
    # palette trials would otherwise stand in for it wherever they win
    from fpcodec.bench.runner import Variant, compare, load_clip, run_fpcodec

    frames, _, _ = load_clip(Path(path))
    v = Variant(
        "fpcodec",
        f"Q={quality}",
        "tune",
        False,
        (("predictor", predictor), ("palette", False), ("quality", quality)),
    )
    res = run_fpcodec(Path(path), v, frames)
    m = compare(frames, res.frames)
    h, w = frames[0].shape[:2]
    return {
        "clip": Path(path).name,
        "quality": quality,
        "frames": len(frames),
        "width": w,
        "height": h,
        "bytes": res.nbytes,
        "pd": m["pd"],
        "psnr": m["psnr"],
        "ssim": m["ssim"],
        "ms_ssim": m["ms_ssim"],
        "enc_s": res.enc_s,
        "dec_s": res.dec_s,
    }


def _worker_init() -> None:
    import numba
    import torch

    torch.set_num_threads(1)
    numba.set_num_threads(1)


def run(corpus: Path, qualities: list[int], predictor: str, jobs: int, out: Path) -> list[dict]:
    clips = sorted(p for p in corpus.iterdir() if p.suffix.lower() in SOURCE_SUFFIXES)
    # the largest clips first, so the pool does not end waiting on one of them
    clips.sort(key=lambda p: -p.stat().st_size)
    tasks = [(str(c), q) for c in clips for q in qualities]
    rows: list[dict] = []
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max(1, jobs), initializer=_worker_init) as ex:
        futs = [ex.submit(_encode_point, c, q, predictor) for c, q in tasks]
        for i, f in enumerate(as_completed(futs), 1):
            rows.append(f.result())
            print(f"\r{i}/{len(tasks)} points", end="", file=sys.stderr, flush=True)
    print(f"\r{len(tasks)} points in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    rows.sort(key=lambda r: (r["clip"], r["quality"]))
    tmp = out.with_suffix(".part")
    tmp.write_text(json.dumps({"predictor": predictor, "palette": False, "rows": rows}, indent=1))
    os.replace(tmp, out)
    return rows


def load_curves(spec: str, metric: str = "pd") -> dict[str, list[tuple[float, float]]]:
    """Per clip (bytes, quality) points, quality the `metric` (a report.BD_METRICS key,
    SSIM in dB): a `run` JSON, or `RESULTS_JSON:FAMILY` for the rows of one family in a
    benchmark results.json."""
    from fpcodec.bench.report import BD_METRICS

    q = BD_METRICS[metric]
    path, _, family = spec.partition(":")
    if not Path(path).exists() and ":" in spec:  # a path that itself holds a colon
        path, family = spec, ""
    data = json.loads(Path(path).read_text())
    by: dict[str, list[tuple[float, float]]] = defaultdict(list)
    if "rows" in data:
        for r in data["rows"]:
            by[r["clip"]].append((r["bytes"], q(r)))
    else:
        for r in data["results"]:
            if r.get("family") == family and "bytes" in r and "error" not in r:
                by[r["clip"]].append((r["bytes"], q(r)))
    return dict(by)


def per_clip(base: dict, test: dict) -> dict[str, float]:
    out = {}
    for clip in sorted(set(base) & set(test)):
        a, b = base[clip], test[clip]
        out[clip] = bd_rate(
            [x[0] for x in a], [x[1] for x in a], [x[0] for x in b], [x[1] for x in b]
        )
    return out


def summary(bd: dict[str, float]) -> str:
    v = np.array([x for x in bd.values() if math.isfinite(x)])
    if not v.size:
        return "no overlapping curves"
    return (
        f"mean {v.mean():+.2f}%  median {np.median(v):+.2f}%  better on {(v < 0).sum()} of {v.size}"
    )


def compare(base_spec: str, test_spec: str, anchors: list[str], metric: str = "pd") -> None:
    print(f"== BD-rate at equal {metric}")
    base, test = load_curves(base_spec, metric), load_curves(test_spec, metric)
    cols = [("vs base", per_clip(base, test))]
    for a in anchors:
        ac = load_curves(a, metric)
        cols.append((f"base vs {a.rpartition(':')[2] or a}", per_clip(ac, base)))
        cols.append((f"test vs {a.rpartition(':')[2] or a}", per_clip(ac, test)))
    clips = sorted(set(test))
    print(f"{'clip':44s}" + "".join(f"{name:>18s}" for name, _ in cols))
    for c in clips:
        print(f"{c[:44]:44s}" + "".join(f"{col.get(c, math.nan):>+17.1f}%" for _, col in cols))
    for name, col in cols:
        print(f"{name}: {summary(col)}")
    for spec, curves in (("base", base), ("test", test)):
        total = sum(sum(b for b, _ in pts) for pts in curves.values())
        print(f"{spec}: {total:,} bytes over all points")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m fpcodec.bench.tune", description=__doc__.split("\n")[0]
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="encode + decode each clip at each quality")
    r.add_argument("corpus", type=Path)
    r.add_argument("-o", "--output", type=Path, required=True)
    r.add_argument("--qualities", default="10,25,40,55")
    r.add_argument("--predictor", default="last")
    r.add_argument("--jobs", type=int, default=2)
    c = sub.add_parser("compare", help="per-clip BD-rate of TEST against BASE (and anchors)")
    c.add_argument("base")
    c.add_argument("test")
    c.add_argument("--anchor", action="append", default=[], help="RESULTS_JSON:FAMILY")
    c.add_argument(
        "--metrics", default="pd", help="comma-separated: pd, psnr, ssim, ms_ssim (SSIMs in dB)"
    )
    a = p.parse_args(argv)
    if a.cmd == "run":
        qs = [int(x) for x in a.qualities.split(",") if x.strip()]
        run(a.corpus, qs, a.predictor, a.jobs, a.output)
    else:
        for m in a.metrics.split(","):
            compare(a.base, a.test, a.anchor, m.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
