"""The learned in-loop filter (convlstm-loop): exact, banded = whole-frame, switched
off it is `last`, trainable, refused when its weights are not the named ones."""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fpcodec.codec.errors import FormatError, PredictorUnavailable
from fpcodec.codec.lossy import loop_filter as lfmap
from fpcodec.models.loopfilter import LearnedLoopFilter, LoopFilterNet
from fpcodec.models.train_loopfilter import capture, sample, unrolled_loss
from fpcodec.models.weights import find_predictor, load_predictor, save_weights

import fpcodec

from .conftest import moving_clip, save_gif


def random_filter(seed: int = 0, scale: float = 0.5) -> LoopFilterNet:
    """A filter with a head that corrects something (a trained one's head is not
    zero either), deterministic from the seed."""
    torch.manual_seed(seed)
    net = LoopFilterNet()
    with torch.no_grad():
        net.head2.weight.normal_(0.0, scale)
    return net


@pytest.fixture
def weights(tmp):
    return save_weights(random_filter(1), tmp / "w", {"test": True})


@pytest.fixture
def src(tmp):
    return save_gif(tmp / "in.gif", moving_clip(6, 40, 56, seed=3), durations=50)


def _frames(path: Path, weights: Path | None = None) -> list[np.ndarray]:
    return fpcodec.decode_frames(path, weights=weights)[1]


def test_banded_inference_equals_whole_frame():
    net = random_filter(2)
    whole, banded = LearnedLoopFilter(net), LearnedLoopFilter(random_filter(2), band=6)
    rng = np.random.default_rng(0)
    for _ in range(3):  # the recurrent state must agree too
        planes = rng.integers(-255, 256, (3, 48, 40))
        planes[0] = rng.integers(0, 256, (48, 40))
        act = rng.integers(0, 2, (12, 10))
        a = whole.correction(planes, 37, act)
        b = banded.correction(planes, 37, act)
        np.testing.assert_array_equal(a, b)
        assert np.abs(a).max() > 0  # the comparison is not between two zero frames
        whole.commit()
        banded.commit()


def test_an_all_zero_state_is_not_held_and_reads_as_zeros():
    """After a reset the state is zeros, which the filter does not allocate (192 MiB
    at the size cap) until a frame keeps the correction; what it computes from that
    absence equals what an explicit zero state gives, on both sides."""
    lazy, explicit = (
        LearnedLoopFilter(random_filter(5), band=6),
        LearnedLoopFilter(random_filter(5)),
    )
    rng = np.random.default_rng(2)
    planes = rng.integers(-255, 256, (3, 24, 32))
    planes[0] = rng.integers(0, 256, (24, 32))
    act = rng.integers(0, 2, (6, 8))
    explicit._start(24, 32)
    explicit._state = explicit._zero_state()
    want = explicit.correction(planes, 37, act)
    seen = []
    lazy.weigh(planes, 37, act, lambda corr, y0, y1: seen.append(corr))
    lazy.discard()
    assert lazy._state is None  # weighed, not kept: still nothing held
    got = lazy.correction(planes, 37, act)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.concatenate(seen, axis=1), want)
    assert (want != 0).any()
    lazy.commit()
    explicit.commit()
    for a, b in zip(lazy._state, explicit._state, strict=True):
        assert torch.equal(a, b)
    lazy.reset()
    assert lazy._state is None
    decoder = LearnedLoopFilter(random_filter(5), band=4)  # the in-place step, from nothing
    out = planes.astype(np.int16)
    decoder.filter_in_place(out, 37, act, lambda p, c, y0, y1: p[:, y0:y1].__iadd__(c))
    np.testing.assert_array_equal(out, planes + want)


