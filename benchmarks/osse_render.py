"""Benchmark the OSSE's puff rendering: the windowed renderer (each puff over the pixels within its cutoff) and
source selection near the granule, against the dense puffs x pixels renderer that advects every source, on the
real granules of OSSE days (demo region and China), measured in the same run.

    .venv/bin/python benchmarks/osse_render.py [--days 2] [--china-days 1] [--max-granules 3]

Prints per granule and in total the release (advection) and render times, puffs/s, the ratio old / new and the
largest difference between the two fields; writes benchmarks/results/osse_render.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("NO2HOTSPOTS_PROGRESS", "0")
REPO = Path(__file__).resolve().parents[1]


def day_granules(cfg, day: int):
    """(sources, wind, lifetime, [(t_overpass, grid)]) of one OSSE day, built as the osse stage builds them."""
    from no2hotspots.inventory.load import check_bbox
    from no2hotspots.osse.geometry import (
        EARTH_R_KM,
        ORBITS_PER_DAY,
        across_track_edges_km,
        candidate_nadir_lons,
        granule_grid,
        region_outline,
    )
    from no2hotspots.osse.run import select_sources
    from no2hotspots.osse.weather import FieldFrame, random_day_wind

    o = cfg.osse
    bbox = check_bbox(o.region.bbox, "osse.region.bbox")
    margin = float(o.region.margin_deg)
    src = select_sources(cfg)
    lat_c, lon_c = 0.5 * (bbox[1] + bbox[3]), 0.5 * (bbox[0] + bbox[2])
    frame = FieldFrame(lat_c, lon_c)
    half_x = EARTH_R_KM * np.radians((bbox[2] - bbox[0]) / 2 + margin) * np.cos(np.radians(lat_c))
    half_y = EARTH_R_KM * np.radians((bbox[3] - bbox[1]) / 2 + margin)
    sw = o.swath
    spacing = 360.0 / ORBITS_PER_DAY
    edges = across_track_edges_km(int(sw.n_ground_pixels), float(sw.max_view_angle_deg), float(sw.altitude_km))
    outline = region_outline(bbox, margin)
    reach_deg = np.degrees(edges[-1] / (EARTH_R_KM * np.cos(np.radians(lat_c)))) + 1.0
    lon_ref = lon_c + day * float(sw.daily_shift_orbits) * spacing
    grids = []
    for lon_n in candidate_nadir_lons(lon_ref, (bbox[0] - margin, bbox[2] + margin), reach_deg):
        g = granule_grid(
            lat_c,
            float(lon_n),
            azimuth_deg=float(sw.track_azimuth_deg),
            full_edges=edges,
            along_km=float(sw.along_track_km),
            outline=outline,
            pad_km=0.0,
            min_overlap=float(sw.min_region_overlap),
        )
        if g is not None:
            grids.append((((float(sw.local_time_h) - float(lon_n) / 15.0) * 3600.0) % 86400.0, g))
    release_h = float(o.transport.release_hours)
    t_lo = min(t for t, _ in grids) - release_h * 3600.0
    t_hi = max(t for t, _ in grids)
    rng = np.random.default_rng([int(o.seed), 1, day])
    wind = random_day_wind(rng, o.wind, t_lo, t_hi, frame, max(half_x, half_y) + 30.0 * release_h * 3600.0 / 1e3)
    lifetime = float(rng.uniform(*(float(v) for v in o.transport.lifetime_h)))
    return src, wind, lifetime, grids


def bench_region(cfg, days, max_granules):
    from no2hotspots.osse.transport import release_puffs, render_puffs, render_puffs_dense

    tr = cfg.osse.transport
    kw = dict(
        release_hours=float(tr.release_hours),
        release_interval_min=float(tr.release_interval_min),
        substeps=int(tr.substeps),
        sigma0_m=float(tr.sigma0_m),
        diffusivity_m2_s=float(tr.horizontal_diffusivity_m2_s),
    )
    rows = []
    for d in range(days):
        src, wind, lifetime, grids = day_granules(cfg, d)
        args = (src["lat"].to_numpy(), src["lon"].to_numpy(), src["no2_rate_mol_s"].to_numpy(), wind)
        for t_ov, grid in grids[:max_granules]:
            t0 = time.perf_counter()
            p_old = release_puffs(*args, t_ov, lifetime_h=lifetime, **kw)
            t1 = time.perf_counter()
            old = render_puffs_dense(p_old, grid, chunk=int(tr.chunk))
            t2 = time.perf_counter()
            p_new = release_puffs(*args, t_ov, lifetime_h=lifetime, near=grid, **kw)
            t3 = time.perf_counter()
            new = render_puffs(p_new, grid, chunk=int(tr.chunk))
            t4 = time.perf_counter()
            diff = float(np.abs(new - old).max() / max(np.abs(old).max(), 1e-30))
            rows.append(
                {
                    "day": d,
                    "pixels": int(grid.shape[0] * grid.shape[1]),
                    "sources": int(len(src)),
                    "sources_advected_new": int(np.unique(p_new.source).size),
                    "puffs_old": int(p_old.mass_mol.size),
                    "puffs_new": int(p_new.mass_mol.size),
                    "release_s_old": t1 - t0,
                    "render_s_old": t2 - t1,
                    "release_s_new": t3 - t2,
                    "render_s_new": t4 - t3,
                    "max_rel_diff": diff,
                }
            )
            r = rows[-1]
            print(
                f"  day {d} {grid.shape[0]}x{grid.shape[1]} px, {r['sources']} sources "
                f"({r['sources_advected_new']} advected new): release {r['release_s_old']:.3f} -> "
                f"{r['release_s_new']:.3f} s, render {r['render_s_old']:.3f} -> {r['render_s_new']:.3f} s, "
                f"max |diff| / max = {diff:.1e}",
                flush=True,
            )
    tot = {
        k: float(sum(r[k] for r in rows)) for k in ("release_s_old", "render_s_old", "release_s_new", "render_s_new")
    }
    puffs_old = sum(r["puffs_old"] for r in rows)
    old_s = tot["release_s_old"] + tot["render_s_old"]
    new_s = tot["release_s_new"] + tot["render_s_new"]
    return {
        "granules": rows,
        "n_granules": len(rows),
        **{k: round(v, 3) for k, v in tot.items()},
        "granule_s_old": round(old_s / max(len(rows), 1), 3),
        "granule_s_new": round(new_s / max(len(rows), 1), 3),
        "render_puffs_per_s_old": round(puffs_old / max(tot["render_s_old"], 1e-9)),
        "render_speedup": round(tot["render_s_old"] / max(tot["render_s_new"], 1e-9), 2),
        "release_speedup": round(tot["release_s_old"] / max(tot["release_s_new"], 1e-9), 2),
        "granule_speedup": round(old_s / max(new_s, 1e-9), 2),
        "max_rel_diff": max(r["max_rel_diff"] for r in rows),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=2, help="demo-region OSSE days")
    ap.add_argument("--china-days", type=int, default=1, help="osse=china_year days (0: skip)")
    ap.add_argument("--max-granules", type=int, default=3, help="granules per day")
    ap.add_argument("--data", default=str(REPO / ".cache" / "test-data"))
    args = ap.parse_args()
    from no2hotspots import logs
    from no2hotspots.config import compose

    logs.setup("WARNING")
    res = {"machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg(), "note": "shared 2-core machine"}}
    cases = [("demo", [], args.days), ("china_year", ["osse=china_year"], args.china_days)]
    for name, ovr, days in cases:
        if days <= 0:
            continue
        print(name, flush=True)
        cfg = compose([f"paths.data={args.data}", *ovr])
        r = bench_region(cfg, days, args.max_granules)
        res[name] = r
        print(
            f"{name}: {r['n_granules']} granules, per granule old {r['granule_s_old']} s -> new {r['granule_s_new']} s "
            f"(x{r['granule_speedup']}); render x{r['render_speedup']}, release x{r['release_speedup']}; "
            f"old renderer {r['render_puffs_per_s_old']} puffs/s; max rel diff {r['max_rel_diff']:.1e}",
            flush=True,
        )
    res["machine"]["loadavg_end"] = os.getloadavg()
    out = REPO / "benchmarks" / "results" / "osse_render.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
