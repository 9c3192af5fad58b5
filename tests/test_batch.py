"""`fpcodec batch`: the manifest, resume, bad inputs, dead workers and Ctrl-C, on both
engines (worker processes here, and a local two-CPU Ray cluster), and outputs
identical to single-file `encode`."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fpcodec
from fpcodec import batch
from fpcodec.cli import main

from .conftest import moving_clip, save_gif

GOOD = ["a.gif", "sub/b.gif", "sub/c.gif", "sub/deeper/d.gif", "e.gif"]
CORRUPT = "sub/broken.gif"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def records(manifest: Path) -> list[dict]:
    return [json.loads(line) for line in manifest.read_text().splitlines()]


def make_tree(root: Path, names: list[str] = GOOD, corrupt: bool = True) -> Path:
    for i, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        save_gif(root / name, moving_clip(6, 21 + i, 27, seed=i, alpha=i % 2 == 1))
    if corrupt:  # a GIF cut short: header and palette there, frames gone
        whole = (root / names[0]).read_bytes()
        (root / CORRUPT).parent.mkdir(parents=True, exist_ok=True)
        (root / CORRUPT).write_bytes(whole[:40])
    (root / "notes.txt").write_text("not media: left alone\n")
    return root


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray cluster of two CPUs for this module's Ray tests (loopback only,
    no dashboard, a small object store); its address, for drivers in subprocesses."""
    import ray

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=200 * 2**20,
        logging_level="warning",
    )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module", params=["local", "ray"])
def engine(request):
    if request.param == "local":
        return {"engine": "local", "address": None}
    return {"engine": "ray", "address": request.getfixturevalue("ray_cluster")}


def run(src: Path, dst: Path, engine: dict, **kw) -> batch.Summary:
    return batch.run_batch(src, dst, jobs=2, engine=engine["engine"], say=lambda m: None, **kw)


def test_manifest_is_exact_and_outputs_match_single_file_encode(tmp_path, engine):
    src = make_tree(tmp_path / "src")
    dst = tmp_path / "dst"
    s = run(src, dst, engine)
    assert (s.files, s.ok, s.skipped, s.failed) == (6, 5, 0, 1)
    recs = records(dst / batch.MANIFEST_NAME)
    by = {r["source"]: r for r in recs}
    assert len(recs) == 6 and set(by) == {*GOOD, CORRUPT}
    for name in GOOD:
        r, out = by[name], dst / (name + ".fpc")
        assert r["status"] == "ok" and r["error"] is None and r["verified"] is True
        assert r["source_bytes"] == (src / name).stat().st_size
        assert r["source_sha256"] == sha(src / name)
        assert r["output"] == name + ".fpc"
        assert r["output_bytes"] == out.stat().st_size
        assert r["output_sha256"] == sha(out)
        assert r["ratio"] == pytest.approx(r["output_bytes"] / r["source_bytes"])
        assert r["frames"] == 6 and r["max_abs_error"] == 0
        assert r["encode_s"] > 0 and r["verify_s"] > 0 and r["cpu_s"] > 0
        # byte-identical to the one-file command with the same (default) options
        single = tmp_path / "single.fpc"
        assert main(["encode", str(src / name), str(single), "-q", "-f"]) == 0
        assert out.read_bytes() == single.read_bytes(), name
    bad = by[CORRUPT]
    assert bad["status"] == "failed" and bad["error"] and "\n" not in bad["error"]
    assert bad["source_bytes"] == 40 and bad["source_sha256"] == sha(src / CORRUPT)
    assert bad["output_bytes"] is None and not (dst / (CORRUPT + ".fpc")).exists()
    left = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file())
    assert left == sorted([batch.MANIFEST_NAME] + [n + ".fpc" for n in GOOD])  # no temporaries
    assert s.source_bytes == sum(by[n]["source_bytes"] for n in GOOD)
    assert s.output_bytes == sum(by[n]["output_bytes"] for n in GOOD)


def test_rerun_skips_what_is_done_and_redoes_what_changed(tmp_path, engine):
    src = make_tree(tmp_path / "src", GOOD[:4], corrupt=False)
    dst = tmp_path / "dst"
    manifest = dst / batch.MANIFEST_NAME
    assert run(src, dst, engine).ok == 4
    first = manifest.read_text()
    s = run(src, dst, engine)
    assert (s.ok, s.skipped, s.failed) == (0, 4, 0)
    assert manifest.read_text() == first  # skipped files add nothing
    # a changed source, a deleted output and an output altered at the same size
    save_gif(src / GOOD[0], moving_clip(6, 21, 27, seed=99))
    (dst / (GOOD[1] + ".fpc")).unlink()
    out2 = dst / (GOOD[2] + ".fpc")
    blob = bytearray(out2.read_bytes())
    blob[-1] ^= 1
    out2.write_bytes(bytes(blob))
    untouched = (dst / (GOOD[3] + ".fpc")).stat().st_mtime_ns
    s = run(src, dst, engine)
    assert (s.ok, s.skipped, s.failed) == (3, 1, 0)
    assert (dst / (GOOD[3] + ".fpc")).stat().st_mtime_ns == untouched
    last = batch.read_manifest(manifest)
    for name in GOOD[:4]:
        assert last[name]["status"] == "ok"
        assert last[name]["source_sha256"] == sha(src / name)
        assert last[name]["output_sha256"] == sha(dst / (name + ".fpc"))
    # other options are another result: nothing is skipped
    s = run(src, dst, engine, options=batch.Options(entropy="zstd"))
    assert (s.ok, s.skipped) == (4, 0)


