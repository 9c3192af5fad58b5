"""Quality is a property of the output, speed of the run: the bytes an encoder
writes do not depend on how many threads it had (the lossy motion prepass runs on
numba's thread pool; its units are independent by construction)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from .conftest import moving_clip, save_gif

_ENCODE = """
import hashlib, sys, fpcodec
src, out, quality, speed = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
fpcodec.encode(src, out, quality=quality, speed=speed, force=True)
print(hashlib.sha256(open(out, "rb").read()).hexdigest())
"""


def _encode_with_threads(threads: int, src, out, quality: int, speed: str) -> str:
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    r = subprocess.run(
        [sys.executable, "-c", _ENCODE, str(src), str(out), str(quality), speed],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.mark.parametrize(("quality", "speed"), [(0, "slow"), (50, "slow"), (50, "fast")])
def test_output_identical_with_one_and_two_threads(tmp, quality, speed):
    src = save_gif(tmp / "in.gif", moving_clip(6, 40, 56, seed=3), durations=40)
    one = _encode_with_threads(1, src, tmp / "one.fpc", quality, speed)
    two = _encode_with_threads(2, src, tmp / "two.fpc", quality, speed)
    assert one == two
    assert one == hashlib.sha256((tmp / "one.fpc").read_bytes()).hexdigest()
