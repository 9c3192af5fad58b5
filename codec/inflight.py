"""One job at a time on a second thread, beside the caller, in order: the decoder
reconstructs a band while it reads the next (lossy/frame_decode.py), and writes a
frame while it decodes the next (sinks.writing_beside). Each job waits for the one
before it, so at most one runs while the caller works on what comes next."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class OneInFlight:
    """Jobs run on `pool`'s thread (None: the caller runs each itself, in turn)."""

    def __init__(self, pool: ThreadPoolExecutor | None) -> None:
        self._pool = pool
        self._job: Future | None = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run fn(*args) once the job before it is done; that job's error is raised."""
        self.wait()
        if self._pool is None:
            fn(*args)
        else:
            self._job = self._pool.submit(fn, *args)

    def wait(self) -> None:
        """Until the job in flight is done; its error is raised."""
        job, self._job = self._job, None
        if job is not None:
            job.result()

    def abandon(self) -> None:
        """Until the job in flight is done (or cancelled), its error dropped: where the
        caller fails, its own error is the one to raise, and it leaves only once no
        thread works on what it is about to let go (a frame, a temporary file)."""
        job, self._job = self._job, None
        if job is not None:
            job.cancel() or job.exception()
