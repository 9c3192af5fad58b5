"""Peak memory of whole `fpcodec encode` and `decode` processes on large frames.

Makes two 3-frame GIFs of WIDTHxHEIGHT in a work directory -- `synthetic` (64-pixel
blocks of four colours shifted 8 pixels a frame, 1% of the pixels noise, seed 7) and
`natural` (the first three frames of a corpus clip tiled to the size and quantised to
256 colours; made locally, never committed) -- and runs, for every picture, predictor
and option set, `fpcodec encode` then `fpcodec decode` to GIF as a user would, one
numba and one torch thread, reading each child's peak resident set as the benchmark
does (peakrss.run_child: wait4 in a small launcher). One JSON line a run.

    python -m fpcodec.bench.cap_memory --clip ../shared/corpus/mtcat-0001.gif \\
        --predictors convlstm-ae,hybrid3d --options="--no-palette;--quality 50"
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def synthetic(path: Path, width: int, height: int, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 4, (-(-height // 64), -(-width // 64)))
    base = np.kron(blocks, np.ones((64, 64), np.int64))[:height, :width]
    frames = []
    for t in range(3):
        idx = np.roll(base, 8 * t, axis=1)
        idx = np.where(rng.random((height, width)) < 0.01, rng.integers(0, 4, idx.shape), idx)
        im = Image.fromarray(idx.astype(np.uint8), "P")
        im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
        frames.append(im)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)


def natural(path: Path, clip: Path, width: int, height: int) -> None:
    frames = []
    with Image.open(clip) as src:
        for t in range(3):
            src.seek(t)
            a = np.asarray(src.convert("RGB"))
            tiled = np.tile(a, (-(-height // a.shape[0]), -(-width // a.shape[1]), 1))
            im = Image.fromarray(tiled[:height, :width])
            frames.append(im.quantize(256, method=Image.Quantize.MEDIANCUT))
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)


def run(argv: list[str]) -> tuple[float, float, int]:
    """(peak MiB, seconds, exit status) of one child process, one numba and one torch
    thread, measured by the benchmark's own launcher (peakrss.run_child)."""
    from .peakrss import run_child

    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    t = time.perf_counter()
    rc, peak, _ = run_child(argv, timeout=7200, env=env)
    return peak, time.perf_counter() - t, rc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=4096)
    ap.add_argument("--height", type=int, default=2048)
    ap.add_argument("--clip", type=Path, help="corpus clip for the natural picture")
    ap.add_argument("--predictors", default="last")
    ap.add_argument(
        "--options",
        default="--no-palette",
        help="encode options, runs separated by ';' (give it as --options=...)",
    )
    ap.add_argument("--workdir", type=Path, help="keep the pictures and files here")
    a = ap.parse_args(argv)
    work = a.workdir or Path(tempfile.mkdtemp(prefix="fpcodec-cap-"))
    work.mkdir(parents=True, exist_ok=True)
    pictures = {"synthetic": work / "synthetic.gif"}
    synthetic(pictures["synthetic"], a.width, a.height)
    if a.clip:
        pictures["natural"] = work / "natural.gif"
        natural(pictures["natural"], a.clip, a.width, a.height)
    cli = [sys.executable, "-m", "fpcodec.cli"]
    for pic, src in pictures.items():
        for pred in a.predictors.split(","):
            for opts in a.options.split(";"):
                tag = f"{pic}-{pred}-{'_'.join(opts.split()).strip('-')}"
                fpc, back = work / f"{tag}.fpc", work / f"{tag}.gif"
                args = ["encode", str(src), str(fpc), "--predictor", pred, *opts.split()]
                enc = run([*cli, *args, "-f", "-q"])
                dec = run([*cli, "decode", str(fpc), str(back), "-f", "-q"])
                row = {
                    "picture": pic,
                    "size": f"{a.width}x{a.height}",
                    "predictor": pred,
                    "options": opts,
                    "encode_mib": round(enc[0]),
                    "encode_s": round(enc[1], 1),
                    "encode_rc": enc[2],
                    "decode_mib": round(dec[0]),
                    "decode_s": round(dec[1], 1),
                    "decode_rc": dec[2],
                    "bytes": fpc.stat().st_size if enc[2] == 0 else None,
                }
                print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
