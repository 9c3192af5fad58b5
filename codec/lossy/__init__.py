"""Lossy coding (`--quality Q`, coding 9): motion-compensated prediction from up to 16
reference frames, one or two hypotheses per 8x8 unit, or intra prediction; the
residual through a 4x4 integer DCT and a rate-distortion quantiser; decisions on the
perceptual distance itself; in-loop deblocking; adaptive binary range coding.

One file per stage (docs/ARCHITECTURE.md walks a frame through them):

    coder.py            encode_lossy / decode_lossy: planes, references, the kernel, deblocking
    frame.py            the frame loop both sides run: unit by unit, block by block
    mode_decision.py    encoder: how to code a unit (trial coding of each candidate)
    motion_search.py    encoder: motion estimation (the parallel prepass)
    presets.py          encoder: how hard it searches (--speed)
    motion_comp.py      motion vectors and motion-compensated prediction (both sides)
    intra.py            intra prediction
    transform_quant.py  step tables, RDO quantiser, reconstruction
    syntax.py           every symbol read or written (range coder or zstd layout)
    models.py           the entropy models' layout, LossyModels
    references.py       which frames a unit may refer to
    planes.py           RGB <-> padded YCoCg-R planes
    deblock.py          the in-loop filter
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# The package's names are imported on first use (PEP 562): a palette-only file, what
# most GIFs are, never runs the lossy coder, and `-X importtime` put its kernels'
# modules at 0.45 s of a decode's imports (part of it numba's own, paid anyway later:
# the whole-process saving measured with numbastart.py was 0.16 s, bench/RESULTS.md).
_HOME = {
    "decode_lossy": "coder",
    "encode_lossy": "coder",
    "keep_decoded": "coder",
    "LossyModels": "models",
    "N_REFS": "references",
    "reference_count": "references",
    "MAX_MV": "syntax",
    "quality_step": "transform_quant",
    "step_tables": "transform_quant",
}

__all__ = [
    "MAX_MV",
    "N_REFS",
    "LossyModels",
    "decode_lossy",
    "encode_lossy",
    "keep_decoded",
    "quality_step",
    "reference_count",
    "step_tables",
]

if TYPE_CHECKING:
    from .coder import decode_lossy, encode_lossy, keep_decoded
    from .models import LossyModels
    from .references import N_REFS, reference_count
    from .syntax import MAX_MV
    from .transform_quant import quality_step, step_tables


def __getattr__(name: str):
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value
