"""How numba starts in an fpcodec process: its threading layer, and its import without
SciPy's linear algebra (about 0.3 s off numba's import).

**Threading layer.** numba's default is OpenMP, the libgomp that torch's CPU kernels
use too: with the lossy encoder's parallel motion search in the same process, every
small torch op of a learned predictor joined a thread team that included numba's
worker, and where two processes shared two cores each op waited for a descheduled
thread (convlstm encoded 20x slower in the benchmark). numba's own workqueue layer
shares nothing with torch. It is chosen before numba can start any layer (numba
reads the environment when it is imported; where it was imported already, its
configuration is set), and a layer the user chose (NUMBA_THREADING_LAYER) is kept.

**Import.**
When numba first sets up its NumPy support (`numba.np.arraymath`, at the first
kernel call) it checks whether SciPy's BLAS is there, for `np.dot` and `np.linalg`
inside compiled code, by importing `scipy.linalg`: 140 modules, about 0.3 s
(measured on the 2-core machine, three runs each: numba with its NumPy support
imported in 0.54-0.77 s without it, 0.91-1.05 s with it). SciPy is installed
(scikit-image needs it) but no fpcodec kernel uses BLAS, so that support is set up
here with `scipy.linalg` hidden: numba then records that it has no BLAS, which only
a kernel calling `np.dot` would notice (it fails to compile, saying SciPy is
needed). Everything else imports `scipy.linalg` as usual afterwards.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys

_HIDDEN = "scipy.linalg"
_exit_collection_skipped = False


def prefer_workqueue() -> None:
    """Make workqueue numba's threading layer unless the user chose one. Imports
    nothing (`fpcodec --help` must stay fast)."""
    numba = sys.modules.get("numba")
    if numba is None:
        os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
    elif numba.config.THREADING_LAYER == "default":
        numba.config.THREADING_LAYER = "workqueue"


def skip_the_exit_collection() -> None:
    """At interpreter exit, freeze what the collector tracks before the finalisation's
    collections run. numba's typing and lowering registries leave hundreds of thousands
    of tracked objects, and walking them at exit took 0.12-0.18 s of a 1.1 s lossy
    decode (measured on the 2-core machine, whole processes). For the fpcodec command's
    own process only (cli.py): objects left in reference cycles are then not finalised
    at exit, which a library must not decide for its host. Registered once; handlers
    registered after it run before it (last in, first out)."""
    global _exit_collection_skipped
    if not _exit_collection_skipped:
        _exit_collection_skipped = True
        atexit.register(gc.freeze)


def allowed_threads() -> int:
    """How many threads numba may use (NUMBA_NUM_THREADS, or numba.set_num_threads once
    its threading layer runs), without starting that layer: starting it fixes the
    process's multiprocessing start method and starts its workers, which a decode
    that needs no parallel kernel must not do to its host."""
    import numba
    from numba.np.ufunc import parallel

    if parallel._is_initialized:
        return numba.get_num_threads()
    return numba.config.NUMBA_NUM_THREADS


def import_numba() -> None:
    """Import numba and its NumPy support, without SciPy's BLAS, unless something
    imported either first (then there is nothing to save, or nothing to change)."""
    if "numba" in sys.modules or _HIDDEN in sys.modules:
        return
    sys.modules[_HIDDEN] = None  # an import of it, or of a submodule, fails at once
    # The import makes hundreds of thousands of long-lived objects, and the collector
    # walked them again and again as they came (about 40 ms of collections, 2-core
    # machine); what it leaves as garbage is collected later as usual.
    collecting = gc.isenabled()
    gc.disable()
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        if collecting:
            gc.enable()
        if sys.modules.get(_HIDDEN, 0) is None:
            del sys.modules[_HIDDEN]
