"""`--max-error E` against lossless on GIFs, every file decoded and checked (issue 22).

    python -m fpcodec.bench.near_lossless_check CLIP.gif ... -o OUT.json [--max-error 2] [--jobs 2]

Each clip is encoded twice by the CLI as a user would (`fpcodec encode`, lossless and
`--max-error E`, one numba thread each), both files are decoded with
fpcodec.decode_frames and compared with Pillow's RGBA frames of the source: the
lossless file must be exact, and the near-lossless one within E on every visible
pixel of every frame. Writes per clip the bytes, the worst channel error and whether
the bound held, and the totals.
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

import numpy as np


def _source_frames(path: Path) -> list[np.ndarray]:
    from PIL import Image

    out = []
    with Image.open(path) as im:
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            out.append(np.asarray(im.convert("RGBA")).copy())
    return out


def _worst_error(source: list[np.ndarray], decoded: list[np.ndarray]) -> int:
    worst = 0
    for s, d in zip(source, decoded, strict=True):
        visible = s[..., 3] != 0
        err = np.abs(s[..., :3].astype(np.int16) - d[..., :3].astype(np.int16)).max(axis=2)
        worst = max(worst, int(err[visible].max(initial=0)))
        worst = max(worst, int(np.abs(s[..., 3].astype(np.int16) - d[..., 3]).max()))
    return worst


def check(clip: Path, max_error: int, work: Path) -> dict:
    import fpcodec

    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    sizes, worst = {}, {}
    source = _source_frames(clip)
    for e in (0, max_error):
        out = work / f"{clip.stem}-e{e}.fpc"
        cmd = [sys.executable, "-m", "fpcodec.cli", "encode", "-q", "-f", str(clip), str(out)]
        subprocess.run([*cmd, "--max-error", str(e)], check=True, env=env)
        sizes[e] = out.stat().st_size
        worst[e] = _worst_error(source, fpcodec.decode_frames(out)[1])
    return {
        "clip": clip.name,
        "frames": len(source),
        "source_bytes": clip.stat().st_size,
        "lossless_bytes": sizes[0],
        f"max_error_{max_error}_bytes": sizes[max_error],
        "lossless_exact": worst[0] == 0,
        f"max_error_{max_error}_worst_channel_error": worst[max_error],
        "bound_held": worst[max_error] <= max_error,
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
