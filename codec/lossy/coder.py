"""One frame in and out of the lossy coding: RGB <-> padded YCoCg-R planes, the
references, the frame kernel (frame.py), deblocking, and the zstd baseline's
packing of the symbols."""

from __future__ import annotations

import numpy as np
import zstandard

from .. import rangecoder as rc
from ..heap import release_free_memory
from ..planecoder import ZSTD_LEVEL
from ..zstd_bounded import decompress
from .deblock import deblock
from .frame import code_frame
from .frame_decode import decode_units
from .loop_filter import MapGains, apply_map, read_map, write_map
from .models import LossyModels
from .planes import planes_into_rgb, planes_to_rgb, rgb_into_planes, rgb_to_planes
from .presets import SLOW
from .references import (
    keep_frame,
    prediction_slot,
    reference_count,
    release_slot,
    start_frame,
)
from .syntax import level_count
from .transform_quant import DECISION_WEIGHTS, PLANE_WEIGHT, step_tables

_NO_LEVELS = np.zeros(0, np.int64)
_ZSTD = zstandard.ZstdCompressor(level=ZSTD_LEVEL)


def _padded(height: int, width: int) -> tuple[int, int]:
    """Frames are coded padded to a multiple of the 8x8 unit."""
    return -(-height // 8) * 8, -(-width // 8) * 8


def _pack_levels(lv: np.ndarray) -> bytes:
    """zstd baseline: zigzag-mapped symbols in the narrowest width that holds them."""
    z = ((lv << 1) ^ (lv >> 63)).astype(np.uint64)
    top = int(z.max()) if z.size else 0
    width = 1 if top < 1 << 8 else 2 if top < 1 << 16 else 4
    dtype = {1: np.uint8, 2: np.dtype("<u2"), 4: np.dtype("<u4")}[width]
    return bytes([width]) + _ZSTD.compress(z.astype(dtype).tobytes())


def _unpack_levels(data: bytes, n: int) -> np.ndarray | None:
    if not data or data[0] not in (1, 2, 4):
        return None
    width = data[0]
    raw = decompress(data[1:], n * width, "lossy levels")
    if len(raw) != n * width:
        return None
    dtype = {1: np.uint8, 2: np.dtype("<u2"), 4: np.dtype("<u4")}[width]
    z = np.frombuffer(raw, dtype).astype(np.int64)
    return (z >> 1) ^ -(z & 1)


def _run(enc, tgt, prd, intra, quality, models, buf, lv, fmap=(0, None), search=SLOW):
    """One pass of the kernel, encoding or decoding; returns (bytes, flag, recon planes,
    filter map). fmap: the decoder's filter map (mode, bits); the encoder chooses it.
    search: the encoder's speed preset (presets.py)."""
    steps, offs, lam_sad, lam_pd = step_tables(quality, intra)
    _, hp, wp = prd.shape
    recon = np.zeros(prd.shape, np.int16)  # every plane value fits (planes.py)
    act = np.zeros((hp // 4, wp // 4), np.uint8)  # blocks with coefficients or intra
    shape = (hp // 8, wp // 8, 2)
    if models.vectors.shape != shape or intra:
        models.vectors = np.zeros(shape, np.int32)
    order, nmax = start_frame(models, prd, intra)
    urefs = np.full((*shape[:2], 2), -1, np.int32)  # the unit state's type (syntax.unit_maps)
    mv1s = np.zeros(shape, np.int32)
    # what the kernel reads and writes beside the references: entropy models, coded
    # bytes, the reconstruction, and the unit state the next frame and deblocking read
    coded = (models.probs, models.counts, buf, recon, lv, models.vectors, act, urefs, mv1s)
    if enc:
        quant = (steps, offs, lam_pd, DECISION_WEIGHTS)
        n, err = code_frame(enc, tgt, models.ring, order, intra, quant, lam_sad, *coded, search)
    else:
        n, err = decode_units(models.ring, order, intra, steps, *coded)
    # The prediction's planes are read by the kernel only; where they are the only
    # reference, the ring lets them go before the loop filter and the RGB output.
    prd = None
    release_slot(models, nmax)
    release_free_memory(hp * wp)  # what motion search and coding left free
    if not err:
        # edges are left alone where nothing was coded and the motion did not change:
        # re-filtering copied content every frame blurs a static picture
        deblock(recon, steps, act, np.concatenate((models.vectors, mv1s), axis=2), urefs)
        fmap = _loop_filter(enc, tgt, recon, steps, act, lam_pd, models, fmap)
        keep_frame(models, recon, nmax)
    return n, err, recon, fmap


def _loop_filter(enc, tgt, recon, steps, act, lam_pd, models, fmap):
    """The learned in-loop filter, where the frame's map switches it on (in place)."""
    lf = models.loop_filter
    if lf is None or not (enc or fmap[0]):  # the decoder skips the network when off
        return fmap
    step = int(steps[0, 0])
    if enc:  # the encoder weighs the correction before it knows whether the frame keeps it
        _, hp, wp = recon.shape
        gains = MapGains(hp, wp, PLANE_WEIGHT)
        lf.weigh(
            recon,
            step,
            act,
            lambda corr, y0, y1: gains.add(tgt[:, y0:y1], recon[:, y0:y1], corr, y0),
        )
        fmap = gains.choose(lam_pd)
        if not fmap[0]:
            lf.discard()
            return fmap
    mode, bits = fmap

    def apply(planes: np.ndarray, corr: np.ndarray, y0: int, y1: int) -> None:
        apply_map(planes[:, y0:y1], corr, mode, bits, y0)

    if enc:
        lf.keep(recon, step, act, apply)
    else:  # the map is known: planes and state are written where they lie
        lf.filter_in_place(recon, step, act, apply)
    return fmap


def encode_lossy(
    rgb: np.ndarray,
    pred: np.ndarray | list[np.ndarray] | None,
    visible: np.ndarray,
    quality: int,
    models: LossyModels,
    entropy: str = "arith",
    search: np.ndarray = SLOW,
    out: np.ndarray | None = None,
    give_back_over: int | None = None,
) -> tuple[bytes, np.ndarray]:
    """Code an RGB frame (H, W, 3) against pred (None: intra; a list of one frame hands
    it over: the list is emptied once the frame is in planes, so that a caller's
    reference can be the last and the frame goes then); visible (H, W) is
    nonzero where a pixel shows (a mask, or the alpha plane). Returns (bytes, recon
    RGB), the reconstruction written into `out` when given (the colour of an RGBA
    frame, say), only once the coder's own buffers are gone. search: how hard to
    search (presets.py); no effect on the syntax.

    rgb may be handed over the same way; the list then holds the frame again (from
    its planes: exact where visible, the prediction elsewhere) when the coding
    overflows or is longer than give_back_over bytes, so that the caller can store
    the frame raw."""
    frame = rgb if isinstance(rgb, list) else None
    if frame is not None:
        rgb = frame.pop()
    h, w = rgb.shape[:2]
    hp, wp = _padded(h, w)
    target = rgb
    if pred is not None and not visible.all():
        # invisible pixels cost little
        target = np.where(visible[..., None], rgb, pred[0] if isinstance(pred, list) else pred)
    # The frame is read where it lies (a view of the RGBA frame needs no copy), and
    # the prediction goes straight into the ring's slot 0, as the decoder's does:
    # two frame-sized copies, 9 bytes a pixel.
    tgt = rgb_to_planes(target, hp, wp)
    del target, rgb  # a frame handed over goes here
    lv = np.zeros(level_count(hp, wp), np.int64) if entropy == "zstd" else _NO_LEVELS
    buf = np.zeros(8 * hp * wp + 1024 if not lv.size else 1, np.uint8)
    # only _run holds the prediction's planes, so that it can let them go (release_slot)
    n, err, recon, fmap = _run(
        True,
        tgt,
        tgt if pred is None else _prediction_planes(models, pred, hp, wp),
        pred is None,
        quality,
        models,
        buf,
        lv,
        search=search,
    )
    if err:
        if frame is not None:
            frame.append(planes_to_rgb(tgt, h, w))
        raise rc.CodingOverflow()
    data = _pack_levels(lv) if lv.size else buf[:n].tobytes()
    if models.loop_filter is not None:
        data = write_map(*fmap) + data
    if frame is not None and give_back_over is not None and len(data) > give_back_over:
        frame.append(planes_to_rgb(tgt, h, w))
    del tgt, buf  # before the reconstruction is written: 11 bytes a pixel
    return data, planes_into_rgb(recon, np.empty((h, w, 3), np.uint8) if out is None else out)


def _prediction_planes(
    models: LossyModels, pred: np.ndarray | list[np.ndarray] | None, hp: int, wp: int
):
    """The prediction's planes in the ring's slot 0 (zero for an intra frame); a list
    is emptied (encode_lossy)."""
    prd = prediction_slot(models, hp, wp)
    if isinstance(pred, list):
        pred = pred.pop()
    if pred is None:
        prd[:] = 0
    else:
        rgb_into_planes(pred, prd)
    return prd


def decode_lossy(
    data: bytes,
    pred: np.ndarray | None,
    height: int,
    width: int,
    quality: int,
    models: LossyModels,
    entropy: str = "arith",
    what: str = "lossy frame",
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, bool]:
    """Returns (recon RGB, damaged flag), the reconstruction written into `out` when
    given (the colour of an RGBA frame: no RGB frame beside it, 96 MiB at the size
    cap); a malformed filter map raises FormatError."""
    hp, wp = _padded(height, width)
    fmap = (0, None)
    if models.loop_filter is not None:
        mode, bits, used = read_map(data, hp, wp, what)
        fmap, data = (mode, bits), data[used:]
    lv = _NO_LEVELS
    if entropy == "zstd":
        lv = _unpack_levels(data, level_count(hp, wp))
        if lv is None:
            return np.zeros((height, width, 3), np.uint8) if out is None else out, True
        data = b""
    buf = rc.input_buffer(data)
    # pred is read where it lies, as the encoder reads it (a contiguous copy of the
    # previous RGBA frame's colour was 96 MiB at the size cap, held through the frame);
    # only _run holds the prediction's planes, so that it can let them go (release_slot)
    n, err, recon, _ = _run(
        False,
        None,
        _prediction_planes(models, pred, hp, wp),
        pred is None,
        quality,
        models,
        buf,
        lv,
        fmap,
    )
    del buf
    rgb = planes_to_rgb(recon, height, width) if out is None else planes_into_rgb(recon, out)
    return rgb, bool(err) or n > len(data) + 8


def keep_decoded(rgb: np.ndarray, models: LossyModels) -> None:
    """A frame of another coding (a GIF's palette frame in a lossy stream) becomes the
    newest reference too: what follows it is predicted from it, and an exact frame is
    the best reference there is."""
    h, w = rgb.shape[:2]
    hp, wp = _padded(h, w)
    if reference_count(hp, wp) == 1:
        # the predictor's frame is the only reference, and every lossy frame converts
        # its own into slot 0 (_prediction_planes): planes kept here were never read,
        # and a trial's checkpoint held them through the palette trials (192 MiB at
        # the size cap)
        release_slot(models, 1)
        return
    planes = prediction_slot(models, hp, wp)  # where start_frame puts it: no copy
    rgb_into_planes(rgb, planes)
    _, nmax = start_frame(models, planes, False)
    keep_frame(models, planes, nmax)
