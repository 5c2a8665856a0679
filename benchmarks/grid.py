"""Benchmark: exact area-weighted gridding of one full-orbit-sized TROPOMI swath vs plain centre binning.

Synthesises a swath of 450 ground pixels x 4200 scanlines (1.89 M pixels) from 85 S to 85 N with realistic
footprints: across-track width 3.5 km at nadir growing as 1/cos^2 of the viewing angle (~12 km at the swath edge),
along-track ~4.5 km, the across-track direction tilted 10 deg, and lon widths growing with 1/cos(lat) (so
high-latitude pixels span many 0.05 deg cells). Grids it at 0.05 deg over its covered lon/lat range and times
``grid_overpass`` (the full per-overpass computation) against ``centre_binning`` (np.bincount of centres) in the
same run. Prints pixels/s, seconds per orbit and the ratio; writes benchmarks/results/grid.json.

    python benchmarks/grid.py [--scanlines 4200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from no2hotspots.ingest.gridding import Grid, centre_binning, grid_overpass


def synth_orbit(n_scan=4200, n_gp=450, seed=0):
    rng = np.random.default_rng(seed)
    theta = np.deg2rad(np.linspace(-57, 57, n_gp + 1))
    w = 3.5 / np.cos(theta) ** 2
    x = np.concatenate([[0.0], np.cumsum(0.5 * (w[1:] + w[:-1]))])
    x -= x[n_gp // 2]  # km across track, 0 at nadir
    latc = np.linspace(-85, 85, n_scan + 1)
    lonc = 20.0 + 0.15 * latc
    alpha = np.deg2rad(10.0)
    lat = latc[:, None] - x[None, :] * np.sin(alpha) / 111.2
    lon = lonc[:, None] + x[None, :] * np.cos(alpha) / (111.32 * np.cos(np.deg2rad(lat)))
    c = lambda a: np.stack([a[:-1, :-1], a[:-1, 1:], a[1:, 1:], a[1:, :-1]], -1).reshape(-1, 4)  # noqa: E731
    lo, la = c(lon), c(lat)
    n = lo.shape[0]
    no2 = 3e-5 + 1e-5 * rng.standard_normal(n)
    prec = np.full(n, 1e-5)
    return lo, la, no2, prec


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scanlines", type=int, default=4200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "grid.json"))
    a = ap.parse_args()
    lo, la, no2, prec = synth_orbit(a.scanlines)
    n = lo.shape[0]
    grid = Grid.from_bbox([lo.min(), la.min(), lo.max(), la.max()], 0.05)
    clon, clat = lo.mean(1), la.mean(1)
    t_exact, t_base = [], []
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        g = grid_overpass(grid, lo, la, no2, prec)
        t_exact.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        centre_binning(grid, clon, clat, no2)
        t_base.append(time.perf_counter() - t0)
    te, tb = min(t_exact), min(t_base)
    # conservation check on the benchmark itself (all pixels lie inside the grid)
    area = 0.5 * np.abs(np.sum(lo * np.roll(la, -1, 1) - np.roll(lo, -1, 1) * la, axis=1)).sum()
    gridded = float(g.covered_area.sum()) * grid.cell_area_deg2
    res = {
        "pixels": int(n),
        "scanlines": a.scanlines,
        "ground_pixels": 450,
        "grid": [grid.nlat, grid.nlon],
        "resolution_deg": 0.05,
        "exact_seconds_per_orbit": te,
        "exact_pixels_per_s": n / te,
        "centre_binning_seconds": tb,
        "centre_binning_pixels_per_s": n / tb,
        "ratio_exact_over_baseline": te / tb,
        "area_conservation_rel_error": abs(gridded - area) / area,
        "all_times_exact": t_exact,
        "all_times_baseline": t_base,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus (shared with other jobs; timings noisy)",
        "numpy": np.__version__,
    }
    print(f"{n} pixels on a {grid.nlat}x{grid.nlon} grid (0.05 deg)")
    print(f"exact area-weighted: {te:.2f} s/orbit, {n / te:,.0f} pixels/s")
    print(f"centre binning     : {tb:.2f} s/orbit, {n / tb:,.0f} pixels/s")
    print(f"ratio exact/baseline: {te / tb:.1f}x; area conservation error {res['area_conservation_rel_error']:.1e}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
