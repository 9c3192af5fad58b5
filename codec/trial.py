"""Trial coding: code a frame more than one way, keep one, as if the others never ran.

Every coder adapts its models as it codes, so a trial that is not kept must leave
no trace in the state the decoder mirrors. A checkpoint copies what a coding may
change before its trial; `restore()` puts it back.
"""

from __future__ import annotations

import copy

from .lossy import LossyModels


class Checkpoint:
    """Attributes of some objects, put back on `restore()`. A target is (owner,
    copied) or (owner, copied, kept): names in `copied` are deep-copied, since the
    coding writes into them; names in `kept` are only remembered, since the coding
    replaces them with new objects and leaves the old ones as they were (an alpha
    plane of the previous frame, a frame's worth of bytes not copied)."""

    def __init__(self, *targets: tuple) -> None:
        self._saved = []
        for owner, copied, *kept in targets:
            saved = {n: copy.deepcopy(getattr(owner, n)) for n in copied}
            saved.update({n: getattr(owner, n) for n in (kept[0] if kept else ())})
            self._saved.append((owner, saved))

    def restore(self) -> None:
        for owner, saved in self._saved:
            for n, v in saved.items():
                setattr(owner, n, v)


class LossyCheckpoint:
    """A lossy trial's state. The reference ring can be 100 MB, and a frame writes
    one slot of it (references.keep_frame: the next free slot while there is one, else
    the oldest), so only that slot is copied; a ring the trial reallocates is simply
    dropped. (An intra trial empties the history first: it comes after start_gop,
    which has emptied it already, so the slot is the same.)
    A learned loop filter (lossy/loop_filter.py) is the predictor's own object: its
    network is shared, and only its recurrent state, which a frame replaces rather
    than modifies, is put back."""

    _SHARED = ("ring", "loop_filter")

    def __init__(self, models: LossyModels) -> None:
        self.models = models
        self.ring = models.ring
        self.saved = {n: copy.deepcopy(v) for n, v in vars(models).items() if n not in self._SHARED}
        lf = getattr(models, "loop_filter", None)
        self.lf_state = None if lf is None else {k: v for k, v in vars(lf).items() if k != "net"}
        hist, nmax = models.history, self.ring.shape[0] - 1
        slot = hist[-1] if hist and len(hist) == nmax else len(hist) + 1
        self.slots = {slot: self.ring[slot].copy()} if slot < self.ring.shape[0] else {}

    def restore(self) -> None:
        for n, v in self.saved.items():
            setattr(self.models, n, v)
        for s, planes in self.slots.items():
            self.ring[s] = planes
        self.models.ring = self.ring
        if self.lf_state is not None:
            for k, v in self.lf_state.items():
                setattr(self.models.loop_filter, k, v)
