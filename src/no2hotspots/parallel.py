"""Independent units of work (a granule, an overpass, a day) mapped over Dask, or in process.

``map_units(fn, items, cfg)`` calls the top-level function ``fn(item)`` once per item and returns the results in
the items' order; ``iter_units`` gives them one at a time, in the same order, and holds none the caller has had (a
caller that reduces them, as evaluate sums its units, then holds one result, not the period's). Where it runs is
the ``parallel`` config group:

- ``scheduler: local`` (default): a ``dask.distributed.LocalCluster`` on this machine, ``n_workers`` processes
  (null = the number of cores) with one thread each; torch in a worker uses one thread (on a shared 2-core box two
  threads per process run 3-5x slower than one). Fewer than ``min_units`` items run in process, because starting
  a cluster costs seconds;
- ``scheduler: address``: an existing cluster at ``scheduler_address`` (``dask scheduler`` + ``dask worker`` on
  several machines, dask-jobqueue on SLURM/PBS, dask-kubernetes, Coiled): the units and their inputs must be
  reachable from the workers under the same paths (a shared file system);
- ``scheduler: sync``: in process, one unit after another (debugging, tests).

Dask's statistical profiler is off in LocalCluster workers unless ``parallel.profile`` (see
:func:`_worker_profiler`); on an existing cluster, start the workers with
``DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False`` for the same effect.

The first failing unit stops the map: its exception (a one-line :class:`~no2hotspots.errors.UserError` for bad
input, which a Dask worker returns rather than raises, so that it does not also log it with a traceback) is raised
in the caller and the remaining units are cancelled. Units write their own outputs atomically, so
whatever finished before a failure or a kill stays and is skipped by the next run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from omegaconf import DictConfig

from .config import bool_value
from .errors import ConfigError, UserError
from .logs import progress_disabled

log = logging.getLogger(__name__)

#: environment of worker processes: one thread per BLAS/OpenMP/torch pool
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def settings(cfg: DictConfig) -> dict:
    p = cfg.parallel
    scheduler = str(p.scheduler)
    if scheduler not in ("local", "address", "sync"):
        raise ConfigError("parallel.scheduler", f"must be local, address or sync (got {scheduler!r})")
    if scheduler == "address" and not p.scheduler_address:
        raise ConfigError("parallel.scheduler_address", "must be set (tcp://host:8786) when scheduler is address")
    n = p.n_workers
    profile = bool_value("parallel.profile", p.get("profile", False))
    tune_malloc = bool_value("parallel.tune_malloc", p.get("tune_malloc", True))
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ConfigError("parallel.n_workers", f"must be null or an integer >= 1 (got {n!r})")
    return {
        "scheduler": scheduler,
        "address": p.scheduler_address,
        "n_workers": int(n) if n else (os.cpu_count() or 1),
        "memory_limit": str(p.memory_limit),
        "min_units": int(p.min_units),
        "dashboard": bool(p.dashboard),
        "profile": profile,
        "tune_malloc": tune_malloc,
    }


def map_units(
    fn: Callable[..., Any], items: Sequence, cfg: DictConfig, *, desc: str = "units", shared: dict | None = None
) -> list:
    """``[fn(item, **shared) for item in items]``, on Dask or in process (see the module docstring).

    ``shared``: keyword arguments every unit gets (a model, a table); on Dask they are sent to each worker once
    (``Client.scatter(broadcast=True)``), not once per unit."""
    return list(iter_units(fn, items, cfg, desc=desc, shared=shared))


def iter_units(
    fn: Callable[..., Any], items: Sequence, cfg: DictConfig, *, desc: str = "units", shared: dict | None = None
) -> Iterator:
    """The results of :func:`map_units` one at a time, in the items' order. A result is dropped once it is handed
    over; on Dask, results that arrive before an earlier unit's wait for it (a few with units of even length; a
    slow unit holds back those after it). The config is checked now; the units run as the caller iterates (the
    cluster is closed when the iteration ends)."""
    s = settings(cfg)
    items = list(items)
    if not items:
        return iter(())
    if s["scheduler"] == "sync" or (s["scheduler"] == "local" and (len(items) < s["min_units"] or s["n_workers"] == 1)):
        return _in_process(fn, items, desc, shared or {}, s["tune_malloc"])
    return _on_dask(fn, items, s, desc, shared or {})


def _in_process(fn, items, desc: str, shared: dict, tune_malloc: bool = True) -> Iterator:
    from tqdm import tqdm

    if tune_malloc:
        _mallopt()

    for item in tqdm(items, desc=desc, unit="unit", disable=progress_disabled(), leave=False):
        yield fn(item, **shared)


#: glibc malloc settings of LocalCluster workers (environment at process start): freed buffers up to 32 MiB stay in
#: the worker's heap for the next unit instead of going back to the kernel and faulting in again, zeroed, on the
#: next allocation. Measured (china_year, 64 ingest units, 2 workers; benchmarks/worker_malloc.py and a first A/B,
#: 6 alternating pairs; a 7th left out, its baseline map at 2x the CPU per unit): the map's span 0.84-1.06x that
#: with glibc's defaults, median ~0.96 (a small gain, near the box's run-to-run spread), CPU per unit ~5 % lower,
#: the workers' peak RSS +9 MB
WORKER_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 * 1024**2), "MALLOC_TRIM_THRESHOLD_": str(256 * 1024**2)}


#: glibc's mallopt parameters of the environment variables in :data:`WORKER_MALLOC`
_MALLOPT = {"MALLOC_TRIM_THRESHOLD_": -1, "MALLOC_MMAP_THRESHOLD_": -3}


def _worker_malloc(tune: bool) -> None:
    """Dask sets MALLOC_TRIM_THRESHOLD_=65536 for its workers (return freed memory at once); measured on the OSSE,
    that costs ~40 % CPU per unit (numpy's buffers trimmed and faulted in again for every unit). Workers get
    :data:`WORKER_MALLOC` instead, or glibc's defaults with ``parallel.tune_malloc=false``."""
    import dask

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    for k in WORKER_MALLOC:
        env.pop(k, None)
    if tune:
        env.update(WORKER_MALLOC)
    dask.config.set({"distributed.nanny.pre-spawn-environ": env})


def _mallopt() -> None:
    """:data:`WORKER_MALLOC` applied to this process (an in-process map), through glibc's ``mallopt``; nothing
    where the C library has none (musl, macOS). Measured (benchmarks/worker_malloc.py, 64 china_year ingest units in
    a fresh process, 3 pairs): CPU per unit 0.44 s with glibc's defaults, 0.41 s with these settings; the map's span
    0.89-0.95x, median 0.91x."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    for k, v in WORKER_MALLOC.items():
        mallopt(_MALLOPT[k], int(v))


def _worker_profiler(enabled: bool) -> None:
    """Dask's statistical profiler samples each worker's threads every 10 ms (holding the GIL) and keeps the last
    1,000 one-second cycles of samples (``distributed.admin.low-level-log-length``) for the dashboard's Profile
    page, so a worker's memory grows through its first ~17 min of work. Measured (demo granules, 2 workers, 500
    units): worker RSS 205 -> 242 MB with it, 191-196 MB without; china_year, 60 units: the 2-worker map's speed-up
    over one process 1.41 -> 1.68 (detect) and 1.46 -> 1.60 (ingest). Off unless ``parallel.profile``;
    LocalCluster workers get the config from their nanny."""
    import dask

    dask.config.set({"distributed.worker.profile.enabled": enabled})


@contextlib.contextmanager
def _sigint(handler, only_over_default: bool = False):
    """On the main thread, SIGINT goes to ``handler`` inside the block and the previous handler is restored after;
    yields whether it was set. Off the main thread signals cannot be set, and with ``only_over_default`` a handler
    other than Python's default one is left alone: then nothing changes."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or (
        only_over_default and signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield False
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield True
    finally:
        signal.signal(signal.SIGINT, previous)


