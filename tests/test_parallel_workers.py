"""What a unit sees in a LocalCluster worker: Dask's statistical profiler off unless ``parallel.profile`` (it keeps
1,000 s of samples per worker, so memory grows with the units done, and it slows the map), and xarray's NetCDF
writes guarded by process-local locks, not a ``distributed.Lock`` round trip to the scheduler per variable; a unit's
result released from its worker as soon as the caller has it; the glibc malloc settings of workers and of maps in
process."""

from __future__ import annotations

import platform
import time

import pytest

from no2hotspots.config import compose
from no2hotspots.errors import ConfigError
from no2hotspots.parallel import map_units, settings

pytestmark = pytest.mark.slow


def _busy_then_samples(x: int) -> int:
    """Burn 0.3 s of CPU in Python in the worker's task thread, then wait past one profile cycle (1 s); return the
    profiler's sample count of the worker."""
    from distributed import get_worker

    t = time.process_time()
    while time.process_time() - t < 0.3:
        pass
    time.sleep(1.2)
    w = get_worker()
    return int(w.profile_recent["count"]) + sum(int(p["count"]) for _, p in w.profile_history)


@pytest.mark.parametrize("profile, sampled", [(False, False), (True, True)])
def test_worker_profiler_follows_parallel_profile(profile, sampled):
    cfg = compose(
        ["parallel.scheduler=local", "parallel.n_workers=2", "parallel.min_units=1", f"parallel.profile={profile}"]
    )
    counts = map_units(_busy_then_samples, [0, 1], cfg)
    assert (min(counts) > 0) is sampled, counts


@pytest.mark.parametrize("key", ["profile", "tune_malloc"])
def test_parallel_switches_must_be_booleans(key):
    with pytest.raises(ConfigError, match=f"parallel.{key}"):
        settings(compose([f"parallel.{key}=sometimes"]))


def _xarray_write_lock_kind(x: int) -> str:
    from xarray.backends.locks import get_dask_scheduler

    return str(get_dask_scheduler())


def test_units_write_netcdf_with_process_local_locks():
    cfg = compose(["parallel.scheduler=local", "parallel.n_workers=2", "parallel.min_units=1"])
    assert set(map_units(_xarray_write_lock_kind, [0, 1, 2], cfg)) == {"threaded"}


def _results_held(x: int) -> int:
    """How many task results the worker holds while this unit runs (the results of earlier units not yet released,
    beside the scattered arguments, of which this test has none)."""
    from distributed import get_worker

    time.sleep(0.1)  # the client's release of the previous results reaches the worker meanwhile
    return len(get_worker().data)


def test_a_unit_result_leaves_its_worker_once_the_caller_has_it():
    """A future held to the end keeps its result on the worker: memory that grows with the units done (measured:
    ~140 MB per worker over a china_year-sized detect collection of 909 overpasses)."""
    cfg = compose(["parallel.scheduler=local", "parallel.n_workers=2", "parallel.min_units=1"])
    held = map_units(_results_held, list(range(40)), cfg)
    assert max(held) <= 4, held


