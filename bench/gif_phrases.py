"""How much room a GIF's own LZW phrases leave for `--max-error` (issue 22).

    python -m fpcodec.bench.gif_phrases CLIP.gif ... -o OUT.json [--frames 6] [--errors 2,4,8]

Palette near-lossless (codec/palette_nearlossless.py) shortens a frame's stream by
re-parsing its indices with greedy LZW and letting a phrase go on through a colour
within E of the source's. This measures, on the first frames of each GIF, without
coding anything:

* `reparse_identical`: frames whose greedy re-parse of their own indices, clearing
  where the source cleared, is the source's code stream (a stream a greedy
  longest-match encoder wrote);
* per E: `movable`, the share of pixels whose colour table has another colour
  within E (Chebyshev); `extended`, the share of pixels that a re-parse starting
  from the source's own indices changes (each a phrase that went on through a
  substitute) and `codes_extended`, that parse's codes over the source's;
  `moved` and `codes_moved`, the same for the frame the encoder tries
  (`near_lossless_frame`, whose indices are first flattened toward their
  neighbours'; here without the canvas, so on a first frame's terms).

Codes are not bytes (the palette coder's cost per code varies), but a moved frame
with more codes than its source has rarely won a trial.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np


def measure(path: Path, frames: int, errors: list[int]) -> dict:
    from ..codec.gifparse import iter_frames, parse_screen
    from ..codec.palette import colour_table
    from ..codec.palette_nearlossless import allowed_indices, near_lossless_frame, reparse

    with open(path, "rb") as f:
        screen = parse_screen(f)
        gif_frames = [fr for fr, _loop in itertools.islice(iter_frames(f, screen), frames)]
    pixels = sum(fr.indices.shape[0] for fr in gif_frames)
    codes = sum(fr.codes.shape[0] for fr in gif_frames)
    identity = np.arange(256, dtype=np.int32)[:, None]
    identical = 0
    for fr in gif_frames:
        _, got = reparse(fr, fr.indices, identity, np.ones(256, np.int32))
        identical += got.shape[0] == fr.codes.shape[0] and bool((got == fr.codes).all())
    row: dict = {"clip": path.name, "frames": len(gif_frames), "reparse_identical": identical}
    for e in errors:
        movable = extended = moved = codes_ext = codes_moved = 0
        for fr in gif_frames:
            table = colour_table(fr, screen.global_palette)
            allowed, n_allowed = allowed_indices(table, e, fr.transparency)
            movable += int((n_allowed[fr.indices] > 1).sum())
            idx, got = reparse(fr, fr.indices, allowed, n_allowed)
            extended += int((idx != fr.indices).sum())
            codes_ext += got.shape[0]
            tried = near_lossless_frame(fr, screen.global_palette, e)
            tried = fr if tried is None else tried
            moved += int((tried.indices != fr.indices).sum())
            codes_moved += tried.codes.shape[0]
        row[f"E{e}"] = {
            "movable": round(movable / pixels, 4),
            "extended": round(extended / pixels, 4),
            "codes_extended": round(codes_ext / codes, 4),
            "moved": round(moved / pixels, 4),
            "codes_moved": round(codes_moved / codes, 4),
        }
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", type=Path, nargs="+")
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--errors", default="2,4,8")
    args = ap.parse_args(argv)
    errors = [int(e) for e in args.errors.split(",")]
    rows = []
    for clip in args.clips:
        rows.append(measure(clip, args.frames, errors))
        print(json.dumps(rows[-1]))
    command = "python -m fpcodec.bench.gif_phrases " + " ".join(
        [*(c.name for c in args.clips), "--frames", str(args.frames), "--errors", args.errors]
    )
    out = {"command": command, "frames": args.frames, "clips": rows}
    args.output.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