def _workers_ignore_sigint():
    """Start the LocalCluster's worker processes with SIGINT ignored (an ignored signal stays ignored in a spawned
    process, and Python and asyncio then install no handler for it). Ctrl-C reaches every process of the terminal's
    group: the caller stops with its one "interrupted" line and closes the cluster in its ``finally``, instead of each
    worker also printing two KeyboardInterrupt tracebacks (measured: 70 lines for 2 workers). A Ctrl-C while the
    cluster starts (~1-2 s a map) is ignored: interrupted there, Dask's exit handler trips over the half-started
    workers with a traceback of its own. Off the main thread signals cannot be set: nothing changes."""
    import signal

    return _sigint(signal.SIG_IGN)


def _client(s: dict):
    from distributed import Client, LocalCluster

    # importing distributed sets its logger to INFO from dask's config (logging.distributed): a dozen lines per
    # cluster start in every stage's output; keep its warnings
    logging.getLogger("distributed").setLevel(logging.WARNING)

    if s["scheduler"] == "address":
        return Client(s["address"]), None
    # Dask's nannies write pre-spawn-environ into this process's os.environ before spawning their worker and leave it
    # there (distributed/nanny.py): put the malloc variables back, so that a later map in process, a later cluster
    # with tune_malloc=false, or a subprocess of the caller gets what it asks for
    before = {k: os.environ.get(k) for k in WORKER_MALLOC}
    with _workers_ignore_sigint():
        cluster = LocalCluster(
            n_workers=s["n_workers"],
            threads_per_worker=1,
            processes=True,
            memory_limit=s["memory_limit"],
            dashboard_address="127.0.0.1:8787" if s["dashboard"] else None,
            # the scheduler serves its HTTP routes (health, metrics) even without the dashboard, on 8787 by default:
            # off, on a free port, so that two clusters at once (two stages, a test beside a stage) neither compete
            # for 8787 nor print Dask's "Port 8787 is already in use" warning
            scheduler_kwargs=None if s["dashboard"] else {"dashboard_address": "127.0.0.1:0"},
            host="127.0.0.1",
            silence_logs=logging.WARNING,
        )
    for k, v in before.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    from .worker_plugins import IgnoreSigint

    client = Client(cluster)
    client.register_plugin(IgnoreSigint(), name=IgnoreSigint.name)
    return client, cluster


