"""No command replaces a file it was not asked to, and a failed run leaves the old one.

Every case runs the CLI entry point in this process (exit status and files checked),
so the suite need not start a Python per case.
"""

from __future__ import annotations

import json

import pytest

from fpcodec.cli import main

from .conftest import moving_clip, save_gif


@pytest.fixture
def made(tmp):
    src = save_gif(tmp / "in.gif", moving_clip(3, 12, 14, seed=4), durations=50)
    assert main(["encode", str(src), str(tmp / "a.fpc"), "-q"]) == 0
    return src, tmp / "a.fpc"


def test_decode_refuses_an_existing_output_without_force(tmp, made):
    _, fpc = made
    old = tmp / "old.gif"
    old.write_bytes(b"keep me")
    assert main(["decode", str(fpc), str(old), "-q"]) == 1
    assert old.read_bytes() == b"keep me"
    assert main(["decode", str(fpc), "-o", str(old), "-q"]) == 1  # the -o form too
    assert old.read_bytes() == b"keep me"
    assert main(["decode", str(fpc), str(old), "-q", "-f"]) == 0
    assert old.read_bytes()[:3] == b"GIF"


def test_encode_o_form_refuses_an_existing_output(tmp, made):
    src, _ = made
    old = tmp / "old.fpc"
    old.write_bytes(b"keep me")
    assert main(["encode", str(src), "-o", str(old), "-q"]) == 1
    assert old.read_bytes() == b"keep me"


def test_decode_into_a_non_empty_frame_directory_needs_force(tmp, made):
    _, fpc = made
    frames = tmp / "frames"
    frames.mkdir()
    (frames / "notes.txt").write_text("mine")
    assert main(["decode", str(fpc), str(frames) + "/", "-q"]) == 1
    assert [p.name for p in frames.iterdir()] == ["notes.txt"]
    assert main(["decode", str(fpc), str(frames) + "/", "-q", "-f"]) == 0
    assert (frames / "notes.txt").read_text() == "mine"  # only frame files are written
    assert len(list(frames.glob("frame_*.png"))) == 3


def test_predict_refuses_a_non_empty_directory_without_force(tmp, made):
    src, _ = made
    out = tmp / "pred"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["predict", str(src), str(out), "--predictor", "last", "-q"]) == 1
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("command", ["encode", "decode"])
def test_a_failed_forced_run_leaves_the_old_output_intact(tmp, made, command):
    src, fpc = made
    bad = tmp / ("bad.gif" if command == "encode" else "bad.fpc")
    good = (src if command == "encode" else fpc).read_bytes()
    bad.write_bytes(good[: len(good) * 2 // 3])  # starts well, fails part-way
    out = tmp / ("out.fpc" if command == "encode" else "out.gif")
    out.write_bytes(b"the old output")
    assert main([command, str(bad), str(out), "-q", "-f"]) == 1
    assert out.read_bytes() == b"the old output"
    assert not [p for p in tmp.iterdir() if p.name.endswith(".part")]


def test_bench_refuses_to_replace_a_report_without_force(tmp):
    corpus = tmp / "corpus"
    corpus.mkdir()
    save_gif(corpus / "c.gif", moving_clip(3, 12, 14, seed=5), durations=50)
    out = tmp / "report"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"keep": True}))
    args = ["bench", str(corpus), "-o", str(out), "--predictors", "last", "--max-errors", "0"]
    args += ["--qualities", "", "--anchors", "none", "--jobs", "1", "--strips", "0", "-q"]
    assert main(args) == 1
    assert json.loads((out / "results.json").read_text()) == {"keep": True}
    assert main([*args, "--report-only", str(out / "results.json")]) == 1
    assert main([*args, "--force"]) == 0
    assert "results" in json.loads((out / "results.json").read_text())


def test_playback_refuses_an_existing_output_without_force(tmp):
    from fpcodec.bench import playback

    (tmp / "c").mkdir()
    out = tmp / "speed.json"
    out.write_text("keep")
    assert playback.main([str(tmp / "c"), "-o", str(out)]) == 1
    assert out.read_text() == "keep"
