"""Detections (detect -> evaluate, quantify; docs/contracts.md, "Detections").

One folder per collection, ``<detect.out_dir>/<collection>/``::

    overpasses/<key>.nc   per overpass, on the ingest overpass file's part of the grid: relative_emission(lat, lon)
                          (the CNN's map, NaN where the input was invalid) and hotspot_id(lat, lon) (the overpass's
                          own hotspot numbers 1..n, 0 = none); attr background_shift_max_mol_m2 (the most regional
                          background taken off any valid cell before the model ran, no2hotspots.detect.background)
    hotspots.csv          one row per hotspot (:data:`COLUMNS`); hotspots.geojson the same as points
    period.nc             over all overpasses: relative_emission_max, relative_emission_mean (over the overpasses
                          that observed the cell), n_valid, n_detections, n_peaks (lat, lon) on the collection grid;
                          n_maxima (local maxima >= detect.composite.recurrence.level) and n_maxima_valid (overpasses
                          that observed the cell's whole 3x3 block) where the recurrence rule ran
    composite.csv         the period's composite sites (no2hotspots.detect.composite; rule mean or recurrence):
                          site_id, peak_lat, peak_lon, peak_value, n_cells, n_valid, n_detections, threshold
    detect.json           the model, the settings, counts; map.png
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..atomic import atomic_path, to_builtin
from ..errors import InputFileError
from ..readfile import coordinates_in_range, open_netcdf, read_csv
from .grid import TIME_ENCODING, coords, with_crs

OVERPASS_DIR = "overpasses"
PERIOD_FILE = "period.nc"
HOTSPOTS_CSV = "hotspots.csv"
COMPOSITE_CSV = "composite.csv"
#: rows of the hotspot table turned into GeoJSON features at a time
GEOJSON_BLOCK = 4096

#: hotspot table columns, in order
COLUMNS = (
    "hotspot_id",
    "overpass",
    "overpass_hotspot",
    "time",
    "peak_lat",
    "peak_lon",
    "peak_rel_emission",
    "sum_rel_emission",
    "nox_rate_estimate_t_per_yr",
    "area_km2",
    "n_cells",
    "gap_cells",
    "background_shift_mol_m2",
    "obs_count",
)

#: one-line documentation of each column (written to detect.json and the GeoJSON metadata)
COLUMN_DOCS = {
    "hotspot_id": "integer id, unique within the collection (1, 2, ...; ordered by time, then peak descending)",
    "overpass": "key of the overpass (ingest overpasses/<key>.nc, the granule's file stem)",
    "overpass_hotspot": "the hotspot's number within its overpass (the value in that overpass's hotspot_id map)",
    "time": "time of the overpass (ISO 8601, UTC)",
    "peak_lat": "latitude of the region's highest relative emission cell centre [degrees_north]",
    "peak_lon": "longitude of that cell centre [degrees_east]",
    "peak_rel_emission": "highest relative emission in the region [1, 0..1]",
    "sum_rel_emission": "sum of relative emission over the region's cells [1]",
    "nox_rate_estimate_t_per_yr": (
        "ESTIMATE of the NOx emission rate (as NO2) [t/yr] = emission_min + peak_rel_emission * "
        "(emission_max - emission_min) with the model's training range; not a measured emission"
    ),
    "area_km2": "area of the region's cells on the sphere [km2]",
    "n_cells": "number of grid cells in the region",
    "gap_cells": (
        "distance in cells (chessboard) from the peak cell to the nearest cell this overpass did not observe "
        "(a cloud gap, the swath's end, or beyond the grid; 1 = next to one): hotspots beside a gap are less often "
        "at a source"
    ),
    "background_shift_mol_m2": (
        "regional background taken off the NO2 column at the peak cell before the model ran [mol m-2]: the excess "
        "of its local mean over detect.background_max_mol_m2 (0 = none; large values mean a polluted region whose "
        "merged plumes may have counted as background)"
    ),
    "obs_count": (
        "overpasses covering more than ingest.coverage_min of the peak cell over the period (the ingest grid's "
        "obs_count; 0 where every overpass covered the cell only in part, which detection still reads)"
    ),
}


def write_overpass(
    path: str | Path, *, lat, lon, res: float, rel: np.ndarray, ids: np.ndarray, time, attrs: dict
) -> None:
    ds = xr.Dataset(
        {
            "relative_emission": (
                ("lat", "lon"),
                rel.astype(np.float32),
                {
                    "units": "1",
                    "long_name": "relative emission estimated by the CNN (0..1 of the model's training range)",
                    "comment": "NaN where there was no valid input",
                    "valid_min": np.float32(0),
                    "valid_max": np.float32(1),
                },
            ),
            "hotspot_id": (
                ("lat", "lon"),
                ids.astype(np.int32),
                {"long_name": "hotspot number within this overpass (0 = none): overpass_hotspot in hotspots.csv"},
            ),
        },
        coords={
            **coords(np.asarray(lat), np.asarray(lon), res),
            "time": ((), np.datetime64(time, "ns"), {"standard_name": "time"}),
        },
        attrs={"Conventions": "CF-1.10", **attrs},
    )
    ds = with_crs(ds, ("relative_emission", "hotspot_id"))
    enc = {"relative_emission": {"zlib": True, "complevel": 4}, "hotspot_id": {"zlib": True}, "time": TIME_ENCODING}
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=enc)


def open_overpass(path: str | Path) -> xr.Dataset:
    ds = open_netcdf(path, load=True, what="detection overpass file")
    if "relative_emission" not in ds:
        raise InputFileError(path, "missing variable relative_emission (not a detect overpass file?)")
    return ds


#: the period's overpass counts per cell: variable -> long_name (``n_maxima`` formatted with the maxima level)
PERIOD_COUNTS = {
    "n_valid": "overpasses with valid input in the cell",
    "n_detections": "overpasses in which the cell belongs to a hotspot",
    "n_peaks": "overpasses whose hotspot peak lies in the cell",
    "n_maxima": "overpasses with a local maximum of relative_emission >= {level:g} in the cell",
    "n_maxima_valid": "overpasses that observed the cell's whole 3x3 block (its possible maxima)",
}


def write_period(
    folder: str | Path,
    *,
    lat,
    lon,
    res: float,
    rel_max,
    rel_mean,
    n_valid,
    n_detections,
    n_peaks,
    attrs: dict,
    n_maxima=None,
    maxima_level: float | None = None,
    n_maxima_valid=None,
) -> None:
    """``period.nc``; ``n_maxima`` (overpasses with a local maximum of relative_emission >= ``maxima_level`` in the
    cell) and ``n_maxima_valid`` (overpasses that observed its whole 3x3 block) only where the composite's recurrence
    rule counted them."""
    f32 = np.float32
    ds = xr.Dataset(
        {
            "relative_emission_max": (
                ("lat", "lon"),
                rel_max.astype(f32),
                {
                    "units": "1",
                    "long_name": "maximum over the overpasses of relative_emission",
                    "cell_methods": "time: maximum",
                },
            ),
            "relative_emission_mean": (
                ("lat", "lon"),
                rel_mean.astype(f32),
                {
                    "units": "1",
                    "long_name": "mean relative_emission over the overpasses with valid input in the cell",
                    "cell_methods": "time: mean",
                },
            ),
        },
        coords=coords(np.asarray(lat), np.asarray(lon), res),
        attrs={"Conventions": "CF-1.10", "title": "no2hotspots detections over the period", **attrs},
    )
    counts = dict(
        n_valid=n_valid, n_detections=n_detections, n_peaks=n_peaks, n_maxima=n_maxima, n_maxima_valid=n_maxima_valid
    )
    for name, values in counts.items():
        if values is not None:
            long_name = PERIOD_COUNTS[name].format(level=maxima_level) if name == "n_maxima" else PERIOD_COUNTS[name]
            ds[name] = (("lat", "lon"), np.asarray(values).astype(np.int32), {"units": "1", "long_name": long_name})
    ds = with_crs(ds, ("relative_emission_max", "relative_emission_mean", *(v for v in PERIOD_COUNTS if v in ds)))
    with atomic_path(Path(folder) / PERIOD_FILE) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", encoding={v: {"zlib": True} for v in ds.data_vars if v != "crs"})


def open_period(folder: str | Path) -> xr.Dataset:
    return open_netcdf(
        Path(folder) / PERIOD_FILE,
        load=True,
        what="detection period file",
        not_found="not found; run the detect stage for this collection first",
    )


def write_hotspots(df: pd.DataFrame, folder: str | Path, meta: dict) -> None:
    """hotspots.csv and hotspots.geojson (Points at the peak; the GeoJSON foreign member ``metadata`` says what the
    properties mean and which model produced them). The GeoJSON is written one feature per line, a block of rows at
    a time: a year's table (~90,000 hotspots over China) built as one document cost ~450 MB at its peak."""
    folder = Path(folder)
    df = df[list(COLUMNS) + [c for c in df.columns if c not in COLUMNS]]
    with atomic_path(folder / HOTSPOTS_CSV) as tmp:
        df.to_csv(tmp, index=False)
    head = {"type": "FeatureCollection", "metadata": {**meta, "columns": COLUMN_DOCS}}
    with atomic_path(folder / "hotspots.geojson") as tmp, open(tmp, "w") as f:
        f.write(json.dumps(head, indent=1, default=to_builtin)[:-2] + ',\n "features": [')
        sep = "\n"
        for start in range(0, len(df), GEOJSON_BLOCK):
            for row in df.iloc[start : start + GEOJSON_BLOCK].to_dict(orient="records"):
                props = {k: to_builtin(v) for k, v in row.items()}
                feature = {
                    "type": "Feature",
                    "id": props["hotspot_id"],
                    "geometry": {"type": "Point", "coordinates": [props["peak_lon"], props["peak_lat"]]},
                    "properties": props,
                }
                f.write(sep + "  " + json.dumps(feature, default=to_builtin))
                sep = ",\n"
        f.write("\n ]\n}\n")


