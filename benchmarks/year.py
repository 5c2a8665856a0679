"""A year over a country, measured: osse -> ingest -> detect -> evaluate end to end, memory, scaling, kill -9.

    python benchmarks/year.py --preset demo --granules 10 --scaling-units 8          # quick check (~3 min)
    python benchmarks/year.py --preset china_year --granules 10 100                  # two sizes + scaling
    python benchmarks/year.py --preset china_year --sweep 10 100 916 --kill          # the acceptance run (issue 11)
    python benchmarks/year.py --preset china_year --sweep 10 100 916 --scaling-units 64 --scaling-units-osse 32
    python benchmarks/year.py --preset china_year --no-scaling --classical --evaluation-out DIR  # + baseline, hybrid

1. End to end. For each size, the four stages run one after another as ``python -m no2hotspots STAGE`` (what DVC
   runs, imports and cluster start included) in a fresh temporary folder (paths.outputs / metrics / plots / mlruns
   there, evaluate.log_to=none, detect.model_uri=--model, ``--workers`` Dask workers). Per stage: wall time, peak
   RSS summed over the whole process tree (the stage, its Dask workers and their children; psutil every 0.2 s; an
   upper bound, pages shared between processes count once per process), the largest single process, CPU time
   (user+sys of the reaped tree from getrusage; the sampled sum beside it) and the load average before/after.
2. Size. ``--granules N`` (or ``--sweep N ...``) keeps the first whole days of the preset (osse.dates.days) holding
   at least N granules (the day's orbits over the region come from the OSSE's geometry, no simulation); N at or
   above the preset's total runs the whole period. Several sizes run in order; the peak RSS of ingest and detect per
   size and their max/min ratio show whether memory is flat in the number of granules (acceptance: ratio <= 1.2).
3. Scaling. The per-unit maps (osse days, ingest granules, detect overpasses) of the last size, first
   ``--scaling-units`` units, are run again with fresh unit folders, each map in a fresh Python process (as a stage
   runs its map; process start, imports and the model's load not timed), one thread per BLAS/OpenMP/torch pool:
   1 worker in process (``parallel.n_workers=1`` through ``no2hotspots.parallel.map_units``), a 1-worker
   LocalCluster and a 2-worker LocalCluster. Per unit: start/end, wall, CPU. ``speedup_span``: the span of the unit
   map (first unit start to last unit end; cluster start and the shared arguments' transfer excluded, reported
   beside it as before_first_unit_s) in process over the span with 2 workers (acceptance: >= 1.7);
   ``speedup_span_cluster``: the 1-worker cluster's span over the 2-worker one (the same worker set-up on both
   sides); ``speedup_steady``: the same from the units per second after each process's first unit (lazy
   initialisation left out); ``speedup_map_wall``: the whole map call. The three maps are run
   ``--scaling-repeats`` times (default 3; the order reversed from repeat to repeat): on a shared 2-vCPU box a
   span speed-up moves by +-0.1 from repeat to repeat with the same code, so the median is the figure and each
   repeat's value is kept beside it (``--scaling-units-osse`` caps osse's units: its days are the slowest units).
   Until sweep 12 of ``benchmarks/results/README.md`` the 1-worker map ran in the benchmark's own long-lived process
   (after the OSSE maps; its ingest units took ~10 % less CPU than in a fresh process).
   Extrapolation to 16 and 64 workers, per stage ``T(w) = a + b*U + ceil(U/w) * t_unit`` with U the units of the
   whole period and a + b*U the serial part (process start, imports, planning, cluster start, publishing, period
   products), least-squares fitted over the sizes with >= 8 units (b = 0 with one size); evaluate is a + b*U only.
   Two versions: ``as_measured`` (serial = stage wall minus the unit map's span estimated from the units' marker
   times, t_unit = mean unit wall on 2 Dask workers: this box with its load) and ``free_cores`` (serial = the stage
   process's CPU plus the workers' CPU beyond their units shared over the workers, t_unit = one unit's CPU in its
   task thread: a free core per worker, a file system that keeps up). Each worker's first unit is left out of
   t_unit (lazy initialisation, counted as serial).
4. ``--kill``: on the last size, the outputs of the uninterrupted run are checksummed; then the stage's unit
   folder and output are removed, the stage (detect, then ingest) is started again, SIGKILLed as a process group
   once half of its units are marked done, and rerun. Reported: units finished before the kill, units whose marker
   changed in the rerun (= computed twice; must be 0), the rerun's own computed/reused counts, leftover processes
   and temporary files, and every output file whose SHA-256 differs from the uninterrupted run (must be none).

Prints JSON and writes benchmarks/results/year_<preset>.json (``--out`` elsewhere). The box is shared: figures
come with the load average; torch and BLAS use one thread per process.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
STAGES = ("osse", "ingest", "detect", "evaluate")
#: with --classical: the classical baseline and the hybrid run before evaluate, which scores them beside the model
CLASSICAL = ("baseline", "hybrid")
MAPPED = ("osse", "ingest", "detect")  # stages whose units leave markers (evaluate keeps no unit cache)
DONE = ".done.json"
COUNTS = re.compile(r"\((\d+) computed, (\d+) reused\)")
MB = 1024 * 1024
#: sizes with fewer units than this stay out of the serial-cost fit (they may run in process, below
#: parallel.min_units, and the unit map's span estimated from marker times needs a few rounds)
FIT_MIN_UNITS = 8

for k, v in {**ONE_THREAD, "NO2HOTSPOTS_PROGRESS": "0", "MLFLOW_DISABLE_TELEMETRY": "true"}.items():
    os.environ.setdefault(k, v)


# --------------------------------------------------------------------------------------------------- measuring


class TreeSampler(threading.Thread):
    """Every ``interval`` s: RSS summed over a process and all its descendants (peak kept), the largest single
    RSS, the stage process's own and the sum of the others (Dask workers, ...), the number of processes, and each
    process's last seen CPU time."""

    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_rss = self.peak_single = self.peak_main = self.peak_others = self.max_procs = 0
        self.cpu: dict[tuple[int, float], float] = {}
        self._halt = threading.Event()

    def sample(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        total = others = 0
        for p in procs:
            try:
                with p.oneshot():
                    rss = p.memory_info().rss
                    t = p.cpu_times()
                    self.cpu[(p.pid, p.create_time())] = t.user + t.system
            except psutil.Error:
                continue
            total += rss
            if p.pid == self.pid:
                self.peak_main = max(self.peak_main, rss)
            else:
                others += rss
            self.peak_single = max(self.peak_single, rss)
        self.peak_rss = max(self.peak_rss, total)
        self.peak_others = max(self.peak_others, others)
        self.max_procs = max(self.max_procs, len(procs))

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def load() -> float:
    return round(os.getloadavg()[0], 2)


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def group_survivors(pgid: int) -> list[int]:
    """Live processes (not zombies) still in process group ``pgid`` (Dask workers orphaned by a kill)."""
    import psutil

    out = []
    for p in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(p.pid) == pgid and p.pid != os.getpid() and p.info["status"] != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except (ProcessLookupError, PermissionError, OSError):
            continue
    return out


def run_stage(stage: str, overrides: list[str], cwd: Path, log_path: Path, kill_when=None) -> dict:
    """``python -m no2hotspots STAGE overrides`` in its own process group, measured; ``kill_when()`` true ->
    SIGKILL to the group."""
    env = {**os.environ, **ONE_THREAD, "NO2HOTSPOTS_PROGRESS": "0", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "no2hotspots", stage, *overrides]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    load0, cpu0, t0 = load(), children_cpu(), time.perf_counter()
    killed, survivors = False, []
    with open(log_path, "w") as log:
        p = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        sampler = TreeSampler(p.pid)
        sampler.start()
        try:
            while p.poll() is None:
                if kill_when is not None and not killed and kill_when():
                    os.killpg(p.pid, signal.SIGKILL)
                    killed = True
                time.sleep(0.2)
        except BaseException:
            os.killpg(p.pid, signal.SIGKILL)
            raise
        finally:
            rc = p.wait()
            sampler.stop()
    wall = time.perf_counter() - t0
    if killed:
        time.sleep(1.0)
        survivors = group_survivors(p.pid)
        for pid in survivors:
            os.kill(pid, signal.SIGKILL)
    text = log_path.read_text(errors="replace")
    if rc != 0 and not killed:
        raise RuntimeError(f"{stage} failed (exit {rc}); log {log_path}:\n{text[-3000:]}")
    counts = COUNTS.findall(text)
    out = {
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(sampler.peak_rss / MB, 1),
        "peak_single_process_rss_mb": round(sampler.peak_single / MB, 1),
        "peak_main_rss_mb": round(sampler.peak_main / MB, 1),
        "peak_workers_rss_mb": round(sampler.peak_others / MB, 1),  # summed over the other processes
        "max_processes": sampler.max_procs,
        "cpu_s": round(children_cpu() - cpu0, 2),
        "cpu_s_sampled": round(sum(sampler.cpu.values()), 2),
        "cpu_main_s": round(sum(v for (pid, _), v in sampler.cpu.items() if pid == p.pid), 2),
        "cpu_others_s": round(sum(v for (pid, _), v in sampler.cpu.items() if pid != p.pid), 2),
        "load_before": load0,
        "load_after": load(),
    }
    if counts:
        out["units_computed"], out["units_reused"] = (int(v) for v in counts[-1])
    if killed:
        out.update(killed=True, exit_status=rc, survivors_killed=len(survivors))
    return out


# --------------------------------------------------------------------------------------------------- the chain


def parallel_overrides(workers: int) -> list[str]:
    if workers == 1:
        return ["parallel.n_workers=1"]
    return ["parallel.scheduler=local", f"parallel.n_workers={workers}"]


def chain_overrides(
    preset: str, days: int, root: Path, model: str, data: str, workers: int, osse_set: tuple | list = ()
) -> list[str]:
    """Overrides of every stage of the chain: this run's folders, the preset cut to ``days`` and changed by
    ``osse_set`` (``osse.*`` overrides), the model."""
    return [
        f"paths.data={data}",
        f"paths.outputs={root / 'outputs'}",
        f"paths.metrics={root / 'metrics'}",
        f"paths.plots={root / 'plots'}",
        f"paths.mlruns={root / 'mlruns'}",
        f"osse={preset}",
        f"osse.dates.days={days}",
        "osse.dates.end=null",
        *osse_set,
        "ingest.collection=osse",
        "detect.collection=osse",
        f"detect.model_uri={model}",
        "baseline.collection=osse",
        "hybrid.collection=osse",
        "evaluate.collection=osse",
        "evaluate.log_to=none",
        *parallel_overrides(workers),
    ]


def days_for(preset: str, data: str, wanted: list[int]) -> tuple[list[int], list[int]]:
    """Granules per day of the preset (from the OSSE geometry) and, per wanted size, the days holding >= N."""
    from no2hotspots.config import compose
    from no2hotspots.osse import run as osse
    from no2hotspots.osse.checks import date_range
    from no2hotspots.osse.day import day_orbits

    cfg = compose([f"paths.data={data}", f"osse={preset}"])
    setup = osse.prepare(cfg, osse.select_sources(cfg))
    per_day = [len(day_orbits(setup, d)) for d in range(date_range(cfg.osse)[1])]
    cum, days = 0, []
    cums = []
    for n in per_day:
        cum += n
        cums.append(cum)
    for n in wanted:
        days.append(next((i + 1 for i, c in enumerate(cums) if c >= n), len(per_day)))
    return per_day, days


def unit_dirs(root: Path) -> dict[str, Path]:
    u = root / "outputs" / ".units"
    return {"osse": u / "osse", "ingest": u / "ingest" / "osse", "detect": u / "detect" / "osse"}


def out_dirs(root: Path) -> dict[str, Path]:
    o = root / "outputs"
    return {"osse": o / "osse", "ingest": o / "ingest" / "osse", "detect": o / "detect" / "osse"}


def markers(folder: Path) -> dict[str, int]:
    """Unit key -> marker mtime (ns)."""
    out = {}
    for m in folder.glob(f"*{DONE}"):
        try:
            out[m.name[: -len(DONE)]] = m.stat().st_mtime_ns
        except FileNotFoundError:
            continue
    return out


def disk_mb(folder: Path) -> float:
    seen, total = set(), 0
    for dirpath, _, files in os.walk(folder):
        for f in files:
            st = os.lstat(os.path.join(dirpath, f))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return round(total / MB, 1)


def map_span(mtimes: list[int], workers: int) -> tuple[float | None, float | None]:
    """(span, mean unit wall) of a unit map estimated from the units' marker times: with w workers and U units the
    last marker comes ceil(U/w) - 1 unit times after the first, and the first one unit time after the start."""
    u = len(mtimes)
    rounds = math.ceil(u / max(workers, 1))
    if rounds < 2:
        return None, None
    gap = (max(mtimes) - min(mtimes)) / 1e9
    t_unit = gap / (rounds - 1)
    return gap + t_unit, t_unit


def end_to_end(args, n_wanted: int, days: int, root: Path) -> dict:
    ovr = chain_overrides(args.preset, days, root, args.model, args.data, args.workers, args.osse_set)
    stages = {}
    chain = (*STAGES[:-1], *CLASSICAL, STAGES[-1]) if args.classical else STAGES
    for st in chain:
        r = run_stage(st, ovr, root, root / "logs" / f"{st}.log")
        if st in MAPPED:
            times = list(markers(unit_dirs(root)[st]).values())
            span, t_unit = map_span(times, args.workers)
            r["units"] = len(times)
            if span is not None:
                r["map_span_s_est"] = round(span, 2)
                r["serial_s_est"] = round(max(r["wall_s"] - span, 0.0), 2)
        stages[st] = r
        print(f"  {st}: {json.dumps(r)}", file=sys.stderr, flush=True)
    o = out_dirs(root)
    return {
        "granules_requested": n_wanted,
        "days": days,
        "n_granules": len(list((o["osse"] / "granules").glob("*.nc"))),
        "n_overpasses": len(list((o["ingest"] / "overpasses").glob("*.nc"))),
        "stages": stages,
        "total": {
            "wall_s": round(sum(s["wall_s"] for s in stages.values()), 1),
            "peak_rss_mb": max(s["peak_rss_mb"] for s in stages.values()),
            "cpu_s": round(sum(s["cpu_s"] for s in stages.values()), 1),
        },
        "disk_mb": disk_mb(root / "outputs"),
    }


def keep_evaluation(root: Path, dest: Path) -> None:
    """Copy a run's evaluation (outputs/evaluate, metrics/, plots/) to ``dest`` before the run's folder goes."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for rel in ("outputs/evaluate", "metrics", "plots"):
        if (root / rel).exists():
            shutil.copytree(root / rel, dest / Path(rel).name)
    print(f"  evaluation kept in {dest}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------- scaling


_WARM: dict[str, float] = {}


def warm_up(fn_path: str) -> None:
    """Once per process: import the unit's module and xarray's backends (what a worker pays once, not per unit);
    the time goes to the map's fixed cost, not to the first unit."""
    import importlib

    if fn_path in _WARM:
        return
    t = time.perf_counter()
    importlib.import_module(fn_path.split(":")[0])
    import xarray

    xarray.backends.list_engines()
    _WARM[fn_path] = time.perf_counter() - t


def timed_unit(fn_path: str, task, **shared) -> dict:
    """Run one unit of ``fn_path`` (module:function), timed; in a Dask worker or in process."""
    import importlib

    warm_up(fn_path)
    mod, name = fn_path.split(":")
    fn = getattr(importlib.import_module(mod), name)
    t0, c0, th0, w0 = time.time(), time.process_time(), time.thread_time(), time.perf_counter()
    r = fn(task, **shared)
    return {
        "start": t0,
        "end": time.time(),
        "wall": time.perf_counter() - w0,
        "cpu_thread": time.thread_time() - th0,
        "cpu_process": time.process_time() - c0,
        "reused": bool(r.get("reused")) if isinstance(r, dict) else False,
        "pid": os.getpid(),
        "warm_up": _WARM[fn_path],
    }


def steady(rows: list[dict]) -> dict:
    """Units per second summed over the processes, mean unit wall and CPU, each process's first unit left out
    (lazy initialisation: first file opened, first model call)."""
    rate, later = 0.0, []
    for pid in {r["pid"] for r in rows}:
        mine = sorted((r for r in rows if r["pid"] == pid), key=lambda r: r["start"])
        if len(mine) < 2:
            continue
        rate += (len(mine) - 1) / max(mine[-1]["end"] - mine[0]["end"], 1e-9)
        later += mine[1:]
    if not later:
        return {"units_per_s_after_first": None, "unit_wall_mean_after_first_s": None}
    return {
        "units_per_s_after_first": round(rate, 3),
        "unit_wall_mean_after_first_s": round(sum(r["wall"] for r in later) / len(later), 3),
        "unit_cpu_thread_mean_after_first_s": round(sum(r["cpu_thread"] for r in later) / len(later), 3),
        "unit_cpu_process_mean_after_first_s": round(sum(r["cpu_process"] for r in later) / len(later), 3),
    }


def scaling_tasks(stage: str, cfg, root: Path, n: int, fresh: Path, model):
    """(function path, tasks with unit folders under ``fresh``, shared kwargs) of the first n units of a stage."""
    import dataclasses

    if stage == "osse":
        from no2hotspots.osse import run as osse

        src = osse.select_sources(cfg)
        setup = osse.prepare(cfg, src)
        tasks, _ = osse.plan(cfg, setup, src)
        tasks = [dataclasses.replace(t, units_dir=str(fresh)) for t in tasks[:n]]
        return "no2hotspots.osse.day:simulate_day", tasks, {"setup": setup}
    if stage == "ingest":
        from no2hotspots.ingest import run as ingest

        tasks, _, _ = ingest.plan(cfg, "osse", ingest.settings(cfg))
        tasks = [dataclasses.replace(t, units_dir=str(fresh)) for t in tasks[:n]]
        return "no2hotspots.ingest.run:grid_granule", tasks, {}
    from no2hotspots.contracts import grid as grid_contract
    from no2hotspots.detect import run as detect
    from no2hotspots.detect.overpass import OverpassTask

    s = detect.settings(cfg)
    folder = out_dirs(root)["ingest"]
    keys = list(grid_contract.overpass_index(grid_contract.open_grid(folder))["key"])[:n]
    tasks = [OverpassTask(k, str(grid_contract.overpass_path(folder, k)), str(fresh), f"bench-{k}") for k in keys]
    return "no2hotspots.detect.overpass:detect_overpass", tasks, {"loaded": model, "s": s}


def map_once(
    stage: str, cfg, root: Path, n: int, workers: int, model, *, cluster: bool = False, sample_rss: bool = False
) -> dict:
    """One timed map of the first n units of a stage into fresh unit folders: through ``map_units`` (1 worker: in
    process, as a stage with ``parallel.n_workers=1`` runs), or with ``cluster`` on a LocalCluster of ``workers``
    workers whatever their number (``parallel._on_dask``: a 1-worker cluster, the same worker set-up as 2).
    ``sample_rss``: also the peak RSS of this process's children (the workers), sampled every 0.2 s."""
    from no2hotspots import parallel

    kind = "cluster" if cluster else "map_units"
    fresh = root / "scaling" / f"{stage}_{kind}_{workers}"
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir(parents=True)
    fn_path, tasks, shared = scaling_tasks(stage, cfg, root, n, fresh, model)
    fn = functools.partial(timed_unit, fn_path)
    if cluster:
        s = {**parallel.settings(cfg), "scheduler": "local", "n_workers": workers}
        run = functools.partial(parallel._on_dask, fn, tasks, s, f"{stage} x{workers} cluster", shared)
    else:
        run = functools.partial(parallel.map_units, fn, tasks, cfg, desc=f"{stage} x{workers}", shared=shared)
    load0, t0, t0_epoch = load(), time.perf_counter(), time.time()
    sampler = TreeSampler(os.getpid()) if sample_rss else None
    if sampler:
        sampler.start()
    try:
        rows = list(run())  # _on_dask yields the results (parallel.iter_units): run them inside the timing
    finally:
        if sampler:
            sampler.stop()
    wall = time.perf_counter() - t0
    shutil.rmtree(fresh, ignore_errors=True)
    if any(r["reused"] for r in rows):
        raise RuntimeError(f"scaling {stage}: a unit was reused from a fresh unit folder")
    span = max(r["end"] for r in rows) - min(r["start"] for r in rows)
    walls = sorted(r["wall"] for r in rows)
    return {
        "workers": workers,
        "where": "LocalCluster" if cluster or workers > 1 else "in process",
        "units": len(rows),
        "processes": len({r["pid"] for r in rows}),
        "map_wall_s": round(wall, 2),
        "span_s": round(span, 2),
        "before_first_unit_s": round(min(r["start"] for r in rows) - t0_epoch, 2),
        "unit_wall_mean_s": round(sum(walls) / len(walls), 3),
        "unit_wall_median_s": round(walls[len(walls) // 2], 3),
        **steady(rows),
        "warm_up_s_per_process": round(max(r["warm_up"] for r in rows), 2),
        "unit_cpu_thread_mean_s": round(sum(r["cpu_thread"] for r in rows) / len(rows), 3),
        "unit_cpu_process_mean_s": round(sum(r["cpu_process"] for r in rows) / len(rows), 3),
        "load_before": load0,
        "load_after": load(),
        **(
            {"peak_workers_rss_mb": round(sampler.peak_others / MB, 1), "peak_rss_mb": round(sampler.peak_main / MB, 1)}
            if sampler
            else {}
        ),
    }


def _pair(one: dict, two: dict) -> dict:
    """Speed-ups of one (1 worker, 2 workers) pair of maps over the same units."""
    return {
        "speedup_span": round(one["span_s"] / two["span_s"], 3) if two["span_s"] > 0 else None,
        "speedup_map_wall": round(one["map_wall_s"] / two["map_wall_s"], 3) if two["map_wall_s"] > 0 else None,
        "speedup_steady": (
            round(two["units_per_s_after_first"] / one["units_per_s_after_first"], 3)
            if one["units_per_s_after_first"] and two["units_per_s_after_first"]
            else None
        ),
        "unit_cost_2w_over_1w": round(two["unit_wall_mean_s"] / one["unit_wall_mean_s"], 3),
    }


def _median(values: list) -> float | None:
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    m = len(v) // 2
    return round(v[m] if len(v) % 2 else 0.5 * (v[m - 1] + v[m]), 2)


#: the maps of one scaling repeat: (key, workers, on a LocalCluster whatever the number of workers)
SCALING_MAPS = (("1_worker", 1, False), ("1_worker_cluster", 1, True), ("2_workers", 2, True))


def map_in_fresh_process(
    stage: str, overrides: list[str], root: Path, n: int, workers: int, cluster: bool, model, sample_rss: bool = False
) -> dict:
    """:func:`map_once` in a new Python process (``--scaling-child``), as a stage runs its map: no heap, caches or
    imports left from the benchmark's earlier work; one thread per BLAS/OpenMP/torch pool whatever the kind. The
    process's start, imports and the model's load precede the map and are not in its times."""
    spec = {"stage": stage, "overrides": overrides, "root": str(root), "n": n, "workers": workers, "cluster": cluster}
    spec.update(model=model, sample_rss=sample_rss)
    from no2hotspots.parallel import ONE_THREAD

    env = {**os.environ, **ONE_THREAD}
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--scaling-child", json.dumps(spec)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"scaling {stage} ({workers} worker(s), cluster={cluster}): child exited {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def scaling_child(spec: dict) -> None:
    """The child of :func:`map_in_fresh_process`: one map, its figures as the last line of stdout."""
    import torch

    from no2hotspots.config import compose
    from no2hotspots.registry.load import load_model

    torch.set_num_threads(1)
    cfg = compose(spec["overrides"])
    model = load_model(spec["model"]) if spec["stage"] == "detect" and spec["model"] else None
    root, rss = Path(spec["root"]), spec.get("sample_rss", False)
    out = map_once(spec["stage"], cfg, root, spec["n"], spec["workers"], model, cluster=spec["cluster"], sample_rss=rss)
    print(json.dumps(out), flush=True)


def scaling(args, days: int, root: Path) -> dict:
    """Per stage, ``--scaling-repeats`` repeats of three maps over the same units, each in a fresh process
    (:func:`map_in_fresh_process`): 1 worker in process (what a stage with ``parallel.n_workers=1`` runs), a
    1-worker LocalCluster, a 2-worker LocalCluster; the order reversed from repeat to repeat (a drift of the box's
    speed then favours none). Reported per repeat and as the median: ``speedup_span`` (in process over 2 workers:
    the stage's 1 -> 2 workers) and ``speedup_span_cluster`` (1-worker cluster over 2 workers: the cluster's own
    scaling, the same worker set-up on both sides); ``1_worker`` / ``1_worker_cluster`` / ``2_workers`` are the maps
    of the repeat with the median ``speedup_span`` (the extrapolation uses its unit times)."""
    base = chain_overrides(args.preset, days, root, args.model, args.data, 1, args.osse_set)[:-1]
    out = {"units_per_map": args.scaling_units, "repeats": args.scaling_repeats, "load_before": load()}
    for stage in args.scaling_stages:
        n = min(args.scaling_units, args.scaling_units_osse) if stage == "osse" else args.scaling_units
        reps = []
        for rep in range(args.scaling_repeats):
            maps = {}
            for key, w, cluster in SCALING_MAPS if rep % 2 == 0 else SCALING_MAPS[::-1]:
                overrides = [*base, *parallel_overrides(w), "parallel.min_units=1"]
                maps[key] = map_in_fresh_process(stage, overrides, root, n, w, cluster, args.model)
                print(f"  scaling {stage} #{rep + 1} {key}: {json.dumps(maps[key])}", file=sys.stderr, flush=True)
            cl = _pair(maps["1_worker_cluster"], maps["2_workers"])
            reps.append(
                {
                    **maps,
                    **_pair(maps["1_worker"], maps["2_workers"]),
                    **{f"{k}_cluster": v for k, v in cl.items()},
                }
            )
        spans = [r["speedup_span"] for r in reps]
        mid = sorted(range(len(reps)), key=lambda i: (spans[i] is None, spans[i] or 0.0))[(len(reps) - 1) // 2]
        keys = [k for k in reps[0] if k.startswith(("speedup_", "unit_cost_"))]
        out[stage] = {
            "units": n,
            **{key: reps[mid][key] for key, _, _ in SCALING_MAPS},
            **{k: _median([r[k] for r in reps]) for k in keys},
            **{f"{k}_each": [r[k] for r in reps] for k in keys},
            "speedup_span_range": [min(s for s in spans if s is not None), max(s for s in spans if s is not None)],
        }
    out["load_after"] = load()
    return out


def fit(points: list[tuple[float, float]]) -> tuple[float | None, float | None]:
    """(a, b) of y = a + b*U by least squares over the sizes with >= FIT_MIN_UNITS units (else the last size, b = 0);
    both clipped at 0."""
    pts = [p for p in points if p[0] >= FIT_MIN_UNITS] or points[-1:]
    if not pts:
        return None, None
    if len({u for u, _ in pts}) < 2:
        return max(pts[-1][1], 0.0), 0.0
    n = len(pts)
    mu, my = sum(u for u, _ in pts) / n, sum(y for _, y in pts) / n
    b = max(sum((u - mu) * (y - my) for u, y in pts) / sum((u - mu) ** 2 for u, _ in pts), 0.0)
    return max(my - b * mu, 0.0), b


def serial_cpu(st: str, s: dict, units: int, workers: int, unit_cpu: float | None) -> float | None:
    """CPU seconds of a stage outside its parallel unit work, as wall seconds on free cores: the stage process's
    own CPU plus the workers' CPU beyond their units (start-up, imports, first-unit initialisation) shared over the
    workers. evaluate: everything (its batches spread over the workers)."""
    if "cpu_main_s" not in s:
        return None
    dask = s["max_processes"] > 1
    w = workers if dask else 1
    if st == "evaluate":
        return s["cpu_main_s"] + s["cpu_others_s"] / w
    if unit_cpu is None:
        return None
    if not dask:
        return max(s["cpu_main_s"] - units * unit_cpu, 0.0)
    return s["cpu_main_s"] + max(s["cpu_others_s"] - units * unit_cpu, 0.0) / w


def extrapolate(runs: list[dict], scale: dict | None, per_day: list[int], workers_e2e: int) -> dict:
    """Per stage T(w) = a + b*U + ceil(U/w) * t_unit, in two versions: as measured (wall times on this box, its
    load included) and on free cores (CPU times as wall times)."""
    big = runs[-1]
    units_year = {
        "osse": len(per_day),
        "ingest": sum(per_day),
        "detect": round(sum(per_day) * big["n_overpasses"] / max(big["n_granules"], 1)),
    }
    units_of = {"osse": lambda r: r["days"], "ingest": lambda r: r["n_granules"], "detect": lambda r: r["n_overpasses"]}
    models: dict[str, dict] = {"as_measured": {}, "free_cores": {}}
    for st in (*MAPPED, "evaluate"):
        key = "ingest" if st == "evaluate" else st
        two = scale[st]["2_workers"] if scale and st in scale else None
        t_wall = (two["unit_wall_mean_after_first_s"] or two["unit_wall_mean_s"]) if two else None
        t_cpu = (two.get("unit_cpu_thread_mean_after_first_s") or two["unit_cpu_thread_mean_s"]) if two else None
        t_cpu_proc = (two.get("unit_cpu_process_mean_after_first_s") or two["unit_cpu_process_mean_s"]) if two else None
        wall_pts, cpu_pts = [], []
        for r in runs:
            s, u = r["stages"][st], units_of[key](r)
            y = s["wall_s"] if st == "evaluate" else s.get("serial_s_est")
            if y is not None:
                wall_pts.append((u, y))
            y = serial_cpu(st, s, u, workers_e2e, t_cpu_proc if s["max_processes"] > 1 else t_cpu)
            if y is not None:
                cpu_pts.append((u, y))
        for name, pts, t_unit in (("as_measured", wall_pts, t_wall), ("free_cores", cpu_pts, t_cpu)):
            a, b = fit(pts)
            m = {"a_s": None if a is None else round(a, 2), "b_s_per_unit": None if b is None else round(b, 4)}
            if st in MAPPED:
                m["t_unit_s"] = t_unit
            models[name][st] = m
    predicted: dict[str, dict] = {}
    for name, model in models.items():
        predicted[name] = {}
        for w in sorted({workers_e2e, 16, 64}):
            per = {}
            for st, m in model.items():
                u = units_year["ingest" if st == "evaluate" else st]
                if m["a_s"] is None or (st in MAPPED and m["t_unit_s"] is None):
                    per[st] = None
                    continue
                per[st] = round(m["a_s"] + m["b_s_per_unit"] * u + math.ceil(u / w) * m.get("t_unit_s", 0.0), 1)
            total = None if None in per.values() else round(sum(per.values()), 1)
            predicted[name][str(w)] = {
                "stages_s": per,
                "total_s": total,
                "total_min": None if total is None else round(total / 60, 1),
            }
    return {
        "formula": "T_stage(w) = a + b*U + ceil(U/w) * t_unit (U: units of the whole period; evaluate: a + b*U, "
        "U = granules). as_measured: a + b*U = stage wall - unit map span (span from the units' marker times), "
        "t_unit = mean unit wall on 2 Dask workers (each worker's first unit left out): this box with its load. "
        "free_cores: a + b*U = CPU of the stage process + the workers' CPU beyond their units / workers, t_unit = "
        "CPU of one unit in the task thread (first unit per worker left out): a free core per worker. a, b: "
        "least-squares over the sizes with >= 8 units (b = 0 with one size)",
        "units_full_period": units_year,
        "stage_model": models,
        "predicted": predicted,
    }


# --------------------------------------------------------------------------------------------------- kill -9


def checksums(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out[p.relative_to(folder).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def kill_check(args, stage: str, days: int, root: Path) -> dict:
    ovr = chain_overrides(args.preset, days, root, args.model, args.data, args.workers, args.osse_set)
    units_dir, out = unit_dirs(root)[stage], out_dirs(root)[stage]
    reference = checksums(out)
    n_units = len(markers(units_dir))
    shutil.rmtree(units_dir)
    shutil.rmtree(out)
    target = max(1, n_units // 2)
    first = run_stage(
        stage, ovr, root, root / "logs" / f"kill_{stage}_1.log", lambda: len(markers(units_dir)) >= target
    )
    before = markers(units_dir)
    tmp_left = sorted(p.name for p in units_dir.rglob(".*tmp*"))
    second = run_stage(stage, ovr, root, root / "logs" / f"kill_{stage}_2.log")
    after = markers(units_dir)
    got = checksums(out)
    differ = sorted(k for k in reference.keys() | got.keys() if reference.get(k) != got.get(k))
    twice = sorted(k for k, m in before.items() if after.get(k) != m)
    return {
        "units": n_units,
        "killed": bool(first.get("killed")),
        "killed_after_s": first["wall_s"],
        "units_done_at_kill": len(before),
        "temp_files_left_by_kill": len(tmp_left),
        "survivor_processes": first.get("survivors_killed", 0),
        "rerun": second,
        "units_computed_twice": len(twice),
        "units_computed_twice_keys": twice[:10],
        "rerun_computed_expected": n_units - len(before),
        "files_compared": len(reference),
        "files_differing": differ[:20],
        "n_files_differing": len(differ),
        "identical": not differ and len(reference) > 0,
    }


# --------------------------------------------------------------------------------------------------- main


def ratio(values: list[float]) -> float | None:
    return round(max(values) / min(values), 3) if values and min(values) > 0 else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="china_year", help="osse preset (conf/osse/)")
    ap.add_argument("--granules", type=int, nargs="+", default=None, help="sizes to run, in order (default: all)")
    ap.add_argument("--sweep", type=int, nargs="+", default=None, help="same as --granules (e.g. 10 100 916)")
    ap.add_argument(
        "--model",
        default=str(REPO / "outputs" / "train" / "model"),
        help="detect.model_uri (a model folder: the pipeline's by default)",
    )
    ap.add_argument("--workers", type=int, default=2, help="Dask workers of the end-to-end stages")
    ap.add_argument("--scaling-units", type=int, default=16, help="units per map in the 1-vs-2-worker scaling")
    ap.add_argument(
        "--scaling-units-osse", type=int, default=10**9, help="at most this many units (days) in osse's scaling maps"
    )
    ap.add_argument(
        "--scaling-repeats", type=int, default=3, help="repeats of the scaling maps per stage; the median is reported"
    )
    ap.add_argument("--no-scaling", action="store_true", help="skip the 1-vs-2-worker scaling")
    ap.add_argument(
        "--scaling-stages", nargs="+", choices=MAPPED, default=list(MAPPED), help="stages of the scaling (default all)"
    )
    ap.add_argument("--scaling-child", default=None, help=argparse.SUPPRESS)  # one scaling map (internal)
    ap.add_argument(
        "--kill", nargs="*", choices=["detect", "ingest"], default=None, help="kill -9 check (no value: both)"
    )
    ap.add_argument("--data", default=str(REPO / "data"), help="paths.data (inventory/)")
    ap.add_argument("--tmp", default=None, help="parent of the temporary folders (default: the system's)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folders (printed)")
    ap.add_argument(
        "--evaluation-out",
        default=None,
        help="copy each size's evaluation (outputs/evaluate, metrics, plots) to DIR/<granules>_granules/",
    )
    ap.add_argument(
        "--classical",
        action="store_true",
        help="also run the baseline and hybrid stages before evaluate (scored beside the model; the demo year's chain)",
    )
    ap.add_argument(
        "--osse-set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="osse overrides for the preset (e.g. osse.transport.no2_ramp.m=4.0)",
    )
    ap.add_argument("--out", default=None, help="result JSON (default benchmarks/results/year_<preset>.json)")
    args = ap.parse_args()
    if args.scaling_child:
        scaling_child(json.loads(args.scaling_child))
        return
    args.model = str(Path(args.model).resolve()) if Path(args.model).is_dir() else args.model
    sizes = args.sweep or args.granules or [10**9]
    kill = None if args.kill is None else (args.kill or ["detect", "ingest"])

    t_start, load0 = time.perf_counter(), load()
    per_day, days = days_for(args.preset, args.data, sizes)
    result = {
        "preset": args.preset,
        "osse_set": list(args.osse_set),
        "model": args.model,
        "workers_end_to_end": args.workers,
        "host": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()},
        "period_days": len(per_day),
        "period_granules": sum(per_day),
        "load_start": load0,
        "runs": [],
    }
    roots = []
    if args.tmp:
        Path(args.tmp).mkdir(parents=True, exist_ok=True)  # mkdtemp wants its parent to exist
    try:
        for n, d in zip(sizes, days):
            if roots and not args.keep:  # only the last size's outputs are needed later (scaling, kill)
                shutil.rmtree(roots[-1], ignore_errors=True)
            root = Path(tempfile.mkdtemp(prefix=f"year_{args.preset}_{min(n, sum(per_day))}_", dir=args.tmp))
            roots.append(root)
            print(f"size {min(n, sum(per_day))} granules ({d} days) in {root}", file=sys.stderr, flush=True)
            result["runs"].append(end_to_end(args, n, d, root))
            if args.evaluation_out:  # the science of the run (Table 2, Fig. 8/9/10, time series), not its bulk
                keep_evaluation(root, Path(args.evaluation_out) / f"{result['runs'][-1]['n_granules']}_granules")
        if len(result["runs"]) > 1:
            result["memory_flatness"] = {
                st: {
                    "granules": [r["n_granules"] for r in result["runs"]],
                    "peak_rss_mb": [r["stages"][st]["peak_rss_mb"] for r in result["runs"]],
                    "processes": [r["stages"][st]["max_processes"] for r in result["runs"]],  # 1: ran in process
                    "max_over_min": ratio([r["stages"][st]["peak_rss_mb"] for r in result["runs"]]),
                }
                for st in ("osse", "ingest", "detect", "evaluate")
            }
        if not args.no_scaling:
            result["scaling"] = scaling(args, days[-1], roots[-1])
        result["extrapolation"] = extrapolate(result["runs"], result.get("scaling"), per_day, args.workers)
        if kill:
            result["kill"] = {st: kill_check(args, st, days[-1], roots[-1]) for st in kill}
    finally:
        if args.keep:
            result["kept"] = [str(r) for r in roots]
        else:
            for r in roots:
                shutil.rmtree(r, ignore_errors=True)
    result["acceptance"] = acceptance(result)
    result["benchmark_wall_s"] = round(time.perf_counter() - t_start, 1)
    result["load_end"] = load()
    text = json.dumps(result, indent=1)
    print(text)
    out = Path(args.out) if args.out else REPO / "benchmarks" / "results" / f"year_{args.preset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")


def acceptance(result: dict) -> dict:
    """Issue 11's acceptance figures, as measured (None where this run did not measure them)."""
    full = [r for r in result["runs"] if r["n_granules"] >= result["period_granules"]]
    flat = result.get("memory_flatness", {})
    sc = result.get("scaling", {})
    kill = result.get("kill", {})
    return {
        "full_period_wall_min": round(full[-1]["total"]["wall_s"] / 60, 1) if full else None,
        "full_period_peak_rss_mb": full[-1]["total"]["peak_rss_mb"] if full else None,
        "full_period_ok (<= 45 min, <= 4096 MB)": (
            full[-1]["total"]["wall_s"] <= 45 * 60 and full[-1]["total"]["peak_rss_mb"] <= 4096 if full else None
        ),
        "memory_flat (ingest, detect max/min <= 1.2)": (
            all(flat[st]["max_over_min"] is not None and flat[st]["max_over_min"] <= 1.2 for st in ("ingest", "detect"))
            if flat
            else None
        ),
        "speedup_span >= 1.7 (median of the repeats)": {st: sc[st]["speedup_span"] >= 1.7 for st in MAPPED if st in sc}
        if sc
        else None,
        "speedup_span_cluster >= 1.7 (median of the repeats)": (
            {st: sc[st]["speedup_span_cluster"] >= 1.7 for st in MAPPED if st in sc} if sc else None
        ),
        "kill_identical_and_no_unit_twice": (
            all(k["killed"] and k["identical"] and k["units_computed_twice"] == 0 for k in kill.values())
            if kill
            else None
        ),
    }


if __name__ == "__main__":
    main()
