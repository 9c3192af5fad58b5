"""fpcodec: a learned closed-loop video codec for animated GIFs and short clips.

import fpcodec
fpcodec.encode("in.gif", "out.fpc")        # lossless
fpcodec.decode("out.fpc", "back.gif")
fpcodec.info("out.fpc")
"""

from fpcodec.api import (
    DecodeResult,
    EncodeResult,
    PredictResult,
    decode,
    decode_frames,
    encode,
    info,
    predict,
)
from fpcodec.codec.errors import FpcError

__version__ = "0.1.0"

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
