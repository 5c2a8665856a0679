"""Small ingest/detect collections written with the contract writers (no2hotspots.contracts), for the evaluate tests.

``write_collection`` writes, for one collection:
  <root>/ingest/<name>/{grid.nc, overpasses/<key>.nc}     per overpass: no2, coverage on the whole grid
  <root>/detect/<name>/{hotspots.csv, hotspots.geojson, overpasses/<key>.nc, period.nc, detect.json}
and, with ``clouds``, OSSE-like truth fields <root>/osse/truth/fields/<key>_truth.nc (cloud_fraction on the cell
centres as pixels).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from no2hotspots.contracts import detections
from no2hotspots.contracts import grid as contract
from no2hotspots.detect import composite

RES = 0.05


def write_collection(
    root: Path,
    name: str,
    *,
    times,
    coverage: np.ndarray,
    hotspots: pd.DataFrame,
    lat0: float = 0.0,
    lon0: float = 0.0,
    clouds: np.ndarray | None = None,
    rel_background: float = 0.0,
    run_id: str | None = None,
) -> dict:
    """``coverage`` (t, ny, nx); ``hotspots``: rows with overpass index ``t``, ``peak_lat``, ``peak_lon``,
    ``peak_rel_emission`` (written into the relative-emission map at the peak cell) and optional
    ``nox_rate_estimate_t_per_yr``; ``clouds`` (t, ny, nx) cloud fraction for truth fields."""
    nt, ny, nx = coverage.shape
    lat = np.round(lat0 + RES * (np.arange(ny) + 0.5), 10)
    lon = np.round(lon0 + RES * (np.arange(nx) + 0.5), 10)
    times = pd.to_datetime(list(times))
    ing = root / "ingest" / name
    det = root / "detect" / name
    keys = [f"S5P_TEST_{i:03d}" for i in range(nt)]
    rows = []
    rel_all = []
    table = []
    for t in range(nt):
        cov = coverage[t].astype(float)
        no2 = np.where(cov > 0, 3e-5, np.nan)
        contract.write_overpass(
            contract.overpass_path(ing, keys[t]),
            lat=lat,
            lon=lon,
            res=RES,
            no2=no2,
            no2_precision=np.full_like(no2, 1e-5),
            coverage=cov,
            time=np.datetime64(times[t], "ns"),
            source_file=f"{keys[t]}.nc",
        )
        rows.append(
            {"key": keys[t], "time": times[t], "source_file": f"{keys[t]}.nc", "i0": 0, "j0": 0, "ny": ny, "nx": nx}
        )
        rel = np.where(cov > 0, rel_background, np.nan).astype(np.float32)
        ids = np.zeros((ny, nx), np.int32)
        mine = hotspots[hotspots["t"] == t].reset_index(drop=True)
        for k, h in mine.iterrows():
            i = int(np.floor((h["peak_lat"] - lat0) / RES))
            j = int(np.floor((h["peak_lon"] - lon0) / RES))
            rel[i, j] = h["peak_rel_emission"]
            ids[i, j] = k + 1
            table.append(
                {
                    "overpass": keys[t],
                    "overpass_hotspot": k + 1,
                    "time": times[t].strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "peak_lat": h["peak_lat"],
                    "peak_lon": h["peak_lon"],
                    "peak_rel_emission": h["peak_rel_emission"],
                    "sum_rel_emission": h["peak_rel_emission"],
                    "nox_rate_estimate_t_per_yr": h.get("nox_rate_estimate_t_per_yr", 1000.0),
                    "area_km2": 30.0,
                    "n_cells": 1,
                    "obs_count": nt,
                }
            )
        detections.write_overpass(
            detections.overpass_path(det, keys[t]), lat=lat, lon=lon, res=RES, rel=rel, ids=ids, time=times[t], attrs={}
        )
        rel_all.append(rel)
        if clouds is not None:
            fields = xr.Dataset(
                {
                    "cloud_fraction": (("scanline", "ground_pixel"), clouds[t].astype(np.float32)),
                    "latitude": (("scanline", "ground_pixel"), np.repeat(lat[:, None], nx, 1).astype(np.float32)),
                    "longitude": (("scanline", "ground_pixel"), np.repeat(lon[None, :], ny, 0).astype(np.float32)),
                }
            )
            out = root / "osse" / "truth" / "fields" / f"{keys[t]}_truth.nc"
            out.parent.mkdir(parents=True, exist_ok=True)
            fields.to_netcdf(out)
    counted = coverage > 0.75
    obs = counted.sum(0)
    with np.errstate(invalid="ignore"):
        no2_mean = np.where(obs > 0, 3e-5, np.nan)
    contract.write_grid(
        ing,
        lat=lat,
        lon=lon,
        res=RES,
        obs_count=obs,
        no2_mean=no2_mean,
        index=pd.DataFrame(rows),
        attrs={"collection": name, "coverage_min": 0.75},
    )
    df = pd.DataFrame(table, columns=[c for c in detections.COLUMNS if c != "hotspot_id"])
    df.insert(0, "hotspot_id", np.arange(1, len(df) + 1))
    det.mkdir(parents=True, exist_ok=True)
    detections.write_hotspots(df, det, {"collection": name})
    stack = np.stack(rel_all)
    with np.errstate(invalid="ignore"):
        detections.write_period(
            det,
            lat=lat,
            lon=lon,
            res=RES,
            rel_max=np.nanmax(np.where(np.isfinite(stack), stack, -1), axis=0).clip(0),
            rel_mean=np.where(
                np.isfinite(stack).any(0), np.nansum(stack, axis=0) / np.maximum(np.isfinite(stack).sum(0), 1), np.nan
            ),
            n_valid=np.isfinite(stack).sum(0),
            n_detections=(stack >= 0.2).sum(0),
            n_peaks=composite.peak_counts(
                df["peak_lat"].to_numpy(float), df["peak_lon"].to_numpy(float), lat, lon, RES
            ),
            attrs={},
        )
    meta = {"model_name": "m", "model_version": "1", "n_hotspots": len(df)}
    if run_id:
        meta["run_id"] = run_id
    (det / "detect.json").write_text(json.dumps(meta))
    return {"keys": keys, "lat": lat, "lon": lon, "hotspots": df}


def overrides(tmp_path: Path, collection: str = "osse") -> list[str]:
    """compose() overrides pointing every path at tmp_path (outputs under tmp_path/outputs)."""
    out = tmp_path / "outputs"
    return [
        f"paths.outputs={out}",
        f"paths.metrics={tmp_path}/metrics",
        f"paths.plots={tmp_path}/plots",
        f"paths.mlruns={tmp_path}/mlruns",
        f"evaluate.collection={collection}",
        "evaluate.log_to=none",
        "evaluate.maps=false",
        "parallel.scheduler=sync",
        "evaluate.collections.osse.min_observations=1",  # the test case has 4 overpasses, the demo's year needs 10
    ]
