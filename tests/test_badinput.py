"""Every malformed or corner-case GIF decodes correctly or fails with one clean line."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fpcodec.codec.errors import InputError

import fpcodec

from .conftest import BADINPUT, assert_same_visible, needs, read_frames

FILES = sorted(BADINPUT.glob("*.gif")) if BADINPUT.exists() else []


@needs(BADINPUT)
@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_bad_gif_decodes_exactly_or_fails_cleanly(tmp, path):
    try:
        ref, durations, loop = read_frames(path)
    except InputError as e:
        assert "\n" not in str(e) and str(e)
        with pytest.raises(InputError):
            fpcodec.encode(path, tmp / "x.fpc", predictor="last")
        assert not (tmp / "x.fpc").exists() and not list(tmp.iterdir())
        return
    fpcodec.encode(path, tmp / "x.fpc", predictor="last")
    header, out, out_durations = fpcodec.decode_frames(tmp / "x.fpc")
    assert out_durations == durations and header.loop == loop
    for a, b in zip(ref, out, strict=True):
        assert_same_visible(a, b)
    fpcodec.decode(tmp / "x.fpc", tmp / "x.gif")
    back, _, _ = read_frames(tmp / "x.gif")
    for a, b in zip(ref, back, strict=True):
        assert_same_visible(a, b)


@needs(BADINPUT)
@pytest.mark.parametrize(
    "name",
    [
        "no-frames.gif",
        "hippopotamus.interlaced.truncated.gif",
        "frame-out-of-bounds.gif",
        "zero-width-frame.gif",
    ],
)
def test_cli_reports_bad_gifs_in_one_line(tmp, name):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "fpcodec.cli",
            "encode",
            str(BADINPUT / name),
            str(tmp / "x.fpc"),
            "--predictor",
            "last",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp,
    )
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fpcodec: error:"), r.stderr
    assert not (tmp / "x.fpc").exists()
