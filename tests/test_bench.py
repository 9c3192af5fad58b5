"""The benchmark: end to end on two tiny clips, and numbers checked by hand."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from fpcodec.bench.bdrate import bd_rate
from fpcodec.bench.metrics import perceptual_distance, psnr_from_mse, ssim
from PIL import Image

import fpcodec
from fpcodec.cli import main

from .conftest import moving_clip, palette_clip, save_gif


def test_perceptual_distance_of_known_pairs():
    black = np.zeros((1, 1, 3), np.uint8)
    # red only: r_bar = 5, sqrt((512 + 5) * 10^2 / 256)
    assert perceptual_distance(black, np.array([[[10, 0, 0]]])) == pytest.approx(
        math.sqrt(517 * 100 / 256)
    )
    # green only: sqrt(4 * 3^2) = 6
    assert perceptual_distance(black, np.array([[[0, 3, 0]]])) == pytest.approx(6.0)
    # blue at red level 255 on both sides: r_bar = 255, sqrt((767 - 255) * 4^2 / 256) = sqrt(32)
    a = np.array([[[255, 0, 0]]], np.uint8)
    assert perceptual_distance(a, np.array([[[255, 0, 4]]])) == pytest.approx(math.sqrt(32))
    # the mean over pixels, restricted to the mask
    two_a = np.zeros((1, 2, 3), np.uint8)
    two_b = np.array([[[0, 3, 0], [0, 30, 0]]], np.uint8)
    assert perceptual_distance(two_a, two_b) == pytest.approx(33.0)
    assert perceptual_distance(two_a, two_b, np.array([[True, False]])) == pytest.approx(6.0)
    assert perceptual_distance(two_a, two_a) == 0.0


def test_psnr_and_ssim_of_identical_frames():
    assert psnr_from_mse(0.0) == math.inf
    assert psnr_from_mse(255.0**2) == pytest.approx(0.0)
    f = moving_clip(1, 16, 16)[0][..., :3]
    assert ssim(f, f) == pytest.approx(1.0)


def test_bd_rate_hand_checked():
    q = [30.0, 33.0, 36.0, 39.0]
    rate_a = [1.0, 2.0, 4.0, 8.0]
    # B needs 80% of A's bits at every quality: BD-rate exactly -20%.
    assert bd_rate(rate_a, q, [0.8 * r for r in rate_a], q) == pytest.approx(-20.0)
    # Twice the bits: +100%; the comparison is antisymmetric in the log domain.
    assert bd_rate(rate_a, q, [2 * r for r in rate_a], q) == pytest.approx(100.0)
    # A by hand: log2-rate linear in quality (a doubling per 3 dB). B is A shifted by
    # +1.5 dB, so at equal quality B needs 2^(-1.5/3) = 0.7071 of A's bits: -29.29%.
    qb = [x + 1.5 for x in q]
    assert bd_rate(rate_a, q, rate_a, qb) == pytest.approx((2**-0.5 - 1) * 100, abs=1e-6)
    # Lower-is-better quality (perceptual distance) works the same way.
    pd = [8.0, 6.0, 4.0, 2.0]
    assert bd_rate(rate_a, pd, [0.5 * r for r in rate_a], pd) == pytest.approx(-50.0)
    # No overlap: not a number rather than an extrapolation.
    assert math.isnan(bd_rate(rate_a, q, rate_a, [50.0, 51.0, 52.0, 53.0]))


def _result_row(**fields) -> dict:
    """A benchmark result row as the runner writes one; `fields` override the rest."""
    return {
        "ssim": 1.0,
        "frames": 1,
        "width": 10,
        "height": 10,
        "source_bytes": 1,
        "enc_s": 1.0,
        "dec_s": 1.0,
        **fields,
    }


def test_per_clip_bd_rate_cannot_be_moved_by_shifting_bits_between_clips():
    """Aggregate curves average PD over clips but total the bytes; per clip, a codec
    that needs 0.8x the anchor's bytes on one clip and 2x on another is -20% and
    +100%, whatever the clip sizes, and wins one clip of two."""
    from fpcodec.bench.report import bd_table, per_clip_bd

    pd = [8.0, 6.0, 4.0, 2.0]
    base = [1000, 2000, 4000, 8000]
    rows = []
    for clip, scale, factor in (("a.gif", 1, 0.8), ("b.gif", 50, 2.0)):
        for fam, f in (("x264", 1.0), ("fpcodec lossy (last)", factor)):
            for i, (d, b) in enumerate(zip(pd, base, strict=True)):
                rows.append(
                    _result_row(
                        clip=clip,
                        family=fam,
                        codec=fam,
                        setting=f"s{i}",
                        lossless=False,
                        pd=d,
                        mse=d,
                        bytes=b * scale * f,
                    )
                )
    got = per_clip_bd(rows, "x264", "fpcodec lossy (last)")
    assert got == [pytest.approx(-20.0), pytest.approx(100.0)]
    from fpcodec.bench.report import aggregate

    (row,) = bd_table(aggregate(rows), "last", rows)
    assert row["clips_won"] == 1 and row["clips_compared"] == 2
    assert row["bd_rate_pd_clip_median"] == pytest.approx(40.0)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    corpus = root / "corpus"
    corpus.mkdir()
    save_gif(corpus / "moving.gif", moving_clip(6, 24, 32, seed=1))
    save_gif(corpus / "palette.gif", palette_clip(5, 20, 24, seed=2))
    out = root / "report"
    args = [
        "bench",
        str(corpus),
        "-o",
        str(out),
        "--predictors",
        "last",
        "--max-errors",
        "0,2",
        "--qualities",
        "40,80",
        "--anchors",
        "gif,webp,x264",
        "--jobs",
        "1",
        "--strips",
        "1",
        "-q",
    ]
    assert main(args) == 0
    return corpus, out


def test_bench_writes_json_markdown_and_plots(report):
    _, out = report
    data = json.loads((out / "results.json").read_text())
    md = (out / "report.md").read_text()
    assert data["meta"]["clips"] == 2 and "machine" in data["meta"] and data["meta"]["tools"]
    for section in ("## Lossless", "## Near-lossless and lossy", "## Prediction leaderboard"):
        assert section in md
    pytest.importorskip("matplotlib")
    for name in ("rd_pd.png", "rd_psnr.png"):
        assert (out / name).stat().st_size > 1000
        assert name in md
    assert data["meta"]["strips"] and (out / data["meta"]["strips"][0]).exists()


def test_bench_numbers_follow_from_bytes_and_frames(report, tmp_path):
    corpus, out = report
    data = json.loads((out / "results.json").read_text())
    rows = [r for r in data["results"] if "bytes" in r]
    families = {r["family"] for r in rows}
    assert {"fpcodec lossless (last)", "gif", "webp", "x264"} <= families
    for r in rows:
        assert r["ratio"] == pytest.approx(r["bytes"] / (corpus / r["clip"]).stat().st_size)
    # bytes and bpp against files written here, not against the benchmark's own formula
    for r in (r for r in rows if r["codec"] == "fpcodec"):
        real = tmp_path / "real.fpc"
        fpcodec.encode(corpus / r["clip"], real, force=True, **r["params"])
        with Image.open(corpus / r["clip"]) as im:
            pixels = im.n_frames * im.width * im.height
        assert r["bytes"] == real.stat().st_size, r["setting"]
        assert r["bpp"] == pytest.approx(8 * real.stat().st_size / pixels)
    source = [r for r in rows if r["family"] == "gif"]
    assert all(r["bytes"] == (corpus / r["clip"]).stat().st_size for r in source)
    lossless = [r for r in rows if r["family"] == "fpcodec lossless (last)"]
    assert len(lossless) == 2
    for r in lossless:
        assert r["exact"] and r["pd"] == 0.0 and r["psnr"] == math.inf and r["max_abs_error"] == 0
    near = [r for r in rows if r["family"] == "fpcodec near-lossless (last)"]
    assert near and all(r["max_abs_error"] <= 2 for r in near)
    # the aggregate is the sum over clips, and its ratio is total bytes / total source
    agg = data["aggregate"]["fpcodec lossless (last) | lossless"]
    assert agg["bytes"] == sum(r["bytes"] for r in lossless)
    assert agg["ratio"] == pytest.approx(agg["bytes"] / agg["source_bytes"])
    md = (out / "report.md").read_text()
    assert f"{agg['bytes']:,}" in md
    # lossless PSNR is reported as infinite, not as a made-up number
    assert f"| {agg['bytes']:,} | {agg['ratio']:.3f} | {agg['bpp']:.3f} | yes | inf |" in md
    # the leaderboard's reference row is `last` at ratio 1
    lb = {r["predictor"]: r for r in data["leaderboard"]}
    assert lb["last"]["ratio_to_last"] == pytest.approx(1.0)
    # the per-file table covers both GIFs
    assert {r["clip"] for r in data["per_file"]} == {"moving.gif", "palette.gif"}


def test_bench_resumes_from_its_cache(report, tmp_path):
    import shutil

    corpus, first = report
    out = tmp_path / "again"
    shutil.copytree(first, out)
    # an interrupted run has its cache but no report yet: it resumes without --force
    (out / "results.json").unlink()
    (out / "report.md").unlink()
    cached = sorted((out / "cache").glob("*.json"))
    stamps = [p.stat().st_mtime_ns for p in cached]
    args = ["bench", str(corpus), "-o", str(out), "--predictors", "last", "--max-errors", "0"]
    assert main([*args, "--qualities", "40,80", "--anchors", "gif", "--jobs", "1", "-q"]) == 0
    assert [p.stat().st_mtime_ns for p in cached] == stamps


def test_report_can_be_rebuilt_and_merged_without_rerunning(report, tmp_path):
    corpus, out = report
    data = json.loads((out / "results.json").read_text())
    # a second results file with one anchor re-measured: the later file wins
    extra = json.loads((out / "results.json").read_text())
    webp = [r for r in extra["results"] if r["family"] == "webp"]
    for r in webp:
        r["bytes"] += 1
    extra["results"] = webp
    # and the prediction leaderboard re-measured: replaced, not listed twice
    for r in extra["leaderboard_raw"]:
        r["pd"] += 1.0
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    rebuilt = tmp_path / "rebuilt"
    args = ["bench", str(corpus), "-o", str(rebuilt), "-q", "--report-only"]
    assert main([*args, str(out / "results.json"), str(tmp_path / "extra.json")]) == 0
    new = json.loads((rebuilt / "results.json").read_text())
    assert len(new["results"]) == len(data["results"])
    old_agg, new_agg = data["aggregate"], new["aggregate"]
    assert new_agg["webp | lossless"]["bytes"] == old_agg["webp | lossless"]["bytes"] + 2
    key = "fpcodec lossless (last) | lossless"
    assert new_agg[key]["bytes"] == old_agg[key]["bytes"]
    assert (rebuilt / "report.md").exists() and new["leaderboard"]
    assert len(new["leaderboard_raw"]) == len(data["leaderboard_raw"])
    assert [r["pd"] for r in new["leaderboard_raw"]] == [
        r["pd"] + 1.0 for r in data["leaderboard_raw"]
    ]


def test_playback_speed_compares_decoding_with_the_gifs_own_frame_rate(tmp_path):
    from fpcodec.bench import playback

    corpus = tmp_path / "c"
    corpus.mkdir()
    save_gif(corpus / "a.gif", moving_clip(5, 16, 20, seed=3), durations=100)
    out = tmp_path / "speed.json"
    assert playback.main([str(corpus), "-o", str(out)]) == 0
    data = json.loads(out.read_text())
    (row,) = data["clips"]
    assert row["frames"] == 5 and row["playback_fps"] == pytest.approx(10.0)
    assert row["decode_fps"] == pytest.approx(5 / row["decode_s"])
    assert row["margin"] == pytest.approx(row["decode_fps"] / 10.0)
    assert data["summary"]["realtime"] == int(row["margin"] >= 1)
    # whole processes: start-up included, so slower than the decoder in this process
    assert row["process_decode_s"] > row["decode_s"]
    assert row["process_margin"] == pytest.approx(5 / row["process_decode_s"] / 10.0)
    assert row["encode_margin"] == pytest.approx(5 / row["process_encode_s"] / 10.0)
    assert data["summary"]["worst_process_clip"] == "a.gif"
    assert data["summary"]["process_realtime"] == int(row["process_margin"] >= 1)


def test_tune_compares_each_clip_on_its_own_curve(tmp_path):
    from fpcodec.bench import tune

    rows = []
    for clip, scale in (("a.gif", 1.0), ("b.gif", 3.0)):
        for q, (nbytes, pd) in enumerate([(1000, 20.0), (2000, 14.0), (4000, 9.0), (8000, 6.0)]):
            rows.append({"clip": clip, "quality": q, "bytes": nbytes * scale, "pd": pd})
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"predictor": "last", "rows": rows}))
    # the test run: 10% fewer bytes on a.gif, 25% more on b.gif, same distances
    test_rows = [{**r, "bytes": r["bytes"] * (0.9 if r["clip"] == "a.gif" else 1.25)} for r in rows]
    # the same test rows as a benchmark family in a results.json
    results = tmp_path / "results.json"
    results.write_text(
        json.dumps({"results": [{**r, "family": "fam"} for r in test_rows] + [{"family": "x"}]})
    )
    bd = tune.per_clip(tune.load_curves(str(base)), tune.load_curves(f"{results}:fam"))
    assert abs(bd["a.gif"] + 10.0) < 0.01 and abs(bd["b.gif"] - 25.0) < 0.01
    assert "better on 1 of 2" in tune.summary(bd)


def test_warm_up_runs_every_coding_before_anything_is_timed():
    """The benchmark compiles every kernel before timing; a coding missing from its
    warm-up list would put compilation back into the first task's frames/s."""
    from fpcodec.bench.runner import warm_up
    from fpcodec.codec.container import CODINGS

    assert warm_up() == set(CODINGS.values()) - {"raw"}


