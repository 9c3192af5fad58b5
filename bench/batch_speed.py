"""Throughput of `fpcodec batch`: files/s and MB/s of source, local and Ray engines,
1 and 2 workers, in one run on the same files.

    python -m fpcodec.bench.batch_speed ../shared/corpus -o bench/results/batch/results.json

The files are 20 GIFs from the corpus's small-to-medium range (ranks 10%..70% by
size, evenly spaced), linked into a scratch tree. Each configuration encodes them
with the default options and verification into its own fresh destination, so none
skips anything; the configurations alternate (local 1, Ray 1, local 2, Ray 2) so a
change in the machine's load over the run falls on both engines. A Ray cluster is
started per configuration and its start-up is timed apart from the batch; worker
start-up (imports) is inside the batch time, as a real run pays it once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

CONFIGS = (("local", 1), ("ray", 1), ("local", 2), ("ray", 2))


def pick_files(corpus: Path, n: int) -> list[Path]:
    gifs = sorted(corpus.glob("*.gif"), key=lambda p: (p.stat().st_size, p.name))
    lo, hi = int(0.1 * len(gifs)), int(0.7 * len(gifs))
    span = gifs[lo:hi]
    step = len(span) / n
    return [span[int(i * step)] for i in range(n)]


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except OSError:
        return ""


def measure(src: Path, work: Path, engine: str, jobs: int) -> dict:
    from fpcodec.batch import MANIFEST_NAME, read_manifest, run_batch

    dst = work / f"{engine}-{jobs}"
    row: dict = {"engine": engine, "workers": jobs, "load_before": _load()}
    connected = False
    if engine == "ray":
        import ray

        from fpcodec.batch_ray import connect

        t = time.perf_counter()
        connected = connect(None, jobs)
        row["cluster_start_s"] = time.perf_counter() - t
    try:
        s = run_batch(src, dst, jobs=jobs, engine=engine, say=lambda m: None)
    finally:
        if connected:
            ray.shutdown()
    recs = read_manifest(dst / MANIFEST_NAME)
    mb = s.source_bytes / 1e6
    row.update(
        load_after=_load(),
        files=s.ok,
        failed=s.failed,
        wall_s=s.seconds,
        files_per_s=s.ok / s.seconds,
        source_mb=mb,
        mb_per_s=mb / s.seconds,
        output_mb=s.output_bytes / 1e6,
        ratio=s.output_bytes / max(1, s.source_bytes),
        encode_s_sum=sum(r["encode_s"] for r in recs.values() if r["status"] == "ok"),
        verify_s_sum=sum(r["verify_s"] for r in recs.values() if r["status"] == "ok"),
        cpu_s_sum=sum(r["cpu_s"] for r in recs.values() if r["status"] == "ok"),
        outputs={k: r["output_sha256"] for k, r in sorted(recs.items())},
        shapes={
            k: (r["frames"], r["width"], r["height"], r["output_bytes"]) for k, r in recs.items()
        },
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--files", type=int, default=20)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    files = pick_files(Path(args.corpus), args.files)
    runs = []
    with tempfile.TemporaryDirectory(prefix="batch-speed-") as d:
        work = Path(d)
        src = work / "src"
        src.mkdir()
        for f in files:
            (src / f.name).symlink_to(f.resolve())
        for engine, jobs in CONFIGS:
            runs.append(measure(src, work, engine, jobs))
            r = runs[-1]
            print(
                f"{engine:5} x{jobs}: {r['files_per_s']:.3f} files/s, {r['mb_per_s']:.3f} MB/s, "
                f"{r['wall_s']:.1f} s, worker CPU {r['cpu_s_sum']:.1f} s, "
                f"load {r['load_before']} -> {r['load_after']}",
                flush=True,
            )
    same = all(r["outputs"] == runs[0]["outputs"] for r in runs)
    shapes = runs[0]["shapes"]
    for r in runs:
        r.pop("outputs")
        r.pop("shapes")
    out = {
        "meta": {
            "command": "python -m fpcodec.bench.batch_speed "
            f"{args.corpus} -o {args.output} --files {args.files}",
            "commit": _git_commit(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "options": "defaults: lossless, predictor last, arith, palette; --verify",
            "outputs_identical_across_runs": same,
            "files": [
                dict(
                    zip(
                        ("name", "bytes", "frames", "width", "height", "fpc_bytes"),
                        (f.name, f.stat().st_size, *shapes.get(f.name, (None,) * 4)),
                        strict=True,
                    )
                )
                for f in files
            ],
        },
        "runs": runs,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(args.output).with_suffix(".part")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    os.replace(tmp, args.output)


if __name__ == "__main__":
    main()
