"""Peak memory of whole encode processes on the memory tests' few-colour GIF, and its
growth per pixel between frame sizes (issue 20):

    python -m fpcodec.bench.encoder_growth 2048x4160 4096x4096 --quality 50 -o out.json

Each size is encoded in its own process (`peakrss.run_child`: the kernel's high-water
mark, every page); the growth between consecutive sizes is what
tests/test_memory.py bounds: the peak less the lossy reference ring (its size is a
format rule, references.reference_count), one slot of it added back as at the size
cap. Run with warm kernel caches (`python -m fpcodec.warmup`): a process that
compiles a kernel holds the compiler's hundreds of MiB.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from fpcodec.bench.peakrss import run_child
from PIL import Image

# One slot of the reference ring (three int16 planes) in bytes a source pixel: the
# growth is counted less the ring's capacity, plus the one slot the ring holds at the
# size cap, so that it reads as what the cap pays per pixel
ONE_SLOT = 6


def few_colour_gif(path: Path, h: int, w: int, frames: int = 3) -> Path:
    """Four colours: stripes, a moving block and a moving bar. Frames after the first
    are small rectangles in the GIF (Pillow crops them), and at --quality the pixel
    coding wins them from 2 Mpx up."""
    ims = []
    for t in range(frames):
        a = np.zeros((h, w), np.uint8)
        a[:: max(2, h // 32), :] = 2
        a[h // 8 + 3 * t : h // 3 + 3 * t, w // 5 + 7 * t : w // 2 + 7 * t] = 1
        a[h // 2 :, w // 2 + t : w // 2 + w // 9 + t] = 3
        im = Image.fromarray(a, "P")
        im.putpalette([0, 0, 0, 250, 20, 20, 20, 240, 40, 200, 200, 50] + [0] * 756)
        ims.append(im)
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=80, loop=0)
    return path


def ring_bytes(lossy: bool, h: int, w: int) -> int:
    """The lossy reference ring's capacity at this frame size (0 when not lossy)."""
    from fpcodec.codec.lossy.references import reference_count

    if not lossy:
        return 0
    hp, wp = -(-h // 8) * 8, -(-w // 8) * 8
    n = reference_count(hp, wp)
    return (n + 1 if n > 1 else 1) * 3 * hp * wp * 2


def encode_peak(src: Path, out: Path, options: dict, timeout: float = 900) -> float:
    """Peak resident set, MiB, of a process that imports fpcodec and encodes src."""
    argv = [
        sys.executable,
        "-c",
        "import fpcodec, sys; fpcodec.encode(sys.argv[1], sys.argv[2], **eval(sys.argv[3]))",
        str(src),
        str(out),
        repr(options),
    ]
    rc, peak, err = run_child(argv, timeout=timeout)
    if rc != 0:
        raise RuntimeError(f"encode of {src} failed: {err.strip()[-300:]}")
    return peak


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sizes", nargs="+", help="HxW, e.g. 2048x4096")
    p.add_argument("--quality", type=int, default=50)
    p.add_argument("--predictor", default="last")
    p.add_argument("-o", "--output", type=Path)
    a = p.parse_args(argv)
    import fpcodec

    rows = []
    with tempfile.TemporaryDirectory() as d:
        for size in a.sizes:
            h, w = (int(v) for v in size.lower().split("x"))
            src = few_colour_gif(Path(d) / f"{h}x{w}.gif", h, w)
            fpc = Path(d) / f"{h}x{w}.fpc"
            peak = encode_peak(src, fpc, {"predictor": a.predictor, "quality": a.quality})
            less_ring = peak * 2**20 - ring_bytes(True, h, w)
            row = {
                "height": h,
                "width": w,
                "peak_mib": round(peak, 1),
                "less_ring_mib": round(less_ring / 2**20, 1),
                "bytes": fpc.stat().st_size,
                "codings": fpcodec.info(fpc)["codings"],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    rows.sort(key=lambda r: r["height"] * r["width"])
    growth = []
    for r0, r1 in itertools.pairwise(rows):
        px0, px1 = r0["height"] * r0["width"], r1["height"] * r1["width"]
        if px1 > px0:
            d = (r1["less_ring_mib"] - r0["less_ring_mib"]) * 2**20 / (px1 - px0) + ONE_SLOT
            growth.append({"from": px0, "to": px1, "bytes_per_pixel": round(d, 1)})
            print(f"{px0} -> {px1} px: {d:.1f} bytes a pixel")
    if a.output:
        a.output.write_text(
            json.dumps({"quality": a.quality, "rows": rows, "growth": growth}, indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