def test_cache_keys_follow_the_api_and_the_anchors(monkeypatch, tmp_path):
    """A changed API or anchor must not reuse rows measured with the old one."""
    from fpcodec.bench import anchors, runner

    import fpcodec.api

    base = runner.code_version()
    changed = tmp_path / "api.py"
    changed.write_text(Path(fpcodec.api.__file__).read_text() + "\n# changed\n")
    monkeypatch.setattr(fpcodec.api, "__file__", str(changed))
    assert runner.code_version() != base

    a = runner.anchor_version()
    monkeypatch.setattr(anchors, "tool_versions", lambda: {"gifsicle": "another"})
    b = runner.anchor_version()
    assert a != b
    clip = tmp_path / "c.gif"
    save_gif(clip, moving_clip(2, 8, 8), durations=50)
    (v,) = runner.anchor_variants(["gif"])
    assert runner._task_key(clip, v, a) != runner._task_key(clip, v, b)


def test_merged_rows_keep_the_code_version_they_were_measured_with(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    files = []
    for i, version in enumerate(("aaaa", "bbbb")):
        row = _result_row(
            clip=f"c{i}.gif",
            family="fpcodec lossless (last)",
            codec="fpcodec",
            setting="lossless",
            lossless=True,
            pd=0.0,
            mse=0.0,
            bytes=100,
            source_bytes=200,
        )
        f = tmp_path / f"r{i}.json"
        f.write_text(json.dumps({"meta": {"code_version": version}, "results": [row]}))
        files.append(str(f))
    out = tmp_path / "merged"
    assert main(["bench", str(corpus), "-o", str(out), "-q", "--report-only", *files]) == 0
    rows = json.loads((out / "results.json").read_text())["results"]
    assert {r["clip"]: r["code_version"] for r in rows} == {"c0.gif": "aaaa", "c1.gif": "bbbb"}


def test_report_names_rows_once_and_drops_empty_speed_rows(report):
    """Issue 21.8: "fpcodec lossless (last) (lossless)" and an empty
    "480x270 | 0 | n/a" row (no clip of that size in the run)."""
    _, out = report
    md = (out / "report.md").read_text()
    assert "(lossless) (lossless)" not in md and "(last) (lossless)" not in md
    assert "| fpcodec lossless (last) |" in md
    assert "| 480x270 | 0 |" not in md and "| 128x128 | 2 |" in md
    from fpcodec.bench.report import codec_label

    assert codec_label({"family": "webp", "setting": "lossless"}) == "webp (lossless)"
    assert codec_label({"family": "x264", "setting": "crf 23"}) == "x264 (crf 23)"


def test_prediction_strips_are_captioned(tmp_path):
    from fpcodec.bench.leaderboard import strip_image
    from PIL import Image

    frames = [np.full((30, 40, 3), 255, np.uint8) for _ in range(5)]  # white tiles
    strip_image(frames, 4, {"last": frames[3][..., :3]}, tmp_path / "s.png")
    img = np.asarray(Image.open(tmp_path / "s.png").convert("L"))
    band = 12
    assert img.shape == (2 * (30 + band), 4 * 40)
    for row in (0, 1):
        caption = img[row * (30 + band) : row * (30 + band) + band]
        assert (caption < 128).any(), "a row of tiles without its caption"
    # each of the first row's four tiles is named
    first = img[:band]
    assert all((first[:, j * 40 : (j + 1) * 40] < 128).any() for j in range(4))


@pytest.mark.skipif(
    not (shutil.which("aomenc") and shutil.which("aomdec")),
    reason="aomenc/aomdec not installed (Debian package aom-tools)",
)
def test_av1_444_anchor_writes_decodes_and_keeps_chroma():
    """libaom in 4:4:4: real bytes back through aomdec, every frame, and no chroma
    subsampling (a one-pixel red dot on grey survives in colour, which 4:2:0 smears)."""
    from fpcodec.bench import anchors
    from fpcodec.bench.runner import compare

    frames = []
    for t in range(4):
        f = np.full((32, 48, 4), 128, np.uint8)
        f[..., 3] = 255
        f[10, 10 + t, :3] = (255, 0, 0)
        frames.append(f)
    fine = anchors.aom444(4)(None, frames, [40] * 4)
    coarse = anchors.aom444(50)(None, frames, [40] * 4)
    assert len(fine.frames) == 4 and fine.frames[0].shape == (32, 48, 3)
    assert fine.nbytes > coarse.nbytes > 0
    red = fine.frames[1][10, 11].astype(int)
    assert red[0] - red[1] > 80, red  # still red, not a grey smear
    assert compare(frames, fine.frames)["pd"] < compare(frames, coarse.frames)["pd"]
    assert "av1-444" in anchors.SETTINGS_NOTES and "4:2:0" in anchors.SETTINGS_NOTES["av1"]


def _noisy_gif(path):
    """A small GIF with dither-like noise: something for a lossy GIF coder to remove."""
    from .conftest import palette_clip, save_gif

    return save_gif(path, palette_clip(n=4, h=24, w=32, colours=64, seed=5))


@pytest.mark.skipif(not shutil.which("gifsicle"), reason="gifsicle not installed")
def test_gifsicle_lossy_anchor_keeps_every_frame_and_shrinks(tmp_path):
    from fpcodec.bench import anchors
    from fpcodec.bench.runner import ANCHOR_SETTINGS, compare

    from .conftest import read_frames

    src = _noisy_gif(tmp_path / "s.gif")
    frames, durations, _ = read_frames(src)
    mild = anchors.gifsicle_lossy(20)(src, frames, durations)
    strong = anchors.gifsicle_lossy(200)(src, frames, durations)
    assert len(mild.frames) == len(strong.frames) == len(frames)
    assert strong.nbytes <= mild.nbytes
    assert compare(frames, mild.frames)["pd"] <= compare(frames, strong.frames)["pd"]
    levels = [s for s, _, _ in ANCHOR_SETTINGS["gifsicle-lossy"]]
    assert levels[0] == "lossy=20" and levels[-1] == "lossy=200"


@pytest.mark.skipif(
    not (shutil.which("cjxl") and shutil.which("djxl")),
    reason="cjxl/djxl not installed (Debian package libjxl-tools)",
)
def test_jxl_anchors_decode_back_exactly_when_lossless(tmp_path):
    from fpcodec.bench import anchors

    from .conftest import read_frames

    src = _noisy_gif(tmp_path / "s.gif")
    frames, durations, _ = read_frames(src)
    exact = anchors.jxl(0, effort=3)(src, frames, durations)
    assert len(exact.frames) == len(frames)
    for a, b in zip(frames, exact.frames, strict=True):
        np.testing.assert_array_equal(a[..., :3], b[..., :3])
    lossy = anchors.jxl(2, effort=3)(src, frames, durations)
    assert len(lossy.frames) == len(frames) and lossy.nbytes > 0


def test_gif_lossy_report_front_and_linear_bd_rate():
    from fpcodec.bench.giflossy import bd_linear, pareto

    front = pareto([(100, 0.0), (100, 0.5), (90, 0.2), (120, 1.0), (50, 3.0)])
    assert front == [(100, 0.0), (90, 0.2), (50, 3.0)]
    a = [(200, 0.0), (100, 4.0)]
    assert abs(bd_linear(a, [(100, 0.0), (50, 4.0)]) + 50) < 1e-6  # half the bytes throughout
    assert abs(bd_linear(a, a)) < 1e-9
    assert np.isnan(bd_linear(a, [(10, 5.0), (5, 9.0)]))  # no shared distance


def test_gif_lossy_report_draws_each_clip_from_its_lossless_file(tmp_path):
    """The GIF report's plot and front start at the lossless file (distance 0, bytes
    1) and hold every clip, beside gifsicle --lossy."""
    pytest.importorskip("matplotlib")
    from fpcodec.bench.giflossy import FAMILIES, OURS, markdown, summarise, write_plot

    def row(clip, codec, setting, nbytes, pd, family=None):
        return {"clip": clip, "codec": codec, "family": family or codec, "setting": setting,
                "bytes": nbytes, "pd": pd, "frames": 3, "width": 8, "height": 8,
                "source_bytes": 500, "source_kind": "gif"}  # fmt: skip

    lossless, near, lossy = FAMILIES
    rows = []
    for clip in ("a.gif", "b.gif"):
        rows += [
            row(clip, OURS, "lossless", 300, 0.0, lossless),
            row(clip, OURS, "E=2", 290, 0.4, near),
            row(clip, OURS, "Q=40", 150, 6.0, lossy),
            row(clip, "gifsicle-lossy", "lossy=20", 420, 0.5),
            row(clip, "gifsicle-lossy", "lossy=200", 330, 8.0),
            row(clip, "gif", "source", 500, 0.0),
        ]
    summary = summarise(rows)
    assert [c["clip"] for c in summary["clips"]] == ["a.gif", "b.gif"]
    for c in summary["clips"]:
        assert c["fpcodec_front"][0] == {"bytes": 300, "pd": 0.0}
        assert c["bd_rate_vs_gifsicle_linear"] < 0
    name = write_plot(summary, tmp_path)
    assert name and (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"]({name})" in markdown(summary, "cmd", "abc", name)


def test_lossy_speed_times_whole_processes_against_x264_at_matched_distance(tmp_path):
    from fpcodec.bench import lossy_speed

    try:
        import av

        av.codec.Codec("libx264", "w")
    except Exception:
        pytest.skip("PyAV's FFmpeg has no libx264")
    src = save_gif(tmp_path / "a.gif", moving_clip(4, 24, 32, seed=5), durations=100)
    out, work = tmp_path / "speed.json", tmp_path / "work"
    argv = [
        "run",
        str(src),
        "-o",
        str(out),
        "--quality",
        "40",
        "--runs",
        "1",
        "--workdir",
        str(work),
    ]
    assert lossy_speed.main(argv) == 0
    data = json.loads(out.read_text())
    files = data["files"]
    # every figure is of the file written, decoded again here by its own decoder
    from fpcodec.bench.runner import load_clip

    source = load_clip(src)[0]
    for name, f in (("slow", "fpcodec-pixels-slow"), ("fast", "fpcodec-pixels-fast")):
        assert files[f]["bytes"] == (work / f"{name}.fpc").stat().st_size
        decoded = fpcodec.decode_frames(work / f"{name}.fpc")[1]
        assert files[f]["pd"] > 0
        assert files[f]["pd"] == pytest.approx(lossy_speed.distance(source, decoded))
    # the matched CRF's figures are of the file the search wrote (x264 through PyAV is not
    # byte-exact from run to run under load: the timed file can differ by a few bytes)
    mkv = work / f"crf{data['x264']['crf']}.mkv"
    assert data["x264"]["bytes"] == mkv.stat().st_size
    assert data["x264"]["pd"] == pytest.approx(
        lossy_speed.distance(source, lossy_speed.pyav_frames(mkv))
    )
    assert data["x264"]["veryslow_bytes"] == (work / "x264-veryslow.mkv").stat().st_size
    target = files["fpcodec-pixels-slow"]["pd"]
    tried = {int(c): t["pd"] for c, t in data["x264"]["tried"].items()}
    assert data["x264"]["pd"] == tried[data["x264"]["crf"]]
    assert abs(data["x264"]["pd"] - target) == min(abs(d - target) for d in tried.values())
    runs = data["runs"]
    assert set(runs) == set(data["commands"]) and all(len(r) == 1 for r in runs.values())
    wall = {k: r[0]["wall_s"] for k, r in runs.items()}
    assert data["ratios"]["decode / PyAV decode"] == pytest.approx(
        wall["decode-fpcodec-pixels-slow"] / wall["decode-x264-veryslow"]
    )
    assert data["ratios"]["encode fast / x264 medium"] == pytest.approx(
        wall["fpcodec-pixels-fast"] / wall["x264-medium"]
    )


@pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc/self/clear_refs"
)
def test_phase_peaks_catch_a_peak_that_falls_between_samples():
    from fpcodec.bench.phase_peaks import PhasePeaks

    pp = PhasePeaks()

    def burst() -> None:  # 200 MiB touched and given back within the phase
        a = np.ones(200 << 20, np.uint8)
        del a

    def outer() -> None:
        pp.wrap("burst", burst)()
        pp.wrap("quiet", lambda: None)()

    pp.wrap("outer", outer)()
    assert pp.peaks["outer/burst"] >= pp.peaks["outer/quiet"] + 150
    assert pp.peaks["outer"] >= pp.peaks["outer/burst"]  # carried up to the caller


@pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc/self/clear_refs"
)
def test_phase_peaks_of_a_lossy_gif_encode_name_the_coder_s_stages(tmp_path):
    import subprocess
    import sys

    src = save_gif(tmp_path / "a.gif", moving_clip(3, 24, 32, seed=4), durations=100)
    out = tmp_path / "peaks.json"
    argv = ["-m", "fpcodec.bench.phase_peaks", str(src), str(tmp_path / "a.fpc"), "-o", str(out)]
    subprocess.run([sys.executable, *argv], check=True, capture_output=True, timeout=300)
    peaks = json.loads(out.read_text())
    # every frame, and the lossy trial's coding pass of a predicted frame, by name
    assert {"encode/frame1", "encode/frame2", "encode/frame3"} <= set(peaks)
    assert "encode/frame2/pixel trial/_pixel_frame/encode_lossy/_run/code_frame" in peaks
    for path, peak in peaks.items():  # no phase above its caller
        if "/" in path:
            assert peak <= peaks[path.rsplit("/", 1)[0]], path
    assert (tmp_path / "a.fpc").stat().st_size > 0


