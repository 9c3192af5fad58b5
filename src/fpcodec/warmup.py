"""Compile the codec's kernels in a child process before a command touches a frame.

numba compiles a kernel on its first call, and what a compilation leaves behind
stays in the process: about 400 MiB of compiled libraries and LLVM state, on top of
the compiler's own working memory, all while the frame buffers are alive. A first
(cold-cache) encode of a 16384×2048 GIF peaked at 2,832 MiB against 1,568 warm. A
child process that codes a tiny clip in every coding fills numba's cache and exits,
taking that memory with it; the command itself then loads every kernel from the
cache, as each later run does. The child inherits NUMBA_CACHE_DIR, so a cache that
lives only for this run (numbacache.py) is the one it fills.

`python -m fpcodec.warmup` runs it by hand (after an install, say).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator

import numpy as np

NOTE = "fpcodec: compiling the codec's kernels for this machine (first run only)"

# Options of fpcodec.encode for each coding the encoder writes, so that each one's
# kernels, its decoder's and the GIF writer's are compiled here.
_CODINGS: tuple[dict, ...] = (
    {},
    {"palette": False},
    {"palette": False, "max_error": 2},
    {"palette": False, "quality": 50},
    {"palette": False, "quality": 50, "speed": "fast"},
    {"max_error": 2},
    {"quality": 50},
    {"entropy": "zstd"},
    {"entropy": "zstd", "palette": False},
)


def _clip(path: str) -> None:
    """A small GIF that reaches every coder: a moving block over noise, a
    transparent hole, odd dimensions (the lossy coder pads), and a keyframe."""
    from PIL import Image

    rng = np.random.default_rng(1)
    h, w = 21, 27
    pal = rng.integers(0, 256, (16, 3), dtype=np.uint8)
    frames = []
    base = rng.integers(0, 16, (h, w), dtype=np.uint8)
    for t in range(5):
        idx = base.copy()
        idx[4 + t : 12 + t, 3 + 2 * t : 11 + 2 * t] = 5
        if t == 3:
            idx[1:4, 1:6] = 15  # transparent below
        noise = rng.random((h, w)) < 0.05
        idx[noise] = rng.integers(0, 15, int(noise.sum()), dtype=np.uint8)
        im = Image.fromarray(idx, "P")
        im.putpalette(pal.tobytes())
        frames.append(im)
    frames[0].save(
        path,
        save_all=True,
        append_images=frames[1:],
        duration=40,
        loop=0,
        transparency=15,
        disposal=1,
        optimize=False,
    )


def compile_kernels() -> None:
    """Encode and decode the clip in every coding, in this process."""
    import fpcodec

    with tempfile.TemporaryDirectory(prefix="fpcodec-warmup-") as tmp:
        src = os.path.join(tmp, "clip.gif")
        _clip(src)
        for i, options in enumerate(_CODINGS):
            fpc = os.path.join(tmp, f"{i}.fpc")
            fpcodec.encode(src, fpc, keyframe_interval=3, force=True, **options)
            fpcodec.decode(fpc, os.path.join(tmp, f"{i}.gif"), force=True)


def _range_coder_caches() -> list:
    from fpcodec.codec.numbastart import import_numba

    import_numba()  # a command's first import of numba is here
    from fpcodec.codec import rangecoder

    # the range coder's entry points: every encode and decode compiles them
    return [getattr(k, "_cache", None) for k in (rangecoder.rc_init_enc, rangecoder.rc_init_dec)]


def kernels_cached() -> bool:
    """Whether numba has cached the codec's kernels for this machine."""
    try:
        return all(
            c is None or os.path.exists(c._cache_file._index_path)
            for c in _range_coder_caches()  # a kernel without a cache is compiled each run anyway
        )
    except Exception:  # a numba without these internals: assume they are
        return True


@contextlib.contextmanager
def _cache_lock() -> Iterator[None]:
    """Held while a child compiles. numba's cache is not safe for two writers: two
    processes adding overloads of one kernel at once can each write the other's
    numbered file under its own index, and a later run then loads the wrong code
    (seen here: a segmentation fault in a kernel loaded from the cache). Without a
    lock file there is no lock; the compilation runs all the same."""
    fd = None
    try:
        import fcntl  # POSIX: elsewhere, no lock

        cache = next(c for c in _range_coder_caches() if c is not None)
        fd = os.open(
            os.path.join(cache._cache_path, "fpcodec-warmup.lock"), os.O_RDWR | os.O_CREAT, 0o600
        )
        fcntl.flock(fd, fcntl.LOCK_EX)
    except Exception:
        if fd is not None:
            os.close(fd)
        fd = None
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


def compile_in_child(timeout: float = 1800.0) -> bool:
    """Run compile_kernels in a fresh interpreter, unless another process has
    compiled them while this one waited for the lock; whether the kernels are
    cached. A failure is not the command's: its kernels are then compiled where
    they are first called."""
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    with _cache_lock():
        if kernels_cached():
            return True
        try:
            done = subprocess.run(
                [sys.executable, "-m", "fpcodec.warmup"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                timeout=timeout,
            )
        except (OSError, subprocess.SubprocessError):
            return False
    return done.returncode == 0


def ensure_compiled(note: Callable[[], None]) -> None:
    """Before a command: compile in a child if the cache is cold (note() first, to
    say why the first run is slow), and wait while another process's child is
    still filling it (its first kernels cached, the rest not yet)."""
    if kernels_cached():
        with _cache_lock():
            return
    note()
    compile_in_child()


if __name__ == "__main__":
    compile_kernels()
