"""``python -m no2hotspots baseline [baseline.collection=NAME]``: flux-divergence hotspots of each collection.

Per overpass (a unit on Dask, as in detect): the emission map E = div(V w) + V / tau (:mod:`.divergence`); over the
period: the mean of E over the overpasses that observed each cell, and its hotspots: 8-connected regions above
``median + k_sigma x 1.4826 x MAD`` of the mean map (the same false-alarm control as the model's composite), each
reported at its peak with the emission it integrates (sum of E x cell area over the region, E above the map's median,
as NOx). Written as
``<baseline.out_dir>/<c>/composite.csv`` (the composite-table layout the evaluation scores beside the model's),
``period.nc`` (mean_emission, n_valid) and ``baseline.json``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from omegaconf import DictConfig, OmegaConf

from .. import units
from ..atomic import atomic_path, write_json
from ..config import PLAIN_NAME, require, require_int, require_odd_int
from ..contracts import grid as grid_contract
from ..errors import ConfigError, InputFileError
from ..peaks import settings as peak_settings
from ..readfile import open_netcdf
from .divergence import EARTH_RADIUS_M, OverpassTask, divergence_overpass
from .smoothing import smoothed_mean

log = logging.getLogger(__name__)

NO2_G_PER_MOL = 46.0055
#: the settings a per-overpass unit (divergence_overpass) reads
UNIT_SETTINGS = ("lifetime_h", "coverage_min", "wind_step_cells")
SECONDS_PER_YEAR = 365.25 * 86400.0


def settings(cfg: DictConfig, name: str | None = None) -> dict:
    """The checked settings, with ``baseline.collections.<name>.<key>`` over ``baseline.<key>``."""
    if name is not None:
        over = {k: v for k, v in cfg.baseline.collections[name].items() if k != "wind_paths"}
        cfg = OmegaConf.merge(cfg, {"baseline": over})
    b = "baseline."
    return {
        "lifetime_h": float(require(cfg, b + "lifetime_h", lambda v: float(v) > 0, "must be > 0 hours")),
        "nox_no2_ratio": float(require(cfg, b + "nox_no2_ratio", lambda v: 1 <= float(v) <= 3, "must be in 1..3")),
        "coverage_min": float(require(cfg, b + "coverage_min", lambda v: 0 <= float(v) <= 1, "must be in [0, 1]")),
        "wind_step_cells": require_int(cfg, b + "wind_step_cells", 1),
        "min_valid": require_int(cfg, b + "min_valid", 1),
        "k_sigma": float(require(cfg, b + "k_sigma", lambda v: float(v) > 0, "must be > 0")),
        "smooth_cells": require_odd_int(cfg, b + "smooth_cells"),
        "min_cells": require_int(cfg, b + "min_cells", 1),
        "peaks": peak_settings(cfg, b + "peaks"),
    }


def collections(cfg: DictConfig) -> list[str]:
    one = OmegaConf.select(cfg, "baseline.collection", default=None)
    names = [one] if one else list(cfg.baseline.collections or {})
    for n in names:
        if not isinstance(n, str) or not PLAIN_NAME.match(n) or n not in cfg.baseline.collections:
            raise ConfigError("baseline.collection", f"must name a configured collection (got {n!r})")
    return names


def run(cfg: DictConfig) -> dict:
    return {name: baseline_collection(cfg, name, settings(cfg, name)) for name in collections(cfg)}


def baseline_collection(cfg: DictConfig, name: str, s: dict) -> dict:
    from ..parallel import map_units
    from ..winds import open_winds

    folder = Path(str(cfg.baseline.ingest_dir)) / name
    grid = grid_contract.open_grid(folder)
    index = grid_contract.overpass_index(grid)
    wp = cfg.baseline.collections[name].get("wind_paths")
    paths = OmegaConf.to_container(wp, resolve=True) if OmegaConf.is_config(wp) else ([wp] if wp else [])
    winds = open_winds(cfg.baseline.winds, paths, key="baseline.winds")
    units_dir = Path(str(cfg.baseline.units_dir)) / name
    units_dir.mkdir(parents=True, exist_ok=True)
    # a unit's identity: the settings its map depends on, the wind's included: the files the wind paths match now
    # (name, size, mtime: a wind file added or replaced recomputes the maps), their settings and the code that
    # samples them (the period's threshold, smoothing and peak split run on the accumulated maps: changing them
    # reuses every unit)
    unit_settings = {k: s[k] for k in UNIT_SETTINGS}
    fixed = units.digest(
        {
            **unit_settings,
            "winds": [units.file_identity(f.path) for f in winds.files],
            "wind_settings": OmegaConf.to_container(cfg.baseline.winds, resolve=True),
            "code": units.code_digest("no2hotspots.baseline.divergence", "no2hotspots.winds"),
        }
    )
    tasks = [
        OverpassTask(
            k,
            str(grid_contract.overpass_path(folder, k)),
            str(units_dir),
            units.digest([fixed, units.file_identity(grid_contract.overpass_path(folder, k))]),
        )
        for k in index["key"]
    ]
    results = map_units(
        divergence_overpass, tasks, cfg, desc=f"baseline {name}", shared={"winds": winds, "s": unit_settings}
    )
    units.prune(units_dir, [t.key for t in tasks])
    used = index[index["key"].isin([r["key"] for r in results if r["has_wind"]])]
    if used.empty:
        raise InputFileError(folder, "no overpass has a wind direction (baseline.collections.<c>.wind_paths)")
    mean, n_valid = accumulate(used, grid, units_dir)
    table = hotspots(mean, n_valid, grid, s)
    summary = {
        "collection": name,
        "n_overpasses": int(len(index)),
        "n_overpasses_with_wind": int(len(used)),
        "n_hotspots": int(len(table)),
        "settings": s,
        "method": "flux divergence (Beirle et al. 2019)",
    }
    publish(Path(str(cfg.baseline.out_dir)) / name, table, mean, n_valid, grid, summary)
    log.info("baseline %s: %d hotspot(s) from %d overpass(es) with wind", name, len(table), len(used))
    return summary


def accumulate(index: pd.DataFrame, grid: xr.Dataset, units_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    shape = (grid.sizes["lat"], grid.sizes["lon"])
    total, n = np.zeros(shape), np.zeros(shape, np.int32)
    for r in index.itertuples():
        ds = open_netcdf(units_dir / f"{r.key}.nc", load=True, what="baseline unit file")
        if "emission" not in ds:
            raise InputFileError(units_dir / f"{r.key}.nc", "missing variable emission (not a baseline unit file?)")
        e = ds["emission"].values.astype(np.float64)
        ok = np.isfinite(e)
        w = (slice(r.i0, r.i0 + r.ny), slice(r.j0, r.j0 + r.nx))
        total[w] += np.where(ok, e, 0.0)
        n[w] += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan), n


def hotspots(mean: np.ndarray, n_valid: np.ndarray, grid: xr.Dataset, s: dict) -> pd.DataFrame:
    """Regions of the (box-smoothed) mean map above the robust threshold; one row per region at its peak."""
    from scipy import ndimage

    from ..detect.composite import threshold
    from ..detect.hotspots import label_regions

    m = smoothed_mean(mean, n_valid, s["min_valid"], s["smooth_cells"])
    thr = threshold(m, n_valid, min_valid=s["min_valid"], k_sigma=s["k_sigma"], min_value=1e-30)
    lab, n = label_regions(m, thr, s["min_cells"], **s["peaks"])
    lat, lon = grid["lat"].values, grid["lon"].values
    area = (EARTH_RADIUS_M * np.radians(float(grid.attrs["resolution_deg"]))) ** 2 * np.cos(np.radians(lat))[:, None]
    rows = []
    if n:
        idx = np.arange(1, n + 1)
        peaks = ndimage.maximum_position(np.nan_to_num(m, nan=-np.inf), lab, idx)
        values = np.asarray(ndimage.maximum(np.nan_to_num(m, nan=-np.inf), lab, idx), dtype=float)
        # the region's emission above the map's median (the sink term of the regional background is not the source)
        excess = np.nan_to_num(mean - np.nanmedian(np.where(n_valid >= s["min_valid"], mean, np.nan)))
        flux = np.asarray(ndimage.sum(excess * area, lab, idx), dtype=float)  # mol NO2 s-1
        cells = np.bincount(lab.ravel(), minlength=n + 1)[1:]
        for k in np.lexsort((idx, -values)):
            i, j = peaks[k]
            rows.append(
                {
                    "peak_lat": round(float(lat[i]), 6),
                    "peak_lon": round(float(lon[j]), 6),
                    "peak_value": float(values[k]),
                    "n_cells": int(cells[k]),
                    "n_valid": int(n_valid[i, j]),
                    "nox_t_per_yr": float(flux[k] * s["nox_no2_ratio"] * NO2_G_PER_MOL * SECONDS_PER_YEAR / 1e6),
                    "threshold": float(thr),
                }
            )
    df = pd.DataFrame(
        rows, columns=["peak_lat", "peak_lon", "peak_value", "n_cells", "n_valid", "nox_t_per_yr", "threshold"]
    )
    df.insert(0, "site_id", np.arange(1, len(df) + 1, dtype=np.int64))
    return df


def publish(out_dir: Path, table: pd.DataFrame, mean, n_valid, grid: xr.Dataset, summary: dict) -> None:
    ds = xr.Dataset(
        {
            "mean_emission": (
                ("lat", "lon"),
                mean.astype(np.float32),
                {"units": "mol m-2 s-1", "long_name": "mean NO2 emission by flux divergence (div(V w) + V/tau)"},
            ),
            "n_valid": (("lat", "lon"), n_valid.astype(np.int32), {"units": "1"}),
        },
        coords={"lat": grid["lat"].values, "lon": grid["lon"].values},
        attrs={"Conventions": "CF-1.10", "title": "no2hotspots baseline: flux-divergence emission map"},
    )
    with atomic_path(out_dir, is_dir=True) as tmp:
        table.to_csv(tmp / "composite.csv", index=False)
        ds.to_netcdf(
            tmp / "period.nc", engine="netcdf4", encoding={"mean_emission": {"zlib": True}, "n_valid": {"zlib": True}}
        )
        write_json(tmp / "baseline.json", summary)
