"""THE adapter between the quantify stage and the on-disk layouts of its inputs (the only module that knows them).

- :func:`overpass_list` lists the overpasses as :class:`Overpass` (key, time, file) without reading them, and
  :func:`open_overpass` reads one: ``xr.Dataset with no2, no2_precision (lat, lon), coords lat, lon``;
  :func:`overpasses` yields ``(time, dataset)`` for all. They read the collection folder ``<ingest_dir>/<collection>/``
  (grid.nc + overpasses/<key>.nc, through :mod:`no2hotspots.contracts.grid`) and, where only that exists, the
  earlier single grid file ``<ingest_dir>/<collection>.nc`` (dim ``time``).
- :func:`read_hotspots` reads ``<detect_dir>/<collection>/hotspots.csv`` (:mod:`no2hotspots.contracts.detections`);
  :func:`hotspots_of` picks one overpass's rows (by the ``overpass`` key, else by time); :func:`read_composite`
  reads the composite hotspots ``composite.csv`` (None where the detect stage wrote none).
- :func:`wind_file_spans` reads the time span of each wind file cheaply, so that an overpass opens only the wind
  files around its time.
- :func:`load_sites` reads an inventory (CSV path or inventory config) for truth and CO2/NOx ratios.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Overpass:
    """One overpass of a collection: its key, time, the file holding it and (single grid file) its time index."""

    key: str
    time: np.datetime64
    path: str
    index: int | None = None  # position along ``time`` in a single grid file; None for an overpass file


def overpass_list(collection: str, ingest_dir: str | Path) -> list[Overpass]:
    """The overpasses of a collection in time order (then key), from the index alone."""
    src = ingest_source(collection, ingest_dir)
    if src.is_dir():
        from ..contracts import grid as gridc

        index = gridc.overpass_index(gridc.open_grid(src))
        return [
            Overpass(str(r.key), np.datetime64(pd.Timestamp(r.time).tz_localize(None), "ns"),
                     str(gridc.overpass_path(src, r.key)))
            for r in index.sort_values(["time", "key"], kind="stable").itertuples()
        ]  # fmt: skip
    ds = open_netcdf(src, not_found="not found; run the ingest stage for this collection first")
    try:
        if "time" not in ds.dims:
            raise InputFileError(src, "no time dimension (not an ingest grid?)")
        times = ds["time"].values
    finally:
        ds.close()
    return [Overpass(str(i), np.datetime64(t, "ns"), str(src), i) for i, t in enumerate(times)]


def open_overpass(o: Overpass) -> xr.Dataset:
    """One overpass: ``Dataset(no2, no2_precision[, coverage])`` on (lat, lon), attribute ``overpass`` = its key."""
    if o.index is None:
        from ..contracts import grid as gridc

        ds = _read_overpass_file(o.path)
        if ds is None:  # not the plain layout the fast path reads: the contract's reader (and its one-line errors)
            ds = _as_overpass(gridc.open_overpass(o.path), o.path)
    else:
        whole = open_netcdf(o.path, not_found="not found; run the ingest stage for this collection first")
        try:
            ds = _as_overpass(whole.isel(time=o.index), o.path)
        finally:
            whole.close()
    ds.attrs["overpass"] = o.key
    return ds


def _read_overpass_file(path: str) -> xr.Dataset | None:
    """An ingest overpass file read with netCDF4 directly (about half the time of opening it with xarray): the
    same values (fill value -> NaN); None where the file is not the plain contract layout (float variables no2,
    no2_precision, coverage on (lat, lon)), which the xarray reader then handles."""
    import netCDF4

    try:
        with netCDF4.Dataset(path) as nc:
            v = nc.variables
            names = [n for n in ("no2", "no2_precision", "coverage") if n in v]
            if names[:2] != ["no2", "no2_precision"] or any(v[n].dimensions != ("lat", "lon") for n in names):
                return None
            if any(set(v[n].ncattrs()) & {"valid_min", "valid_max", "valid_range", "missing_value"} for n in names):
                return None  # masking rules where netCDF4 and xarray differ
            lat, lon = (np.ma.filled(v[c][:].astype(float), np.nan) for c in ("lat", "lon"))
            data = {n: (("lat", "lon"), np.ma.filled(v[n][:], np.nan), dict(v[n].__dict__)) for n in names}
    except (OSError, KeyError, ValueError, TypeError):
        return None
    for var in data.values():
        var[2].pop("_FillValue", None)
    return xr.Dataset(data, coords={"lat": lat, "lon": lon})


def overpasses(collection: str, ingest_dir: str | Path) -> Iterator[tuple[np.datetime64, xr.Dataset]]:
    """Overpasses of a collection in time order: ``(time, Dataset(no2, no2_precision[, coverage]) on (lat, lon))``.

    The dataset's attribute ``overpass`` holds the overpass key (per-overpass layout) or the time step index.
    """
    for o in overpass_list(collection, ingest_dir):
        yield o.time, open_overpass(o)


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


def read_composite(collection: str, detect_dir: str | Path) -> pd.DataFrame | None:
    """detect's composite hotspots (site_id, peak_lat, peak_lon, ...; checked by
    :func:`no2hotspots.contracts.detections.read_composite`); None where there is no composite.csv."""
    from ..contracts import detections

    path = Path(detect_dir) / collection / detections.COMPOSITE_CSV
    return detections.read_composite(path) if path.exists() else None


def wind_file_spans(paths: list[Path]) -> list[tuple[np.datetime64, np.datetime64] | None]:
    """(first, last) time of each wind file, read from its time coordinate alone (a few ms a file, against ~35 ms to
    open and check one); None where that fails, and the file is then offered to every overpass."""
    import netCDF4

    from ..winds.layouts import TIME_NAMES

    out = []
    for path in paths:
        try:
            with netCDF4.Dataset(path) as nc:
                name = next(n for n in TIME_NAMES if n in nc.variables)
                var = nc.variables[name]
                t = netCDF4.num2date(var[:], var.units, getattr(var, "calendar", "standard"),
                                     only_use_cftime_datetimes=False, only_use_python_datetimes=True)  # fmt: skip
                t = np.asarray(pd.to_datetime(np.ravel(t)).tz_localize(None), dtype="datetime64[ns]")
                out.append((t.min(), t.max()) if t.size else None)
        except Exception:  # noqa: BLE001 - any layout the probe does not know: opened in full where needed
            out.append(None)
    return out


def hotspots_by_overpass(hot: pd.DataFrame, ovs: list[Overpass]) -> list[pd.DataFrame]:
    """:func:`hotspots_of` for every overpass of ``ovs`` (the table grouped once)."""
    if "overpass" in hot.columns and hot["overpass"].notna().any():
        groups = hot.groupby(hot["overpass"].astype(str), sort=False).indices
        return [hot.iloc[groups.get(o.key, [])] for o in ovs]
    return [hotspots_of(hot, o.time, o.key) for o in ovs]


def load_sites(spec, key: str) -> pd.DataFrame | None:
    """Inventory point sources (id, lat, lon, nox_t_per_yr, co2_t_per_yr[, fuel]); None when ``spec`` is empty."""
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return None
    from ..evaluate.inputs import load_inventory

    return load_inventory(spec, key)
