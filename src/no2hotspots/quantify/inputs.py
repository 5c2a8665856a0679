"""THE adapter between the quantify stage and the on-disk layouts of its inputs (the only module that knows them).

- :func:`overpasses` yields ``(time, xr.Dataset with no2, no2_precision (lat, lon), coords lat, lon)`` per overpass.
  It reads the current ingest grid ``<ingest_dir>/<collection>.nc`` (one file, dim ``time``; docs/contracts.md,
  Gridded TROPOMI) and, when it exists instead, a folder ``<ingest_dir>/<collection>/`` of per-overpass files
  (``*.nc``, each either without a time dim or with time of length 1; the layout the ingest stage is moving to).
- :func:`read_hotspots` reads ``<detect_dir>/<collection>/hotspots.csv`` (docs/contracts.md, Detections).
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
    out = ds[keep]
    if "no2_precision" not in out:
        out["no2_precision"] = xr.full_like(out["no2"], np.nan)
    return out.transpose("lat", "lon").load()


def ingest_source(collection: str, ingest_dir: str | Path) -> Path:
    """The folder of per-overpass files if present, else the single grid file (which may not exist)."""
    d = Path(ingest_dir)
    folder = d / collection
    return folder if folder.is_dir() else d / f"{collection}.nc"


def overpasses(collection: str, ingest_dir: str | Path) -> Iterator[tuple[np.datetime64, xr.Dataset]]:
    """Overpasses of a collection in time order: ``(time, Dataset(no2, no2_precision[, coverage]) on (lat, lon))``."""
    src = ingest_source(collection, ingest_dir)
    if src.is_dir():
        files = sorted(src.glob("*.nc"))
        items = []
        for f in files:
            ds = open_netcdf(f, load=True, what="ingest overpass file")
            if "time" in ds.dims:
                for i in range(ds.sizes["time"]):
                    items.append((np.datetime64(ds["time"].values[i], "ns"), f, ds.isel(time=i)))
            else:
                t = ds["time"].values if "time" in ds.variables else ds.attrs.get("time")
                if t is None:
                    raise InputFileError(f, "no time coordinate or attribute (overpass time)")
                items.append((np.datetime64(np.asarray(t).ravel()[0], "ns"), f, ds))
        for t, f, ds in sorted(items, key=lambda x: x[0]):
            yield t, _as_overpass(ds, f)
        return
    ds = open_netcdf(src, not_found="not found; run the ingest stage for this collection first", load=True)
    if "time" not in ds.dims:
        raise InputFileError(src, "no time dimension (not an ingest grid?)")
    for i in range(ds.sizes["time"]):
        yield np.datetime64(ds["time"].values[i], "ns"), _as_overpass(ds.isel(time=i), src)


def read_hotspots(collection: str, detect_dir: str | Path) -> pd.DataFrame:
    """The detect stage's hotspot table with ``time`` as UTC timestamps (one-line errors from evaluate's reader)."""
    from ..evaluate.inputs import read_hotspots as _read

    return _read(Path(detect_dir) / collection / "hotspots.csv")


def load_sites(spec, key: str) -> pd.DataFrame | None:
    """Inventory point sources (id, lat, lon, nox_t_per_yr, co2_t_per_yr[, fuel]); None when ``spec`` is empty."""
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return None
    from ..evaluate.inputs import load_inventory

    return load_inventory(spec, key)
