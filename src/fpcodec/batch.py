"""`fpcodec batch SRC DST`: recompress a tree of GIFs, resumably, here or on a Ray cluster.

The driver walks SRC and turns every file into a Task: plain data (paths and
encode options), so any engine can run it, worker processes here (this module) or
Ray tasks on a cluster (batch_ray.py). A worker encodes one file, decodes what it
wrote and checks it against the source, and returns one manifest record; only the
driver writes the manifest, one line per finished file, flushed at once, so an
interrupted or killed run keeps everything that finished and a rerun skips it.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import json
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fpcodec.codec.errors import FpcError, InputError
from fpcodec.codec.limits import DEFAULT_KEYFRAME_INTERVAL  # not encoder: it loads numba

MANIFEST_NAME = "manifest.jsonl"
OUTPUT_SUFFIX = ".fpc"
# What `encode` reads (the training loader's list): anything else in SRC is left alone.
SOURCE_SUFFIXES = (".gif", ".mp4", ".webm", ".mkv", ".mov", ".avi", ".png", ".apng", ".webp")
DEFAULT_RETRIES = 3
# Test hook: "REL|MARKER" makes the worker encoding REL die (os._exit) once, the
# first time, leaving MARKER behind; the retry then finds MARKER and carries on.
CRASH_ONCE_ENV = "FPCODEC_TEST_CRASH_ONCE"

T = TypeVar("T")
R = TypeVar("R")


class VerifyError(FpcError):
    """The written file does not decode to the source within the promised bound."""


@dataclass(frozen=True)
class Options:
    """The `encode` options a batch applies to every file (the CLI's defaults)."""

    predictor: str | None = None
    max_error: int = 0
    quality: int = 0
    keyframe_interval: int = DEFAULT_KEYFRAME_INTERVAL
    entropy: str = "arith"
    palette: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def bound(self) -> int | None:
        """Largest channel error verification accepts; None: lossy, only reported."""
        return None if self.quality else self.max_error


@dataclass(frozen=True)
class Task:
    source: str  # absolute paths: a worker may run in another directory or machine
    output: str
    rel: str  # the source's path below SRC, POSIX form: the manifest's key
    options: Options
    verify: bool = True
    previous: dict | None = None  # the manifest's last record for this source


def output_rel(rel: str) -> str:
    # Appended, not substituted: a.gif and a.webp side by side must not share an output.
    return rel + OUTPUT_SUFFIX


def walk(src: Path, exclude: Path | None = None) -> list[str]:
    """Relative POSIX paths of the files below `src` that encode reads, sorted.

    `exclude` (the destination, when it lies inside the source) is not descended
    into. Symbolic links to directories are not followed, so a link cycle cannot
    make the walk endless.
    """
    skip = exclude.resolve() if exclude is not None else None
    out = []
    for root, dirs, files in os.walk(src):
        if skip is not None:
            dirs[:] = [d for d in dirs if (Path(root) / d).resolve() != skip]
        for name in files:
            if name.lower().endswith(SOURCE_SUFFIXES):
                p = Path(root) / name
                if p.is_file():
                    out.append(p.relative_to(src).as_posix())
    return sorted(out)


def file_digest(path: Path) -> tuple[int, str]:
    """(bytes, SHA-256 hex) of a file, read in 1 MiB pieces."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            n += len(chunk)
    return n, h.hexdigest()


def one_line(e: BaseException) -> str:
    if isinstance(e, FpcError):
        msg = str(e)
    elif isinstance(e, OSError):
        msg = f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")
    else:
        msg = f"{type(e).__name__}: {e}"
    lines = msg.strip().splitlines()
    return (lines[0] if lines else type(e).__name__)[:500]


# -- the manifest ----------------------------------------------------------------


def read_manifest(path: Path) -> dict[str, dict]:
    """The last record per source path. A torn last line (a run killed while writing
    it) is ignored: its file simply counts as not done."""
    out: dict[str, dict] = {}
    if not path.exists():
        return out
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("source"), str):
                out[rec["source"]] = rec
    return out


class ManifestWriter:
    """Appends one JSON line per record and flushes it, so a record is on disk (as far
    as a killed process is concerned) as soon as its file is finished."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(path, "a+b")  # noqa: SIM115 (closed in close())
        self._f.seek(0, os.SEEK_END)
        if self._f.tell():
            self._f.seek(-1, os.SEEK_END)
            if self._f.read(1) != b"\n":  # a torn line: keep ours on a line of its own
                self._f.write(b"\n")

    def write(self, record: dict) -> None:
        self._f.write(json.dumps(record, sort_keys=True).encode() + b"\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


# -- the worker side ------------------------------------------------------------------


def pin_threads() -> None:
    """One thread for torch and numba in each worker: N workers each running a
    multi-threaded torch oversubscribe the cores, and OpenMP's spinning then slows
    everything down many times over (see bench/runner.py)."""
    import numba
    import torch

    torch.set_num_threads(1)
    numba.set_num_threads(1)


def _crash_hook(rel: str) -> None:
    spec = os.environ.get(CRASH_ONCE_ENV)
    if not spec or "|" not in spec:
        return
    target, marker = spec.split("|", 1)
    if target == rel and not os.path.exists(marker):
        Path(marker).write_text(f"{os.getpid()}\n")
        os._exit(70)


def verify_output(source: Path, output: Path, options: Options) -> dict[str, Any]:
    """Decode `output` frame by frame beside the source (memory: a frame, not a clip).

    Frame count, size, durations and alpha must match in every mode; colour exactly
    for lossless, within +-E for --max-error E; for --quality the mean perceptual
    distance is reported, not judged."""
    import numpy as np

    from fpcodec.bench.metrics import perceptual_distance
    from fpcodec.codec.decoder import Decoder
    from fpcodec.codec.source import open_source

    worst, dists, n = 0, [], 0
    with open_source(source) as src, open(output, "rb") as f:
        decoded = iter(Decoder(f))
        for s in src.frames(gif=False):
            d = next(decoded, None)
            if d is None:
                raise VerifyError(f"verify: the output has {n} frames, the source more")
            if d.rgba.shape != s.rgba.shape:
                raise VerifyError(f"verify: frame {n} is {d.rgba.shape}, source {s.rgba.shape}")
            if d.duration_ms != s.duration_ms:
                raise VerifyError(
                    f"verify: frame {n} lasts {d.duration_ms} ms, not {s.duration_ms}"
                )
            if not np.array_equal(d.rgba[..., 3], s.rgba[..., 3]):
                raise VerifyError(f"verify: frame {n} alpha differs")
            vis = s.rgba[..., 3] != 0
            if vis.any():
                a, b = s.rgba[..., :3][vis], d.rgba[..., :3][vis]
                worst = max(worst, int(np.abs(a.astype(np.int16) - b).max()))
                if options.quality:
                    dists.append(perceptual_distance(s.rgba[..., :3], d.rgba[..., :3], vis))
            if options.bound is not None and worst > options.bound:
                raise VerifyError(
                    f"verify: frame {n} is {worst} off the source (allowed {options.bound})"
                )
            n += 1
        if next(decoded, None) is not None:
            raise VerifyError(f"verify: the output has more frames than the source's {n}")
    return {
        "max_abs_error": worst,
        "distance": float(np.mean(dists)) if dists else (0.0 if options.quality else None),
    }


def _blank_record(task: Task) -> dict[str, Any]:
    return {
        "source": task.rel,
        "output": output_rel(task.rel),
        "status": "failed",
        "error": None,
        "source_bytes": None,
        "source_sha256": None,
        "output_bytes": None,
        "output_sha256": None,
        "ratio": None,
        "frames": None,
        "width": None,
        "height": None,
        "encode_s": None,
        "verify_s": None,
        # the worker's CPU time for both: what a fleet pays; a loaded machine inflates
        # it less than the wall time (but still does: shared caches and cores)
        "cpu_s": None,
        "verified": False,
        "max_abs_error": None,
        "distance": None,
        "options": task.options.as_dict(),
    }


def _still_done(prev: dict, rec: dict, task: Task, out: Path) -> bool:
    """The previous run's record vouches for this file: same source bytes, same
    options, verified if verification is asked for, and the output it wrote is
    still there, unchanged."""
    if prev.get("status") != "ok" or prev.get("source_sha256") != rec["source_sha256"]:
        return False
    if prev.get("options") != rec["options"] or (task.verify and not prev.get("verified")):
        return False
    try:
        if out.stat().st_size != prev.get("output_bytes"):
            return False
        return file_digest(out)[1] == prev.get("output_sha256")
    except OSError:
        return False


def process(task: Task) -> dict[str, Any]:
    """Encode (and verify) one file; never raises for a bad input: it returns a
    record with status "failed" and the one-line error instead."""
    import fpcodec
    from fpcodec.codec.atomic import atomic_file

    _crash_hook(task.rel)
    rec = _blank_record(task)
    src, out = Path(task.source), Path(task.output)
    try:
        rec["source_bytes"], rec["source_sha256"] = file_digest(src)
        if task.previous is not None and _still_done(task.previous, rec, task, out):
            return {**task.previous, "status": "skipped"}
        out.parent.mkdir(parents=True, exist_ok=True)
        # The output appears only once verified: a crash between writing and checking
        # must not leave a file in DST that looks finished.
        with atomic_file(out, [src], force=True) as tmp:
            cpu0 = time.process_time()
            t0 = time.perf_counter()
            # encode() writes only names ending in .fpc (a usage rule of the CLI and
            # API): it writes beside the temporary, atomically, and hands it over
            named = tmp.with_name(tmp.name + ".fpc")
            r = fpcodec.encode(src, named, force=True, **task.options.as_dict())
            os.replace(named, tmp)
            rec["encode_s"] = time.perf_counter() - t0
            if task.verify:
                t0 = time.perf_counter()
                rec.update(verify_output(src, tmp, task.options))
                rec["verify_s"] = time.perf_counter() - t0
            rec["cpu_s"] = time.process_time() - cpu0
            rec["output_bytes"], rec["output_sha256"] = file_digest(tmp)
        rec.update(
            status="ok",
            ratio=rec["output_bytes"] / max(1, rec["source_bytes"]),
            frames=r.frames,
            width=r.width,
            height=r.height,
            verified=task.verify,
        )
    except Exception as e:  # one bad input must not stop the batch
        rec["error"] = one_line(e)
    return rec


def sweep_partial_outputs(outputs: Iterable[str]) -> None:
    """Removes the temporary files of outputs whose task was cancelled.

    A cancelled task removes its own temporary files as its KeyboardInterrupt
    unwinds, but a worker that is killed never does (Ray's, on cancel; a pool's, when
    it dies), so the driver sweeps what is left: the output's own `.NAME.*.part`, the
    encode's file inside it (`.NAME.*.part.fpc`, process) and that encode's own
    temporary file (`..NAME.*.part.fpc.*.part`)."""
    for out in map(Path, outputs):
        name = glob.escape(out.name)
        for pattern in (f".{name}.*.part", f".{name}.*.part.fpc", f"..{name}.*.part.fpc.*.part"):
            for part in out.parent.glob(pattern):
                with contextlib.suppress(OSError):
                    part.unlink()


def lost_record(task: Task, why: str) -> dict[str, Any]:
    """The record of a file whose worker kept dying: the engine gave up retrying."""
    rec = _blank_record(task)
    rec["error"] = why
    return rec


# -- engines ------------------------------------------------------------------------


class Stop:
    """Set by the first Ctrl-C: engines submit nothing more and wind down."""

    requested = False


@contextlib.contextmanager
def stop_on_sigint(say: Callable[[str], None]) -> Iterator[Stop]:
    """The first SIGINT asks for a clean stop (what finished is recorded); a second
    one raises KeyboardInterrupt as usual."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: object) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True
        say("fpcodec: interrupted: stopping after the files in flight (Ctrl-C again: now)")

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, old)


def _local_worker_init() -> None:
    # Ctrl-C in a terminal reaches the whole process group; the driver decides what
    # stops, so workers finish their file instead of dying with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pin_threads()


def local_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    jobs: int,
    stop: Stop,
    lost: Callable[[T, str], R],
    max_retries: int = DEFAULT_RETRIES,
    initializer: Callable[[], None] = _local_worker_init,
) -> Iterator[R]:
    """fn over items in `jobs` worker processes, results as they finish.

    At most 2 x jobs items are in flight, so a huge tree is never queued whole.
    When a worker dies the pool breaks and every item in flight fails with it (which
    one killed it is unknown), so each gets another attempt in a new pool, up to
    max_retries; then `lost` makes its result. On stop, items not started are
    dropped and the running ones finish."""
    source = iter(enumerate(items))
    retry: deque[tuple[int, T]] = deque()
    attempts: dict[int, int] = {}
    window = 2 * jobs
    exhausted = False
    while True:
        ex = ProcessPoolExecutor(jobs, initializer=initializer)
        pending: dict[Future, tuple[int, T]] = {}
        broken = False
        try:
            while True:
                while not (stop.requested or broken) and len(pending) < window:
                    nxt = retry.popleft() if retry else next(source, None)
                    if nxt is None:
                        exhausted = True
                        break
                    try:
                        pending[ex.submit(fn, nxt[1])] = nxt
                    except BrokenProcessPool:
                        retry.appendleft(nxt)
                        broken = True
                if stop.requested:
                    for f in [f for f in pending if f.cancel()]:
                        del pending[f]
                if not pending:
                    break
                done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for f in done:
                    i, item = pending.pop(f)
                    if f.cancelled():
                        continue
                    try:
                        result = f.result()
                    except BrokenProcessPool:
                        broken = True
                        attempts[i] = attempts.get(i, 0) + 1
                        if attempts[i] > max_retries:
                            yield lost(item, f"worker died {attempts[i]} times")
                        else:
                            retry.append((i, item))
                        continue
                    yield result
        except BaseException:
            # A second Ctrl-C (or the consumer gone): do not wait for running files.
            for p in list(getattr(ex, "_processes", {}).values()):
                with contextlib.suppress(Exception):
                    p.terminate()
            ex.shutdown(wait=False, cancel_futures=True)
            raise
        ex.shutdown(wait=True, cancel_futures=True)
        if stop.requested or (exhausted and not retry):
            return


# -- the driver -------------------------------------------------------------------


@dataclass
class Summary:
    files: int = 0
    ok: int = 0
    skipped: int = 0
    failed: int = 0
    source_bytes: int = 0  # of the files done (encoded now or skipped as done before)
    output_bytes: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    failures: list[str] = field(default_factory=list)

    @property
    def saved(self) -> int:
        return self.source_bytes - self.output_bytes

    def add(self, rec: dict) -> None:
        status = rec["status"]
        if status == "failed":
            self.failed += 1
            self.failures.append(f"{rec['source']}: {rec['error']}")
            return
        if status == "skipped":
            self.skipped += 1
        else:
            self.ok += 1
        self.source_bytes += rec["source_bytes"]
        self.output_bytes += rec["output_bytes"]

    def line(self) -> str:
        done = self.ok + self.skipped + self.failed
        mb = self.source_bytes / 1e6
        secs = max(self.seconds, 1e-9)
        rate = f"{done / secs:.2f} files/s, {mb / secs:.2f} MB/s"
        ratio = self.output_bytes / max(1, self.source_bytes)
        head = f"batch: {done}/{self.files} files: {self.ok} encoded, {self.skipped} skipped"
        return (
            f"{head}, {self.failed} failed; {mb:.2f} MB -> {self.output_bytes / 1e6:.2f} MB "
            f"({ratio:.3f}x), {self.saved / 1e6:.2f} MB saved; {self.seconds:.1f} s ({rate})"
            + ("; interrupted" if self.interrupted else "")
        )


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_batch(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    options: Options = Options(),
    *,
    jobs: int | None = None,
    engine: str = "local",
    address: str | None = None,
    verify: bool = True,
    manifest: str | os.PathLike | None = None,
    max_retries: int = DEFAULT_RETRIES,
    progress: bool = False,
    say: Callable[[str], None] | None = None,
) -> Summary:
    """Recompress every file below `src` into `dst` (see the module docstring).

    say: where one-line failures and notices go (default: stderr)."""
    from tqdm import tqdm

    src_p, dst_p = Path(src), Path(dst)
    if not src_p.is_dir():
        raise InputError(f"{src_p} is not a directory")
    if engine not in ("local", "ray"):
        raise FpcError(f"unknown engine {engine!r} (local or ray)")
    jobs = jobs or default_jobs()
    dst_p.mkdir(parents=True, exist_ok=True)
    manifest_p = Path(manifest) if manifest is not None else dst_p / MANIFEST_NAME
    previous = read_manifest(manifest_p)
    rels = walk(src_p, exclude=dst_p)
    sizes = {}
    for rel in rels:
        with contextlib.suppress(OSError):
            sizes[rel] = (src_p / rel).stat().st_size
    src_abs, dst_abs = src_p.resolve(), dst_p.resolve()
    tasks = (
        Task(
            str(src_abs / rel),
            str(dst_abs / output_rel(rel)),
            rel,
            options,
            verify,
            previous.get(rel),
        )
        for rel in rels
    )
    summary = Summary(files=len(rels))
    bar = tqdm(
        total=sum(sizes.values()),
        desc="batch",
        unit="B",
        unit_scale=True,
        disable=not progress,
        dynamic_ncols=True,
    )

    def note(msg: str) -> None:
        if say is not None:
            say(msg)
        elif progress:
            bar.write(msg, file=sys.stderr)
        else:
            print(msg, file=sys.stderr, flush=True)

    unfinished: set[str] = set()  # outputs of tasks handed out whose record has not come back

    def handed_out(tasks: Iterable[Task]) -> Iterator[Task]:
        for task in tasks:
            unfinished.add(task.output)
            yield task

    tasks = handed_out(tasks)
    writer = ManifestWriter(manifest_p)
    t0 = time.perf_counter()
    try:
        with stop_on_sigint(note) as stop:
            if engine == "ray":
                from fpcodec.batch_ray import ray_map

                results = ray_map(
                    process,
                    tasks,
                    jobs=jobs,
                    address=address,
                    stop=stop,
                    lost=lost_record,
                    max_retries=max_retries,
                    init=pin_threads,
                )
            else:
                results = local_map(
                    process, tasks, jobs=jobs, stop=stop, lost=lost_record, max_retries=max_retries
                )
            for rec in results:
                unfinished.discard(str(dst_abs / rec["output"]))
                if rec["status"] != "skipped":  # the manifest holds it already
                    writer.write(rec)
                summary.add(rec)
                if rec["status"] == "failed":
                    note(f"fpcodec: error: {rec['source']}: {rec['error']}")
                bar.update(sizes.get(rec["source"], 0))
                bar.set_postfix_str(
                    f"{summary.ok + summary.skipped + summary.failed}/{summary.files} files, "
                    f"{summary.saved / 1e6:.1f} MB saved",
                    refresh=False,
                )
            summary.interrupted = stop.requested
            if stop.requested:
                sweep_partial_outputs(unfinished)
    finally:
        writer.close()
        bar.close()
        summary.seconds = time.perf_counter() - t0
    return summary


# -- the command line -------------------------------------------------------------


def add_batch_parser(sub: argparse._SubParsersAction) -> None:
    from fpcodec.models.registry import available_predictors, describe_defaults

    p = sub.add_parser(
        "batch", help="recompress a directory tree of GIFs/videos to .fpc (resumable)"
    )
    p.add_argument("src", help="directory to walk (GIF, PNG/APNG, WebP, video files)")
    p.add_argument("dst", help=f"output tree: DST/<path>{OUTPUT_SUFFIX}, manifest {MANIFEST_NAME}")
    p.add_argument(
        "--predictor",
        default=None,
        choices=available_predictors(),
        help=f"frame predictor (default: {describe_defaults()}); the other encode options too",
    )
    p.add_argument(
        "--max-error", type=int, default=0, metavar="E", help="near-lossless bound, as encode"
    )
    p.add_argument(
        "--quality", type=int, default=0, metavar="Q", help="lossy quality 1..100, as encode"
    )
    p.add_argument(
        "--keyframe-interval",
        type=int,
        default=DEFAULT_KEYFRAME_INTERVAL,
        metavar="N",
        help="a keyframe every N frames, as encode",
    )
    p.add_argument(
        "--entropy", choices=("arith", "zstd"), default="arith", help="entropy coder, as encode"
    )
    p.add_argument(
        "--no-palette", dest="palette", action="store_false", help="GIF input, but code pixels"
    )
    p.add_argument(
        "-j", "--jobs", type=int, default=None, help="worker processes (default: the cores)"
    )
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="worker processes here, or tasks on a Ray cluster",
    )
    p.add_argument(
        "--address",
        default=None,
        help="--engine ray: join this cluster (default: start a local one)",
    )
    p.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="decode every written file and check it against its source (default: on)",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=DEFAULT_RETRIES,
        help=f"retries of a file whose worker died (default {DEFAULT_RETRIES})",
    )
    p.add_argument("--manifest", default=None, help=f"default DST/{MANIFEST_NAME}")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    p.set_defaults(handler=cmd_batch)


def cmd_batch(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from fpcodec.api import MAX_ERROR_CAP

    # Checked once here: otherwise every file would fail with the same message.
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be >= 1")
    if args.retries < 0:
        parser.error("--retries must be >= 0")
    if not 0 <= args.max_error <= MAX_ERROR_CAP:
        parser.error(f"--max-error must be within 0..{MAX_ERROR_CAP}")
    if not 0 <= args.quality <= 100:
        parser.error("--quality must be within 1..100")
    if args.quality and args.max_error:
        parser.error("--quality and --max-error cannot be combined")
    if args.keyframe_interval < 0:
        parser.error("--keyframe-interval must be >= 0")
    if args.address and args.engine != "ray":
        parser.error("--address needs --engine ray")
    if args.engine == "local" and os.path.isdir(args.src):
        from fpcodec import warmup

        def note() -> None:
            if not args.quiet:
                print(warmup.NOTE, file=sys.stderr)

        # once here, not in every worker at once (numba's cache has no lock)
        warmup.ensure_compiled(note)
    options = Options(
        predictor=args.predictor,
        max_error=args.max_error,
        quality=args.quality,
        keyframe_interval=args.keyframe_interval,
        entropy=args.entropy,
        palette=args.palette,
    )
    s = run_batch(
        args.src,
        args.dst,
        options,
        jobs=args.jobs,
        engine=args.engine,
        address=args.address,
        verify=args.verify,
        manifest=args.manifest,
        max_retries=args.retries,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    if not args.quiet:
        print(s.line(), file=sys.stderr)
    if s.interrupted:
        return 130
    return 1 if s.failed else 0