def test_gif_phrases_measures_the_room_a_gifs_phrases_leave(tmp):
    """bench/gif_phrases.py on a dithered GIF with grey levels 4 apart: every frame
    re-parses into its own stream, nothing moves within ±1, and within ±4 phrases
    go on through substitutes, in fewer codes."""
    from fpcodec.bench.gif_phrases import main

    from .test_gif_lossy import dithered_gif

    clip = tmp / "dithered.gif"
    clip.write_bytes(dithered_gif(n=3, h=48, w=64))
    out = tmp / "phrases.json"
    assert main([str(clip), "-o", str(out), "--frames", "3", "--errors", "1,4"]) == 0
    (row,) = json.loads(out.read_text())["clips"]
    assert row["frames"] == 3 and row["reparse_identical"] == 3
    assert row["E1"]["extended"] == 0 and row["E1"]["codes_extended"] == 1
    assert row["E4"]["movable"] > 0.5
    assert row["E4"]["extended"] > 0 and row["E4"]["codes_extended"] < 1


def test_near_lossless_check_decodes_and_bounds_every_pixel(tmp):
    """bench/near_lossless_check.py: both files of a dithered GIF written by the CLI,
    decoded, the lossless one exact and the other within its bound; and the measure
    it takes (runner.compare) sees an error on a visible pixel and none on a
    transparent one."""
    from fpcodec.bench.near_lossless_check import main
    from fpcodec.bench.runner import compare

    from .test_gif_lossy import dithered_gif

    clip = tmp / "dithered.gif"
    clip.write_bytes(dithered_gif(n=3, h=24, w=32))
    out = tmp / "check.json"
    assert main([str(clip), "-o", str(out), "--max-error", "4", "--jobs", "1"]) == 0
    res = json.loads(out.read_text())
    assert res["every_bound_held"] and res["every_lossless_exact"]
    (row,) = res["clips"]
    assert row["max_error_4_bytes"] <= row["lossless_bytes"]
    assert row["max_error_4_worst_channel_error"] <= 4
    a = np.zeros((16, 16, 4), np.uint8)
    a[0, 0, 3] = 255
    b = a.copy()
    b[1, 1, :3] = 200  # transparent in the source: any colour
    assert compare([a], [b])["max_abs_error"] == 0
    b[0, 0, 1] = 3
    assert compare([a], [b])["max_abs_error"] == 3
