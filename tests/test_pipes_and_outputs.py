"""Pipes (issue 21.5, 20.5) and decoded outputs (21.3 WebP/APNG sizes, 21.10 video,
21.8 predict alpha)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .conftest import assert_same_visible, moving_clip, read_frames, save_gif


def run(*args: str, cwd: Path, stdin: bytes | None = None, timeout: int = 120):
    return subprocess.run(
        [sys.executable, "-m", "fpcodec.cli", *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        cwd=cwd,
    )


@pytest.fixture
def gif(tmp) -> Path:
    return save_gif(tmp / "in.gif", moving_clip(4, 14, 17, alpha=True), durations=60)


def test_stdin_to_stdout_round_trip(tmp, gif):
    r = run("encode", "-", "-", cwd=tmp, stdin=gif.read_bytes())
    assert r.returncode == 0, r.stderr
    fpc = r.stdout
    assert fpc[:4] == b"\x89FPC"
    ref = run("encode", str(gif), "ref.fpc", "-q", cwd=tmp)
    assert ref.returncode == 0 and (tmp / "ref.fpc").read_bytes() == fpc
    r = run("decode", "-", "-", "--to", "gif", cwd=tmp, stdin=fpc)
    assert r.returncode == 0, r.stderr
    (tmp / "back.gif").write_bytes(r.stdout)
    want, _, _ = read_frames(gif)
    got, _, _ = read_frames(tmp / "back.gif")
    assert len(got) == len(want)
    for a, b in zip(want, got, strict=True):
        assert_same_visible(a, b)
    assert sorted(p.name for p in tmp.iterdir()) == ["back.gif", "in.gif", "ref.fpc"]


def test_encode_file_to_stdout_and_decode_stdin_to_file(tmp, gif):
    r = run("encode", str(gif), "-", "-q", cwd=tmp)
    assert r.returncode == 0 and r.stdout[:4] == b"\x89FPC"
    r2 = run("decode", "-", "out.webp", "-q", cwd=tmp, stdin=r.stdout)
    assert r2.returncode == 0, r2.stderr
    assert Image.open(tmp / "out.webp").n_frames == 4


@pytest.mark.parametrize("fmt", ["gif", "webp", "png", "mp4", "mkv"])
def test_decode_to_stdout_in_every_format(tmp, gif, fmt):
    assert run("encode", str(gif), "a.fpc", "-q", cwd=tmp).returncode == 0
    r = run("decode", "a.fpc", "-", "--to", fmt, cwd=tmp)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) > 100
    if fmt in ("gif", "webp", "png"):
        im = Image.open(io.BytesIO(r.stdout))
        assert im.format == {"gif": "GIF", "webp": "WEBP", "png": "PNG"}[fmt]
        assert im.n_frames == 4
    else:
        import av

        with av.open(io.BytesIO(r.stdout)) as c:
            assert sum(1 for _ in c.decode(video=0)) == 4


def test_fifo_with_a_writer_does_not_hang(tmp, gif):
    """The input used to be opened twice: the second open of a FIFO waits forever."""
    fifo = tmp / "pipe.gif"
    os.mkfifo(fifo)
    data = gif.read_bytes()

    def writer() -> None:
        with open(fifo, "wb") as f:
            f.write(data)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    r = run("encode", str(fifo), "out.fpc", "-q", cwd=tmp, timeout=60)
    t.join(5)
    assert r.returncode == 0, r.stderr
    assert (tmp / "out.fpc").read_bytes()[:4] == b"\x89FPC"
    assert not [p for p in tmp.iterdir() if p.name.endswith(".part")]


def test_dev_stdin_and_process_substitution(tmp, gif):
    with open(gif, "rb") as f:
        r = subprocess.run(
            [sys.executable, "-m", "fpcodec.cli", "encode", "/dev/stdin", "a.fpc", "-q"],
            stdin=f,
            capture_output=True,
            cwd=tmp,
            timeout=60,
        )
    assert r.returncode == 0, r.stderr
    cmd = f'"{sys.executable}" -m fpcodec.cli encode <(cat "{gif}") b.fpc -q'
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, cwd=tmp, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp / "a.fpc").read_bytes() == (tmp / "b.fpc").read_bytes()


def test_info_reads_standard_input(tmp, gif):
    assert run("encode", str(gif), "a.fpc", "-q", cwd=tmp).returncode == 0
    data = (tmp / "a.fpc").read_bytes()
    r = run("info", "-", "--json", cwd=tmp, stdin=data)
    assert r.returncode == 0, r.stderr
    import json

    d = json.loads(r.stdout)
    assert d["frames"] == 4 and d["bytes"] == len(data)


# ---------------------------------------------------------------- 21.3: WebP and APNG


def _sprite_gif(tmp: Path) -> Path:
    """A small sprite moving over a large still background: the case where storing
    every frame whole (as the old writers did) costs many times the changes."""
    rng = np.random.default_rng(5)
    h, w = 64, 80
    pal = rng.integers(0, 256, (12, 3))
    bg = pal[rng.integers(0, 12, (h // 4, w // 4))].repeat(4, 0).repeat(4, 1)
    frames = []
    for t in range(10):
        f = bg.copy()
        f[10 + t : 22 + t, 4 + 5 * t : 16 + 5 * t] = pal[(t % 11) + 1]
        frames.append(np.dstack([f, np.full((h, w), 255)]).astype(np.uint8))
    return save_gif(tmp / "sprite.gif", frames, durations=50)


@pytest.mark.parametrize("ext", ["webp", "apng"])
def test_decoded_animation_within_1_3x_of_pillows_writer(tmp, ext):
    gif = _sprite_gif(tmp)
    assert run("encode", str(gif), "a.fpc", "-q", cwd=tmp).returncode == 0
    r = run("decode", "a.fpc", f"out.{ext}", "-q", cwd=tmp)
    assert r.returncode == 0, r.stderr
    frames, durations, _ = read_frames(gif)
    ims = [Image.fromarray(np.ascontiguousarray(f[..., :3])) for f in frames]
    buf = io.BytesIO()
    kw = {"lossless": True} if ext == "webp" else {}
    fmt = "WEBP" if ext == "webp" else "PNG"
    ims[0].save(buf, fmt, save_all=True, append_images=ims[1:], duration=durations, **kw)
    ours = (tmp / f"out.{ext}").stat().st_size
    assert ours <= 1.3 * len(buf.getvalue()), (ours, len(buf.getvalue()))
    back = Image.open(tmp / f"out.{ext}")
    assert back.n_frames == len(frames)
    for i, want in enumerate(frames):
        back.seek(i)
        assert_same_visible(np.asarray(back.convert("RGBA")), want)


def test_apng_merges_repeated_frames_and_keeps_alpha(tmp):
    from .gifbuild import GifFrame, build_gif

    pal = np.array([[0, 0, 0], [255, 0, 0], [0, 200, 0], [10, 20, 250]], np.uint8)
    idx = np.random.default_rng(2).integers(0, 4, (12, 14)).astype(np.uint8)
    changed = idx.copy()
    changed[2:5, 3:6] = 2
    frames = [
        GifFrame(idx, transparency=0, delay_cs=4),
        GifFrame(idx, transparency=0, delay_cs=6),  # the same picture again
        GifFrame(changed, transparency=0, delay_cs=7),
    ]
    gif = tmp / "r.gif"
    gif.write_bytes(build_gif(14, 12, frames, pal))
    want, _, _ = read_frames(gif)
    assert len(want) == 3 and np.array_equal(want[0], want[1])
    assert run("encode", str(gif), "r.fpc", "-q", cwd=tmp).returncode == 0
    assert run("decode", "r.fpc", "r.apng", "-q", cwd=tmp).returncode == 0
    im = Image.open(tmp / "r.apng")
    assert im.n_frames == 2  # the repeat became a longer first frame
    im.seek(0)
    assert im.info["duration"] == 100
    assert_same_visible(np.asarray(im.convert("RGBA")), want[0])
    im.seek(1)
    assert_same_visible(np.asarray(im.convert("RGBA")), want[2])
    assert (np.asarray(im.convert("RGBA"))[..., 3] == 0).any()


# ---------------------------------------------------------------- 21.10: video


def _odd_gif(tmp: Path) -> Path:
    return save_gif(tmp / "odd.gif", moving_clip(3, 13, 15), durations=40)


def test_padding_is_reported_once_and_not_when_quiet(tmp):
    gif = _odd_gif(tmp)
    assert run("encode", str(gif), "o.fpc", "-q", cwd=tmp).returncode == 0
    r = run("decode", "o.fpc", "o.mp4", cwd=tmp)
    assert r.returncode == 0
    notes = [x for x in r.stderr.decode().splitlines() if "padded" in x]
    assert len(notes) == 1 and "15x13" in notes[0] and "16x14" in notes[0]
    r = run("decode", "o.fpc", "o2.mp4", "-q", cwd=tmp)
    assert r.returncode == 0 and r.stderr == b""
    r = run("decode", "o.fpc", "o.mkv", "--lossless", cwd=tmp)
    assert r.returncode == 0 and b"padded" not in r.stderr


def test_crf_changes_the_lossy_video(tmp):
    gif = save_gif(tmp / "v.gif", moving_clip(4, 32, 48), durations=40)
    assert run("encode", str(gif), "v.fpc", "-q", cwd=tmp).returncode == 0
    assert run("decode", "v.fpc", "hi.mp4", "--crf", "0", "-q", cwd=tmp).returncode == 0
    assert run("decode", "v.fpc", "lo.mp4", "--crf", "45", "-q", cwd=tmp).returncode == 0
    assert (tmp / "hi.mp4").stat().st_size > 2 * (tmp / "lo.mp4").stat().st_size


def test_lossless_mkv_is_exact(tmp):
    import av

    gif = _odd_gif(tmp)
    assert run("encode", str(gif), "o.fpc", "-q", cwd=tmp).returncode == 0
    r = run("decode", "o.fpc", "o.mkv", "--lossless", "-q", cwd=tmp)
    assert r.returncode == 0, r.stderr
    want, _, _ = read_frames(gif)
    with av.open(str(tmp / "o.mkv")) as c:
        assert c.streams.video[0].codec_context.name == "ffv1"
        got = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(got) == len(want)
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a[..., :3], b)


# ---------------------------------------------------------------- 21.8: predict alpha


def test_predict_pngs_keep_alpha(tmp, gif):
    r = run("predict", str(gif), "pred", "-q", cwd=tmp)
    assert r.returncode == 0, r.stderr
    frames, _, _ = read_frames(gif)
    for t in (1, 2, 3):
        im = Image.open(tmp / "pred" / f"pred_{t:06d}.png")
        assert im.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(im)[..., 3], frames[t][..., 3])


@pytest.mark.parametrize("push", [True, False])
def test_webp_sink_push_encoder_and_public_writer_fallback(push):
    """The push path uses Pillow's libwebp binding as Pillow 11+ does; older Pillows
    take the fallback through the public writer. Both give the exact frames."""
    from fpcodec.codec.sinks import WebpSink

    frames = moving_clip(3, 8, 10, alpha=True)
    buf = io.BytesIO()
    sink = WebpSink(buf, 10, 8, None, True)
    if not push:
        sink._enc = None
    else:
        assert sink._enc is not None  # this Pillow has the push encoder
    for f in frames:
        sink.add(f, 50)
    sink.close()
    im = Image.open(io.BytesIO(buf.getvalue()))
    assert im.n_frames == 3 and im.info.get("loop") == 1  # no loop count: plays once
    for i, want in enumerate(frames):
        im.seek(i)
        assert_same_visible(np.asarray(im.convert("RGBA")), want)
