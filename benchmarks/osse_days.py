"""OSSE cost per day: wall and CPU seconds per day unit for an osse preset, in process and on N Dask workers.

    python benchmarks/osse_days.py --preset demo --days 28 --workers 1 2
    python benchmarks/osse_days.py --preset china_year --days 4 --workers 1 2

Each run starts from an empty unit folder under a temporary directory. Per unit it records the wall time, the CPU
time of the task's thread and of its whole process (a Dask worker's other threads included); the summary gives
seconds per day and the speed-up of each worker count over the first one measured in the same run, with the load
average before and after (the figures mean little on a busy machine). Prints JSON and writes
benchmarks/results/osse_days_<preset>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path


def timed_day(task, setup):
    from no2hotspots.osse.day import simulate_day

    t, c, th = time.perf_counter(), time.process_time(), time.thread_time()
    simulate_day(task, setup)
    return {
        "wall": time.perf_counter() - t,
        "cpu_process": time.process_time() - c,
        "cpu_thread": time.thread_time() - th,
    }


def one(preset: str, days: int, workers: int, data: str, root: Path) -> dict:
    from no2hotspots.config import compose
    from no2hotspots.osse import run as stage
    from no2hotspots.parallel import map_units

    out = root / f"{preset}_{workers}"
    shutil.rmtree(out, ignore_errors=True)
    par = ["parallel.scheduler=sync"]
    if workers > 1:
        par = ["parallel.scheduler=local", f"parallel.n_workers={workers}", "parallel.min_units=1"]
    cfg = compose([f"paths.data={data}", f"paths.outputs={out}", f"osse={preset}", f"osse.dates.days={days}", *par])
    src = stage.select_sources(cfg)
    setup = stage.prepare(cfg, src)
    tasks, _ = stage.plan(cfg, setup, src)
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    units = map_units(timed_day, tasks, cfg, desc="osse days", shared={"setup": setup})
    wall = time.perf_counter() - t
    mean = {k: sum(u[k] for u in units) / len(units) for k in units[0]}
    return {
        "preset": preset,
        "days": days,
        "workers": workers,
        "n_sources": len(src),
        "wall_s": round(wall, 2),
        "wall_s_per_day": round(wall / days, 3),
        "unit_wall_s": round(mean["wall"], 3),
        "unit_cpu_thread_s": round(mean["cpu_thread"], 3),
        "unit_cpu_process_s": round(mean["cpu_process"], 3),
        "load_before": round(load0, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--days", type=int, default=28)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--data", default="data", help="folder holding inventory/ (paths.data)")
    args = ap.parse_args()
    os.environ.setdefault("NO2HOTSPOTS_PROGRESS", "0")
    with tempfile.TemporaryDirectory(prefix="osse_days_") as tmp:
        rows = [one(args.preset, args.days, w, args.data, Path(tmp)) for w in args.workers]
    base = rows[0]["wall_s_per_day"]
    for r in rows:
        r["speedup_vs_first"] = round(base / r["wall_s_per_day"], 2)
    print(json.dumps(rows, indent=1))
    out = Path("benchmarks/results")
    if out.is_dir():
        (out / f"osse_days_{args.preset}.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
