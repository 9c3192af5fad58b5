"""Running the benchmark: every (clip, codec setting) pair, measured from real files.

A task encodes one clip with one codec setting, writes the bytes, decodes those
bytes with that format's real decoder and compares the result with the source
frames. Results are cached per (clip, codec, setting, code version), so an
interrupted run resumes where it stopped and a rerun after a code change redoes
only what the change can affect.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from fpcodec.bench import anchors
from fpcodec.bench.metrics import ms_ssim, mse, perceptual_distance, psnr_from_mse, ssim
from fpcodec.bench.peakrss import peak_mb, reset_peak
from tqdm import tqdm

MAX_SSIM_FRAMES = 8
# bumped when compare() measures something new: cached rows lack it, so they re-run
METRICS_VERSION = 2  # 2: MS-SSIM


@dataclass(frozen=True)
class Variant:
    codec: str  # "fpcodec" or an anchor name
    setting: str  # what a person reads: "lossless", "E=2", "Q=50", "crf=18"
    family: str  # the curve this point belongs to
    lossless: bool
    params: tuple = ()  # (key, value) pairs

    @property
    def key(self) -> str:
        return f"{self.family} | {self.setting}"

    def kw(self) -> dict:
        return dict(self.params)


def fpcodec_variants(
    predictors: list[str], max_errors: list[int], qualities: list[int], extras: bool = True
) -> list[Variant]:
    from fpcodec.models.registry import DEFAULT_PREDICTOR, FLOAT_PATH_NAMES, FLOAT_SUFFIX

    out = []
    for p in predictors:
        if extras and p in FLOAT_PATH_NAMES:
            # The float network beside the integer one it was quantised into: what
            # exact inference costs in bytes (pixel path, where prediction matters).
            out.append(
                Variant(
                    "fpcodec",
                    "lossless",
                    f"fpcodec lossless, pixels only ({p}{FLOAT_SUFFIX})",
                    True,
                    (("predictor", p + FLOAT_SUFFIX), ("palette", False)),
                )
            )
        out.append(
            Variant("fpcodec", "lossless", f"fpcodec lossless ({p})", True, (("predictor", p),))
        )
        if extras:
            out.append(
                Variant(
                    "fpcodec",
                    "lossless",
                    f"fpcodec lossless, pixels only ({p})",
                    True,
                    (("predictor", p), ("palette", False)),
                )
            )
            out.append(
                Variant(
                    "fpcodec",
                    "lossless",
                    f"fpcodec lossless, zstd backend ({p})",
                    True,
                    (("predictor", p), ("palette", False), ("entropy", "zstd")),
                )
            )
        for e in max_errors:
            if e > 0:
                out.append(
                    Variant(
                        "fpcodec",
                        f"E={e}",
                        f"fpcodec near-lossless ({p})",
                        False,
                        (("predictor", p), ("max_error", e)),
                    )
                )
        for q in qualities:
            out.append(
                Variant(
                    "fpcodec",
                    f"Q={q}",
                    f"fpcodec lossy ({p})",
                    False,
                    (("predictor", p), ("quality", q)),
                )
            )
            if extras and p == DEFAULT_PREDICTOR:  # what the range coder buys over zstd
                out.append(
                    Variant(
                        "fpcodec",
                        f"Q={q}",
                        f"fpcodec lossy, zstd backend ({p})",
                        False,
                        (("predictor", p), ("quality", q), ("entropy", "zstd")),
                    )
                )
    return out


ANCHOR_SETTINGS: dict[str, list[tuple[str, bool, Callable]]] = {
    "gif": [("source", True, anchors.source_gif)],
    "gifsicle": [("-O3", True, anchors.gifsicle)],
    "gifsicle-lossy": [
        (f"lossy={n}", False, anchors.gifsicle_lossy(n)) for n in (20, 40, 60, 80, 120, 160, 200)
    ],
    "jxl": [("lossless", True, anchors.jxl(0))],
    "jxl-lossy": [(f"d={d}", False, anchors.jxl(d)) for d in (0.5, 1, 2, 4)],
    "webp": [("lossless", True, anchors.webp(True))],
    "webp-lossy": [(f"q={q}", False, anchors.webp(False, q)) for q in (90, 75, 50, 25)],
    "apng": [("lossless", True, anchors.apng)],
    "ffv1": [("lossless", True, anchors.ffv1)],
    "x264-lossless": [("qp=0 rgb", True, anchors.x264_lossless)],
    "x264": [(f"crf={c}", False, anchors.x264(c)) for c in (10, 14, 18, 22, 26, 30, 34)],
    "x265": [(f"crf={c}", False, anchors.x265(c)) for c in (10, 14, 18, 22, 26, 30, 34)],
    "av1": [(f"crf={c}", False, anchors.av1(c)) for c in (20, 28, 36, 44, 52)],
    "av1-444": [(f"cq={c}", False, anchors.aom444(c)) for c in (12, 20, 28, 36, 44, 52)],
}
# JPEG XL runs only when asked for (--anchors jxl,jxl-lossy): at its default effort
# cjxl codes about 0.03 Mpx/s here, minutes for one of the corpus's larger GIFs
DEFAULT_ANCHORS = [n for n in ANCHOR_SETTINGS if n not in ("jxl", "jxl-lossy")]


def anchor_variants(names: Iterable[str]) -> list[Variant]:
    out = []
    for name in names:
        if name not in ANCHOR_SETTINGS:
            raise ValueError(f"unknown anchor {name!r} (known: {', '.join(ANCHOR_SETTINGS)})")
        for setting, lossless, _ in ANCHOR_SETTINGS[name]:
            out.append(Variant(name, setting, name, lossless))
    return out


def _anchor_fn(v: Variant) -> Callable:
    for setting, _, fn in ANCHOR_SETTINGS[v.codec]:
        if setting == v.setting:
            return fn
    raise KeyError(v.key)


def code_version() -> str:
    """Hash of the codec's and the predictors' code, shipped weights and the API
    that drives them: fpcodec's numbers depend on these alone, so editing the
    benchmark or the report does not throw the cache away."""
    import fpcodec.codec
    import fpcodec.models

    import fpcodec.api

    h = hashlib.sha256()
    for pkg in (fpcodec.codec, fpcodec.models):
        root = Path(pkg.__file__).resolve().parent
        for p in sorted(root.rglob("*")):
            if p.suffix in (".py", ".pt", ".json") and "__pycache__" not in p.parts:
                h.update(f"{pkg.__name__}/{p.relative_to(root).as_posix()}".encode())
                h.update(p.read_bytes())
    h.update(b"fpcodec/api.py")
    h.update(Path(fpcodec.api.__file__).read_bytes())
    return h.hexdigest()[:16]


def anchor_version() -> str:
    """Hash of the anchors' code and the versions of the tools behind them: a changed
    setting, conversion or tool re-runs the anchor instead of reusing its old rows."""
    h = hashlib.sha256(Path(anchors.__file__).read_bytes())
    h.update(json.dumps(anchors.tool_versions(), sort_keys=True).encode())
    return "anchor-" + h.hexdigest()[:16]


def _task_key(clip: Path, v: Variant, version: str) -> str:
    """`version`: code_version() for fpcodec's rows, anchor_version() for anchors'."""
    st = clip.stat()
    blob = json.dumps(
        [
            clip.name,
            st.st_size,
            int(st.st_mtime),
            asdict(v),
            version,
            METRICS_VERSION,
        ],
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def load_clip(path: Path) -> tuple[list[np.ndarray], list[int], str]:
    from fpcodec.codec.source import open_source

    with open_source(path) as src:
        frames = list(src.frames(gif=False))
        return [f.rgba for f in frames], [f.duration_ms for f in frames], src.info.kind


def compare(src: list[np.ndarray], dec: list[np.ndarray]) -> dict:
    """Distortion of decoded frames against the source, over visible pixels."""
    if len(dec) != len(src):
        return {"error": f"decoded {len(dec)} frames, source has {len(src)}"}
    pds, sq, npx, worst, alpha_ok, exact = [], 0.0, 0, 0, True, True
    idx = set(
        np.linspace(0, len(src) - 1, min(MAX_SSIM_FRAMES, len(src))).round().astype(int).tolist()
    )
    ssims, msssims = [], []
    for i, (s, d) in enumerate(zip(src, dec, strict=True)):
        vis = s[..., 3] != 0
        n = int(vis.sum())
        if d.shape[-1] == 4:
            alpha_ok &= bool(np.array_equal(s[..., 3] != 0, d[..., 3] != 0))
        if n:
            pds.append(perceptual_distance(s[..., :3], d[..., :3], vis))
            sq += mse(s[..., :3], d[..., :3], vis) * n
            npx += n
            err = int(np.abs(s[..., :3][vis].astype(int) - d[..., :3][vis].astype(int)).max())
            worst = max(worst, err)
            exact &= err == 0
        if i in idx:
            ssims.append(ssim(s[..., :3], d[..., :3]))
            msssims.append(ms_ssim(s[..., :3], d[..., :3]))
    m = sq / max(npx, 1)
    return {
        "pd": float(np.mean(pds)) if pds else 0.0,
        "psnr": psnr_from_mse(m),
        "mse": m,
        "ssim": float(np.nanmean(ssims)) if ssims else math.nan,
        "ms_ssim": float(np.nanmean(msssims)) if msssims else math.nan,
        "max_abs_error": worst,
        "exact": bool(exact and alpha_ok),
        "alpha_ok": bool(alpha_ok),
    }


def run_fpcodec(path: Path, v: Variant, frames: list[np.ndarray]) -> anchors.Encoded:
    from fpcodec.models.registry import FLOAT_SUFFIX

    import fpcodec

    kw = v.kw()
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "c.fpc"
        # The worker's whole resident peak during each step (torch and numba memory
        # included); it also holds the clip the benchmark compares against, so these
        # are upper bounds on what the CLI needs.
        reset_peak()
        t = time.perf_counter()
        fpcodec.encode(path, out, **kw)
        enc = time.perf_counter() - t
        enc_peak = peak_mb()
        reset_peak()
        t = time.perf_counter()
        _, dec, _ = fpcodec.decode_frames(
            out, float_path=str(kw.get("predictor", "")).endswith(FLOAT_SUFFIX)
        )
        dec_s = time.perf_counter() - t
        dec_peak = peak_mb()
        nbytes = out.stat().st_size
        info = fpcodec.info(out)
    return anchors.Encoded(
        nbytes,
        dec,
        enc,
        dec_s,
        {
            "enc_peak_rss_mb": enc_peak,
            "codings": info["codings"],
            "dec_peak_rss_mb_with_frames": dec_peak,  # decode_frames holds every frame
        },
    )


def run_task(path: str, v: Variant, cache_dir: str, versions: tuple[str, str]) -> dict:
    """One (clip, variant); `versions` is (code_version(), anchor_version())."""
    clip = Path(path)
    version = versions[0] if v.codec == "fpcodec" else versions[1]
    key = _task_key(clip, v, version)
    cache = Path(cache_dir) / f"{key}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    base = {
        "clip": clip.name,
        "codec": v.codec,
        "setting": v.setting,
        "family": v.family,
        "lossless": v.lossless,
        "code_version": version,  # travels with the row when reports are merged
        "params": dict(v.params),  # the encode() arguments, to re-make the row's file
    }
    try:
        frames, durations, kind = load_clip(clip)
        h, w = frames[0].shape[:2]
        base.update(
            frames=len(frames),
            width=w,
            height=h,
            source_bytes=clip.stat().st_size,
            source_kind=kind,
            duration_s=sum(durations) / 1000.0,
        )
        if v.codec == "fpcodec":
            res = run_fpcodec(clip, v, frames)
        else:
            reset_peak()
            res = _anchor_fn(v)(clip, frames, durations)
            # in-process anchors (Pillow, PyAV): this process's peak over encode and decode
            res.extra.setdefault("enc_peak_rss_mb", peak_mb())
        metrics = compare(frames, res.frames)
        base.update(metrics)
        base.update(
            bytes=res.nbytes,
            bpp=8.0 * res.nbytes / (len(frames) * w * h),
            ratio=res.nbytes / max(1, clip.stat().st_size),
            enc_s=res.enc_s,
            dec_s=res.dec_s,
            **res.extra,
        )
    except anchors.AnchorUnavailable as e:
        base["skipped"] = str(e)
    except Exception as e:  # a failing codec must not stop the benchmark; the report shows it
        base["error"] = f"{type(e).__name__}: {e}"
    if "skipped" in base:  # a tool installed later must get its turn on the next run
        return base
    tmp = cache.with_suffix(".part")
    tmp.write_text(json.dumps(base))
    os.replace(tmp, cache)
    return base


WARM_UP_SETTINGS = (
    {},
    {"palette": False},
    {"palette": False, "entropy": "zstd"},
    {"max_error": 2},  # a GIF: palette trials, moved indices (palette_nearlossless.py)
    {"max_error": 2, "palette": False},
    {"quality": 50, "palette": False},
    {"quality": 50, "palette": False, "entropy": "zstd"},
)


def warm_up() -> set[str]:
    """Run every coding once on a tiny GIF, so numba's kernels are compiled (or loaded
    from its disk cache) before anything is timed: otherwise the first task of each
    kind in each process carries seconds of compilation in its frames/s (the
    benchmark's Q 1 rows once showed 5 frames/s at 128x128 for that reason)."""
    from PIL import Image

    import fpcodec

    rng = np.random.default_rng(0)
    ims = [Image.fromarray((rng.integers(0, 4, (16, 24)) * 60).astype(np.uint8)) for _ in range(3)]
    with tempfile.TemporaryDirectory() as d:
        src, out = Path(d) / "warm.gif", Path(d) / "warm.fpc"
        ims[0].save(src, save_all=True, append_images=ims[1:], duration=40, loop=0)
        seen: set[str] = set()
        for kw in WARM_UP_SETTINGS:
            fpcodec.encode(src, out, force=True, **kw)
            fpcodec.decode_frames(out)
            seen.update(fpcodec.info(out)["codings"])
    return seen  # the codings it ran, for the test that keeps this list complete


def _worker_init(threads: int, fpcodec_tasks: bool) -> None:
    # Parallel jobs each running a multi-threaded torch oversubscribe the cores, and
    # OpenMP's spinning then slows everything down several times over.
    import numba
    import torch

    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    if fpcodec_tasks:
        warm_up()


def _run_task_args(args: tuple) -> dict:
    return run_task(*args)


def _lost_row(args: tuple, why: str) -> dict:
    """The row of a task whose worker kept dying (Ray gave up retrying it)."""
    path, v, _, versions = args
    return {
        "clip": Path(path).name,
        "codec": v.codec,
        "setting": v.setting,
        "family": v.family,
        "lossless": v.lossless,
        "code_version": versions[0] if v.codec == "fpcodec" else versions[1],
        "params": dict(v.params),
        "error": why,
    }


def run_all(
    clips: list[Path],
    variants: list[Variant],
    cache_dir: Path,
    jobs: int,
    progress: bool,
    engine: str = "local",
    address: str | None = None,
) -> list[dict]:
    """engine "ray": the same run_task calls as Ray tasks (fpcodec.batch_ray); the
    cache directory must then be on a filesystem every node shares."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    version = (code_version(), anchor_version())
    tasks = [(str(c), v) for c in clips for v in variants]
    results: list[dict] = []
    bar = tqdm(total=len(tasks), desc="bench", unit="run", disable=not progress, dynamic_ncols=True)
    fpcodec_tasks = any(v.codec == "fpcodec" for _, v in tasks)
    if engine == "ray":
        import functools

        from fpcodec.batch import Stop
        from fpcodec.batch_ray import ray_map

        for row in ray_map(
            _run_task_args,
            [(c, v, str(cache_dir.resolve()), version) for c, v in tasks],
            jobs=jobs,
            address=address,
            stop=Stop(),
            lost=_lost_row,
            init=functools.partial(_worker_init, 1, fpcodec_tasks),
        ):
            results.append(row)
            bar.update()
    elif jobs <= 1:
        if fpcodec_tasks:
            warm_up()
        for c, v in tasks:
            results.append(run_task(c, v, str(cache_dir), version))
            bar.update()
    else:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        with ProcessPoolExecutor(
            jobs, initializer=_worker_init, initargs=(threads, fpcodec_tasks)
        ) as ex:
            futs = [ex.submit(run_task, c, v, str(cache_dir), version) for c, v in tasks]
            for f in as_completed(futs):
                results.append(f.result())
                bar.update()
    bar.close()
    return results
