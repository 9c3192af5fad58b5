"""`--max-error E` against lossless on GIFs, every file decoded and checked (issue 22).

    python -m fpcodec.bench.near_lossless_check CLIP.gif ... -o OUT.json [--max-error 2] [--jobs 2]

Each clip is encoded twice by the CLI as a user would (`fpcodec encode`, lossless and
`--max-error E`, one numba thread each), both files are decoded with
fpcodec.decode_frames and measured as the benchmark measures them (runner.load_clip's
frames, runner.compare): the lossless file must be exact, and the near-lossless one
within E on every visible pixel of every frame, with the same pixels visible. Writes
per clip the bytes, the worst channel error and whether the bound held, and the totals.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def check(clip: Path, max_error: int, work: Path) -> dict:
    import fpcodec

    from .runner import compare, load_clip

    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    sizes, measured = {}, {}
    source = load_clip(clip)[0]
    for e in (0, max_error):
        out = work / f"{clip.stem}-e{e}.fpc"
        cmd = [sys.executable, "-m", "fpcodec.cli", "encode", "-q", "-f", str(clip), str(out)]
        subprocess.run([*cmd, "--max-error", str(e)], check=True, env=env)
        sizes[e] = out.stat().st_size
        measured[e] = compare(source, fpcodec.decode_frames(out)[1])
        if "error" in measured[e]:
            raise RuntimeError(f"{clip.name} at --max-error {e}: {measured[e]['error']}")
    near = measured[max_error]
    return {
        "clip": clip.name,
        "frames": len(source),
        "source_bytes": clip.stat().st_size,
        "lossless_bytes": sizes[0],
        f"max_error_{max_error}_bytes": sizes[max_error],
        "lossless_exact": measured[0]["exact"],
        f"max_error_{max_error}_worst_channel_error": near["max_abs_error"],
        "bound_held": near["alpha_ok"] and near["max_abs_error"] <= max_error,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", type=Path, nargs="+")
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--max-error", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fpcodec-nl-") as d, ThreadPoolExecutor(a.jobs) as ex:
        rows = list(ex.map(lambda c: check(c, a.max_error, Path(d)), a.clips))
    e = a.max_error
    total0 = sum(r["lossless_bytes"] for r in rows)
    total_e = sum(r[f"max_error_{e}_bytes"] for r in rows)
    result = {
        "command": "python -m fpcodec.bench.near_lossless_check "
        + " ".join(c.name for c in a.clips)
        + f" --max-error {e}",
        "clips": rows,
        "total_lossless_bytes": total0,
        f"total_max_error_{e}_bytes": total_e,
        "ratio": round(total_e / total0, 4),
        "every_bound_held": all(r["bound_held"] for r in rows),
        "every_lossless_exact": all(r["lossless_exact"] for r in rows),
    }
    a.output.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "clips"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
