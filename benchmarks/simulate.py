"""Benchmark the simulate stage: scenes/s, MB/s written and peak RSS for the demo and paper configs; the speed of
the vectorised batch simulator against a plain per-scene NumPy loop of the same physics (same parameters); and the
richer demo world (clusters, area sources, puffs, swath pixels, cloud edges) against the Gaussian-only path of the
paper's world, on one core in the same run, with the cost of each feature (the demo with that feature off).

    .venv/bin/python benchmarks/simulate.py [--paper-scenes 210000] [--baseline-scenes 200] [--world-scenes 2000]

Writes benchmarks/results/simulate.json. Timings on a shared machine are noisy: the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("NO2HOTSPOTS_PROGRESS", "0")
REPO = Path(__file__).resolve().parents[1]


def _rss_mb():
    self_ = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return self_, kids


def run_stage(overrides, data_dir):
    from no2hotspots.config import compose
    from no2hotspots.simulate.run import LAST_RUN_STATS, run

    tmp = Path(tempfile.mkdtemp(prefix="simbench-"))
    try:
        cfg = compose(
            [f"paths.data={data_dir}", f"paths.outputs={tmp}", f"paths.simulated={tmp / 'simulated'}", *overrides]
        )
        t0 = time.perf_counter()
        run(cfg)
        dt = time.perf_counter() - t0
        nbytes = sum(p.stat().st_size for p in (tmp / "simulated").rglob("*") if p.is_file())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = int(cfg.simulate.n_scenes)
    self_mb, kids_mb = _rss_mb()
    return {
        "n_scenes": n,
        "workers": int(cfg.simulate.workers),
        "seconds": round(dt, 2),
        "scenes_per_s": round(n / dt, 1),
        "mb_written": round(nbytes / 1e6, 1),
        "mb_per_s": round(nbytes / 1e6 / dt, 1),
        "peak_rss_main_mb": round(self_mb, 1),
        "peak_rss_worker_mb": round(max(kids_mb, LAST_RUN_STATS.get("peak_worker_rss_mb", 0.0)), 1),
        "peak_rss_total_mb_upper_bound": round(
            self_mb + int(cfg.simulate.workers) * max(kids_mb, LAST_RUN_STATS.get("peak_worker_rss_mb", 0.0)), 1
        ),
    }


def baseline(data_dir, n):
    from no2hotspots.config import compose
    from no2hotspots.simulate.reference import simulate_loop
    from no2hotspots.simulate.scenes import load_world, sample_scenes, simulate_batch
    from no2hotspots.simulate.settings import from_config

    # the reference loop covers the paper's world (Gaussian plumes of point sources at the scene pixel)
    st = from_config(compose([f"paths.data={data_dir}", "simulate=paper"]))
    p = sample_scenes(np.random.default_rng(0), n, st, load_world(st))
    t0 = time.perf_counter()
    simulate_batch(p, st, np.random.default_rng(1))
    t_vec = time.perf_counter() - t0
    t0 = time.perf_counter()
    simulate_loop(p, st, np.random.default_rng(1))
    t_loop = time.perf_counter() - t0
    return {
        "n_scenes": n,
        "vectorised_s": round(t_vec, 3),
        "loop_s": round(t_loop, 3),
        "vectorised_scenes_per_s_1core": round(n / t_vec, 1),
        "loop_scenes_per_s_1core": round(n / t_loop, 1),
        "speedup": round(t_loop / t_vec, 1),
    }


def world_costs(data_dir, n, repeats=2):
    """Scenes/s on one core (sample + simulate, no writing) of the demo world, of the paper's Gaussian-only world,
    and of the demo with one feature off at a time; the best of ``repeats`` runs each (the box is shared)."""
    from no2hotspots.config import compose
    from no2hotspots.simulate.scenes import load_world, sample_scenes, simulate_batch
    from no2hotspots.simulate.settings import from_config

    cases = {
        "demo": [],
        "gaussian_only_paper": ["simulate=paper"],
        "gaussian_only_demo_sources": [  # the demo's sources (clusters, 1..12, weak), Gaussian plumes at scene pixels
            "simulate.transport.puff_fraction=0",
            "simulate.swath.fraction=0",
            "simulate.distractors.probability=0",
            "simulate.clouds.edge_probability=0",
        ],
        "demo_without_puffs": ["simulate.transport.puff_fraction=0"],
        "demo_without_swath": ["simulate.swath.fraction=0"],
        "demo_without_distractors": ["simulate.distractors.probability=0"],
        "demo_without_clusters": ["simulate.clusters.fraction=0"],
    }
    out = {}
    for name, ovr in cases.items():
        st = from_config(compose([f"paths.data={data_dir}", *ovr]))
        world = load_world(st)
        best = np.inf
        for r in range(repeats):
            rng = np.random.default_rng(r)
            t0 = time.perf_counter()
            for lo in range(0, n, 500):
                p = sample_scenes(rng, min(500, n - lo), st, world)
                simulate_batch(p, st, rng)
            best = min(best, time.perf_counter() - t0)
        out[name] = {"n_scenes": n, "seconds": round(best, 3), "scenes_per_s_1core": round(n / best, 1)}
        print("  ", name, out[name], flush=True)
    base = out["gaussian_only_paper"]["seconds"]
    out["ratio_demo_to_gaussian_only_paper"] = round(out["demo"]["seconds"] / base, 2)
    out["ratio_demo_to_gaussian_only_demo_sources"] = round(
        out["demo"]["seconds"] / out["gaussian_only_demo_sources"]["seconds"], 2
    )
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--paper-scenes", type=int, default=210000)
    ap.add_argument("--baseline-scenes", type=int, default=200)
    ap.add_argument("--world-scenes", type=int, default=2000)
    ap.add_argument("--data", default=str(REPO / ".cache" / "test-data"))
    args = ap.parse_args()
    from no2hotspots import logs

    logs.setup("WARNING")
    res = {
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_start": os.getloadavg(),
            "note": "shared 2-core machine; other jobs ran concurrently, timings are noisy",
        }
    }
    res["baseline"] = baseline(args.data, args.baseline_scenes)
    print("baseline", res["baseline"], flush=True)
    res["world"] = world_costs(args.data, args.world_scenes)
    print(
        "world: demo / Gaussian-only (paper) time per scene",
        res["world"]["ratio_demo_to_gaussian_only_paper"],
        "; demo / Gaussian-only with the demo's sources",
        res["world"]["ratio_demo_to_gaussian_only_demo_sources"],
        flush=True,
    )
    res["demo"] = run_stage([], args.data)
    print("demo", res["demo"], flush=True)
    res["paper"] = run_stage(["simulate=paper", f"simulate.n_scenes={args.paper_scenes}"], args.data)
    print("paper", res["paper"], flush=True)
    res["machine"]["loadavg_end"] = os.getloadavg()
    res["goal"] = {"paper_seconds_max": 120, "peak_rss_mb_max": 1500}
    out = REPO / "benchmarks" / "results" / "simulate.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
