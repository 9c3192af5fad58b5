"""Which frames a unit may refer to: the predictor's frame and up to 15 older decoded
frames (GIFs loop, alternate and re-dither: what comes back is found there), kept in
`LossyModels.ring` as YCoCg-R planes after deblocking."""

from __future__ import annotations

import numpy as np

from .models import LossyModels

# the predictor's frame and up to 15 older decoded frames (4: 5.8% fewer bytes per
# clip, 8: 1.8% fewer again, 16: 2.4% fewer again, 23% on a looping spinner)...
N_REFS = 16
REF_PIXELS = 1 << 24  # ...as long as references x padded pixels stay within this


def reference_count(hp: int, wp: int) -> int:
    """How many reference frames units may choose from at a padded size (the
    predictor's frame included); a format rule, like H.264's level limits on stored
    frames, so that the decoder's memory stays bounded at any frame size."""
    return max(1, min(N_REFS, REF_PIXELS // (hp * wp)))


def _ring_for(models: LossyModels, hp: int, wp: int) -> int:
    """Allocate the reference ring for this size if needed; returns the reference count."""
    nmax = reference_count(hp, wp)
    # slot 0 and the decoded frames kept (none when the predictor's frame is the only
    # reference: keep_frame stores nothing then)
    slots = nmax + 1 if nmax > 1 else 1
    if models.ring.shape != (slots, 3, hp, wp):
        models.ring = np.zeros((slots, 3, hp, wp), np.int16)
        models.history = []
    return nmax


def prediction_slot(models: LossyModels, hp: int, wp: int) -> np.ndarray:
    """Slot 0 of the ring, to convert the predictor's frame (or a frame of another
    coding about to be kept) into in place, in encoder and decoder alike (a separate
    frame of planes is 200 MB at the size cap)."""
    _ring_for(models, hp, wp)
    return models.ring[0]


def start_frame(models: LossyModels, prd: np.ndarray, intra: bool) -> tuple[np.ndarray, int]:
    """Put the predictor's frame (YCoCg-R planes) in slot 0, unless it is there already
    (prediction_slot); returns the reference order (ring slots by reference index) and
    the reference count."""
    _, hp, wp = prd.shape
    if intra:
        models.history = []
    nmax = _ring_for(models, hp, wp)
    if not np.may_share_memory(prd, models.ring[0]):
        models.ring[0] = prd
    if not models.prediction_is_decoded and models.history:
        # a learned predictor: the newest decoded frame leads (its motion is what the
        # vectors describe; a learned frame's corrections blur what they get wrong),
        # the predictor's frame is the second reference, older decoded frames follow
        order = np.array([models.history[0], 0, *models.history[1 : nmax - 1]], np.int64)
    else:
        # the predictor's frame, then the decoded frames before the last one (which
        # the predictor has already seen; with `last` it is the predictor's frame)
        order = np.array([0, *models.history[1:nmax]], np.int64)
    return order, nmax


def release_slot(models: LossyModels, nmax: int) -> None:
    """Once a frame's units are coded: at a size with one reference, the predictor's
    frame in slot 0, nothing of the ring outlives the frame (keep_frame keeps nothing,
    and the next frame converts its own prediction into a fresh slot), so the ring
    goes before the loop filter and the RGB output: 192 MiB at the size cap, in
    encoder and decoder alike. A checkpoint holding the ring (trial.py) keeps it."""
    if nmax == 1:
        models.ring = np.zeros((0, 3, 0, 0), np.int16)


def keep_frame(models: LossyModels, recon: np.ndarray, nmax: int) -> None:
    """The decoded frame becomes the newest reference; the oldest frame's slot takes it
    once all are in use."""
    if nmax > 1:
        slot = models.history[-1] if len(models.history) == nmax else len(models.history) + 1
        models.ring[slot] = recon
        models.history = [slot, *models.history[: nmax - 1]]
