"""The kernels are compiled in a child process on a cold cache (src/fpcodec/warmup.py):
the clip reaches every coding, a cold run says so once, and a run waits while another
process is still filling the cache."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from fpcodec import warmup

SLOW = os.environ.get("FPCODEC_SLOW_TESTS") == "1"


def test_the_warmup_clip_codes_in_every_coding():
    warmup.compile_kernels()  # each coding encodes and decodes (the API checks nothing less)
    assert warmup.kernels_cached()


def test_a_cold_cache_is_noted_once_and_filled_by_the_child(monkeypatch):
    calls = []
    monkeypatch.setattr(warmup, "kernels_cached", lambda: False)
    monkeypatch.setattr(warmup, "compile_in_child", lambda: calls.append("child") or True)
    warmup.ensure_compiled(lambda: calls.append("note"))
    assert calls == ["note", "child"]
    calls.clear()
    monkeypatch.setattr(warmup, "kernels_cached", lambda: True)
    warmup.ensure_compiled(lambda: calls.append("note"))
    assert calls == []


def test_a_run_waits_while_another_fills_the_cache():
    held, release = threading.Event(), threading.Event()

    def filler() -> None:
        with warmup._cache_lock():
            held.set()
            release.wait(30)

    t = threading.Thread(target=filler)
    t.start()
    assert held.wait(30)
    waiter = threading.Thread(target=warmup.ensure_compiled, args=(lambda: None,))
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive()  # blocked on the lock: the cache is being written
    release.set()
    waiter.join(30)
    t.join(30)
    assert not waiter.is_alive()


@pytest.mark.skipif(not SLOW, reason="compiles every kernel (two minutes); FPCODEC_SLOW_TESTS=1")
def test_a_first_run_compiles_in_a_child_and_says_so_once(tmp):
    from .conftest import moving_clip, save_gif

    src = save_gif(tmp / "in.gif", moving_clip(4, 24, 32, seed=1), durations=50)
    cache = tmp / "cold-cache"
    cache.mkdir()
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), OMP_NUM_THREADS="1")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "fpcodec.cli",
            "encode",
            str(src),
            str(tmp / "a.fpc"),
            "--quality",
            "40",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert sum("compiling the codec's kernels" in x for x in lines) == 1
    assert len(list(cache.rglob("*.nbi"))) > 40  # the child filled it: every coding's kernels
    r = subprocess.run(
        [sys.executable, "-m", "fpcodec.cli", "decode", str(tmp / "a.fpc"), str(tmp / "b.gif")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0 and "compiling" not in r.stderr, r.stderr
