"""fpcodec: a learned closed-loop video codec for animated GIFs and short clips.

import fpcodec
fpcodec.encode("in.gif", "out.fpc")        # lossless
fpcodec.decode("out.fpc", "back.gif")
fpcodec.info("out.fpc")
"""

from __future__ import annotations

from typing import Any

from fpcodec.codec.errors import FpcError

__version__ = "0.1.0"

# The API pulls in numpy, numba and (for trained predictors) torch; importing it
# here would make `fpcodec --help` and `--version` pay seconds for nothing, so
# its names resolve on first use.
_API = {
    "DecodeResult",
    "EncodeResult",
    "PredictResult",
    "decode",
    "decode_frames",
    "encode",
    "info",
    "predict",
}


def __getattr__(name: str) -> Any:
    if name in _API:
        from fpcodec import api

        return getattr(api, name)
    raise AttributeError(f"module 'fpcodec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})


__all__ = [
    "DecodeResult",
    "EncodeResult",
    "FpcError",
    "PredictResult",
    "__version__",
    "decode",
    "decode_frames",
    "encode",
    "info",
    "predict",
]
