"""The predictor family: shapes, state, training, weight files."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from fpcodec.codec.errors import FpcError, PredictorUnavailable
from fpcodec.models.intnet import check_bounds
from fpcodec.models.learned import LearnedPredictor
from fpcodec.models.registry import available_predictors, create_predictor
from fpcodec.models.train import TrainConfig, pixel_loss, rate_loss, train, unroll
from fpcodec.models.weights import load_net, load_predictor, save_weights
from fpcodec.models.zoo import ARCHITECTURES, build

from .conftest import moving_clip, moving_corpus

ARCHS = sorted(ARCHITECTURES)


def random_net(name: str, seed: int = 0):
    torch.manual_seed(seed)
    net = build(name)
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.08)
    return net


def clip(n=7, h=21, w=30, seed=0):
    return [f[..., :3].copy() for f in moving_clip(n, h, w, seed=seed)]


def test_registry_lists_the_family():
    assert {"last", "convlstm", "convlstm-ae", "cnn2d", "hybrid3d"} <= set(available_predictors())


@pytest.mark.parametrize("name", ARCHS)
def test_shapes_odd_sizes_and_first_frames(name):
    pred = LearnedPredictor(random_net(name), bytes(32))
    for h, w in ((1, 1), (5, 9), (21, 30)):
        pred.reset(h, w)
        frames = clip(3, h, w)
        for f in frames:  # fewer frames than any model's window
            pred.observe(f)
            p = pred.predict()
            assert p.rgb.shape == (h, w, 3) and p.rgb.dtype == np.uint8
            assert p.spread.shape == (h, w) and p.spread.max() <= 3


@pytest.mark.parametrize("name", ARCHS)
def test_reset_forgets_history(name):
    frames = clip(6)
    a = LearnedPredictor(random_net(name), bytes(32))
    a.reset(21, 30)
    for f in frames[:4]:
        a.observe(f)
    a.reset(21, 30)  # a keyframe
    for f in frames[4:]:
        a.observe(f)
    b = LearnedPredictor(random_net(name), bytes(32))
    b.reset(21, 30)
    for f in frames[4:]:
        b.observe(f)
    np.testing.assert_array_equal(a.predict().rgb, b.predict().rgb)


def test_untrained_zero_head_is_the_last_frame():
    pred = LearnedPredictor(build("convlstm"), bytes(32))
    frames = clip(4)
    pred.reset(21, 30)
    for f in frames:
        pred.observe(f)
    np.testing.assert_array_equal(pred.predict().rgb, frames[-1])


@pytest.mark.parametrize("loss", ["pd", "rate"])
def test_a_few_training_steps_lower_the_loss(loss):
    torch.manual_seed(0)
    net = build("convlstm", {"hidden": 8, "head": 8})
    frames = torch.from_numpy(
        np.stack([np.stack(clip(6, 16, 16, seed=s)).transpose(0, 3, 1, 2) for s in range(4)])
    ).float()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)

    def objective():
        preds, spreads = unroll(net, frames, quant=False)
        if loss == "rate":
            return sum(
                rate_loss(p, frames[:, k + 1], s)
                for k, (p, s) in enumerate(zip(preds, spreads, strict=True))
            )
        return sum(pixel_loss(loss, p, frames[:, k + 1]) for k, p in enumerate(preds))

    before = float(objective().detach())
    for _ in range(40):
        opt.zero_grad()
        objective().backward()
        opt.step()
    assert float(objective().detach()) < 0.9 * before


def test_train_command_saves_hash_named_weights_card_and_resumes(tmp):
    corpus = moving_corpus(tmp / "corpus", 3, 8, 24, 24)
    cfg = TrainConfig(
        corpus=str(corpus),
        out=str(tmp / "w"),
        model="cnn2d",
        epochs=1,
        steps_per_epoch=3,
        batch=2,
        crop=16,
        val_windows=4,
        threads=1,
    )
    path = train(cfg, progress=False)
    assert path.exists() and path.with_suffix(".json").exists()
    card = __import__("json").loads(path.with_suffix(".json").read_text())
    assert (
        card["sha256"].startswith(path.stem.split("-")[-1])
        and "val_pd" in card["validation"]
        and "last_pd" in card["validation"]
    )
    cfg.epochs = 2
    path2 = train(cfg, progress=False)  # resumes from the checkpoint: one more epoch
    card2 = __import__("json").loads(path2.with_suffix(".json").read_text())
    assert card2["steps"] == 6 and len(card2["history"]) == 2


def test_train_builds_the_architecture_config_asked_for_and_saves_it(tmp):
    corpus = moving_corpus(tmp / "corpus", 2, 8, 16, 16)
    cfg = TrainConfig(
        corpus=str(corpus),
        out=str(tmp / "w"),
        model="convlstm",
        epochs=1,
        steps_per_epoch=1,
        batch=1,
        crop=16,
        val_windows=2,
        threads=1,
        arch_config={"hidden": 8, "head": 4},
    )
    path = train(cfg, progress=False)
    net, _ = load_net(path)
    assert (net.hidden, net.head_ch) == (8, 4)
    assert net.cell.gates.weight.shape[0] == 4 * 8


@pytest.mark.parametrize(
    "config, message",
    [({"hiden": 8}, "no setting 'hiden'"), ({"hidden": 0}, "integer in 1..256")],
)
def test_train_refuses_an_architecture_config_it_cannot_build(tmp, config, message):
    corpus = moving_corpus(tmp / "corpus", 1, 4, 16, 16)
    cfg = TrainConfig(corpus=str(corpus), out=str(tmp / "w"), arch_config=config)
    with pytest.raises(FpcError, match=message):
        train(cfg, progress=False)


def test_train_command_reports_bad_arch_config_json_in_one_line(tmp, capsys):
    from fpcodec.cli import main

    (tmp / "corpus").mkdir()
    rc = main(["train", str(tmp / "corpus"), "-o", str(tmp / "w"), "--arch-config", "{hidden"])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and "--arch-config is not JSON" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("name", ARCHS)
def test_saved_and_reloaded_model_predicts_identically(tmp, name):
    net = random_net(name, seed=3)
    path = save_weights(net, tmp, {"note": "test"})
    a = LearnedPredictor(net, bytes(32))
    b = load_predictor(name, path)
    frames = clip(5)
    for p in (a, b):
        p.reset(21, 30)
        for f in frames:
            p.observe(f)
    np.testing.assert_array_equal(a.predict().rgb, b.predict().rgb)
    np.testing.assert_array_equal(a.predict().spread, b.predict().spread)


def test_weight_file_with_wrong_hash_is_refused(tmp):
    path = save_weights(random_net("convlstm"), tmp, {})
    forged = tmp / ("convlstm-" + "0" * 16 + ".pt")
    shutil.copy(path, forged)
    with pytest.raises(PredictorUnavailable, match="do not match the hash"):
        load_net(forged)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(PredictorUnavailable):
        load_net(path)


def test_weight_file_with_a_huge_or_unknown_size_is_refused_before_building(tmp):
    # A file can be named after its own hash, so the hash check alone does not keep a
    # crafted config (a network of millions of channels) from being allocated.
    for config in ({"hidden": 10**6, "head": 16}, {"depth": 3}):
        net = random_net("convlstm")
        net.config = lambda config=config: config
        path = save_weights(net, tmp, {})
        with pytest.raises(PredictorUnavailable, match="not a usable fpcodec weight file"):
            load_net(path)


def test_weights_beyond_the_exactness_bound_are_refused():
    from fpcodec.models.intnet import QConv

    ok = QConv(48, 8, 3)  # 432 terms of at most 127 * 128: provably below 2^24
    with torch.no_grad():
        ok.weight.fill_(0.5)
    assert check_bounds(ok, 128.0) < 2**24
    wide = QConv(128, 8, 3)  # 1152 terms at the int8 limit reach 1.9e7 > 2^24
    with torch.no_grad():
        wide.weight.fill_(127 / 128)  # quantises to 127 everywhere
    with pytest.raises(ValueError, match="2\\^24"):
        check_bounds(wide, 128.0)


def test_create_predictor_without_installed_weights_names_the_fix(monkeypatch):
    import fpcodec.models.weights as W

    monkeypatch.setattr(W, "_default_files", lambda: {})
    with pytest.raises(PredictorUnavailable, match="fpcodec train"):
        create_predictor("hybrid3d")


def test_training_runs_under_torchrun_with_two_processes(tmp):
    """The documented multi-GPU command, on CPU: torchrun, gloo, DistributedDataParallel."""
    import subprocess
    import sys

    corpus = moving_corpus(tmp / "corpus", 3, 8, 24, 24)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "fpcodec.cli",
        "train",
        str(corpus),
        "-o",
        str(tmp / "w"),
        "--model",
        "cnn2d",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "--batch",
        "2",
        "--crop",
        "16",
        "--val-windows",
        "2",
        "--threads",
        "1",
        "-q",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(list((tmp / "w").glob("cnn2d-*.pt"))) == 1


def test_float_reference_path_is_named_apart_and_close_to_the_integer_path():
    """The benchmark's float network: a distinct identity (its files can never pass for
    integer-path files) and predictions within a few levels of the integer network."""
    ints = create_predictor("convlstm")
    flts = create_predictor("convlstm+float")
    assert flts.name == "convlstm+float" and ints.name == "convlstm"
    assert flts.weights_sha256 == ints.weights_sha256
    frames = clip(6, 20, 28, seed=3)
    for p in (ints, flts):
        p.reset(20, 28)
    diffs = []
    for f in frames:
        ints.observe(f)
        flts.observe(f)
        a = ints.predict().rgb.astype(int)
        b = flts.predict().rgb.astype(int)
        diffs.append(np.abs(a - b).mean())
    assert max(diffs) < 2.0
