"""The lossy coding's adaptive entropy models and the state it keeps between frames.

Every symbol of a frame is coded under one adaptive binary model of one table
(`LossyModels.probs`); this file is the layout of that table. The models start at
one half at every keyframe and persist until the next one.
"""

from __future__ import annotations

import numpy as np

from .. import rangecoder as rc

LIMIT = 5  # every model's adaptation limit (its step shrinks to 2^-LIMIT)

# per 4x4 block and plane
CBF_BASE = 0  # coded-block flag: 3 planes x 4 (left and upper blocks' flags)
LAST_BASE = 12  # last nonzero position: 3 planes x 16 (4-bit tree)
SIG_BASE = LAST_BASE + 48  # significance before the block's first nonzero level: 3 x 16
MODE_BASE = SIG_BASE + 48  # intra mode: 3 left-mode contexts x 4 (2-bit tree)
LEVEL_BASE = MODE_BASE + 12  # magnitude, first nonzero level: 3 planes x 4 position classes
ESCAPE_BASE = LEVEL_BASE + 12 * rc.BUCKET_MODELS  # 16 models: levels beyond 255
# per 8x8 unit of a predicted frame
MV_MODELS = 3 + 16  # per vector component: zero flag (3 neighbour contexts), magnitude
MV_BASE = ESCAPE_BASE + 16  # first vector's difference, 2 components
INTRA_BASE = MV_BASE + 2 * MV_MODELS  # intra unit flag: 3 neighbour contexts
# levels and significance after a nonzero level, by its magnitude (1 / larger)
LEVEL2_BASE = INTRA_BASE + 3  # 3 planes x 4 position classes x 2
SIG2_BASE = LEVEL2_BASE + 24 * rc.BUCKET_MODELS  # 3 planes x 16 positions x 2
SKIP_BASE = SIG2_BASE + 96  # skipped unit flag: 3 neighbour contexts
REF_BASE = SKIP_BASE + 3  # reference index: 3 positions x 3 neighbour contexts
BI_BASE = REF_BASE + 9  # second hypothesis flag: 3 neighbour contexts
REF1_BASE = BI_BASE + 3  # second reference index, as REF_BASE
MV1_BASE = REF1_BASE + 9  # second vector's difference, as MV_BASE
N_MODELS = MV1_BASE + 2 * MV_MODELS


class LossyModels:
    def __init__(self, prediction_is_decoded: bool = True, loop_filter=None) -> None:
        """prediction_is_decoded: the predictor's frame is the newest decoded frame
        (the `last` predictor), which is then not listed twice as a reference.
        loop_filter: the predictor's learned in-loop filter (loop_filter.py), if any:
        an object with reset(), correction(planes, step_y, act) and commit()."""
        self.prediction_is_decoded = prediction_is_decoded
        self.loop_filter = loop_filter
        self.probs, self.counts = rc.new_models(N_MODELS)
        # the previous frame's vectors: search candidates only, not stream state
        self.vectors = np.zeros((0, 0, 2), np.int32)
        # reference planes (int16: every value is within +-1024): slot 0 holds the
        # predictor's frame, the others decoded frames; `history` lists the slots of
        # the latest decoded frames, newest first (references.py)
        self.ring = np.zeros((0, 3, 0, 0), np.int16)
        self.history: list[int] = []

    def reset(self) -> None:
        self.probs[:] = rc.PROB_HALF
        self.counts[:] = 0
        self.vectors = np.zeros((0, 0, 2), np.int32)
        self.history = []
        if self.loop_filter is not None:
            self.loop_filter.reset()
