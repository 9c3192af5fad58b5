"""What a gifsicle/cwebp/ffmpeg user expects of the command line (issue 21):
outputs that cannot destroy inputs, usage errors with exit 2, help that shows every
default and an example, and a start-up that does not load torch or numba."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, moving_clip, save_gif


def run(*args: str, cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fpcodec.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        **kw,
    )


def main_exit(args: list[str], capsys) -> tuple[int, str]:
    """Run the CLI in this process; (exit status, stderr)."""
    from fpcodec.cli import main

    try:
        rc = main(args)
    except SystemExit as e:
        rc = e.code
    return rc, capsys.readouterr().err


# ---------------------------------------------------------------- 21.1: no data loss


def test_glob_of_two_gifs_with_force_is_a_usage_error(tmp):
    """`fpcodec encode -f *.gif` in a folder of two GIFs used to replace the second."""
    a = save_gif(tmp / "a.gif", moving_clip(3, 12, 14, seed=1))
    b = save_gif(tmp / "b.gif", moving_clip(3, 12, 14, seed=2))
    before = b.read_bytes()
    r = run("encode", "-f", "a.gif", "b.gif", cwd=tmp)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "b.gif" in lines[0] and ".fpc" in lines[0]
    assert b.read_bytes() == before and a.exists()
    assert sorted(p.name for p in tmp.iterdir()) == ["a.gif", "b.gif"]


@pytest.mark.parametrize("out", ["out.gif", "out.webp", "out", "out.fpc.gif"])
def test_encode_output_must_be_fpc(tmp, capsys, out):
    save_gif(tmp / "a.gif", moving_clip(2, 8, 8))
    rc, err = main_exit(["encode", str(tmp / "a.gif"), str(tmp / out), "-f"], capsys)
    assert rc == 2 and "not a .fpc name" in err and len(err.strip().splitlines()) == 1
    assert not (tmp / out).exists()


def test_api_refuses_non_fpc_output_too(tmp):
    from fpcodec.codec.errors import UsageError

    import fpcodec

    gif = save_gif(tmp / "a.gif", moving_clip(2, 8, 8))
    other = save_gif(tmp / "b.gif", moving_clip(2, 8, 8, seed=3))
    before = other.read_bytes()
    with pytest.raises(UsageError):
        fpcodec.encode(gif, other, force=True)
    assert other.read_bytes() == before


# ---------------------------------------------------------------- 20.10 / 21.6: ranges


OUT_OF_RANGE = [
    ["encode", "x.gif", "y.fpc", "--quality", "101"],
    ["encode", "x.gif", "y.fpc", "--quality", "0"],
    ["encode", "x.gif", "y.fpc", "--quality", "-5"],
    ["encode", "x.gif", "y.fpc", "--max-error", "65"],
    ["encode", "x.gif", "y.fpc", "--max-error", "-1"],
    ["encode", "x.gif", "y.fpc", "--max-error", "300"],
    ["encode", "x.gif", "y.fpc", "--keyframe-interval", "-1"],
    ["encode", "x.gif", "y.fpc", "--keyframe-interval", "1000001"],
    ["decode", "x.fpc", "y.mp4", "--crf", "52"],
    ["decode", "x.fpc", "y.mp4", "--crf", "-1"],
    ["train", "c", "-o", "d", "--epochs", "0"],
    ["train", "c", "-o", "d", "--steps-per-epoch", "0"],
    ["train", "c", "-o", "d", "--batch", "0"],
    ["train", "c", "-o", "d", "--crop", "2"],
    ["train", "c", "-o", "d", "--lr", "0"],
    ["train", "c", "-o", "d", "--lr", "-0.001"],
    ["train", "c", "-o", "d", "--noise", "-0.1"],
    ["train", "c", "-o", "d", "--quant-from", "1.5"],
    ["train", "c", "-o", "d", "--val-windows", "0"],
    ["train", "c", "-o", "d", "--clip-cache", "0"],
    ["train", "c", "-o", "d", "--seed", "-1"],
    ["train", "c", "-o", "d", "--threads", "-2"],
    ["bench", "c", "-o", "d", "--jobs", "0"],
    ["bench", "c", "-o", "d", "--limit", "-1"],
    ["bench", "c", "-o", "d", "--strips", "-1"],
    ["bench", "c", "-o", "d", "--max-errors", "0,65"],
    ["bench", "c", "-o", "d", "--qualities", "0,50"],
    ["bench", "c", "-o", "d", "--qualities", "50,101"],
]


@pytest.mark.parametrize("args", OUT_OF_RANGE, ids=[" ".join(a[3:]) for a in OUT_OF_RANGE])
def test_out_of_range_values_exit_2(tmp, capsys, args):
    rc, err = main_exit(args, capsys)
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and "Traceback" not in err


def test_out_of_range_is_refused_before_reading_input(tmp):
    """The range check is a usage error even when the input exists and is valid."""
    save_gif(tmp / "a.gif", moving_clip(2, 8, 8))
    r = run("encode", "a.gif", "a.fpc", "--quality", "101", cwd=tmp)
    assert r.returncode == 2 and "101" in r.stderr and not (tmp / "a.fpc").exists()
    r = run("encode", "a.gif", "a.fpc", "--quality", "50", "--max-error", "2", cwd=tmp)
    assert r.returncode == 2 and "cannot be combined" in r.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["decode", "x.fpc", "-"], "--to"),
        (["decode", "x.fpc", "y.gif", "--to", "webp"], "disagrees"),
        (["decode", "x.fpc", "y.gif", "--crf", "20"], "video"),
        (["decode", "x.fpc", "y.mp4", "--lossless"], ".mkv"),
    ],
)
def test_decode_option_mistakes_exit_2(tmp, args, message):
    gif = save_gif(tmp / "a.gif", moving_clip(2, 8, 8))
    assert run("encode", str(gif), "x.fpc", "-q", cwd=tmp).returncode == 0
    r = run(*args, cwd=tmp)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- 21.6: help and docs


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    from fpcodec.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_option_has_help_and_shows_its_default():
    from fpcodec.argtypes import Formatter

    for name, p in _subparsers().items():
        fmt = Formatter(prog=p.prog)
        for a in p._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            assert a.help, f"{name} {a.option_strings or a.dest} has no help"
            shown = fmt._get_help_string(a)
            if a.option_strings and a.default not in (None, False):
                assert "default" in shown, f"{name} {a.option_strings} hides its default"


@pytest.mark.parametrize("name", ["encode", "decode", "info", "predict", "train", "bench"])
def test_every_subcommand_help_has_an_example(tmp, capsys, name):
    from fpcodec.cli import main

    with pytest.raises(SystemExit) as e:
        main([name, "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    assert "example:" in out and f"fpcodec {name} " in out.split("example:")[1]


def test_readme_promises_match_the_parsers():
    """README: encode, decode, predict, train and bench take -f and -q; encode,
    decode and predict take -o or a positional output; train and bench -o DIR."""
    subs = _subparsers()
    for name in ("encode", "decode", "predict", "train", "bench"):
        opts = {o for a in subs[name]._actions for o in a.option_strings}
        assert {"-f", "--force", "-q", "--quiet", "-o", "--output"} <= opts, name
    readme = (REPO / "README.md").read_text()
    assert "`info` takes neither" in readme


def test_version_short_and_long(capsys):
    from fpcodec import __version__
    from fpcodec.cli import main

    for flag in ("-V", "--version"):
        with pytest.raises(SystemExit) as e:
            main([flag])
        assert e.value.code == 0 and __version__ in capsys.readouterr().out


def test_bare_fpcodec_prints_help_and_exits_2(tmp):
    r = run(cwd=tmp)
    assert r.returncode == 2
    assert "usage: fpcodec" in r.stderr and "encode" in r.stderr and "example:" in r.stderr


def test_trained_names_match_the_zoo():
    """The CLI lists predictors without importing torch; the list must stay true."""
    from fpcodec.models.registry import TRAINED_NAMES
    from fpcodec.models.zoo import NETWORKS

    assert tuple(NETWORKS) == TRAINED_NAMES


# ---------------------------------------------------------------- 21.4: start-up


_PROBE = """
import sys
from fpcodec.cli import main
try:
    rc = main({args!r})