def read_hotspots(path: str | Path) -> pd.DataFrame:
    """hotspots.csv with its coordinates and times checked (one-line errors naming the file)."""
    path = Path(path)
    df = read_csv(path, not_found="not found; run the detect stage for this collection first")
    missing = [c for c in ("hotspot_id", "time", "peak_lat", "peak_lon") if c not in df.columns]
    if missing:
        raise InputFileError(path, f"missing column(s) {', '.join(missing)} (not a detect hotspots.csv?)")
    coordinates_in_range(df, path, "peak_lat", "peak_lon")
    df["time"] = pd.to_datetime(df["time"], errors="coerce", utc=True)
    if df["time"].isna().any():
        raise InputFileError(path, "column time has unparseable timestamps")
    if "peak_rel_emission" not in df.columns:
        df["peak_rel_emission"] = 1.0
    return df.reset_index(drop=True)


#: the columns of every composite table (one row per period site), whichever stage wrote it (detect, baseline, hybrid)
COMPOSITE_COLUMNS = ("site_id", "peak_lat", "peak_lon")


def read_composite(path: str | Path, *, not_found: str = "not found") -> pd.DataFrame:
    """A composite table (composite.csv: one row per period site) with its site positions checked: the
    :data:`COMPOSITE_COLUMNS` present, ``peak_lat`` in -90..90 and ``peak_lon`` in -180..180 on every row (one-line
    errors naming the file, the first bad value and its row)."""
    path = Path(path)
    df = read_csv(path, not_found=not_found)
    missing = [c for c in COMPOSITE_COLUMNS if c not in df.columns]
    if missing:
        raise InputFileError(path, f"missing column(s) {', '.join(missing)} (not a composite hotspot table?)")
    coordinates_in_range(df, path, "peak_lat", "peak_lon")
    return df


def read_summary(folder: str | Path) -> dict:
    path = Path(folder) / "detect.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputFileError(path, "not found; run the detect stage for this collection first") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise InputFileError(path, f"not valid JSON ({type(e).__name__})") from None


def overpass_path(folder: str | Path, key: str) -> Path:
    return Path(folder) / OVERPASS_DIR / f"{key}.nc"
