"""How much a decoder-side context could save in the lossy coder's level coding.

The third place the learned-stage issue names is a probability model: a network
whose output becomes a context of the range coder (conditional coding). Its room
is what the decoder knows, before a unit's blocks are read, about where and how
large their levels are. This measures it with the real coder:

1. every held-out clip is coded as the lossy encoder codes it (with the zstd
   baseline's symbol layout, so that every level, intra flag and intra mode of every
   frame can be read back; the decisions are the encoder's own);
2. each frame's levels are coded again through the range coder's own
   `syntax.code_unit_blocks` -- today's binarisation, contexts and adaptation --
   once with one set of models (`base`), and once with a set of models per class of
   a decoder-side feature of the unit, chosen per 8x8 unit (`split`): that is how a
   network's output would enter the coder as a context;
3. the rows are the bytes of both, and the bytes of the whole real stream (the same
   clip and quality, range coded) for scale.

Units whose levels are all zero are left out of both codings (the real coder's skip
flag covers most of them), so the split is not credited with finding empty units.

Features (all known to a decoder before the unit's blocks): `intra` (the unit's
flag), `texture` (how much the motion-compensated prediction of the unit varies,
against the quantiser step), `history` (whether the co-located unit of the previous
frame carried levels), and their product. A network could do better than these
hand-made classes; it would also pay dilution as they do, unless a mixer hides it.
`oracle` is no decoder's: the class is the sum of the unit's own level magnitudes
(8 classes, about 2.5x apart), as much as a per-unit context could know about them;
what it saves bounds what a decoder-side class of that kind could.

    python -m fpcodec.bench.context_headroom CORPUS -o context.json --clips LIST
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from fpcodec.codec import rangecoder as rc
from fpcodec.codec.lossy.models import N_MODELS
from fpcodec.codec.lossy.syntax import B_FIELDS, code_unit_blocks
from numba import njit

from .mc_refine_headroom import _Hook
from .study import loaded_clips, study_clips, study_parser, write_study

QUALITIES = (25, 40, 55, 70)
FEATURES = ("none", "intra", "texture", "history", "texture+history", "oracle")
N_CLASSES = 9  # intra, and 4 texture x 2 history classes (or 8 oracle classes)


@njit(cache=True)
def code_levels(lv, classes, nclass, nuy, nux, models):
    """Code a frame's levels (zstd layout, lv) through code_unit_blocks, the models of
    each unit chosen by classes[uy, ux] from `models` (nclass sets of probabilities
    and counts, kept across frames); returns the bytes the range coder wrote."""
    probs, counts = models
    nby, nbx = 2 * nuy, 2 * nux
    nblk, nu = nby * nbx, nuy * nux
    buf = np.zeros(64 * nblk + 1024, np.uint8)
    st = np.zeros(rc.STATE_SIZE, np.int64)
    rc.rc_init_enc(st)
    maps = np.zeros((nby, nbx, B_FIELDS), np.int8)
    qs = np.zeros((4, 3, 16), np.int64)
    umodes = np.zeros(4, np.int64)
    nzs = np.zeros((4, 3), np.int64)
    none = np.zeros(0, np.int64)
    for uy in range(nuy):
        for ux in range(nux):
            intra = lv[49 * nblk + 2 * nu + uy * nux + ux] != 0
            empty = True
            for sb in range(4):
                by, bx = uy * 2 + sb // 2, ux * 2 + sb % 2
                b = by * nbx + bx
                umodes[sb] = lv[48 * nblk + b]
                for p in range(3):
                    for z in range(16):
                        qs[sb, p, z] = lv[(p * 16 + z) * nblk + b]
                        if qs[sb, p, z] != 0:
                            empty = False
            if empty and not intra:
                continue  # its flags stay 0 in maps, as a skipped unit's
            k = classes[uy, ux]
            rcs = (st, buf, probs[k], counts[k])
            code_unit_blocks(True, rcs, none, maps, uy, ux, intra, False, umodes, qs, nzs)
    return rc.rc_finish_enc(st, buf)


def unit_classes(
    feature: str, lv: np.ndarray, pred: np.ndarray, prev_coded: np.ndarray, step: float
) -> np.ndarray:
    """The feature's class of every unit (0..N_CLASSES-1)."""
    _, hp, wp = pred.shape
    nuy, nux = hp // 8, wp // 8
    nblk, nu = 4 * nuy * nux, nuy * nux
    intra = (lv[49 * nblk + 2 * nu : 49 * nblk + 3 * nu] != 0).reshape(nuy, nux)
    if feature == "none":
        return np.zeros((nuy, nux), np.int64)
    if feature == "intra":
        return intra.astype(np.int64)
    if feature == "oracle":  # the truth: how much the unit's own levels weigh
        mag = np.abs(lv[: 48 * nblk]).reshape(48, 2 * nuy, 2 * nux).sum(0)
        total = mag.reshape(nuy, 2, nux, 2).sum((1, 3))
        return np.where(intra, 0, 1 + np.digitize(total, (1, 3, 8, 20, 50, 130, 330)))
    y = pred[0].astype(np.float64)
    grad = np.abs(np.diff(y, axis=1, append=y[:, -1:])) + np.abs(np.diff(y, axis=0, append=y[-1:]))
    tex = grad.reshape(nuy, 8, nux, 8).mean((1, 3)) / max(step, 1e-6)
    tclass = np.digitize(tex, (0.25, 1.0, 4.0))  # 0..3
    hist = prev_coded.astype(np.int64)
    if feature == "texture":
        c = 1 + tclass
    elif feature == "history":
        c = 1 + hist
    else:
        c = 1 + tclass * 2 + hist
    return np.where(intra, 0, c).astype(np.int64)