except SystemExit as e:
    rc = e.code
heavy = sorted(m for m in ("torch", "numba") if m in sys.modules)
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
"""


def _probe_line(probe: str, args: list[str], cwd: Path, tag: str) -> str:
    """Run the CLI with `args` in a fresh interpreter under `probe`; the line it
    printed after `tag`."""
    r = subprocess.run(
        [sys.executable, "-c", probe.format(args=args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )
    (line,) = [x for x in r.stderr.splitlines() if x.startswith(tag)]
    return line[len(tag) :]


def _heavy_modules(args: list[str], cwd: Path) -> str:
    return _probe_line(_PROBE, args, cwd, "HEAVY=")


@pytest.mark.parametrize(
    "args", [["--help"], ["--version"], [], ["encode", "--help"], ["train", "--help"]]
)
def test_help_and_version_import_neither_torch_nor_numba(tmp, args):
    assert _heavy_modules(args, tmp) == ""


def test_info_of_a_last_file_imports_neither_torch_nor_numba(tmp):
    gif = save_gif(tmp / "a.gif", moving_clip(3, 10, 12))
    assert run("encode", str(gif), "a.fpc", "-q", cwd=tmp).returncode == 0
    assert _heavy_modules(["info", "a.fpc"], tmp) == ""


_DECODE_PROBE = """
import sys
from fpcodec.cli import main
rc = main({args!r})
loaded = [m for m in ("scipy.linalg", "fpcodec.codec.lossy.coder") if m in sys.modules]
import numba.np.arraymath, scipy.linalg  # still importable afterwards
print("LOADED=" + ",".join(loaded), numba.np.arraymath._HAVE_BLAS, rc, file=sys.stderr)
"""


def test_decoding_a_palette_file_loads_neither_the_lossy_coder_nor_scipy_linalg(tmp):
    """Start-up is part of decode speed (issue 24): a GIF's palette frames need no
    lossy kernels, and numba need not import SciPy's BLAS (numbastart.py)."""
    gif = save_gif(tmp / "a.gif", moving_clip(3, 10, 12))
    assert run("encode", str(gif), "a.fpc", "-q", cwd=tmp).returncode == 0
    args = ["decode", "-q", "a.fpc", "b.gif"]
    assert _probe_line(_DECODE_PROBE, args, tmp, "LOADED=") == " False 0"
    assert (tmp / "b.gif").exists()


