"""What a unit sees in a LocalCluster worker: Dask's statistical profiler off unless ``parallel.profile`` (it keeps
1,000 s of samples per worker, so memory grows with the units done, and it slows the map), and xarray's NetCDF
writes guarded by process-local locks, not a ``distributed.Lock`` round trip to the scheduler per variable."""

from __future__ import annotations

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


def test_parallel_profile_must_be_a_boolean():
    with pytest.raises(ConfigError, match="parallel.profile"):
        settings(compose(["parallel.profile=sometimes"]))


def _xarray_write_lock_kind(x: int) -> str:
    from xarray.backends.locks import get_dask_scheduler

    return str(get_dask_scheduler())


def test_units_write_netcdf_with_process_local_locks():
    cfg = compose(["parallel.scheduler=local", "parallel.n_workers=2", "parallel.min_units=1"])
    assert set(map_units(_xarray_write_lock_kind, [0, 1, 2], cfg)) == {"threaded"}
