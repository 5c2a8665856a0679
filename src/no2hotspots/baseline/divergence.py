"""One overpass's emission map by flux divergence: E = div(V w) + V / tau [mol m-2 s-1], V the tropospheric NO2
column [mol m-2] on the overpass's part of the grid, w the wind (u, v) [m s-1] at the plume level, tau the NO2
lifetime. Central differences on the sphere (cell widths from the latitudes); a cell needs itself and its four
neighbours observed. The wind is sampled on a coarse lattice of the grid and interpolated (it is smooth on the
grid's scale); lattice points outside the wind files' domain take the mean wind of those inside; without any wind
direction (no wind file covers the overpass) the overpass gives no map.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import units
from ..contracts import grid as grid_contract

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class OverpassTask:
    key: str
    source: str
    units_dir: str
    unit_hash: str


def emission_map(
    no2: np.ndarray, u: np.ndarray, v: np.ndarray, lat: np.ndarray, res_deg: float, lifetime_s: float
) -> np.ndarray:
    """E = dFx/dx + dFy/dy + V/tau with F = V (u, v); rows ascend northward. NaN where a neighbour is missing."""
    fx, fy = no2 * u, no2 * v
    dx = EARTH_RADIUS_M * np.cos(np.radians(lat))[:, None] * np.radians(res_deg)
    dy = EARTH_RADIUS_M * np.radians(res_deg)
    div = np.full(no2.shape, np.nan)
    div[1:-1, 1:-1] = (fx[1:-1, 2:] - fx[1:-1, :-2]) / (2 * dx[1:-1]) + (fy[2:, 1:-1] - fy[:-2, 1:-1]) / (2 * dy)
    return div + no2 / lifetime_s


def wind_on_grid(winds, lat: np.ndarray, lon: np.ndarray, time, step: int) -> tuple[np.ndarray, np.ndarray] | None:
    """u, v on the grid from a coarse lattice (every ``step`` cells + the edges), or None without a direction."""
    from scipy.interpolate import RegularGridInterpolator

    iy = np.unique(np.r_[np.arange(0, lat.size, step), lat.size - 1])
    ix = np.unique(np.r_[np.arange(0, lon.size, step), lon.size - 1])
    la, lo = np.meshgrid(lat[iy], lon[ix], indexing="ij")
    w = winds.at(la.ravel(), lo.ravel(), time)
    known = np.isfinite(w.u) & np.isfinite(w.v)
    if not known.any():
        return None
    out = []
    for comp in (w.u, w.v):  # lattice points outside the wind files' domain take the mean of those inside
        grid = np.where(known, comp, np.mean(comp[known])).reshape(la.shape)
        if iy.size < 2 or ix.size < 2:
            out.append(np.full((lat.size, lon.size), float(np.mean(grid))))
            continue
        f = RegularGridInterpolator((lat[iy], lon[ix]), grid, bounds_error=False, fill_value=None)
        yy, xx = np.meshgrid(lat, lon, indexing="ij")
        out.append(f(np.stack([yy.ravel(), xx.ravel()], axis=1)).reshape(yy.shape))
    return out[0], out[1]


def divergence_overpass(task: OverpassTask, *, winds, s: dict) -> dict:
    """The unit: write the overpass's E map into the unit folder (skipped when done); return its key and status."""
    done = units.load_done(task.units_dir, task.key, task.unit_hash)
    if done is not None:
        return {**done, "reused": True}
    ds = grid_contract.open_overpass(task.source)
    lat, lon = ds["lat"].values, ds["lon"].values
    valid = np.isfinite(ds["no2"].values) & (np.nan_to_num(ds["coverage"].values) >= s["coverage_min"])
    wind = wind_on_grid(winds, lat, lon, ds["time"].values, int(s["wind_step_cells"]))
    result = {"key": task.key, "has_wind": wind is not None}
    files = []
    if wind is not None:
        no2 = np.where(valid, ds["no2"].values.astype(np.float64), np.nan)
        e = emission_map(no2, wind[0], wind[1], lat, float(ds.attrs["resolution_deg"]), s["lifetime_h"] * 3600.0)
        write_unit(Path(task.units_dir) / f"{task.key}.nc", e, ds)
        files = [f"{task.key}.nc"]
    units.mark_done(task.units_dir, task.key, task.unit_hash, files, result)
    return {**result, "reused": False}


def write_unit(path: Path, e: np.ndarray, ds) -> None:
    import xarray as xr

    from ..atomic import atomic_path

    out = xr.Dataset(
        {"emission": (("lat", "lon"), e.astype(np.float32), {"units": "mol m-2 s-1"})},
        coords={"lat": ds["lat"].values, "lon": ds["lon"].values},
    )
    with atomic_path(path) as tmp:
        out.to_netcdf(tmp, engine="netcdf4", encoding={"emission": {"zlib": True}})
