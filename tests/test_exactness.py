"""Bit-exact prediction: across threads, batch sizes, processes, and old files."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fpcodec.models.intnet import exact_inference
from fpcodec.models.learned import LearnedPredictor
from fpcodec.models.weights import save_weights
from fpcodec.models.zoo import ARCHITECTURES

import fpcodec

from .conftest import moving_clip, save_gif
from .test_predictors import clip, random_net

GOLDEN = Path(__file__).parent / "golden"


def _predictions(net, frames):
    p = LearnedPredictor(net, bytes(32))
    p.reset(*frames[0].shape[:2])
    out = []
    for f in frames:
        p.observe(f)
        out.append(p.predict().rgb.copy())
    return out


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_identical_across_thread_counts(name):
    frames = clip(5, 33, 47)
    net = random_net(name, seed=1)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _predictions(net, frames)
        torch.set_num_threads(max(2, old))
        many = _predictions(net, frames)
    finally:
        torch.set_num_threads(old)
    for a, b in zip(one, many, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_identical_across_batch_sizes_and_conv_paths(name):
    net = random_net(name, seed=2).eval()
    clips = [np.stack(clip(4, 24, 32, seed=s)) for s in range(3)]
    x = torch.from_numpy(np.stack(clips)).permute(0, 1, 4, 2, 3).float() - 128.0  # (3, T, 3, H, W)
    outs = {}
    for fast in (True, False):
        for batch in (1, 3):
            with exact_inference(fast):
                res = []
                for i in range(0, 3, batch):
                    xb = x[i : i + batch]
                    state = net.init_state(xb.shape[0], 24, 32, xb.device)
                    deltas = []
                    for t in range(xb.shape[1]):
                        d, _, state = net.step(xb[:, t], state, quant=True)
                        deltas.append(d)
                    res.append(torch.stack(deltas, 1))
                outs[(fast, batch)] = torch.cat(res)
    ref = outs[(False, 1)]
    assert torch.equal(ref, torch.round(ref))  # integers
    for k, v in outs.items():
        assert torch.equal(v, ref), k


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_identical_on_cpu_and_cuda(name):
    # The shipped convlstm was checked this way on an H100 (see bench/RESULTS.md);
    # kept here so any machine with a GPU re-proves it.
    frames = clip(5, 33, 47)
    net = random_net(name, seed=3)
    cpu = _predictions(net, frames)
    p = LearnedPredictor(random_net(name, seed=3), bytes(32), device="cuda")
    p.reset(33, 47)
    for f, want in zip(frames, cpu, strict=True):
        p.observe(f)
        np.testing.assert_array_equal(p.predict().rgb, want)


def test_float32_conv_equals_int64_reference_at_the_bound():
    # Worst case for exactness: inputs and weights at their extremes, many terms.
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-128, 129, (1, 48, 12, 12), generator=g).double()
    w = torch.randint(-127, 128, (96, 48, 3, 3), generator=g).double()
    x[0, :, 5, 5] = 128
    w[0] = 127
    ref = torch.nn.functional.conv2d(x.long().double(), w, padding=1)  # float64: exact here
    assert ref.abs().max() < 2**24
    for fast in (True, False):
        with exact_inference(fast):
            got = torch.nn.functional.conv2d(x.float(), w.float(), padding=1)
        assert torch.equal(got.double(), ref)


def test_encoded_with_two_threads_decodes_exactly_in_a_one_thread_process(tmp):
    net = random_net("convlstm", seed=4)
    wpath = save_weights(net, tmp / "w", {})
    src = save_gif(tmp / "in.gif", moving_clip(6, 26, 34, seed=5), durations=40)
    torch.set_num_threads(2)
    fpcodec.encode(
        src, tmp / "a.fpc", predictor="convlstm", weights=wpath, palette=False, max_error=2
    )
    _, frames, _ = fpcodec.decode_frames(tmp / "a.fpc", weights=wpath)
    digest = hashlib.sha256(b"".join(f.tobytes() for f in frames)).hexdigest()
    code = (
        "import torch, hashlib, fpcodec, sys; torch.set_num_threads(1);"
        f"_, fr, _ = fpcodec.decode_frames(r'{tmp / 'a.fpc'}', weights=r'{wpath}');"
        "print(hashlib.sha256(b''.join(f.tobytes() for f in fr)).hexdigest())"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == digest


@pytest.mark.parametrize("meta_file", sorted(p.name for p in GOLDEN.glob("*.json")))
def test_golden_file_decodes_to_committed_hashes(meta_file):
    """Committed files from earlier encoders keep decoding to the same pixels."""
    meta = json.loads((GOLDEN / meta_file).read_text())
    _, frames, durations = fpcodec.decode_frames(GOLDEN / meta["file"])
    assert durations == meta["durations"]
    assert [hashlib.sha256(f.tobytes()).hexdigest() for f in frames] == meta["frames"]


@pytest.mark.parametrize("max_error", [0, 2])
def test_a_prediction_one_level_off_stops_the_decoder_at_that_frame(tmp, monkeypatch, max_error):
    """What a non-exact predictor would do to a closed loop: one value off by one in
    frame 3's prediction. The decoder must refuse frame 3 by index, not carry on."""
    from fpcodec.codec import decoder as decoder_mod
    from fpcodec.codec.errors import DivergenceError
    from fpcodec.models.last import LastFramePredictor
    from fpcodec.models.predictor import Prediction

    class Drifting(LastFramePredictor):
        def __init__(self) -> None:
            super().__init__()
            self.seen = 0

        def observe(self, frame):
            super().observe(frame)
            self.seen += 1

        def predict(self):
            rgb = self._last.copy()
            if self.seen == 3:  # the prediction of frame 3
                rgb[0, 0, 1] ^= 1
            return Prediction(rgb)

    src = save_gif(tmp / "in.gif", moving_clip(6, 20, 24, seed=9), durations=40)
    out = tmp / "a.fpc"
    fpcodec.encode(src, out, palette=False, max_error=max_error, keyframe_interval=0)
    monkeypatch.setattr(decoder_mod, "predictor_for_stream", lambda *a: Drifting())
    got = []
    with open(out, "rb") as fh, pytest.raises(DivergenceError) as e:
        for f in decoder_mod.Decoder(fh):
            got.append(f.index)
    assert e.value.frame_index == 3 and got == [0, 1, 2]
    assert "frame 3" in str(e.value)
