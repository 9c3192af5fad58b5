"""The command-line contract: exit codes, one-line errors, --force, atomic outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import moving_clip, save_gif


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fpcodec.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


@pytest.fixture
def gif(tmp) -> Path:
    return save_gif(tmp / "in.gif", moving_clip(4, 16, 20, alpha=True), durations=50)


def test_encode_decode_info_predict(tmp, gif):
    r = run("encode", str(gif), str(tmp / "a.fpc"), "--predictor", "last", cwd=tmp)
    assert r.returncode == 0, r.stderr
    assert "bpp" in r.stderr and "frames/s" in r.stderr
    r = run("decode", str(tmp / "a.fpc"), "-o", str(tmp / "b.gif"), cwd=tmp)
    assert r.returncode == 0, r.stderr
    r = run("info", str(tmp / "a.fpc"), "--json", cwd=tmp)
    d = json.loads(r.stdout)
    assert d["frames"] == 4 and d["width"] == 20 and d["has_alpha"] and d["mode"] == "lossless"
    assert d["frame_types"]["key"]["frames"] == 1
    r = run("info", str(tmp / "a.fpc"), cwd=tmp)
    assert "bits/pixel" in r.stdout
    r = run("predict", str(gif), str(tmp / "pred"), "--predictor", "last", "-q", cwd=tmp)
    assert r.returncode == 0 and r.stderr == ""
    assert sorted(p.name for p in (tmp / "pred").iterdir()) == [
        f"pred_{i:06d}.png" for i in (1, 2, 3)
    ]


def test_quiet_prints_nothing(tmp, gif):
    r = run("encode", str(gif), str(tmp / "a.fpc"), "-q", "--predictor", "last", cwd=tmp)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""


def test_existing_output_needs_force_and_input_is_never_clobbered(tmp, gif):
    out = tmp / "a.fpc"
    out.write_bytes(b"keep me")
    r = run("encode", str(gif), str(out), "--predictor", "last", cwd=tmp)
    assert r.returncode == 1 and "--force" in r.stderr and out.read_bytes() == b"keep me"
    r = run("encode", str(gif), str(out), "--force", "--predictor", "last", cwd=tmp)
    assert r.returncode == 0 and out.read_bytes()[:4] == b"\x89FPC"
    named = tmp / "in.fpc"  # a GIF under a .fpc name: encode accepts the name
    named.write_bytes(gif.read_bytes())
    before = named.read_bytes()
    r = run("encode", str(named), str(named), "--force", "--predictor", "last", cwd=tmp)
    assert r.returncode == 1 and "input" in r.stderr and named.read_bytes() == before


def test_failures_leave_no_partial_output(tmp, gif):
    bad = tmp / "bad.fpc"
    run("encode", str(gif), str(bad), "--predictor", "last", cwd=tmp)
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) - 20])  # truncated: decoding fails midway
    r = run("decode", str(bad), str(tmp / "out.gif"), cwd=tmp)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp / "out.gif").exists()
    assert not [p for p in tmp.iterdir() if p.name.endswith(".part")]


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["encode"],
        ["frobnicate"],
        ["encode", "x.gif", "y.fpc", "--max-error", "two"],
        ["encode", "x.gif", "y.fpc", "--predictor", "nonsense"],
    ],
)
def test_usage_errors_exit_2(tmp, args):
    r = run(*args, cwd=tmp)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["encode", "missing.gif", "o.fpc"], "cannot open"),
        (["decode", "missing.fpc", "o.gif"], "cannot open"),
        (["decode", "in.gif", "o.gif"], "not an .fpc file"),
        (["decode", "in.gif", "o.xyz"], "output format"),
    ],
)
def test_bad_input_is_one_line_exit_1(tmp, gif, args, message):
    r = run(*args, cwd=tmp)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr


def test_unknown_predictor_weights_refused_by_name(tmp, gif):
    from fpcodec.codec.container import StreamHeader

    run("encode", str(gif), str(tmp / "a.fpc"), "--predictor", "last", cwd=tmp)
    data = bytearray((tmp / "a.fpc").read_bytes())
    h = StreamHeader(
        20,
        16,
        frame_count=4,
        has_alpha=True,
        loop=0,
        source_kind="gif",
        predictor="hal9000",
        predictor_sha256=b"\x11" * 32,
    ).pack()
    old = StreamHeader(20, 16, frame_count=4, has_alpha=True, loop=0, source_kind="gif").pack()
    (tmp / "b.fpc").write_bytes(h + bytes(data[len(old) :]))
    r = run("decode", str(tmp / "b.fpc"), str(tmp / "b.gif"), cwd=tmp)
    assert r.returncode == 1 and "hal9000" in r.stderr


@pytest.mark.parametrize("umask,want", [(0o022, 0o644), (0o077, 0o600)])
def test_output_permissions_follow_umask(tmp, gif, umask, want):
    # The temporary file an output is written to is private (0600); the published file
    # must get what the user's umask gives a new file, whatever the umask is.
    old = os.umask(umask)
    try:
        run("encode", str(gif), str(tmp / "a.fpc"), "--predictor", "last", cwd=tmp)
    finally:
        os.umask(old)  # the child inherited it; later tests must not
    assert os.stat(tmp / "a.fpc").st_mode & 0o777 == want


def test_the_command_skips_the_exit_collection_and_the_library_does_not(tmp, gif):
    """The fpcodec command's own process exits without walking numba's objects
    (codec/numbastart.py, 0.12-0.18 s a process); a program using the library keeps
    its exit as it was."""
    code = (
        "import gc, sys; from fpcodec.cli import main; from fpcodec.codec import numbastart;"
        "import fpcodec; fpcodec.info(sys.argv[1]);"
        "assert not numbastart._exit_collection_skipped;"
        "rc = main(['info', sys.argv[1]]);"
        "assert rc == 0 and numbastart._exit_collection_skipped;"
        "import atexit; atexit._run_exitfuncs(); print(gc.get_freeze_count() > 0)"
    )
    fpcodec_run = subprocess.run(
        [sys.executable, "-m", "fpcodec", "encode", str(gif), str(tmp / "a.fpc"), "-q"],
        capture_output=True,
        text=True,
    )
    assert fpcodec_run.returncode == 0, fpcodec_run.stderr
    r = subprocess.run(
        [sys.executable, "-c", code, str(tmp / "a.fpc")], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("True")
