"""What a period table's false sites are: each site of an evaluated table with no truth source within the match
distance, with its distance to the nearest source and to the nearest TRUE site of the same table, and the OSSE's
noise-free background NO2 around it relative to the background's median (the OSSE's persistent urban blobs are
static columns that no source emits, the distractors the products must not mark).

For a workspace or a folder kept by ``grid_invariance.py --keep --evaluate`` (``<root>/<tag>``, which evaluate wrote
under ``<tag>/evaluate/osse``); the truth comes from ``--osse`` (``<root>/osse`` there, ``outputs/osse`` in a
workspace). The background ratio is the median over ``--every``-th truth granule of the mean background within
``--radius-km`` of the site divided by that granule's median background. Writes nothing; prints one line per false
site and a summary per table.

    .venv/bin/python benchmarks/false_sites.py --outputs R/TAG --osse R/osse [--tables hybrid composite baseline]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from no2hotspots.evaluate.facilities import group_units
from no2hotspots.evaluate.geo import PointIndex


def background_ratio(fields: list[Path], lat: np.ndarray, lon: np.ndarray, radius_km: float) -> np.ndarray:
    """Median over the granules of (mean background within ``radius_km`` of each point) / (granule median)."""
    out = [[] for _ in lat]
    for f in fields:
        with xr.open_dataset(f) as ds:
            la, lo, bg = (ds[v].values.ravel() for v in ("latitude", "longitude", "no2_background"))
        ok = np.isfinite(bg) & np.isfinite(la) & np.isfinite(lo)
        la, lo, bg = la[ok], lo[ok], bg[ok]
        if not bg.size:
            continue
        med = float(np.median(bg))
        for k, near in enumerate(PointIndex(la, lo).within(lat, lon, radius_km)):
            if len(near):
                out[k].append(float(bg[near].mean()) / med)
    return np.array([np.median(v) if v else np.nan for v in out])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--outputs", required=True, help="the folder holding evaluate/osse (a workspace's outputs)")
    ap.add_argument("--osse", required=True, help="the OSSE's output folder (truth/sources.csv, truth/fields)")
    ap.add_argument("--tables", nargs="+", default=["hybrid", "composite", "baseline"])
    ap.add_argument("--every", type=int, default=10, help="use every N-th truth granule for the background")
    ap.add_argument("--radius-km", type=float, default=9.0)
    args = ap.parse_args(argv)
    osse = Path(args.osse)
    src = group_units(pd.read_csv(osse / "truth" / "sources.csv"))  # the facilities evaluate scored (1 km)
    fields = sorted((osse / "truth" / "fields").glob("*.nc"))[:: args.every]
    for table in args.tables:
        sites = pd.read_csv(Path(args.outputs) / "evaluate" / "osse" / table / "hotspot_sites.csv")
        true, false = sites[sites["matched"]], sites[~sites["matched"]]
        print(f"{table}: {len(sites)} sites, {len(false)} without a source within the match distance")
        if false.empty:
            continue
        if len(true):
            _, d_true = PointIndex(true["lat"], true["lon"]).nearest(false["lat"], false["lon"])
        else:
            d_true = np.full(len(false), np.nan)
        ratio = background_ratio(fields, false["lat"].to_numpy(float), false["lon"].to_numpy(float), args.radius_km)
        nox = src.set_index("id")["nox_t_per_yr"]
        for (_, s), dt, r in zip(false.iterrows(), d_true, ratio):
            print(
                f"  site {int(s['site_id']):4d} ({s['lat']:.3f}, {s['lon']:.3f}): nearest source"
                f" {s['nearest_source_km']:5.1f} km ({nox.get(s['nearest_source_id'], np.nan):7.0f} t NOx/yr),"
                f" nearest true site {dt:5.1f} km, background x{r:.2f}"
            )
        blob = ratio >= 2.0
        near = ~blob & (np.asarray(d_true) <= 20.0)
        print(
            f"  {int(blob.sum())} on a background >= 2x its median (an urban blob), {int(near.sum())} others within"
            f" 20 km of a true site, {int((~blob & ~near).sum())} neither"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
