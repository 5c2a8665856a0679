"""THE adapter between the quantify stage and the on-disk layouts of its inputs (the only module that knows them).

- :func:`overpasses` yields ``(time, xr.Dataset with no2, no2_precision (lat, lon), coords lat, lon)`` per overpass.
  It reads the collection folder ``<ingest_dir>/<collection>/`` (grid.nc + overpasses/<key>.nc, through
  :mod:`no2hotspots.contracts.grid`) and, where only that exists, the earlier single grid file
  ``<ingest_dir>/<collection>.nc`` (dim ``time``).
- :func:`read_hotspots` reads ``<detect_dir>/<collection>/hotspots.csv`` (:mod:`no2hotspots.contracts.detections`);
  :func:`hotspots_of` picks one overpass's rows (by the ``overpass`` key, else by time).
- :func:`load_sites` reads an inventory (CSV path or inventory config) for truth and CO2/NOx ratios.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import InputFileError
from ..readfile import open_netcdf

NEEDED = ("no2",)


def _as_overpass(ds: xr.Dataset, path) -> xr.Dataset:
    missing = [v for v in NEEDED if v not in ds]
    if missing or "lat" not in ds.coords or "lon" not in ds.coords:
        raise InputFileError(path, f"missing {', '.join(missing or ['lat/lon'])} (not an ingest grid?)")
    keep = [v for v in ("no2", "no2_precision", "coverage") if v in ds]
    out = ds[keep].drop_vars([c for c in ds[keep].coords if c not in ("lat", "lon")])
    if "no2_precision" not in out:
        out["no2_precision"] = xr.full_like(out["no2"], np.nan)
    return out.transpose("lat", "lon").load()


def ingest_source(collection: str, ingest_dir: str | Path) -> Path:
    """The collection folder (``<ingest_dir>/<collection>/`` with grid.nc) if present, else the single grid file
    ``<ingest_dir>/<collection>.nc`` of the earlier layout (which may not exist either)."""
    d = Path(ingest_dir)
    folder = d / collection
    return folder if (folder / "grid.nc").exists() or folder.is_dir() else d / f"{collection}.nc"


def overpasses(collection: str, ingest_dir: str | Path) -> Iterator[tuple[np.datetime64, xr.Dataset]]:
    """Overpasses of a collection in time order: ``(time, Dataset(no2, no2_precision[, coverage]) on (lat, lon))``.

    The dataset's attribute ``overpass`` holds the overpass key (per-overpass layout) or the time step index.
    """
    src = ingest_source(collection, ingest_dir)
    if src.is_dir():
        from ..contracts import grid as gridc

        index = gridc.overpass_index(gridc.open_grid(src))
        for row in index.sort_values(["time", "key"], kind="stable").itertuples():
            path = gridc.overpass_path(src, row.key)
            ds = _as_overpass(gridc.open_overpass(path), path)
            ds.attrs["overpass"] = str(row.key)
            yield np.datetime64(pd.Timestamp(row.time).tz_localize(None), "ns"), ds
        return
    ds = open_netcdf(src, not_found="not found; run the ingest stage for this collection first", load=True)
    if "time" not in ds.dims:
        raise InputFileError(src, "no time dimension (not an ingest grid?)")
    for i in range(ds.sizes["time"]):
        o = _as_overpass(ds.isel(time=i), src)
        o.attrs["overpass"] = str(i)
        yield np.datetime64(ds["time"].values[i], "ns"), o


def read_hotspots(collection: str, detect_dir: str | Path) -> pd.DataFrame:
    """The detect stage's hotspot table with ``time`` as UTC timestamps (one-line errors naming the file)."""
    from ..contracts.detections import read_hotspots as _read

    return _read(Path(detect_dir) / collection / "hotspots.csv")


def hotspots_of(hot: pd.DataFrame, time: np.datetime64, overpass: str | None) -> pd.DataFrame:
    """The hotspots of one overpass: by the ``overpass`` key where the table has it, else by time (+-60 s)."""
    if overpass is not None and "overpass" in hot.columns and hot["overpass"].notna().any():
        return hot[hot["overpass"].astype(str) == str(overpass)]
    t = pd.Timestamp(time)
    t = t.tz_localize("UTC") if t.tzinfo is None else t
    return hot[(hot["time"] - t).abs().dt.total_seconds().to_numpy() <= 60.0]


def load_sites(spec, key: str) -> pd.DataFrame | None:
    """Inventory point sources (id, lat, lon, nox_t_per_yr, co2_t_per_yr[, fuel]); None when ``spec`` is empty."""
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return None
    from ..evaluate.inputs import load_inventory

    return load_inventory(spec, key)
