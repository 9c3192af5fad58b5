"""Encoder only: how hard the lossy encoder searches (`--speed`).

A preset is a small int64 array the compiled search and decision kernels read at
run time, so one compiled kernel serves every preset and nothing here reaches the
stream: the decoder reads whatever vectors and modes the encoder chose. `slow`
(the default) is the search the encoder has always done, byte for byte; `fast`
trades a few percent of bytes at equal distance for encoding time (measured in
bench/RESULTS.md, "Encoder speed presets").
"""

from __future__ import annotations

import numpy as np

from ..limits import SPEED_PRESETS

# indices into a preset, and what `slow` sets them to
P_RANGE = 0  # full search +-8 pixels around the best candidate vector (+-16: 1% fewer
# bytes, a third slower encoding)
P_OLD_REFS = 1  # the older references searched besides the predictor's frame, the 2
# whose candidate vectors come closest (all 15: 0.6% fewer bytes per clip, 1.75x the
# encoding time; 0: none)
P_BI_REFS = 2  # second hypotheses are looked for in the 2 newest references (0: never)
P_BI_RANGE = 3  # and searched +-2 around the scaled first vector

SLOW = np.array([8, 2, 2, 2], np.int64)
FAST = np.array([4, 1, 1, 1], np.int64)
PRESETS = {"slow": SLOW, "fast": FAST}
DEFAULT_PRESET = "slow"
assert tuple(PRESETS) == SPEED_PRESETS


def preset(name: str) -> np.ndarray:
    """The preset called name (a copy: kernels must not see a shared array change)."""
    if name not in PRESETS:
        raise ValueError(f"unknown speed preset {name!r} (choose from {', '.join(PRESETS)})")
    return PRESETS[name].copy()