def _unit_coded(lv: np.ndarray, nuy: int, nux: int) -> np.ndarray:
    """Which units carry any level (the next frame's `history`)."""
    nblk = 4 * nuy * nux
    levels = lv[: 48 * nblk].reshape(48, 2 * nuy, 2 * nux) != 0
    return levels.any(0).reshape(nuy, 2, nux, 2).any((1, 3))


def measure_clip(clip: np.ndarray, quality: int, hook: _Hook) -> dict:
    from fpcodec.codec.lossy.coder import encode_lossy
    from fpcodec.codec.lossy.models import LossyModels
    from fpcodec.codec.lossy.transform_quant import quality_step

    vis = np.ones(clip.shape[1:3], bool)
    # the real stream, for scale
    models, pred, real = LossyModels(True), None, 0
    for f in clip:
        data, pred = encode_lossy(np.ascontiguousarray(f), pred, vis, quality, models)
        real += len(data)
    # the symbols, and each frame's prediction
    frames = []
    hook.record_levels = True
    models, pred = LossyModels(True), None
    for f in clip:
        hook.pred, hook.levels = None, None
        _, pred = encode_lossy(np.ascontiguousarray(f), pred, vis, quality, models, "zstd")
        frames.append((hook.levels, hook.pred))
    hook.record_levels = False
    step = quality_step(quality)
    out = {"real_bytes": real}
    for feature in FEATURES:
        # models reset at the keyframe (the first frame) and persist, as in the coder
        tables = (
            np.full((N_CLASSES, N_MODELS), rc.PROB_HALF, np.int32),
            np.zeros((N_CLASSES, N_MODELS), np.uint8),
        )
        _check_tables(tables)
        total, prev = 0, None
        nuy, nux = -(-clip.shape[1] // 8), -(-clip.shape[2] // 8)
        for lv, pr in frames:
            if pr is None or prev is None:
                cls = np.zeros((nuy, nux), np.int64)
            else:
                cls = unit_classes(feature, lv, pr, prev, step)
            total += code_levels(lv, cls, N_CLASSES, nuy, nux, tables)
            prev = _unit_coded(lv, nuy, nux)
        out[feature] = total
    return out


def _check_tables(tables: tuple[np.ndarray, np.ndarray]) -> None:
    probs, counts = rc.new_models(N_MODELS)
    if probs.dtype != tables[0].dtype or counts.dtype != tables[1].dtype:
        raise RuntimeError("the range coder's model types changed; update context_headroom")


def measure(clips: list[Path], frames: int, max_side: int) -> dict:
    per_clip: dict[str, dict] = {}
    with _Hook() as hook:
        for path, clip in loaded_clips(clips, frames, max_side):
            rows = {str(q): measure_clip(clip, q, hook) for q in QUALITIES}
            per_clip[path.name] = rows
            saved = {
                f: 1 - sum(r[f] for r in rows.values()) / sum(r["none"] for r in rows.values())
                for f in FEATURES[1:]
            }
            share = sum(r["none"] for r in rows.values()) / sum(
                r["real_bytes"] for r in rows.values()
            )
            print(
                path.name,
                f"levels {share:.0%} of the stream;",
                ", ".join(f"{f} {100 * s:+.2f}%" for f, s in saved.items()),
                flush=True,
            )
    totals = {
        f: sum(r[f] for c in per_clip.values() for r in c.values())
        for f in ("real_bytes", *FEATURES)
    }
    return {
        "qualities": list(QUALITIES),
        "frames_per_clip": frames,
        "totals": totals,
        "level_share_of_stream": totals["none"] / totals["real_bytes"],
        "saving_of_level_bytes": {f: 1 - totals[f] / totals["none"] for f in FEATURES[1:]},
        "saving_of_stream": {
            f: (totals["none"] - totals[f]) / totals["real_bytes"] for f in FEATURES[1:]
        },
        "per_clip": per_clip,
    }


def main(argv: list[str] | None = None) -> int:
    a = study_parser(__doc__, frames=24).parse_args(argv)
    result = measure(study_clips(a.corpus, a.clips), a.frames, a.max_side)
    write_study(result, a.output, "fpcodec.bench.context_headroom")
    return 0


if __name__ == "__main__":
    sys.exit(main())