def _silence_worker_logs() -> None:
    logging.getLogger("distributed.worker").setLevel(logging.CRITICAL)


def _quiet_worker_shutdown(client) -> None:
    """Our LocalCluster's workers stop logging errors before it closes: every result is in by then (a failed unit
    has raised in the caller), and what they would log is a heartbeat that met the closing scheduler - a 30-line
    traceback at the end of quantify@osse in four of our recent full pipeline runs, after the stage's work was done.
    A worker already gone has nothing to silence."""
    with contextlib.suppress(Exception):
        client.run(_silence_worker_logs)


@dataclasses.dataclass(frozen=True)
class _UserErrorInUnit:
    """What a Dask unit returns instead of raising a :class:`~no2hotspots.errors.UserError` (a bad input file or
    setting): the caller raises it, so the user sees our one line and not the worker's "Compute Failed" log with a
    traceback. Any other exception (a bug) still raises in the worker and keeps its traceback."""

    error: UserError


@contextlib.contextmanager
def _quiet_teardown():
    """Closing a map that stopped early (a unit's error, a Ctrl-C in the caller): this process's Dask loggers stay
    quiet, so the caller's one line is the last thing the user reads, not the scheduler's "lost scattered data" about
    units nobody waits for any more."""
    names = ["distributed"] + [n for n in logging.root.manager.loggerDict if n.startswith("distributed.")]
    levels = {n: logging.getLogger(n).level for n in names}  # LocalCluster(silence_logs=...) sets some of them
    for n in names:
        logging.getLogger(n).setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)


