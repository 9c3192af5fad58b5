"""Shared fixtures: synthetic clips, GIF builders, and the optional shared corpus."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"
BADINPUT = SHARED / "badinput" / "gif"


def needs(path: Path):
    return pytest.mark.skipif(not path.exists(), reason=f"{path} not present")


def moving_clip(
    n: int = 6, h: int = 23, w: int = 31, seed: int = 0, alpha: bool = False
) -> list[np.ndarray]:
    """A textured square moving over a gradient, optionally with a transparent hole."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) * 4 % 256], -1)
    tex = rng.integers(0, 256, (8, 8, 3))
    frames = []
    for t in range(n):
        f = base.copy()
        y0, x0 = (2 + t) % max(h - 8, 1), (1 + 2 * t) % max(w - 8, 1)
        f[y0 : y0 + 8, x0 : x0 + 8] = tex[: min(8, h - y0), : min(8, w - x0)]
        rgba = np.concatenate([f, np.full((h, w, 1), 255)], -1).astype(np.uint8)
        if alpha:
            hole = (yy - h // 2) ** 2 + (xx - (t % w)) ** 2 < (min(h, w) // 4) ** 2
            rgba[hole] = 0
        frames.append(rgba)
    return frames


def palette_clip(
    n: int = 5, h: int = 20, w: int = 24, colours: int = 16, seed: int = 1
) -> list[np.ndarray]:
    """Frames drawn from a small palette with dither-like noise and partial updates."""
    rng = np.random.default_rng(seed)
    pal = rng.integers(0, 256, (colours, 3))
    idx = rng.integers(0, colours, (h, w))
    frames = []
    for _ in range(n):
        y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
        patch = idx[y0 : y0 + h // 3, x0 : x0 + w // 3]
        patch[...] = rng.integers(0, colours, patch.shape)
        f = np.concatenate([pal[idx], np.full((h, w, 1), 255)], -1).astype(np.uint8)
        frames.append(f)
    return frames


def save_gif(
    path: Path,
    frames: list[np.ndarray],
    durations: list[int] | int = 70,
    loop: int | None = 0,
    **kw,
) -> Path:
    """Write RGB(A) frames as an animated GIF with Pillow (quantised if > 256 colours)."""
    ims = []
    for f in frames:
        if f.shape[-1] == 4 and (f[..., 3] == 0).any():
            ims.append(Image.fromarray(f, "RGBA"))
        else:
            ims.append(Image.fromarray(np.ascontiguousarray(f[..., :3]), "RGB"))
    extra = {} if loop is None else {"loop": loop}
    ims[0].save(
        path,
        save_all=True,
        append_images=ims[1:],
        duration=durations,
        optimize=False,
        **extra,
        **kw,
    )
    return path


def read_frames(path: Path) -> tuple[list[np.ndarray], list[int], int | None]:
    """Reference reading: Pillow's composited RGBA frames, durations, loop, each frame
    converted whole (the encoder's source converts only what changed)."""
    from fpcodec.codec.source import open_source

    with open_source(path) as src:
        src.incremental = False
        frames = list(src.frames())
        return [f.rgba for f in frames], [f.duration_ms for f in frames], src.info.loop


def assert_same_visible(a: np.ndarray, b: np.ndarray, tol: int = 0) -> None:
    """Alpha equal everywhere; colour within tol wherever visible."""
    assert a.shape == b.shape
    np.testing.assert_array_equal(a[..., 3], b[..., 3])
    vis = a[..., 3] != 0
    if vis.any():
        diff = np.abs(a[vis][:, :3].astype(int) - b[vis][:, :3].astype(int))
        assert diff.max() <= tol, f"max colour error {diff.max()} > {tol}"


def gif_bytes(frames: list[np.ndarray], **kw) -> bytes:
    buf = io.BytesIO()
    ims = [Image.fromarray(f) for f in frames]
    ims[0].save(buf, "GIF", save_all=True, append_images=ims[1:], **kw)
    return buf.getvalue()


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


def moving_corpus(root: Path, clips: int, n: int, h: int, w: int) -> Path:
    """A directory of `clips` moving-square GIFs c0.gif, c1.gif, ... (seeds 0, 1, ...)."""
    root.mkdir()
    for s in range(clips):
        save_gif(root / f"c{s}.gif", moving_clip(n, h, w, seed=s))
    return root
