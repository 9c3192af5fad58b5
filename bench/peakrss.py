"""Peak resident memory of a process, as the kernel counts it.

tracemalloc sees only Python's own allocator: torch tensors and numba arrays, most
of what a learned predictor or a large frame costs, are invisible to it (a 400 MB
tensor reads as 0 MB). The kernel's high-water mark sees everything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
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


# Linux carries a process's resident high-water mark across execve, and a child made
# by fork or vfork starts with its parent's: a command started straight from a large
# process (a benchmark worker, pytest) would report that process's peak as its own.
# A small launcher, itself started afresh, forks the command and reports what wait4
# says of it.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def run_child(
    argv: Sequence[str], timeout: float, env: dict | None = None
) -> tuple[int, float, str]:
    """Run `argv`; return (exit status, its own peak resident set in MiB, its stderr)."""
    with tempfile.TemporaryDirectory() as d:
        report = os.path.join(d, "maxrss")
        launcher = [sys.executable, "-S", "-c", _LAUNCHER, report, *argv]
        with open(os.path.join(d, "stderr"), "w+") as err:
            # its own process group, so a timeout stops the command along with the launcher
            proc = subprocess.Popen(
                launcher, stdout=subprocess.DEVNULL, stderr=err, env=env, start_new_session=True
            )
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise TimeoutError(f"{argv[0]} ran past {timeout} s") from None
            err.seek(0)
            text = err.read()
        try:
            with open(report) as f:
                peak = int(f.read()) / 1024  # ru_maxrss: KiB
        except (OSError, ValueError):
            peak = float("nan")
        return proc.returncode, peak, text
