# Before any kernel is defined (they are compiled with cache=True): see numbacache.py.
from .numbacache import configure as _configure_numba_cache

_configure_numba_cache()