def _malloc_env(x: int) -> dict:
    import os

    return {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")}


def test_workers_start_with_the_malloc_settings_that_keep_freed_buffers():
    """Not Dask's MALLOC_TRIM_THRESHOLD_=65536 (every freed buffer returned and faulted in again per unit)."""
    from no2hotspots.parallel import WORKER_MALLOC

    cfg = compose(["parallel.scheduler=local", "parallel.n_workers=2", "parallel.min_units=1"])
    seen = map_units(_malloc_env, [0, 1], cfg)
    assert seen == [WORKER_MALLOC, WORKER_MALLOC]
    assert int(WORKER_MALLOC["MALLOC_TRIM_THRESHOLD_"]) > 65536


def test_workers_keep_glibc_defaults_with_tune_malloc_false():
    """Neither our settings nor Dask's MALLOC_TRIM_THRESHOLD_=65536: glibc's own defaults."""
    cfg = compose(
        ["parallel.scheduler=local", "parallel.n_workers=2", "parallel.min_units=1", "parallel.tune_malloc=false"]
    )
    import os

    blank = {"MALLOC_TRIM_THRESHOLD_": None, "MALLOC_MMAP_THRESHOLD_": None}
    assert map_units(_malloc_env, [0, 1], cfg) == [blank, blank]
    # and no earlier cluster's settings left in this process's environment (Dask's nannies write them there)
    assert not {k for k in os.environ if k in blank}


#: in a fresh process: map one unit in process, which allocates and touches 24 MiB and reports how many bytes glibc
#: then holds in mmapped blocks beyond those before (mallinfo2.hblkhd): 0 when the buffer came from the heap
_IN_PROCESS = """
import ctypes, sys
import numpy as np
from no2hotspots.config import compose
from no2hotspots.parallel import map_units

class MallInfo2(ctypes.Structure):
    _fields_ = [(k, ctypes.c_size_t) for k in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

info = ctypes.CDLL(None).mallinfo2
info.restype = MallInfo2

def unit(x):
    before = info().hblkhd
    a = np.ones(24 * 2**20, np.uint8)
    return int(info().hblkhd - before)

cfg = compose(["parallel.n_workers=1", f"parallel.tune_malloc={sys.argv[1]}"])
print(map_units(unit, [0], cfg)[0])
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="needs glibc (mallopt, mallinfo2)")
def test_an_in_process_map_gets_the_same_malloc_settings_as_the_workers():
    """``parallel.tune_malloc`` reaches a map run in process too (glibc's mallopt): a 24 MiB buffer is served from
    the heap, where glibc's defaults (a fresh process: mmap threshold 128 KiB) map it from the kernel."""
    import os
    import subprocess
    import sys

    mapped = {}
    for tune in ("true", "false"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}  # glibc's defaults at start
        cmd = [sys.executable, "-c", _IN_PROCESS, tune]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
        mapped[tune] = int(out.stdout.strip().splitlines()[-1])
    assert mapped["true"] == 0, mapped
    assert mapped["false"] >= 24 * 2**20, mapped


class _Result:
    """A unit's result that a weak reference can follow (top-level: Dask pickles it back to the caller)."""

    def __init__(self, i: int):
        self.i = i


def _result(i: int) -> _Result:
    time.sleep(0.02 * (i % 3))  # units finish out of order on two workers
    return _Result(i)


@pytest.mark.parametrize("where", ["sync", "local"])
def test_iter_units_gives_results_in_order_and_holds_none_it_has_given(where):
    """A caller that reduces the results (evaluate sums its units) holds one at a time: every result handed over
    before the current one is gone once the caller drops it, in process and on a LocalCluster; the order is the
    items' (the same float sums whatever the workers)."""
    import gc
    import weakref

    from no2hotspots.parallel import iter_units

    over = ["parallel.scheduler=local", "parallel.n_workers=2", "parallel.min_units=1"] if where == "local" else []
    cfg = compose(over or ["parallel.scheduler=sync"])
    refs, order = [], []
    for r in iter_units(_result, list(range(12)), cfg):
        order.append(r.i)
        refs.append(weakref.ref(r))
        del r
        gc.collect()
        assert all(ref() is None for ref in refs), order
    assert order == list(range(12))
    assert [r.i for r in map_units(_result, list(range(12)), cfg)] == list(range(12))


def _bad_granule_at_two(x: int) -> int:
    from no2hotspots.errors import InputFileError

    if x == 2:
        raise InputFileError(f"/data/granule_{x}.nc", "cannot be opened as NetCDF")
    return x


def _bug_at_two(x: int) -> int:
    if x == 2:
        raise ZeroDivisionError("a bug keeps its type and traceback")
    return x


def test_a_bad_input_in_a_worker_is_our_one_line_not_a_worker_traceback(capfd):
    """A unit's UserError reaches the caller as itself (type, file, problem) and the worker does not log it
    ("Compute Failed" with a traceback on stderr, before the CLI's one line); a bug still raises as itself."""
    from no2hotspots.errors import InputFileError

    cfg = compose(["parallel.scheduler=local", "parallel.n_workers=2", "parallel.min_units=1"])
    with pytest.raises(InputFileError) as e:
        map_units(_bad_granule_at_two, list(range(6)), cfg)
    assert (e.value.path, e.value.problem) == ("/data/granule_2.nc", "cannot be opened as NetCDF")
    err = capfd.readouterr().err
    assert "Compute Failed" not in err and "Traceback" not in err, err
    with pytest.raises(ZeroDivisionError, match="a bug keeps"):
        map_units(_bug_at_two, list(range(6)), cfg)


_CTRL_C_SCRIPT = """
import sys, time
from pathlib import Path
from no2hotspots.config import compose
from no2hotspots.parallel import map_units

def unit(i, marks):
    Path(marks, f"started-{i}").touch()
    time.sleep(60)
    return i

if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGINT, signal.default_int_handler)  # as from a terminal (pytest-xdist workers ignore it)
    cfg = compose(["parallel.scheduler=local", "parallel.n_workers=2", "parallel.min_units=1"])
    try:
        map_units(unit, [0, 1, 2, 3], cfg, shared={"marks": sys.argv[1]})
    except KeyboardInterrupt as e:
        import traceback

        Path(sys.argv[1], "raised-in").write_text(traceback.extract_tb(e.__traceback__)[-1].name)
        print("interrupted", file=sys.stderr)
        sys.exit(130)
"""


def test_ctrl_c_during_a_map_is_the_callers_line_not_worker_tracebacks(tmp_path):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) while units run on a LocalCluster: the
    caller stops with its own line and the cluster closes; neither the workers (KeyboardInterrupt tracebacks) nor
    this process's Dask loggers (the teardown of a map nobody waits for) add a line."""
    import os
    import signal
    import subprocess
    import sys

    script = tmp_path / "ctrl_c.py"
    script.write_text(_CTRL_C_SCRIPT)
    marks = tmp_path / "marks"
    marks.mkdir()
    p = subprocess.Popen([sys.executable, str(script), str(marks)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while len(list(marks.glob("started-*"))) < 2 and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.2)
    assert len(list(marks.glob("started-*"))) == 2, p.communicate(timeout=60)
    os.killpg(p.pid, signal.SIGINT)
    try:
        out, err = p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        raise
    assert p.returncode == 130, err
    # nothing but the caller's line: no worker tracebacks, no "lost scattered data" or "still alive, killing"
    assert err.strip().splitlines() == ["interrupted"], err
    # raised by our own code once Dask's call returned, not inside distributed's `with thread_condition:`: landing
    # there can leave that lock held and client.close() hangs for 60 s (the CI run of 6578f6a)
    assert (marks / "raised-in").read_text() == "_ctrl_c_deferred"


def _sigint_handler() -> str:
    import signal

    return "ignored" if signal.getsignal(signal.SIGINT) == signal.SIG_IGN else "handled"


def test_workers_a_nanny_restarts_still_ignore_ctrl_c():
    """The LocalCluster's workers ignore SIGINT (the caller alone answers a Ctrl-C), and so do the workers their
    nannies start again later (past the memory limit, ``client.restart``), which are spawned after the window in
    which the cluster started: without the worker plugin those get asyncio's handler and print its tracebacks."""
    from no2hotspots.parallel import _client, settings

    s = settings(compose(["parallel.scheduler=local", "parallel.n_workers=2"]))
    client, cluster = _client(s)
    try:
        before = client.run(_sigint_handler)
        client.restart()
        after = client.run(_sigint_handler)
    finally:
        client.close()
        cluster.close()
    assert len(before) == 2 and set(before.values()) == {"ignored"}
    assert len(after) == 2 and set(before) != set(after)  # new worker processes
    assert set(after.values()) == {"ignored"}


def test_two_clusters_at_once_leave_port_8787_alone():
    """With ``parallel.dashboard`` off the scheduler's HTTP routes take a free port, not the dashboard's 8787: two
    clusters at once (two stages, a test beside a stage) start without Dask's "Port 8787 is already in use" warning,
    and the dashboard port stays free for the cluster that asks for it."""
    import warnings

    from no2hotspots.parallel import _client, settings

    s = settings(compose(["parallel.scheduler=local", "parallel.n_workers=1"]))
    assert s["dashboard"] is False
    started = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(2):
                started.append(_client(s))
        ports = [c.scheduler.http_server.port for _, c in started]
    finally:
        # last in, first out: a Client restores dask's scheduler setting to what it was when it started, so closing
        # the first one first would leave "dask.distributed" set with no client for the tests after this one
        for client, cluster in reversed(started):
            client.close()
            cluster.close()
    import dask

    assert dask.config.get("scheduler", None) is None
    assert 8787 not in ports and len(set(ports)) == 2
    assert not [w for w in caught if "already in use" in str(w.message)]
