"""Handing the allocator's free memory back to the system inside a large frame's work.

A large frame's work allocates and frees many band-sized temporaries (limits.row_bands,
the learned loop filter's windows, the GIF writer's masks). glibc serves blocks under
its mmap threshold from the heap, and that threshold rises to the largest block freed
(up to 32 MiB), so those temporaries end up in the heap, and what they leave free stays
resident, scattered between blocks that live on. At the size cap a decode's resident
set was 650 MiB above what NumPy and the learned state held at its peak; a malloc_trim
at the phase boundaries gave back 100-150 MiB each time (bench/RESULTS.md). A fixed low
mmap threshold returns the same memory but made that decode 2.4x slower (a fresh
mapping, zeroed by the kernel, for every band buffer); a trim costs a walk of the free
lists and the faults of reusing what it gave back, milliseconds beside a frame of
seconds.
"""

from __future__ import annotations

import ctypes
import sys

# Frames below this many pixels: temporaries small beside the process's fixed costs,
# and many frames a second that should not each walk the heap. The memory tests
# measure growth between 1 and 4 megapixels, so both of their sizes trim alike.
TRIM_PIXELS = 1 << 20


def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim  # glibc; musl and others lack it
    except (AttributeError, OSError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def release_free_memory(pixels: int) -> None:
    """Within the work on a frame of `pixels` pixels, between phases: return the
    heap's free pages to the system (nothing below TRIM_PIXELS, or off glibc)."""
    if _TRIM is not None and pixels >= TRIM_PIXELS:
        _TRIM(0)
