"""Peak resident memory of a process, as the kernel counts it.

tracemalloc sees only Python's own allocator: torch tensors and numba arrays, most
of what a learned predictor or a large frame costs, are invisible to it (a 400 MB
tensor reads as 0 MB). The kernel's high-water mark sees everything.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from collections.abc import Sequence

_CLEAR_REFS = "/proc/self/clear_refs"


def reset_peak() -> bool:
    """Start this process's high-water mark afresh (Linux: writing 5 to clear_refs).
    False where the kernel offers no reset; peak_mb() then reads the lifetime peak."""
    try:
        with open(_CLEAR_REFS, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_mb() -> float | None:
    """This process's peak resident set since the last reset, in MiB (None off Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def run_child(
    argv: Sequence[str], timeout: float, env: dict | None = None
) -> tuple[int, float, str]:
    """Run `argv`; return (exit status, its peak resident set in MiB, its stderr).

    wait4 returns the resources of that one child, so the figure is its own peak, not
    the largest of all this process's children (RUSAGE_CHILDREN)."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=err, env=env)
        killed: list[bool] = []

        def kill() -> None:
            killed.append(True)
            proc.kill()

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        if killed:
            raise TimeoutError(f"{argv[0]} ran past {timeout} s")
        err.seek(0)
        return proc.returncode, usage.ru_maxrss / 1024, err.read()  # ru_maxrss: KiB
