"""`fpcodec train` says what it does (issue 21.7): a corpus too small to hold clips
out, and a rerun of a finished run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import moving_corpus

ARGS = [
    "--model",
    "cnn2d",
    "--epochs",
    "1",
    "--steps-per-epoch",
    "1",
    "--batch",
    "1",
    "--crop",
    "16",
    "--val-windows",
    "1",
    "--threads",
    "1",
]


def train(corpus: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fpcodec.cli", "train", str(corpus), "-o", str(out), *ARGS, *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_small_corpus_note_and_finished_run(tmp):
    corpus = moving_corpus(tmp / "c", 1, 8, 16, 16)
    out = tmp / "run"
    r = train(corpus, out)
    assert r.returncode == 0, r.stderr
    assert "validation uses the training clips" in r.stderr
    ckpt = out / "checkpoint.pt"
    weights = sorted(p.name for p in out.glob("cnn2d-*.pt"))
    stamp = ckpt.stat().st_mtime_ns
    r = train(corpus, out)  # the same --epochs again: nothing to do, and it says so
    assert r.returncode == 0
    assert "already trained 1 epoch" in r.stderr and "nothing to do" in r.stderr
    assert ckpt.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in out.glob("cnn2d-*.pt")) == weights
    r = train(corpus, out, "-q")
    assert r.returncode == 0 and r.stderr == ""
    r = train(corpus, out, "-f")  # start over
    assert r.returncode == 0, r.stderr
    assert "starting over" in r.stderr and "weights:" in r.stderr
    assert ckpt.stat().st_mtime_ns != stamp