def test_import_fpcodec_is_light(tmp):
    code = "import sys, fpcodec; print('torch' in sys.modules, 'numba' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp)
    assert r.stdout.split() == ["False", "False"]


# ---------------------------------------------------------------- 21.11: info --frames


def test_info_frames_lists_every_frame(tmp):
    gif = save_gif(tmp / "a.gif", moving_clip(5, 12, 14), durations=[40, 50, 60, 70, 80])
    assert (
        run("encode", str(gif), "a.fpc", "-q", "--keyframe-interval", "3", cwd=tmp).returncode == 0
    )
    r = run("info", "a.fpc", "--frames", "--json", cwd=tmp)
    d = json.loads(r.stdout)
    rows = d["frame_list"]
    assert [f["index"] for f in rows] == [0, 1, 2, 3, 4]
    assert [f["type"] for f in rows] == ["key", "predicted", "predicted", "key", "predicted"]
    assert [f["duration_ms"] for f in rows] == [40, 50, 60, 70, 80]
    assert all(f["coding"] in ("palette", "switched", "raw") for f in rows)
    assert sum(f["bytes"] for f in rows) == sum(v["bytes"] for v in d["frame_types"].values())
    r = run("info", "a.fpc", "--frames", cwd=tmp)
    lines = [x.split() for x in r.stdout.splitlines() if x.strip()[:1].isdigit()]
    assert [x[0] for x in lines] == ["0", "1", "2", "3", "4"]
    assert [x[1] for x in lines] == ["key", "predicted", "predicted", "key", "predicted"]
    assert [x[-1] for x in lines] == ["40", "50", "60", "70", "80"]
    assert "frame_list" not in json.loads(run("info", "a.fpc", "--json", cwd=tmp).stdout)


# ---------------------------------------------------------------- 21.9: the API snippet


def test_readme_api_snippet_runs_twice(tmp, monkeypatch):
    """The README's Python snippet, run as written (on a cat.gif), twice."""
    readme = (REPO / "README.md").read_text()
    block = readme.split("## Python API", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert "force=True" in block
    save_gif(tmp / "cat.gif", moving_clip(3, 10, 12))
    monkeypatch.chdir(tmp)
    for _ in range(2):
        exec(compile(block, "README.md", "exec"), {})
    assert (tmp / "cat.fpc").exists() and (tmp / "back.gif").exists()