def _local_locks(fn, item, **shared):
    """``fn(item, **shared)`` in a Dask worker with dask's scheduler set to synchronous for the unit's own code.

    Inside a worker, xarray takes the cluster's client for the scheduler and guards every NetCDF write with a
    ``distributed.Lock`` on the file name: a round trip to the scheduler per variable written (measured: ~37 lock
    operations and ~43 ms of the worker's event-loop CPU per detect unit of the demo, the unit itself 54 ms). A unit
    writes its own files under names no other unit uses (atomic temp names), so process-local locks suffice."""
    import dask

    with dask.config.set(scheduler="synchronous"):
        try:
            return fn(item, **shared)
        except UserError as e:
            return _UserErrorInUnit(e)


@contextlib.contextmanager
def _ctrl_c_deferred():
    """While this process waits on Dask, a Ctrl-C only sets a flag; KeyboardInterrupt is raised when the block ends.

    Raised where the signal lands, it can hit distributed's ``with thread_condition:`` (``as_completed``) between
    the wait and the release: the lock stays held, Dask's event loop blocks on it at the next finished future, and
    ``client.close()`` times out after 60 s with tracebacks instead of the caller's one line (the CI run of
    ``6578f6a``: tests/test_parallel_workers.py's Ctrl-C test). Off the main thread, or under a handler other than
    Python's default one, nothing changes."""
    interrupted: list = []
    with _sigint(lambda *_: interrupted.append(True), only_over_default=True):
        yield interrupted
    if interrupted:
        raise KeyboardInterrupt


def _next_batch(done, interrupted: list, poll_s: float = 0.05) -> list:
    """The futures of ``done`` (an ``as_completed``) finished since the last call, at least one unless a Ctrl-C
    came (see :func:`_ctrl_c_deferred`); polled, because a flag set by a signal handler wakes no blocking wait."""
    import time

    while not interrupted:
        batch = done.next_batch(block=False)
        if batch:
            return batch
        time.sleep(poll_s)
    return []


def _on_dask(fn, items, s: dict, desc: str, shared: dict) -> Iterator:
    from distributed import as_completed
    from tqdm import tqdm

    for k, v in ONE_THREAD.items():  # inherited by the LocalCluster's worker processes
        os.environ.setdefault(k, v)
    _worker_malloc(s["tune_malloc"])
    _worker_profiler(s["profile"])
    client, cluster = _client(s)
    finished = False
    try:
        if s["dashboard"]:
            log.info("Dask dashboard: %s", client.dashboard_link)
        with _ctrl_c_deferred():
            scattered = {k: client.scatter([v], broadcast=True)[0] for k, v in shared.items()}  # [v]: one object
            futures = client.map(functools.partial(_local_locks, fn), items, pure=False, **scattered)
        # a result is released as soon as it is here: a future held until the end keeps its result on the worker
        # (measured: each worker grew ~140 MB over the 909 detect units of a china_year-sized collection)
        pending = {f.key: (i, f) for i, f in enumerate(futures)}
        futures = None
        early: dict = {}  # results that came before an earlier unit's, by index
        nxt = 0
        done = as_completed([f for _, f in pending.values()])
        with tqdm(total=len(items), desc=desc, unit="unit", disable=progress_disabled(), leave=False) as bar:
            while pending:
                try:
                    with _ctrl_c_deferred() as interrupted:
                        for future in _next_batch(done, interrupted):
                            i, _ = pending.pop(future.key)
                            early[i] = future.result()
                            if isinstance(early[i], _UserErrorInUnit):
                                raise early.pop(i).error
                            bar.update()
                        future = None
                except BaseException:
                    client.cancel([f for _, f in pending.values()])
                    raise
                while nxt in early:  # outside _ctrl_c_deferred: the caller's own work answers Ctrl-C as usual
                    yield early.pop(nxt)
                    nxt += 1
        finished = True
    finally:
        # drop the scattered arguments and the futures before the workers close: data still held on a closing
        # worker is what makes its heartbeat fail with a traceback at shutdown (dask/distributed#7105)
        scattered = futures = pending = done = None  # noqa: F841
        with _ctrl_c_deferred(), contextlib.nullcontext() if finished else _quiet_teardown():
            if cluster is not None:
                _quiet_worker_shutdown(client)
            client.close()
            if cluster is not None:
                cluster.close()
