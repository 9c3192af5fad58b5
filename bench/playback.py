"""Can fpcodec play a GIF back in real time? Decode speed against display speed.

`python -m fpcodec.bench.playback CORPUS -o speed.json` encodes every GIF of a
directory losslessly (not timed), then times the real decoder on the written file
in this one process and compares its frames/s with the GIF's own (frames / total
display time). Run it on an otherwise idle machine: unlike `fpcodec bench`, which
runs codecs side by side, this is the number a user watching the clip gets.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fpcodec.codec.atomic import atomic_file
from tqdm import tqdm


def measure(path: Path, workdir: Path) -> dict:
    import fpcodec

    out = workdir / "clip.fpc"
    enc = fpcodec.encode(path, out, force=True)
    t = time.perf_counter()
    # the display durations come back with the frames (lossless keeps them exactly)
    _, frames, durations = fpcodec.decode_frames(out)
    seconds = time.perf_counter() - t
    shown = sum(durations) / 1000.0
    dec_fps = len(frames) / seconds
    play_fps = len(frames) / shown if shown > 0 else float("nan")
    return {
        "clip": path.name,
        "frames": len(frames),
        "width": enc.width,
        "height": enc.height,
        "bytes": enc.bytes,
        "decode_s": seconds,
        "decode_fps": dec_fps,
        "playback_fps": play_fps,
        "margin": dec_fps / play_fps if shown > 0 else float("nan"),
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
    summary = {
        "gifs": len(rows),
        "timed": len(timed),
        "median_decode_fps": statistics.median(r["decode_fps"] for r in rows),
        "median_margin": statistics.median(r["margin"] for r in timed),
        "realtime": sum(r["margin"] >= 1 for r in timed),
        "version": fpcodec.__version__,
    }
    with atomic_file(Path(args.output), force=args.force) as tmp:
        tmp.write_text(json.dumps({"summary": summary, "clips": rows}, indent=1))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
