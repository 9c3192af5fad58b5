"""Pictures a person can judge: the same frame from the source, fpcodec and x264 at
equal bytes, cropped and side by side, labelled.

    python -m fpcodec.bench.pictures -o bench/results/ssim/pictures

Only clips that may be redistributed: the bundled screen recording
(examples/gifplayer-muybridge.gif, MIT/Apache-2.0), a camera pan over scikit-image's
`chelsea` photo (CC0) and a synthetic dithered gradient, so the PNGs can be committed.
x264 (veryslow 4:4:4, as the benchmark's anchor) gets the fractional CRF whose file
comes closest to fpcodec's bytes, found by bisection; each label says both sizes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gifplayer-muybridge.gif"


def _chelsea_pan(frames: int = 12) -> list[np.ndarray]:
    """A slow diagonal camera pan (1 pixel a frame right, half a pixel down) over the
    CC0 cat photo scikit-image ships, 256x160."""
    from skimage import data

    img = data.chelsea()  # (300, 451, 3)
    out = []
    for t in range(frames):
        y, x = 40 + t // 2, 60 + t
        out.append(np.ascontiguousarray(img[y : y + 160, x : x + 256]))
    return out


def _dither(frames: int = 12) -> list[np.ndarray]:
    """A moving colour gradient ordered-dithered to 8 levels per channel, the texture
    GIF encoders make: the structure SSIM sees and a per-pixel mean may trade away."""
    bayer = np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]]) / 16.0
    h, w = 128, 192
    yy, xx = np.mgrid[0:h, 0:w]
    thr = bayer[yy % 4, xx % 4]
    out = []
    for t in range(frames):
        r = (xx + 2 * t) / w
        g = yy / h
        b = 0.5 + 0.5 * np.sin((xx + yy + 3 * t) / 23.0)
        rgb = np.stack([r, g, b], -1) * 7.0
        q = np.floor(rgb + thr[..., None]).clip(0, 7) * (255 / 7)
        out.append(q.astype(np.uint8))
    return out


def _example(frames: int = 12) -> list[np.ndarray]:
    from fpcodec.bench.runner import load_clip

    rgba, _, _ = load_clip(EXAMPLE)
    return [f[..., :3].copy() for f in rgba[100 : 100 + frames]]


CLIPS = {
    "gifplayer-muybridge": (
        _example,
        "examples/gifplayer-muybridge.gif frames 100-111 (MIT/Apache-2.0)",
    ),
    "chelsea-pan": (_chelsea_pan, "camera pan over scikit-image's chelsea.png (CC0)"),
    "dither": (_dither, "synthetic ordered-dithered moving gradient"),
}


def _write_apng(frames: list[np.ndarray], path: Path) -> None:
    from PIL import Image

    ims = [Image.fromarray(f) for f in frames]
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=40, loop=0)


def _fpcodec(path: Path, quality: int) -> tuple[int, list[np.ndarray]]:
    import fpcodec

    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "c.fpc"
        fpcodec.encode(path, out, quality=quality)
        _, dec, _ = fpcodec.decode_frames(out)
        return out.stat().st_size, [f[..., :3] for f in dec]


def _x264_at(path: Path, frames: list[np.ndarray], target: int) -> tuple[float, int, list]:
    """The x264 anchor at the fractional CRF whose bytes come closest to target."""
    from fpcodec.bench.anchors import x264

    rgba = [np.dstack([f, np.full(f.shape[:2], 255, np.uint8)]) for f in frames]
    durs = [40] * len(frames)
    lo, hi = 0.0, 51.0
    best = None
    for _ in range(12):
        crf = round((lo + hi) / 2, 2)
        enc = x264(crf)(path, rgba, durs)
        if best is None or abs(enc.nbytes - target) < abs(best[1] - target):
            best = (crf, enc.nbytes, [f[..., :3] for f in enc.frames])
        if enc.nbytes > target:
            lo = crf
        else:
            hi = crf
    return best


def _labelled(panels: list[tuple[str, np.ndarray]], scale: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    h, w = panels[0][1].shape[:2]
    bar = 14
    sheet = Image.new("RGB", (len(panels) * (w * scale + 4) - 4, h * scale + bar), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, img) in enumerate(panels):
        x = i * (w * scale + 4)
        big = Image.fromarray(img).resize((w * scale, h * scale), Image.NEAREST)
        sheet.paste(big, (x, bar))
        draw.text((x + 2, 1), label, fill="black")
    return np.asarray(sheet)


def make(out: Path, quality: int) -> list[dict]:
    from fpcodec.bench.metrics import perceptual_distance, psnr, ssim
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, (make_clip, source) in CLIPS.items():
        frames = make_clip()
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / f"{name}.png"
            _write_apng(frames, path)
            nb, ours = _fpcodec(path, quality)
            crf, xb, theirs = _x264_at(path, frames, nb)
        t = len(frames) - 1  # the last frame: the end of the prediction chain
        h, w = frames[t].shape[:2]
        ch, cw = min(h, 96), min(w, 128)
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        crop = (slice(y0, y0 + ch), slice(x0, x0 + cw))
        row = {"clip": name, "source": source, "frame": t, "crop": [y0, x0, ch, cw]}
        panels = [("source", frames[t][crop])]
        for label, nbytes, dec in (
            (f"fpcodec Q{quality}", nb, ours),
            (f"x264 crf {crf:g}", xb, theirs),
        ):
            m = {
                "bytes": nbytes,
                "pd": perceptual_distance(frames[t], dec[t]),
                "psnr": psnr(frames[t], dec[t]),
                "ssim": ssim(frames[t], dec[t]),
            }
            row[label.split()[0]] = {"setting": label, **m}
            panels.append((f"{label}: {nbytes:,} B, SSIM {m['ssim']:.3f}", dec[t][crop]))
        file = f"{name}.png"
        Image.fromarray(_labelled(panels, 2)).save(out / file, optimize=True)
        row["file"] = file
        rows.append(row)
        print(f"{name}: fpcodec {nb:,} B, x264 crf {crf:g} {xb:,} B", file=sys.stderr)
    (out / "pictures.json").write_text(json.dumps(rows, indent=1))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fpcodec.bench.pictures", description=__doc__)
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--quality", type=int, default=40)
    a = p.parse_args(argv)
    make(a.output, a.quality)
    return 0


if __name__ == "__main__":
    sys.exit(main())
