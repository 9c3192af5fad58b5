"""Can fpcodec play a GIF back in real time? Decode speed against display speed.

`python -m fpcodec.bench.playback CORPUS -o speed.json` encodes every GIF of a
directory losslessly and compares, per GIF, three speeds with the GIF's own frame
rate (frames / total display time):

* the decoder in this process (`fpcodec.decode_frames`, frames into memory; start-up
  paid once for the whole run), what a player embedding the library gets;
* `fpcodec decode CLIP.fpc OUT.gif` as a whole process, start to exit: start-up,
  decoding and writing the GIF, what a user at a shell meets (issue 24's measure);
* `fpcodec encode CLIP.gif CLIP.fpc` as a whole process.

Run it on an otherwise idle machine: unlike `fpcodec bench`, which runs codecs side
by side, these are the numbers one user gets.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fpcodec.codec.atomic import atomic_file
from tqdm import tqdm


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "fpcodec", *args]


def _process_seconds(argv: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - t


def measure(path: Path, workdir: Path) -> dict:
    import fpcodec

    out = workdir / "clip.fpc"
    encode_s = _process_seconds(_cli("encode", "-q", "-f", str(path), str(out)))
    t = time.perf_counter()
    # the display durations come back with the frames (lossless keeps them exactly)
    header, frames, durations = fpcodec.decode_frames(out)
    seconds = time.perf_counter() - t
    process_s = _process_seconds(_cli("decode", "-q", "-f", str(out), str(workdir / "back.gif")))
    shown = sum(durations) / 1000.0
    n = len(frames)
    play_fps = n / shown if shown > 0 else float("nan")

    def margin(s: float) -> float:
        return n / s / play_fps if shown > 0 else float("nan")

    return {
        "clip": path.name,
        "frames": n,
        "width": header.width,
        "height": header.height,
        "bytes": out.stat().st_size,
        "playback_s": shown,
        "playback_fps": play_fps,
        "decode_s": seconds,
        "decode_fps": n / seconds,
        "margin": margin(seconds),
        "process_decode_s": process_s,
        "process_margin": margin(process_s),
        "process_encode_s": encode_s,
        "encode_margin": margin(encode_s),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fpcodec.bench.playback", description=__doc__)
    ap.add_argument("corpus")
    ap.add_argument("-o", "--output", required=True, help="JSON file to write")
    ap.add_argument("-f", "--force", action="store_true", help="replace an existing OUTPUT")
    args = ap.parse_args(argv)
    from fpcodec.codec.atomic import check_output
    from fpcodec.codec.errors import FpcError

    import fpcodec

    try:
        check_output(Path(args.output), [], args.force)  # before an hour of measuring
    except FpcError as e:
        print(f"playback: error: {e}", file=sys.stderr)
        return 1
    gifs = sorted(Path(args.corpus).glob("*.gif"))
    rows = []
    with tempfile.TemporaryDirectory() as d:
        # compile the numba kernels before timing anything
        warm = Path(d) / "warm.fpc"
        fpcodec.encode(gifs[0], warm, force=True)
        fpcodec.decode_frames(warm)
        for g in tqdm(gifs, disable=not sys.stderr.isatty()):
            rows.append(measure(g, Path(d)))
    timed = [r for r in rows if r["margin"] == r["margin"]]
    worst = min(timed, key=lambda r: r["process_margin"])
    summary = {
        "gifs": len(rows),
        "timed": len(timed),
        "median_decode_fps": statistics.median(r["decode_fps"] for r in rows),
        "median_margin": statistics.median(r["margin"] for r in timed),
        "realtime": sum(r["margin"] >= 1 for r in timed),
        "median_process_margin": statistics.median(r["process_margin"] for r in timed),
        "process_realtime": sum(r["process_margin"] >= 1 for r in timed),
        "worst_process_margin": worst["process_margin"],
        "worst_process_clip": worst["clip"],
        "median_encode_margin": statistics.median(r["encode_margin"] for r in timed),
        "encode_realtime": sum(r["encode_margin"] >= 1 for r in timed),
        "cores": os.cpu_count(),
        "version": fpcodec.__version__,
    }
    with atomic_file(Path(args.output), force=args.force) as tmp:
        tmp.write_text(json.dumps({"summary": summary, "clips": rows}, indent=1))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
