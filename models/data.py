"""Training windows streamed from a directory of GIFs and videos.

A window is T consecutive decoded frames (RGB uint8), randomly cropped and
flipped, from a random clip at a random time offset. Clips are decoded on demand
into a small cache (a bounded number of clips), never the whole corpus. The
train/validation split is by clip: a clip's name decides its side, so no window
of a validation clip is ever trained on.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from fpcodec.codec.errors import FpcError
from fpcodec.codec.source import open_source

MEDIA_SUFFIXES = {".gif", ".mp4", ".webm", ".mkv", ".mov", ".avi", ".png", ".apng", ".webp"}


def list_clips(corpus: str | Path) -> list[Path]:
    root = Path(corpus)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in MEDIA_SUFFIXES and p.is_file())
    if not files:
        raise FpcError(f"no GIFs or videos found in {root}")
    return files


def is_validation(path: Path, fraction: float = 0.2) -> bool:
    h = int.from_bytes(hashlib.sha256(path.name.encode()).digest()[:4], "big")
    return (h % 1000) < fraction * 1000


def split_clips(clips: list[Path], fraction: float = 0.2) -> tuple[list[Path], list[Path]]:
    val = [c for c in clips if is_validation(c, fraction)]
    train = [c for c in clips if not is_validation(c, fraction)]
    return train, val


def load_clip(path: Path, max_frames: int = 300, max_side: int = 512) -> np.ndarray | None:
    """Decoded RGB frames (T, H, W, 3) of a clip, downscaled by 2 while larger than max_side."""
    try:
        with open_source(path) as src:
            frames = []
            for i, f in enumerate(src.frames()):
                if i >= max_frames:
                    break
                frames.append(f.rgba[..., :3])
    except FpcError:
        return None
    if len(frames) < 2:
        return None
    clip = np.stack(frames)
    while max(clip.shape[1:3]) > max_side:
        h, w = clip.shape[1] // 2 * 2, clip.shape[2] // 2 * 2
        clip = clip[:, :h:2, :w:2]
    return clip


class WindowStream:
    """Random training windows (B, T, 3, crop, crop) uint8, with a bounded clip cache."""

    def __init__(
        self,
        clips: list[Path],
        window: int = 6,
        crop: int = 64,
        cache: int = 8,
        seed: int = 0,
        max_side: int = 512,
    ) -> None:
        self.clips = clips
        self.window, self.crop = window, crop
        self.rng = random.Random(seed)
        self.cache: dict[Path, np.ndarray] = {}
        self.cache_size = cache
        self.max_side = max_side

    def _clip(self) -> np.ndarray:
        if self.cache and (len(self.cache) >= self.cache_size or self.rng.random() < 0.85):
            if self.rng.random() < 0.9 or len(self.cache) < self.cache_size:
                return self.cache[self.rng.choice(list(self.cache))]
            self.cache.pop(self.rng.choice(list(self.cache)))
        for _ in range(20):
            path = self.rng.choice(self.clips)
            if path in self.cache:
                return self.cache[path]
            clip = load_clip(path, max_side=self.max_side)
            if clip is not None and clip.shape[0] >= 2 and min(clip.shape[1:3]) >= 8:
                self.cache[path] = clip
                return clip
        raise FpcError("could not decode training clips")

    def window_from(self, clip: np.ndarray) -> np.ndarray:
        t, h, w, _ = clip.shape
        n = self.window
        start = self.rng.randrange(0, max(1, t - n + 1))
        idx = [min(start + i, t - 1) for i in range(n)]
        c = min(self.crop, h, w)
        y = self.rng.randrange(0, h - c + 1)
        x = self.rng.randrange(0, w - c + 1)
        win = clip[idx, y : y + c, x : x + c]
        if c < self.crop:
            win = np.pad(win, ((0, 0), (0, self.crop - c), (0, self.crop - c), (0, 0)), mode="edge")
        if self.rng.random() < 0.5:
            win = win[:, :, ::-1]
        return np.ascontiguousarray(win.transpose(0, 3, 1, 2))

    def batch(self, size: int) -> np.ndarray:
        return np.stack([self.window_from(self._clip()) for _ in range(size)])

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            yield self.batch(1)[0]


def fixed_windows(
    clips: list[Path], count: int, window: int = 6, crop: int = 64, seed: int = 1234
) -> np.ndarray:
    """A deterministic validation set: `count` windows spread over the given clips."""
    stream = WindowStream(clips, window, crop, cache=len(clips) + 1, seed=seed)
    out = []
    per = max(1, count // max(1, len(clips)))
    for path in clips:
        clip = load_clip(path)
        if clip is None:
            continue
        for _ in range(per):
            out.append(stream.window_from(clip))
    return np.stack(out[:count]) if out else np.zeros((0, window, 3, crop, crop), np.uint8)
