"""Somewhere numba may cache compiled kernels, chosen before any kernel is defined.

The kernels are compiled with `cache=True`. numba looks for a cache beside the
source files, then in the user's cache directory, and refuses to define the
function at all ("no locator available") when neither is writable: on a read-only
install run by a user without a writable home, every command, --version included,
died with a traceback. In that case (and only then) the cache goes to a private
per-user directory under the system's temporary directory, or, when that cannot be
trusted, to a fresh one for this process (compiled again every run: one note says so).
"""

from __future__ import annotations

import atexit
import os
import shutil
import stat
import sys
import tempfile


def _writable(path: str) -> bool:
    """Could a directory be made or written at `path` (its nearest existing ancestor
    is a writable directory)?"""
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


def _private_dir(path: str) -> bool:
    """Is `path` a directory only this user can write (made now, or found so)?
    Cached kernels are loaded with pickle: a directory another user could write to
    would let them run code in this process."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return False
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISDIR(st.st_mode)
        and st.st_uid == os.getuid()
        and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def configure() -> str | None:
    """Point numba at a writable cache if it would have none; returns the directory
    chosen (None when numba's own choice works or the user set NUMBA_CACHE_DIR).

    Decided without importing numba (`fpcodec --help` must stay fast): numba's two
    locators are tried here the way numba tries them, the package's own __pycache__
    and then the user-wide cache (XDG_CACHE_HOME or ~/.cache, then numba), and the
    answer goes into NUMBA_CACHE_DIR, which numba reads when it is imported."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    home_cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    in_tree = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__")
    if _writable(in_tree) or _writable(os.path.join(home_cache, "numba")):
        return None
    path = os.path.join(tempfile.gettempdir(), f"fpcodec-numba-{os.getuid()}")
    if not _private_dir(path):
        try:
            path = tempfile.mkdtemp(prefix="fpcodec-numba-")
        except OSError:  # no writable temporary directory either: numba's error stands
            return None
        atexit.register(shutil.rmtree, path, ignore_errors=True)
        print(
            f"fpcodec: note: numba caches compiled code in {path} for this run only "
            "(no writable cache directory; set NUMBA_CACHE_DIR to keep one)",
            file=sys.stderr,
        )
    os.environ["NUMBA_CACHE_DIR"] = path
    numba = sys.modules.get("numba")
    if numba is not None:  # imported before us: its configuration was read already
        numba.config.CACHE_DIR = path
    return path
