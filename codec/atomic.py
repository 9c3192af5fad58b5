"""Outputs appear whole or not at all, and never replace an input.

Files are written to a hidden temporary sibling and renamed into place only when
complete; on any failure the temporary is removed. Directories of frames are built
the same way, then their files moved in.
"""

from __future__ import annotations

import contextlib
import os
import shutil
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
        os.replace(tmp_path, output)
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
        output.mkdir(exist_ok=True)
        new = {p.name for p in tmp.iterdir()}
        for stale in output.glob("frame_*.png"):
            if stale.name not in new:
                stale.unlink()
        for p in tmp.iterdir():
            os.replace(p, output / p.name)
        tmp.rmdir()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
