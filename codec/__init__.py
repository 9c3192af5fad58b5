# Before any kernel is defined (they are compiled with cache=True): see numbacache.py;
# and before numba can start a threading layer: see numbastart.py.
from .numbacache import configure as _configure_numba_cache
from .numbastart import prefer_workqueue as _prefer_workqueue

_configure_numba_cache()
_prefer_workqueue()
