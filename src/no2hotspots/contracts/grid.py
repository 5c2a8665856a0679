"""Gridded TROPOMI NO2 (ingest -> detect, evaluate, quantify; docs/contracts.md, "Gridded TROPOMI").

One folder per collection, ``<ingest.out_dir>/<collection>/``::

    overpasses/<key>.nc   one file per overpass (granule): no2, no2_precision, coverage on (lat, lon), the part of
                          the collection grid the overpass covers (cell centres are multiples of the resolution, so
                          every overpass file lines up with the collection grid); attributes time, source_file
    grid.nc               the collection grid (lat, lon, bounds), the period products obs_count and no2_mean, and
                          the index of the overpasses (dim ``overpass``: key, time, source file, position i0/j0 and
                          size ny/nx of its part of the grid), written last: its presence marks a finished ingest

Nothing here holds more than one overpass in memory.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..atomic import atomic_path
from ..errors import InputFileError
from ..readfile import open_netcdf

OVERPASS_DIR = "overpasses"
GRID_FILE = "grid.nc"
OVERPASS_VARS = ("no2", "no2_precision", "coverage")
MOL = "mol m-2"
NO2_NAME = "troposphere_mole_content_of_nitrogen_dioxide"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def overpass_key(source_file: str | Path) -> str:
    """The unit key of a granule: its file stem as a plain name (no path, no odd characters)."""
    stem = _UNSAFE.sub("_", Path(source_file).stem).strip("._")[:150]
    if not stem:
        raise InputFileError(source_file, "file name gives no usable overpass key")
    return stem


def coords(lat: np.ndarray, lon: np.ndarray, res: float) -> dict:
    """CF coordinates with bounds for cell centres ``lat``, ``lon`` (regular, step ``res``)."""
    half = 0.5 * float(res)
    return {
        "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude", "bounds": "lat_bnds"}),
        "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude", "bounds": "lon_bnds"}),
        "lat_bnds": (("lat", "bnds"), np.stack([lat - half, lat + half], axis=1), {"units": "degrees_north"}),
        "lon_bnds": (("lon", "bnds"), np.stack([lon - half, lon + half], axis=1), {"units": "degrees_east"}),
    }


CRS_ATTRS = {
    "grid_mapping_name": "latitude_longitude",
    "longitude_of_prime_meridian": 0.0,
    "semi_major_axis": 6378137.0,
    "inverse_flattening": 298.257223563,
    "crs_wkt": 'GEOGCRS["WGS 84",DATUM["World Geodetic System 1984",ELLIPSOID["WGS 84",6378137,298.257223563]],'
    'CS[ellipsoidal,2],AXIS["latitude",north],AXIS["longitude",east],ANGLEUNIT["degree",0.0174532925199433],'
    'ID["EPSG",4326]]',
}


def with_crs(ds: xr.Dataset, variables) -> xr.Dataset:
    """Add the WGS 84 ``crs`` variable and ``grid_mapping`` on ``variables`` (GDAL/QGIS read the grid then)."""
    ds["crs"] = xr.DataArray(np.int32(0), attrs=CRS_ATTRS)
    for v in variables:
        ds[v].attrs["grid_mapping"] = "crs"
    return ds


TIME_ENCODING = {"units": "seconds since 1970-01-01 00:00:00", "calendar": "standard", "dtype": "float64"}


def write_overpass(
    path: str | Path,
    *,
    lat: np.ndarray,
    lon: np.ndarray,
    res: float,
    no2: np.ndarray,
    no2_precision: np.ndarray,
    coverage: np.ndarray,
    time: np.datetime64,
    source_file: str,
    attrs: dict | None = None,
) -> None:
    """One overpass on its part of the grid, written atomically (zlib: the NaN outside the swath costs nothing)."""
    ds = xr.Dataset(
        {
            "no2": (
                ("lat", "lon"),
                no2.astype(np.float32),
                {
                    "units": MOL,
                    "standard_name": NO2_NAME,
                    "long_name": "area-weighted mean tropospheric NO2 column (NaN where not covered)",
                },
            ),
            "no2_precision": (
                ("lat", "lon"),
                no2_precision.astype(np.float32),
                {"units": MOL, "long_name": "precision of the cell mean, sqrt(sum w^2 s^2)/sum w (independent errors)"},
            ),
            "coverage": (
                ("lat", "lon"),
                coverage.astype(np.float32),
                {"units": "1", "long_name": "fraction of the cell covered by valid pixels"},
            ),
        },
        coords={
            **coords(lat, lon, res),
            "time": ((), np.datetime64(time, "ns"), {"standard_name": "time", "long_name": "overpass time"}),
        },
        attrs={
            "Conventions": "CF-1.10",
            "source_file": str(source_file),
            "resolution_deg": float(res),
            **(attrs or {}),
        },
    )
    ds = with_crs(ds, OVERPASS_VARS)
    enc = {v: {"zlib": True, "complevel": 4} for v in OVERPASS_VARS}
    enc["time"] = TIME_ENCODING
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=enc)


def open_overpass(path: str | Path) -> xr.Dataset:
    ds = open_netcdf(path, load=True, what="overpass grid")
    missing = [v for v in OVERPASS_VARS if v not in ds]
    if missing or tuple(ds["no2"].dims) != ("lat", "lon"):
        raise InputFileError(path, f"not an ingest overpass file (missing {', '.join(missing) or 'dims lat, lon'})")
    return ds


def write_grid(
    folder: str | Path,
    *,
    lat: np.ndarray,
    lon: np.ndarray,
    res: float,
    obs_count: np.ndarray,
    no2_mean: np.ndarray,
    index: pd.DataFrame,
    attrs: dict,
) -> None:
    """``grid.nc``: the collection grid, its period products and the overpass index (columns key, time,
    source_file, i0, j0, ny, nx), written atomically and last."""
    index = index.sort_values(["time", "key"], kind="stable").reset_index(drop=True)
    ds = xr.Dataset(
        {
            "obs_count": (
                ("lat", "lon"),
                obs_count.astype(np.int32),
                {"units": "1", "long_name": f"overpasses covering more than {attrs.get('coverage_min')} of the cell"},
            ),
            "no2_mean": (
                ("lat", "lon"),
                no2_mean.astype(np.float32),
                {
                    "units": MOL,
                    "standard_name": NO2_NAME,
                    "long_name": "mean tropospheric NO2 column over the counted overpasses",
                    "cell_methods": "time: mean",
                },
            ),
            "overpass_key": (("overpass",), index["key"].astype(str).to_numpy()),
            "overpass_file": (("overpass",), index["source_file"].astype(str).to_numpy()),
            "overpass_time": (
                ("overpass",),
                pd.to_datetime(index["time"]).to_numpy(dtype="datetime64[ns]"),
                {"standard_name": "time", "long_name": "overpass time"},
            ),
            **{
                c: (
                    ("overpass",),
                    index[c].astype(np.int32).to_numpy(),
                    {"long_name": f"{c} of the overpass's part of the collection grid"},
                )
                for c in ("i0", "j0", "ny", "nx")
            },
        },
        coords=coords(lat, lon, res),
        attrs={"Conventions": "CF-1.10", "resolution_deg": float(res), "n_overpasses": int(len(index)), **attrs},
    )
    ds = with_crs(ds, ("obs_count", "no2_mean"))
    enc = {"obs_count": {"zlib": True}, "no2_mean": {"zlib": True}, "overpass_time": TIME_ENCODING}
    with atomic_path(Path(folder) / GRID_FILE) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=enc)


def open_grid(folder: str | Path) -> xr.Dataset:
    """The collection's ``grid.nc`` (small: no per-overpass fields), loaded."""
    path = Path(folder) / GRID_FILE
    ds = open_netcdf(
        path, not_found="not found; run the ingest stage for this collection first", load=True, what="ingest grid"
    )
    missing = [v for v in ("obs_count", "overpass_key", "i0", "j0") if v not in ds]
    if missing:
        raise InputFileError(path, f"missing variable(s) {', '.join(missing)} (not an ingest grid?)")
    return ds


def overpass_index(grid: xr.Dataset) -> pd.DataFrame:
    """The overpass index of an opened grid.nc as a table (key, time, source_file, i0, j0, ny, nx), by time."""
    if grid.sizes.get("overpass", 0) == 0:
        return pd.DataFrame(columns=["key", "time", "source_file", "i0", "j0", "ny", "nx"])
    return pd.DataFrame(
        {
            "key": grid["overpass_key"].values.astype(str),
            "time": pd.to_datetime(grid["overpass_time"].values),
            "source_file": grid["overpass_file"].values.astype(str),
            **{c: grid[c].values.astype(int) for c in ("i0", "j0", "ny", "nx")},
        }
    )


def overpass_path(folder: str | Path, key: str) -> Path:
    return Path(folder) / OVERPASS_DIR / f"{key}.nc"
