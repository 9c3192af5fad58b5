"""The Ray engine: the same per-file (or per-benchmark-task) calls as Ray tasks.

Imported only when `--engine ray` is asked for, so the rest of the CLI never pays
for (or needs) Ray. Tasks carry paths, not pixels: inputs and outputs must be on a
filesystem every node sees at the same path (NFS, a cluster filesystem, a bind
mount); the object store only moves the small task descriptions and records.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from fpcodec.batch import DEFAULT_RETRIES, Stop, one_line

T = TypeVar("T")
R = TypeVar("R")

# A locally started cluster moves only task descriptions and records: Ray's default
# store (30% of RAM) would reserve gigabytes of shared memory for nothing.
LOCAL_OBJECT_STORE_BYTES = 256 * 2**20
# Environment the workers need as the driver has it (FPCODEC_WEIGHTS names where
# trained weights live; the test hook too). A joined cluster's workers do not
# inherit the driver's environment.
FORWARDED_ENV_PREFIX = "FPCODEC_"

_initialised: set[Any] = set()


def _init_key(init: Callable[[], None]) -> Any:
    # Every task unpickles its own copy of a partial, so identity cannot say "done".
    if isinstance(init, functools.partial):
        return (_init_key(init.func), init.args, tuple(sorted(init.keywords.items())))
    return init


def _call(init: Callable[[], None] | None, fn: Callable[[T], R], item: T) -> R:
    # Once per worker process, the way a process pool's initializer would.
    if init is not None and _init_key(init) not in _initialised:
        init()
        _initialised.add(_init_key(init))
    return fn(item)


def _forwarded_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIX)}


def connect(address: str | None, jobs: int) -> bool:
    """Start a local cluster of `jobs` CPUs, or join the one at `address`.

    Returns whether this call connected (and so should disconnect). address
    "local" is passed explicitly when none is given: ray.init() with no address
    would join whatever `ray start` cluster this machine last ran."""
    import ray

    if ray.is_initialized():  # the caller (a test, a notebook) set Ray up already
        return False
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        ray.init(
            address="local",
            num_cpus=jobs,
            include_dashboard=False,
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
            logging_level=logging.WARNING,
        )
    return True


def ray_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    jobs: int,
    address: str | None,
    stop: Stop,
    lost: Callable[[T, str], R],
    max_retries: int = DEFAULT_RETRIES,
    init: Callable[[], None] | None = None,
) -> Iterator[R]:
    """fn over items as Ray tasks (one CPU each), results as they finish.

    Ray re-runs a task whose worker died up to max_retries times; after that
    `lost` makes its result. At most twice the cluster's CPUs are in flight. On
    stop, unfinished tasks are cancelled (a running one's worker is killed; the
    caller removes its temporary files) and what had finished is still returned."""
    import ray
    from ray.exceptions import RayError, RayTaskError, TaskCancelledError

    connected = connect(address, jobs)
    try:
        opts: dict[str, Any] = {"num_cpus": 1, "max_retries": max_retries}
        env = _forwarded_env()
        if env:
            opts["runtime_env"] = {"env_vars": env}
        remote = ray.remote(_call).options(**opts)
        window = max(2, 2 * int(ray.cluster_resources().get("CPU", jobs)))
        source = iter(items)
        pending: dict[Any, T] = {}
        cancelled: set[Any] = set()
        while True:
            while not stop.requested and len(pending) < window:
                item = next(source, None)
                if item is None:
                    break
                pending[remote.remote(init, fn, item)] = item
            if stop.requested:
                for ref in pending.keys() - cancelled:
                    # force: the worker is killed, so that once every cancelled task
                    # has resolved none is still writing, and the caller can sweep
                    # its temporary files (batch.sweep_partial_outputs)
                    ray.cancel(ref, force=True)
                    cancelled.add(ref)
            if not pending:
                return
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            for ref in ready:
                item = pending.pop(ref)
                try:
                    yield ray.get(ref)
                except TaskCancelledError:
                    continue
                except RayTaskError as e:  # fn raised: not a worker's death, no retry
                    if stop.requested:
                        continue
                    yield lost(item, one_line(e.cause if e.cause is not None else e))
                except RayError as e:
                    if stop.requested:  # cancelled while its worker was being torn down
                        continue
                    yield lost(item, f"worker failed {max_retries + 1} times: {type(e).__name__}")
    finally:
        if connected:
            ray.shutdown()
