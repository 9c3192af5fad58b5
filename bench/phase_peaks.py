"""Peak memory of each phase of one encode, without sampling (Linux).

    python -m fpcodec.bench.phase_peaks CLIP.gif OUT.fpc [--quality 50] [-o peaks.json]

Writing `5` to /proc/self/clear_refs sets the kernel's high-water mark (VmHWM) to
the resident set of the moment. Resetting it on entering and on leaving each
wrapped function, and reading it on leaving, gives each phase's true peak: a
sampler reading VmRSS every few milliseconds misses a peak shorter than its period
(the fifth round at the size cap did). Each phase's peak is carried up to its
caller's, so a phase's figure includes what its callees reached. The phases are
the encoder's own functions (each frame's `encode_frame`, the GIF trials and
choice, the lossy coder's stages), wrapped in this process only: the codec runs
as it always does, one numba and one torch thread.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

# (module, function) pairs looked up at call time by their callers, so that
# replacing the module attribute wraps every call
PHASES = (
    ("fpcodec.codec.framecodec", "_gif_step"),
    ("fpcodec.codec.framecodec", "_pixel_frame"),
    ("fpcodec.codec.framecodec", "_finish"),
    ("fpcodec.codec.gifchoice", "_palette_trial"),
    ("fpcodec.codec.gifchoice", "_choose"),
    ("fpcodec.codec.gifchoice", "_track_shadow"),
    ("fpcodec.codec.gifchoice", "encode_palette_frame"),
    ("fpcodec.codec.lossy", "encode_lossy"),
    ("fpcodec.codec.lossy.coder", "_run"),
    ("fpcodec.codec.lossy.coder", "_prediction_planes"),
    ("fpcodec.codec.lossy.coder", "start_frame"),
    ("fpcodec.codec.lossy.coder", "code_frame"),
    ("fpcodec.codec.lossy.coder", "deblock"),
    ("fpcodec.codec.lossy.coder", "_loop_filter"),
    ("fpcodec.codec.lossy.coder", "keep_frame"),
    ("fpcodec.codec.lossy.coder", "planes_into_rgb"),
)
CLASS_PHASES = (
    ("fpcodec.codec.gifchoice", "_PixelTrial", "__init__", "pixel trial"),
    ("fpcodec.codec.gifchoice", "Shadow", "step", "shadow step"),
)


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise OSError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


class PhasePeaks:
    """Wraps functions; `peaks` maps each call path ("frame2/pixel trial/...") to the
    largest peak any call on that path reached, MiB."""

    def __init__(self) -> None:
        self.peaks: dict[str, float] = {}
        self._stack: list[list] = []  # [path, the peak so far]

    def wrap(self, name: str | Callable[..., str], fn: Callable) -> Callable:
        @functools.wraps(fn)
        def phase(*args, **kwargs):
            label = name() if callable(name) else name
            before = _status_mib("VmHWM")
            if self._stack:
                self._stack[-1][1] = max(self._stack[-1][1], before)
            path = f"{self._stack[-1][0]}/{label}" if self._stack else label
            _reset_peak()
            self._stack.append([path, 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                path, peak = self._stack.pop()
                peak = max(peak, _status_mib("VmHWM"))
                self.peaks[path] = max(self.peaks.get(path, 0.0), peak)
                _reset_peak()
                if self._stack:
                    self._stack[-1][1] = max(self._stack[-1][1], peak)

        return phase


def instrument(pp: PhasePeaks) -> None:
    from fpcodec.codec import encoder

    for module, name in PHASES:
        m = importlib.import_module(module)
        setattr(m, name, pp.wrap(name, getattr(m, name)))
    for module, cls, method, label in CLASS_PHASES:
        c = getattr(importlib.import_module(module), cls)
        setattr(c, method, pp.wrap(label, getattr(c, method)))
    count = [0]

    def frame_label() -> str:
        count[0] += 1
        return f"frame{count[0]}"

    encoder.encode_frame = pp.wrap(frame_label, encoder.encode_frame)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clip", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--quality", type=int, default=50)
    ap.add_argument("--predictor", default="last")
    ap.add_argument("-o", "--output", type=Path, help="the peaks as JSON")
    a = ap.parse_args(argv)
    if not os.path.exists("/proc/self/clear_refs"):
        print("phase_peaks: needs Linux's /proc/self/clear_refs", file=sys.stderr)
        return 2
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    from fpcodec.codec.numbastart import import_numba

    import fpcodec

    import_numba()
    pp = PhasePeaks()
    instrument(pp)
    _reset_peak()
    pp.wrap("encode", fpcodec.encode)(
        a.clip, a.out, force=True, predictor=a.predictor, quality=a.quality
    )
    rows = sorted(pp.peaks.items(), key=lambda kv: -kv[1])
    for path, peak in rows:
        print(f"{peak:8.0f} MiB  {path}")
    if a.output:
        a.output.write_text(json.dumps(dict(rows), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