def test_a_worker_killed_mid_file_loses_nothing(tmp_path, engine, monkeypatch):
    src = make_tree(tmp_path / "src", GOOD[:3], corrupt=False)
    dst = tmp_path / "dst"
    marker = tmp_path / "died"
    victim = GOOD[1]
    monkeypatch.setenv(batch.CRASH_ONCE_ENV, f"{victim}|{marker}")
    s = run(src, dst, engine)
    # the first attempt really died in a worker process, not in this one
    assert marker.exists() and int(marker.read_text()) != os.getpid()
    assert (s.ok, s.failed) == (3, 0)
    rec = batch.read_manifest(dst / batch.MANIFEST_NAME)[victim]
    assert rec["status"] == "ok" and rec["verified"] and rec["max_abs_error"] == 0
    out = dst / (victim + ".fpc")
    assert rec["output_sha256"] == sha(out)
    _, frames, _ = fpcodec.decode_frames(out)
    assert len(frames) == 6


def _wait_for_lines(path: Path, n: int, proc: subprocess.Popen, timeout: float = 240) -> None:
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        if path.exists() and path.read_text().count("\n") >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"batch exited early: {proc.returncode} {proc.stderr.read()}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("no file finished in time")


def test_sigint_then_rerun_keeps_what_finished_and_completes_the_rest(tmp_path, engine):
    names = [f"clip{i:02d}.gif" for i in range(10)]
    src = make_tree(tmp_path / "src", names, corrupt=False)
    dst = tmp_path / "dst"
    manifest = dst / batch.MANIFEST_NAME
    cmd = [sys.executable, "-m", "fpcodec.cli", "batch", str(src), str(dst), "-j", "1"]
    if engine["engine"] == "ray":
        cmd += ["--engine", "ray", "--address", engine["address"]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    _wait_for_lines(manifest, 1, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    done = records(manifest)
    assert 1 <= len(done) < len(names), "the run finished before it could be interrupted"
    assert all(r["status"] == "ok" for r in done)
    mtimes = {r["source"]: (dst / r["output"]).stat().st_mtime_ns for r in done}
    assert not [p for p in dst.rglob("*.part")]  # nothing half-written left behind

    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"{len(names) - len(done)} encoded, {len(done)} skipped, 0 failed" in r.stderr
    final = records(manifest)
    assert sorted(x["source"] for x in final) == names  # each file recorded exactly once
    assert all(x["status"] == "ok" for x in final)
    for x in final:
        assert sha(dst / x["output"]) == x["output_sha256"]
    for name, m in mtimes.items():
        assert (dst / (name + ".fpc")).stat().st_mtime_ns == m  # not redone


# -- engine-independent parts -------------------------------------------------------


def _task(src: Path, dst: Path, rel: str, **opts) -> batch.Task:
    return batch.Task(str(src / rel), str(dst / (rel + ".fpc")), rel, batch.Options(**opts))


def test_verification_bounds_by_mode(tmp_path):
    src = make_tree(tmp_path / "src", GOOD[:2], corrupt=False)
    dst = tmp_path / "dst"
    near = batch.process(_task(src, dst, GOOD[0], max_error=3))
    assert near["status"] == "ok" and 0 < near["max_abs_error"] <= 3 and near["distance"] is None
    lossy = batch.process(_task(src, dst, GOOD[1], quality=30))
    assert lossy["status"] == "ok" and lossy["verified"] and lossy["distance"] > 0
    # a file that decodes to something else fails verification, with the frame named
    with pytest.raises(batch.VerifyError, match="frame 0"):
        batch.verify_output(src / GOOD[0], dst / (GOOD[0] + ".fpc"), batch.Options())


def test_a_file_failing_verification_is_not_published(tmp_path, monkeypatch):
    src = make_tree(tmp_path / "src", GOOD[:1], corrupt=False)
    dst = tmp_path / "dst"

    def wrong(*a):
        raise batch.VerifyError("verify: frame 2 is 9 off the source (allowed 0)")

    monkeypatch.setattr(batch, "verify_output", wrong)
    rec = batch.process(_task(src, dst, GOOD[0]))
    assert rec["status"] == "failed" and rec["error"].startswith("verify: frame 2")
    assert list(dst.rglob("*")) == []  # neither the output nor a temporary


def test_torn_manifest_line_is_ignored_and_not_glued_to(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"source": "a.gif", "status": "ok"}) + '\n{"source": "b.g')
    assert set(batch.read_manifest(m)) == {"a.gif"}
    w = batch.ManifestWriter(m)
    w.write({"source": "c.gif", "status": "failed"})
    w.close()
    assert set(batch.read_manifest(m)) == {"a.gif", "c.gif"}


