"""Outputs appear whole or not at all, and never replace an input.

Files are written to a hidden temporary sibling and renamed into place only when
complete; on any failure the temporary is removed. Directories of frames are built
the same way, then their files moved in. Without --force the rename cannot replace:
a file that appeared at the output path while the output was being written (another
run, another program) survives, and this run fails instead. Terminating signals
(SIGTERM, SIGHUP) unwind like Ctrl-C once `terminate_on_signals` is installed, so
the temporaries go with them.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import OutputError


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(output: Path, inputs: Sequence[Path], force: bool) -> None:
    for inp in inputs:
        if _same_file(output, inp) or output.resolve() == inp.resolve():
            raise OutputError(f"refusing to overwrite the input {inp}")
    if output.is_dir():
        raise OutputError(f"{output} is a directory")
    if output.exists() and not force:
        raise OutputError(f"{output} exists (use --force to overwrite)")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"directory {parent} does not exist")


class Terminated(BaseException):
    """A terminating signal arrived. A BaseException, like KeyboardInterrupt, so no
    `except Exception` swallows it and every `with` block on the way out cleans up."""

    def __init__(self, signo: int) -> None:
        self.signo = signo
        super().__init__(f"terminated by {signal.Signals(signo).name}")


TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


# A signal whose `Terminated` was raised where Python can only print and drop it (a
# ctypes callback, numba's cache writer for one, or a __del__) is kept here, so the
# run still stops at its next frame or, at the latest, before it publishes anything.
_dropped_signal: int | None = None


def raise_if_terminated() -> None:
    """Raise the `Terminated` that an earlier signal could not deliver, if any."""
    if _dropped_signal is not None:
        raise Terminated(_dropped_signal)


def terminate_on_signals() -> None:
    """Raise `Terminated` in the main thread on SIGTERM or SIGHUP (for the CLI: a
    library must not take over its host's signals). Later ones are ignored, so a
    second signal cannot interrupt the cleanup the first one started."""

    def handler(signo: int, frame: object) -> None:
        for s in TERMINATING_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        raise Terminated(signo)

    previous_hook = sys.unraisablehook

    def unraisable(info: sys.UnraisableHookArgs) -> None:
        global _dropped_signal
        if isinstance(info.exc_value, Terminated):
            _dropped_signal = info.exc_value.signo  # delivered later, without a traceback
            return
        previous_hook(info)

    sys.unraisablehook = unraisable
    for s in TERMINATING_SIGNALS:
        if signal.getsignal(s) is signal.SIG_IGN:
            continue  # nohup and the like asked for it to be ignored: keep that
        signal.signal(s, handler)


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _renameat2_noreplace(src: Path, dst: Path) -> bool:
    """rename(2) that fails with EEXIST rather than replace; False where the C library
    or the filesystem lacks it (the caller falls back)."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), os.fspath(dst))


def publish(tmp: Path, output: Path, force: bool) -> None:
    """Move the finished temporary `tmp` to `output`; without `force` never replace
    anything there, checking at the moment of the rename (not only at the start)."""
    raise_if_terminated()
    if force:
        os.replace(tmp, output)
        return
    try:
        if _renameat2_noreplace(tmp, output):
            return
        try:  # link(2) refuses an existing name too
            os.link(tmp, output, follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            # A filesystem without hard links: the best left is a last-moment check.
            if os.path.lexists(output):
                raise FileExistsError(errno.EEXIST, "exists", os.fspath(output)) from None
            os.replace(tmp, output)
            return
        os.unlink(tmp)
    except FileExistsError:
        raise OutputError(
            f"{output} appeared while this output was written; left it alone "
            "(use --force to overwrite)"
        ) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_file(output: Path, inputs: Sequence[Path] = (), force: bool = False) -> Iterator[Path]:
    """Yields a temporary path; on success it replaces `output`."""
    check_output(output, inputs, force)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".part", dir=output.parent or ".")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; users expect their umask
        publish(tmp_path, output, force)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(output: Path, inputs: Sequence[Path] = (), force: bool = False) -> Iterator[Path]:
    """Yields a temporary directory; on success its files are moved into `output`.

    An existing non-empty `output` needs `force`; only files of the same names are
    replaced (plus stale frame files beyond the new count), nothing else is touched.
    """
    for inp in inputs:
        if inp.resolve().parent == output.resolve() and inp.name.startswith("frame_"):
            raise OutputError(f"refusing to write frames over the input {inp}")
    if output.exists() and not output.is_dir():
        raise OutputError(f"{output} exists and is not a directory")
    if output.exists() and any(output.iterdir()) and not force:
        raise OutputError(f"{output} is not empty (use --force to write into it)")
    parent = output.parent
    if not parent.is_dir():
        raise OutputError(f"directory {parent} does not exist")
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".part", dir=parent))
    try:
        yield tmp
        created = not output.exists()
        output.mkdir(exist_ok=True)
        new = {p.name for p in tmp.iterdir()}
        if force:
            for stale in output.glob("frame_*.png"):
                if stale.name not in new:
                    stale.unlink()
        placed: list[Path] = []
        try:
            for p in sorted(tmp.iterdir()):
                publish(p, output / p.name, force)
                placed.append(output / p.name)
        except BaseException:  # leave the directory as it was found
            for q in placed:
                with contextlib.suppress(OSError):
                    q.unlink()
            if created:
                with contextlib.suppress(OSError):
                    output.rmdir()
            raise
        tmp.rmdir()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
