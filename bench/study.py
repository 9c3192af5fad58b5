"""What the headroom studies share: their command line over a corpus, and a result
file that says which commit and command made it (every number in RESULTS.md names
both)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np


def study_parser(doc: str, frames: int) -> argparse.ArgumentParser:
    """CORPUS -o OUT [--clips LIST] [--frames N] [--max-side S]."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("corpus")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--clips", help="a file listing the clips to measure (# comments)")
    ap.add_argument("--frames", type=int, default=frames, help="frames per clip (from its start)")
    ap.add_argument("--max-side", type=int, default=512, help="halve clips larger than this")
    return ap


def study_clips(corpus: str, listing: str | None) -> list[Path]:
    """The corpus's clips, or those of them a listing names."""
    from fpcodec.models.data import list_clips

    clips = list_clips(corpus)
    if listing:
        lines = Path(listing).read_text().splitlines()
        names = {ln.strip() for ln in lines if ln.strip()[:1] not in ("", "#")}
        clips = [c for c in clips if c.name in names]
    return clips


def loaded_clips(
    clips: list[Path], frames: int, max_side: int
) -> Iterator[tuple[Path, np.ndarray]]:
    """(path, RGB frames) of each clip that reads, its first `frames` frames, halved
    while wider than max_side (models/data.py load_clip)."""
    from fpcodec.models.data import load_clip

    for path in clips:
        clip = load_clip(path, frames, max_side)
        if clip is not None:
            yield path, clip


def write_study(result: dict, output: str, module: str) -> None:
    """The result as JSON, with the command that made it and the commit it ran at."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    result["command"] = f"python -m {module} " + " ".join(sys.argv[1:])
    result["commit"] = commit
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(json.dumps(result, indent=2) + "\n")
