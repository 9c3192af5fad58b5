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


def _usable(locator_cls, probe) -> bool:
    """Would numba itself accept this locator for our sources? (Its own test.)"""
    try:
        loc = locator_cls.from_function(probe, probe.__code__.co_filename)
        if loc is None:
            return False
        loc.ensure_cache_path()
        return True
    except OSError:
        return False


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
    """Point numba at a writable cache if it has none; returns the directory chosen
    (None when numba's own choice works or the user set NUMBA_CACHE_DIR)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    import numba
    from numba.core import caching

    if numba.config.CACHE_DIR:
        return None

    def probe() -> None:  # stands for every kernel in this directory
        pass

    for cls in (caching.InTreeCacheLocator, caching.UserWideCacheLocator):
        if _usable(cls, probe):
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
    numba.config.CACHE_DIR = path
    return path