@pytest.mark.parametrize("band", [2, 6, 12, None])
def test_the_decoders_in_place_step_equals_correct_apply_commit(band):
    """The decoder writes planes and state where they lie, band by band (bands
    narrower than the network's reach included); it must give what the encoder's
    correction, apply_map and commit give, frame after frame, in every map mode."""
    reference, in_place = (
        LearnedLoopFilter(random_filter(4)),
        LearnedLoopFilter(random_filter(4), band=band),
    )
    rng = np.random.default_rng(1)
    hp, wp = 136, 40  # 64-pixel blocks straddle the bands
    for mode in [lfmap.MODE_ALL, *lfmap.BLOCK_SIDE, lfmap.MODE_ALL]:
        planes = rng.integers(-255, 256, (3, hp, wp)).astype(np.int16)
        planes[0] = rng.integers(0, 256, (hp, wp))
        act = rng.integers(0, 2, (hp // 4, wp // 4))
        bits = None
        if mode in lfmap.BLOCK_SIDE:
            bits = rng.integers(0, 2, lfmap.map_shape(hp, wp, lfmap.BLOCK_SIDE[mode])) > 0
        expected = planes.copy()
        corr = reference.correction(expected, 37, act)
        lfmap.apply_map(expected, corr, mode, bits)
        reference.commit()

        def apply(p, c, y0, y1, mode=mode, bits=bits):
            lfmap.apply_map(p[:, y0:y1], c, mode, bits, y0)

        in_place.filter_in_place(planes, 37, act, apply)
        np.testing.assert_array_equal(planes, expected)
        assert (corr != 0).any()
        for a, b in zip(reference._state, in_place._state, strict=True):
            assert torch.equal(a, b)


def test_switched_off_it_reconstructs_exactly_as_last(tmp, src, weights, monkeypatch):
    # palette=False: every frame lossy (a GIF's palette frames carry no filter map)
    fpcodec.encode(src, tmp / "last.fpc", predictor="last", quality=50, palette=False)
    monkeypatch.setattr(lfmap.MapGains, "choose", lambda self, lam: (lfmap.MODE_OFF, None))
    fpcodec.encode(
        src, tmp / "off.fpc", predictor="convlstm-loop", weights=weights, quality=50, palette=False
    )
    for a, b in zip(_frames(tmp / "last.fpc"), _frames(tmp / "off.fpc", weights), strict=True):
        np.testing.assert_array_equal(a, b)
    # what it adds when off: the map's mode byte per frame, and the longer name
    n = len(_frames(tmp / "last.fpc")) + len("convlstm-loop") - len("last")
    assert (tmp / "off.fpc").stat().st_size - (tmp / "last.fpc").stat().st_size == n


def _forced_maps(calls: list[int]):
    """A MapGains.choose that takes every map mode in turn, block maps in a checkerboard
    (a random filter rarely helps, so the encoder's choice is forced)."""

    def forced(self, lam):
        mode = len(calls) % lfmap.N_MODES
        calls.append(mode)
        if mode < 2:
            return mode, None
        nby, nbx = lfmap.map_shape(len(self.rows), self.wp, lfmap.BLOCK_SIDE[mode])
        return mode, (np.add.outer(np.arange(nby), np.arange(nbx)) % 2).astype(bool)

    return forced


def test_filtered_stream_round_trips(tmp, src, weights, monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(lfmap.MapGains, "choose", _forced_maps(calls))
    fpcodec.encode(src, tmp / "a.fpc", predictor="convlstm-loop", weights=weights, quality=30)
    monkeypatch.undo()
    assert set(calls) == set(range(lfmap.N_MODES))
    # the decoder checks every frame's CRC against the encoder's reconstruction
    frames = _frames(tmp / "a.fpc", weights)
    fpcodec.encode(src, tmp / "last.fpc", predictor="last", quality=30)
    assert any((a != b).any() for a, b in zip(frames, _frames(tmp / "last.fpc"), strict=True))


def _with_band(band: int):
    real_init = LearnedLoopFilter.__init__

    def init(self, net, _band=None):
        real_init(self, net, band)

    return init


def test_a_large_frames_second_pass_writes_what_the_kept_correction_does(
    tmp, src, weights, monkeypatch
):
    """Above KEEP_PIXELS the encoder keeps neither the correction nor the new state
    while it chooses the map, and runs the network again to keep them: the same file,
    in every map mode, with bands narrower than the network's reach."""
    import fpcodec.models.loopfilter as lf

    files = []
    for keep_pixels, band in ((lf.KEEP_PIXELS, None), (0, None), (0, 6)):
        calls: list[int] = []
        monkeypatch.setattr(lfmap.MapGains, "choose", _forced_maps(calls))
        monkeypatch.setattr(lf, "KEEP_PIXELS", keep_pixels)
        if band is not None:
            monkeypatch.setattr(lf.LearnedLoopFilter, "__init__", _with_band(band))
        out = tmp / f"k{keep_pixels}-{band}.fpc"
        fpcodec.encode(
            src, out, predictor="convlstm-loop", weights=weights, quality=30, palette=False
        )
        monkeypatch.undo()
        assert set(calls) == set(range(lfmap.N_MODES))
        files.append(out.read_bytes())
        _frames(out, weights)  # every frame's CRC against the encoder's reconstruction
    assert files[0] == files[1] == files[2]


def test_a_stowed_state_codes_and_decodes_as_a_held_one(tmp, src, weights, monkeypatch):
    """Above KEEP_PIXELS the state is held compressed between frames, in chunks
    (here of 700 bytes, so that a tensor spans several): the same file, and the same
    decoded frames, as with the state held whole, in every map mode."""
    import fpcodec.models.loopfilter as lf

    real_stow = lf.LearnedLoopFilter._stow
    stowed: list[bool] = []

    def watching(self):
        real_stow(self)
        stowed.append(self._state is None and self._packed is not None)

    files, decoded = [], []
    for stow in (False, True):
        calls: list[int] = []
        monkeypatch.setattr(lfmap.MapGains, "choose", _forced_maps(calls))
        monkeypatch.setattr(lf, "KEEP_PIXELS", 0)
        monkeypatch.setattr(lf, "PACK_CHUNK", 700)
        monkeypatch.setattr(lf.LearnedLoopFilter, "_stow", watching if stow else lambda self: None)
        out = tmp / f"stow{stow}.fpc"
        fpcodec.encode(
            src, out, predictor="convlstm-loop", weights=weights, quality=30, palette=False
        )
        monkeypatch.setattr(lfmap.MapGains, "choose", lfmap.MapGains.choose)
        decoded.append(_frames(out, weights))  # CRCs against the encoder's reconstructions
        monkeypatch.undo()
        assert set(calls) == set(range(lfmap.N_MODES))
        files.append(out.read_bytes())
    assert files[0] == files[1]
    for a, b in zip(*decoded, strict=True):
        np.testing.assert_array_equal(a, b)
    assert sum(stowed) >= 4  # encoder and decoder both held it compressed


def test_the_maps_sums_do_not_depend_on_the_banding(monkeypatch):
    """However the network's bands cut the frame, and however MapGains.add cuts a band
    (ADD_PIXELS: here whole bands, then three rows at a time)."""
    rng = np.random.default_rng(5)
    hp, wp = 150, 88  # blocks of every side straddle the bands
    tgt = rng.integers(-60, 200, (3, hp, wp)).astype(np.int16)
    recon = (tgt + rng.integers(-6, 7, tgt.shape)).astype(np.int16)
    corr = rng.integers(-4, 5, tgt.shape).astype(np.int8)
    w = np.array([0.5, 0.3, 0.2])
    chosen = []
    for add_pixels, cuts in itertools.product(
        (lfmap.ADD_PIXELS, 3 * wp), ((0, hp), (0, 7, 64, 65, 130, hp), (*range(0, hp, 2), hp))
    ):
        monkeypatch.setattr(lfmap, "ADD_PIXELS", add_pixels)
        gains = lfmap.MapGains(hp, wp, w)
        for y0, y1 in itertools.pairwise(cuts):
            gains.add(tgt[:, y0:y1], recon[:, y0:y1], corr[:, y0:y1], y0)
        chosen.append(gains)
    for side in lfmap.BLOCK_SIDE.values():
        sums = [g._sums(side) for g in chosen]
        assert all(np.array_equal(sums[0], s) for s in sums[1:])
    for lam in (0.0, 0.5, 50.0):
        picks = [g.choose(lam) for g in chosen]
        for mode, bits in picks[1:]:
            assert mode == picks[0][0]
            assert (bits is None) == (picks[0][1] is None)
            if bits is not None:
                assert np.array_equal(bits, picks[0][1])


def test_the_encoder_weighs_the_corrected_frame(tmp, src, weights, monkeypatch):
    """A filter that restores the source exactly must be switched on wherever the
    frame had any error: the map decision compares the corrected frame, not the
    correction, with the source."""
    import fpcodec.codec.lossy.coder as coder
    from fpcodec.models.loopfilter import LearnedLoopFilter

    target = {}
    decisions = []
    real_filter, real_choose = coder._loop_filter, lfmap.MapGains.choose

    def keep_target(enc, tgt, recon, *a, **k):
        target["planes"], target["error"] = tgt, bool((recon != tgt).any())
        return real_filter(enc, tgt, recon, *a, **k)

    def oracle(self, planes, step_y, act):
        return (target["planes"] - planes).astype(np.int16)

    def spy(self, lam):
        got = real_choose(self, lam)
        decisions.append((got[0], target["error"]))
        return got

    monkeypatch.setattr(coder, "_loop_filter", keep_target)
    monkeypatch.setattr(LearnedLoopFilter, "correction", oracle)
    monkeypatch.setattr(lfmap.MapGains, "choose", spy)
    fpcodec.encode(
        src, tmp / "o.fpc", predictor="convlstm-loop", weights=weights, quality=20, palette=False
    )
    assert any(err for _, err in decisions)
    assert all(mode == lfmap.MODE_ALL for mode, err in decisions if err)


def test_filter_map_syntax_is_checked():
    with pytest.raises(FormatError, match="unknown loop filter mode"):
        lfmap.read_map(bytes([lfmap.N_MODES]), 64, 64, "frame 1")
    with pytest.raises(FormatError, match="cut short"):
        lfmap.read_map(bytes([3]), 128, 128, "frame 1")  # 16 bits needed, none given
    bits = np.array([[True, False, True], [False, True, True]])
    data = lfmap.write_map(3, bits)
    mode, got, used = lfmap.read_map(data + b"xyz", 64, 96, "f")
    assert (mode, used) == (3, len(data)) and np.array_equal(got, bits)


def test_map_never_costs_more_than_off():
    rng = np.random.default_rng(1)
    tgt = rng.integers(0, 256, (3, 32, 32))
    recon = tgt + rng.integers(-3, 4, tgt.shape)
    worse = recon + rng.integers(-9, 10, tgt.shape)  # a correction that only harms
    w = np.array([9.0, 1.25, 2.25])

    def choose(corr):
        gains = lfmap.MapGains(32, 32, w)
        gains.add(tgt, recon, corr, 0)
        return gains.choose(1.0)[0]

    assert choose(worse - recon) == lfmap.MODE_OFF
    assert choose(tgt - recon) == lfmap.MODE_ALL


def test_a_few_training_steps_lower_the_loss():
    frames = np.stack(moving_clip(4, 64, 64, seed=7))[..., :3]
    seqs = [capture(frames, 20)]
    torch.manual_seed(0)
    net = LoopFilterNet()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    batch = sample(seqs, 4, 32, 2, np.random.default_rng(0))
    first = float(unrolled_loss(net, *batch, quant=False)[0].detach())
    for _ in range(12):
        loss, _ = unrolled_loss(net, *batch, quant=False)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(unrolled_loss(net, *batch, quant=False)[0].detach()) < first


def test_weights_whose_hash_does_not_match_are_refused(tmp, weights):
    bad = tmp / "bad" / weights.name
    bad.parent.mkdir()
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 1
    bad.write_bytes(bytes(data))
    with pytest.raises(PredictorUnavailable) as e:
        load_predictor("convlstm-loop", bad)
    assert "\n" not in str(e.value) and "hash" in str(e.value)
    digest = hashlib.sha256(weights.read_bytes()).digest()
    assert find_predictor("convlstm-loop", digest, weights).weights_sha256 == digest


def test_the_learned_stage_ships_with_its_weights():
    from fpcodec.models.registry import create_predictor, default_predictor

    p = create_predictor("convlstm-loop")
    assert p.loop_filter is not None and any(p.weights_sha256)
    # the stage is not the default until it codes smaller (bench/RESULTS.md)
    assert default_predictor(50) == "last" and default_predictor(0) == "last"


_DECODE = (
    "import hashlib, sys, torch, fpcodec; torch.set_num_threads(int(sys.argv[3]));"
    "fr = fpcodec.decode_frames(sys.argv[1], weights=sys.argv[2])[1];"
    "print(hashlib.sha256(b''.join(f.tobytes() for f in fr)).hexdigest())"
)


@pytest.mark.parametrize(
    "env",
    [
        {"threads": "1"},
        {"threads": "1", "ATEN_CPU_CAPABILITY": "default"},
        {"threads": "2", "DNNL_MAX_CPU_ISA": "SSE41"},
    ],
    ids=["1-thread", "aten-default", "sse41"],
)
def test_written_with_two_threads_decodes_identically(tmp, src, weights, env):
    torch.set_num_threads(2)
    fpcodec.encode(src, tmp / "a.fpc", predictor="convlstm-loop", weights=weights, quality=30)
    want = hashlib.sha256(b"".join(f.tobytes() for f in _frames(tmp / "a.fpc", weights)))
    extra = {k: v for k, v in env.items() if k != "threads"}
    r = subprocess.run(
        [sys.executable, "-c", _DECODE, str(tmp / "a.fpc"), str(weights), env["threads"]],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_NUM_THREADS": "1", **extra},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == want.hexdigest()


@pytest.mark.parametrize("rows", [(0, 8), (3, 13), (10, 24), (22, 24)])
def test_a_bands_inputs_are_the_whole_frames_rows(rows):
    """The filter builds its inputs band by band (7 bytes a pixel for the whole
    frame); each band's must be exactly those rows of the whole frame's, phase of
    the 4x4 grid and coded-block map included."""
    from fpcodec.models.loopfilter import filter_inputs

    rng = np.random.default_rng(3)
    planes = rng.integers(-255, 256, (3, 24, 40)).astype(np.int16)
    planes[0] = rng.integers(0, 256, (24, 40))
    act = rng.integers(0, 2, (6, 10)).astype(np.uint8)
    whole = filter_inputs(planes, 37, act)
    assert np.array_equal(filter_inputs(planes, 37, act, rows), whole[:, rows[0] : rows[1]])