def test_walk_mirrors_media_only_and_skips_the_destination_inside_the_source(tmp_path):
    src = make_tree(tmp_path / "src", GOOD[:2])
    (src / "out").mkdir()
    save_gif(src / "out" / "old.gif", moving_clip(2, 8, 8))
    assert batch.walk(src, exclude=src / "out") == sorted([*GOOD[:2], CORRUPT])


def test_cli_exit_codes_and_one_line_errors(tmp_path, capsys):
    src = make_tree(tmp_path / "src", GOOD[:1])
    assert main(["batch", str(src), str(tmp_path / "d1"), "-j", "1"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert [e for e in err if e.startswith("fpcodec: error: ")] == [
        e for e in err if CORRUPT in e
    ] and len(err) == 2
    assert err[-1].startswith("batch: 2/2 files: 1 encoded, 0 skipped, 1 failed")
    (src / CORRUPT).unlink()
    assert main(["batch", str(src), str(tmp_path / "d2"), "-j", "1", "-q"]) == 0
    assert capsys.readouterr().err == ""
    for bad in (["--quality", "50", "--max-error", "2"], ["--jobs", "0"], ["--address", "x:1"]):
        with pytest.raises(SystemExit) as e:
            main(["batch", str(src), str(tmp_path / "d3"), *bad])
        assert e.value.code == 2
    assert main(["batch", str(tmp_path / "nope"), str(tmp_path / "d4")]) == 1


def test_only_the_ray_engine_imports_ray(tmp_path):
    gif = save_gif(tmp_path / "x.gif", moving_clip(3, 8, 8))
    (tmp_path / "t").mkdir()
    save_gif(tmp_path / "t" / "y.gif", moving_clip(3, 8, 8))
    code = f"""
import contextlib, io, sys
from fpcodec.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    main(["--help"])
main(["encode", {str(gif)!r}, {str(tmp_path / "x.fpc")!r}, "-q"])
main(["decode", {str(tmp_path / "x.fpc")!r}, {str(tmp_path / "x2.gif")!r}, "-q"])
main(["batch", {str(tmp_path / "t")!r}, {str(tmp_path / "o")!r}, "-q", "-j", "1"])
print(sorted(m for m in sys.modules if m == "ray" or m.startswith("ray.")))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
    assert (tmp_path / "o" / "y.gif.fpc").exists()


def test_bench_tasks_run_on_ray_with_the_same_results(tmp_path, ray_cluster):
    from fpcodec.bench.runner import fpcodec_variants, run_all

    clip = save_gif(tmp_path / "c.gif", moving_clip(4, 16, 20))
    variants = fpcodec_variants(["last"], [0], [], extras=False)
    local = run_all([clip], variants, tmp_path / "c1", 1, False)
    remote = run_all([clip], variants, tmp_path / "c2", 2, False, "ray", ray_cluster)
    keys = ("clip", "family", "setting", "bytes", "exact", "frames")
    assert [{k: r[k] for k in keys} for r in remote] == [{k: r[k] for k in keys} for r in local]
    assert remote[0]["exact"] is True and "error" not in remote[0]
    assert np.isfinite(remote[0]["enc_s"])
    assert list((tmp_path / "c2").glob("*.json"))  # the Ray workers wrote the shared cache


def test_the_documented_cluster_config_is_valid_for_ray_up():
    import jsonschema
    import ray.autoscaler
    import yaml

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    config = yaml.safe_load((Path(__file__).parents[1] / "docs" / "ray-cluster.yaml").read_text())
    jsonschema.validate(config, schema)  # what `ray up` checks before it starts anything
    assert config["provider"]["type"] == "local"


def test_sweep_after_a_stop_removes_only_the_cancelled_outputs_temporary_files(tmp_path):
    # The names mkstemp gives atomic_file; glob characters in a name must match literally.
    cancelled = [tmp_path / "a[1].gif.fpc", tmp_path / "sub" / "b*.gif.fpc"]
    (tmp_path / "sub").mkdir()
    parts = [p.with_name(f".{p.name}.k3j_x9.part") for p in cancelled]
    parts += [p.with_name(f".{p.name}.k3j_x9.part.fpc") for p in cancelled]  # process's
    parts += [p.with_name(f"..{p.name}.k3j_x9.part.fpc.q_2.part") for p in cancelled]
    kept = [
        tmp_path / ".a1.gif.fpc.k3j_x9.part",  # what an unescaped [1] would match
        tmp_path / "sub" / ".bb.gif.fpc.zz.part",  # what an unescaped * would match
        tmp_path / "a[1].gif.fpc",  # a finished output of the same name
    ]
    for p in parts + kept:
        p.write_bytes(b"x")
    batch.sweep_partial_outputs(str(p) for p in cancelled)
    assert not any(p.exists() for p in parts)
    assert all(p.exists() for p in kept)
