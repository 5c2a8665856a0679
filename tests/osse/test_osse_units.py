"""The osse stage's days as idempotent units: same files for 1 and 2 Dask workers, resume after kill -9 without
computing a finished day again, reuse when the date range grows, and a unit folder holding only live units."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from no2hotspots.osse.run import run
from no2hotspots.units import DONE

from .helpers import TINY, digest, osse_cfg


def _same_files(a: dict, b: dict) -> None:
    """Equal digests except config.json, which records the (different) output folders."""
    a, b = dict(a), dict(b)
    assert a.pop("truth/config.json") and b.pop("truth/config.json")
    assert a == b


def _config_without_paths(folder):
    c = json.loads((folder / "truth" / "config.json").read_text())
    for k in ("out_dir", "units_dir"):
        c["osse"].pop(k)
    c["inventory"].pop("path")
    return c


@pytest.mark.slow  # a LocalCluster with two worker processes: ~10-25 s on the shared 2 cores
def test_two_dask_workers_give_the_same_files_as_one_process(osse_base, data_dir, tmp_path):
    _, first, out = osse_base
    cfg = osse_cfg(data_dir, tmp_path, ["parallel.scheduler=local", "parallel.n_workers=2", "parallel.min_units=1"])
    summary = run(cfg)
    assert (first["n_days"], first["n_computed"], summary["n_computed"]) == (3, 3, 3)
    _same_files(digest(out), digest(tmp_path / "osse"))
    assert _config_without_paths(out) == _config_without_paths(tmp_path / "osse")


def _listed(units_dir) -> set[str]:
    """Files the unit markers list."""
    return {f for m in units_dir.glob(f"*{DONE}") for f in json.loads(m.read_text())["files"]}


def _on_disk(units_dir) -> set[str]:
    return {p.relative_to(units_dir).as_posix() for p in units_dir.rglob("*") if p.is_file()}


def _markers(units_dir):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in units_dir.glob(f"*{DONE}")}


@pytest.mark.slow  # a subprocess (imports ~5 s), killed after two days, then the rest in process
def test_a_run_killed_mid_way_resumes_without_computing_a_day_twice(data_dir, tmp_path):
    days = ["osse.dates.days=8"]
    out, units_dir = tmp_path / "killed", tmp_path / "killed" / ".units" / "osse"
    cmd = [sys.executable, "-m", "no2hotspots", "osse", f"paths.data={data_dir}", f"paths.outputs={out}", *TINY]
    cmd += [*days, "parallel.scheduler=sync"]
    env = {**os.environ, "NO2HOTSPOTS_PROGRESS": "0"}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(_markers(units_dir)) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    done = _markers(units_dir)
    assert 2 <= len(done) < 8 and not (out / "osse").exists()  # killed before publishing
    finished = {f: (units_dir / f).stat().st_ino for f in _listed(units_dir)}

    resumed = run(osse_cfg(data_dir, out, days))
    assert (resumed["n_reused"], resumed["n_computed"]) == (len(done), 8 - len(done))
    after = _markers(units_dir)
    assert all(after[name] == stamp for name, stamp in done.items())  # finished days were not written again
    assert finished and all((units_dir / f).stat().st_ino == i for f, i in finished.items())  # the same files

    uninterrupted = tmp_path / "whole"
    run(osse_cfg(data_dir, uninterrupted, days))
    _same_files(digest(out / "osse"), digest(uninterrupted / "osse"))


def test_more_days_reuse_the_days_done_and_other_settings_prune_them(osse_base, data_dir, tmp_path):
    _, _, out = osse_base
    two = run(osse_cfg(data_dir, tmp_path, ["osse.dates.days=2"]))
    three = run(osse_cfg(data_dir, tmp_path, ["osse.dates.end=2019-09-03"]))  # the same 3 days as osse_base
    assert (two["n_computed"], three["n_reused"], three["n_computed"]) == (2, 2, 1)
    _same_files(digest(out), digest(tmp_path / "osse"))
    units_dir = tmp_path / ".units" / "osse"
    assert _on_disk(units_dir) - _listed(units_dir) == {f"2019-09-0{d}{DONE}" for d in (1, 2, 3)}

    # another noise setting changes every day: all recomputed, the old days' files are gone from the unit folder
    other = run(osse_cfg(data_dir, tmp_path, ["osse.dates.days=1", "osse.noise.relative=0.2"]))
    assert (other["n_computed"], other["n_reused"]) == (1, 0)
    published = {f for f in digest(tmp_path / "osse") if f.startswith(("granules/", "truth/fields/", "truth/winds/"))}
    assert _on_disk(units_dir) == _listed(units_dir) | {f"2019-09-01{DONE}"} and _listed(units_dir) == published
