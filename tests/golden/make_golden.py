"""Write the golden files of the codings the encoder writes today.

    python tests/golden/make_golden.py            # write the missing golden files
    python tests/golden/make_golden.py --pin NAME # today's encoder output is the new pin

Each golden file is a committed `.fpc` plus a JSON with its frame hashes and the
recipe that made it (a committed source in tests/golden/src and encoder settings).
Two guarantees are tested from them (tests/test_golden.py):

* the committed file decodes to the committed hashes: a file once written stays
  readable. An existing golden `.fpc` is never rewritten; a changed syntax is a new
  coding number with a new golden file (docs/FORMAT.md);
* today's encoder, given the same source and settings, writes bytes whose SHA-256
  is `encoder_sha256`: a change to what the encoder writes fails the suite until
  someone re-pins it on purpose (`--pin`, which checks that the new output still
  contains the recipe's codings and records its hash and size; the commit says why).

The sources are made once from the bundled, MIT/Apache-2.0 example
(examples/gifplayer-muybridge.gif) and from seeded noise, and committed, so the
recipe does not depend on a Pillow version's GIF writer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).parent
SRC = HERE / "src"
EXAMPLE = HERE.parents[1] / "examples" / "gifplayer-muybridge.gif"

# name -> (source, encode keyword arguments, the codings the file must contain)
RECIPES: dict[str, tuple[str, dict, set[str]]] = {
    "palette-arith": ("muybridge-crop.gif", {}, {"palette"}),
    "palette-zstd": ("muybridge-crop.gif", {"entropy": "zstd"}, {"palette"}),
    "switched-arith": ("muybridge-crop.gif", {"palette": False}, {"switched"}),
    "switched-zstd": ("muybridge-crop.gif", {"palette": False, "entropy": "zstd"}, {"switched"}),
    "switched-convlstm": (
        "muybridge-crop.gif",
        {"palette": False, "predictor": "convlstm"},
        {"switched"},
    ),
    # palette=False: the pixel codings alone (a GIF's frames would go to coding 2)
    "residual-e2-arith": ("muybridge-crop.gif", {"max_error": 2, "palette": False}, {"residual"}),
    "residual-e2-zstd": (
        "muybridge-crop.gif",
        {"max_error": 2, "entropy": "zstd", "palette": False},
        {"residual"},
    ),
    "lossy-q50-last": ("muybridge-crop.gif", {"quality": 50, "palette": False}, {"lossy"}),
    "lossy-q50-zstd": (
        "muybridge-crop.gif",
        {"quality": 50, "entropy": "zstd", "palette": False},
        {"lossy"},
    ),
    "lossy-q50-convlstm": (
        "muybridge-crop.gif",
        {"quality": 50, "predictor": "convlstm", "palette": False},
        {"lossy"},
    ),
    # a GIF at a low quality: palette and lossy frames, resync states, palette
    # frames as lossy references
    "gif-q10-mixed": ("muybridge-crop.gif", {"quality": 10}, {"palette", "lossy"}),
    "raw-noise": ("noise.png", {}, {"raw"}),
    # the learned in-loop stage with its shipped weights (filter maps in every frame)
    "lossy-q50-convlstm-loop": (
        "muybridge-crop.gif",
        {"quality": 50, "predictor": "convlstm-loop", "palette": False},
        {"lossy"},
    ),
}
COMMON = {"keyframe_interval": 6}


def make_sources() -> None:
    """The committed sources; run once (they exist in the repository)."""
    SRC.mkdir(exist_ok=True)
    crop = SRC / "muybridge-crop.gif"
    if not crop.exists():
        im = Image.open(EXAMPLE)
        frames, durations = [], []
        for i in range(270, 280):
            im.seek(i)
            f = np.array(im.convert("RGBA"))[100:164, 60:156].copy()
            f[:8, :10, 3] = 0  # a transparent corner, so alpha is coded too
            f[:8, :10, :3] = 0
            frames.append(Image.fromarray(f, "RGBA"))
            durations.append(im.info.get("duration", 70))
        frames[0].save(
            crop,
            save_all=True,
            append_images=frames[1:],
            duration=durations,
            loop=0,
            disposal=1,
            optimize=False,
        )
    noise = SRC / "noise.png"
    if not noise.exists():
        rng = np.random.default_rng(20261201)
        # RGBA noise, alpha too: every coding costs more than raw's 4 bytes a pixel
        frames = [
            Image.fromarray(rng.integers(0, 256, (12, 16, 4), np.uint8), "RGBA") for _ in range(3)
        ]
        frames[0].save(noise, save_all=True, append_images=frames[1:], duration=50, loop=0)


def frame_hashes(frames) -> list[str]:
    return [hashlib.sha256(np.ascontiguousarray(f).tobytes()).hexdigest() for f in frames]


def encode_recipe(name: str, out: Path) -> None:
    import fpcodec

    source, kwargs, _ = RECIPES[name]
    # every recipe names its predictor, so that a new default leaves the pins alone
    kwargs = {"predictor": "last", **kwargs}
    fpcodec.encode(SRC / source, out, force=True, **COMMON, **kwargs)


def write(name: str, pin: bool) -> None:
    import fpcodec

    fpc = HERE / f"{name}.fpc"
    meta_path = HERE / f"{name}.json"
    if fpc.exists() and not pin:
        return
    source, kwargs, codings = RECIPES[name]
    tmp = HERE / f".{name}.tmp.fpc"
    encode_recipe(name, tmp)
    try:
        got = set(fpcodec.info(tmp)["codings"])
        if not codings <= got:
            sys.exit(f"{name}: expected codings {sorted(codings)}, the file has {sorted(got)}")
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
        if fpc.exists():  # re-pin: the committed file stays, its decode guard too
            meta = json.loads(meta_path.read_text())
            meta["encoder_sha256"] = digest
            meta["encoder_bytes"] = tmp.stat().st_size
        else:
            tmp.replace(fpc)
            _, frames, durations = fpcodec.decode_frames(fpc)
            meta = {
                "file": fpc.name,
                "note": f"written by the encoder from src/{source}, {kwargs or 'defaults'}",
                "source": source,
                "encode": {**COMMON, **kwargs},
                "codings": sorted(got),
                "encoder_sha256": digest,
                "encoder_bytes": fpc.stat().st_size,
                "durations": durations,
                "frames": frame_hashes(frames),
            }
    finally:
        tmp.unlink(missing_ok=True)
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{name}: {meta['encoder_bytes']} bytes, codings {sorted(got)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pin", action="store_true", help="record today's encoder output as the pin")
    ap.add_argument("names", nargs="*", help="recipes (default: all)")
    a = ap.parse_args()
    make_sources()
    for name in a.names or RECIPES:
        write(name, a.pin)


if __name__ == "__main__":
    main()
