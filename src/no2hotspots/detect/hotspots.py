"""Hotspots: connected regions (8-connectivity) of the relative-emission map at or above a threshold.

One hotspot per region and time step. ``nox_rate_estimate_t_per_yr`` maps the region's peak relative emission back
to a NOx rate with the training range stored in the model (r = (Q - Qmin) / (Qmax - Qmin)); it is an ESTIMATE that
inherits every simulation/reality mismatch of the model (the paper's stated limitation: no absolute emissions).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

#: hotspot table columns, in order (docs/contracts.md, Detections)
COLUMNS = (
    "hotspot_id",
    "time",
    "peak_lat",
    "peak_lon",
    "peak_rel_emission",
    "sum_rel_emission",
    "nox_rate_estimate_t_per_yr",
    "area_km2",
    "n_cells",
    "obs_count",
)

#: one-line documentation of each column (written to detect.json and the GeoJSON metadata)
COLUMN_DOCS = {
    "hotspot_id": "integer id, unique within the collection (1, 2, ...; ordered by time, then peak descending)",
    "time": "time of the overpass / grid time step (ISO 8601, UTC)",
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
    "obs_count": "overpasses observing the peak cell (the grid's obs_count)",
}

EIGHT = np.ones((3, 3), dtype=bool)


def nox_estimate(peak: np.ndarray | float, emission_min: float, emission_max: float) -> np.ndarray | float:
    return emission_min + np.asarray(peak, dtype=float) * (emission_max - emission_min)


def label_regions(rel: np.ndarray, threshold: float, min_cells: int = 1) -> tuple[np.ndarray, int]:
    """Label 8-connected regions of ``rel >= threshold`` (NaN = below) in a 2-D map; drop those < ``min_cells``.

    Returns the label image (0 = background, 1..n consecutive) and n.
    """
    mask = np.nan_to_num(rel, nan=-np.inf) >= threshold
    lab, n = ndimage.label(mask, structure=EIGHT)
    if n and min_cells > 1:
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        keep = sizes >= min_cells
        keep[0] = False
        remap = np.zeros(n + 1, dtype=lab.dtype)
        remap[keep] = np.arange(1, int(keep.sum()) + 1)
        lab, n = remap[lab], int(keep.sum())
    return lab, int(n)


def find_hotspots(
    rel: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    times,
    *,
    cell_area_km2: np.ndarray,
    obs_count: np.ndarray,
    emission_min: float,
    emission_max: float,
    threshold: float = 0.2,
    min_cells: int = 1,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Hotspots of a stitched map ``rel (time, lat, lon)``.

    Returns the table (columns :data:`COLUMNS`) and an int32 ``(time, lat, lon)`` image holding each cell's
    ``hotspot_id`` (0 = no hotspot).
    """
    rel = np.asarray(rel, dtype=np.float64)
    if rel.ndim == 2:
        rel = rel[None]
    times = list(np.atleast_1d(times))
    if len(times) != rel.shape[0]:
        raise ValueError(f"{len(times)} times for {rel.shape[0]} maps")
    ids = np.zeros(rel.shape, dtype=np.int32)
    rows: list[dict] = []
    next_id = 1
    for t in range(rel.shape[0]):
        lab, n = label_regions(rel[t], threshold, min_cells)
        if n == 0:
            continue
        r = np.nan_to_num(rel[t], nan=0.0)
        idx = np.arange(1, n + 1)
        peaks = ndimage.maximum_position(r, lab, idx)
        peak_val = np.asarray(ndimage.maximum(r, lab, idx), dtype=float)
        sums = np.asarray(ndimage.sum(r, lab, idx), dtype=float)
        areas = np.asarray(ndimage.sum(cell_area_km2, lab, idx), dtype=float)
        ncell = np.bincount(lab.ravel(), minlength=n + 1)[1:]
        order = np.argsort(-peak_val, kind="stable")
        remap = np.zeros(n + 1, dtype=np.int32)
        remap[order + 1] = next_id + np.arange(n, dtype=np.int32)
        ids[t] = remap[lab]
        for k in order:
            i, j = peaks[k]
            rows.append(
                {
                    "hotspot_id": next_id,
                    "time": _iso(times[t]),
                    "peak_lat": float(lat[i]),
                    "peak_lon": float(lon[j]),
                    "peak_rel_emission": float(peak_val[k]),
                    "sum_rel_emission": float(sums[k]),
                    "nox_rate_estimate_t_per_yr": float(nox_estimate(peak_val[k], emission_min, emission_max)),
                    "area_km2": float(areas[k]),
                    "n_cells": int(ncell[k]),
                    "obs_count": int(obs_count[i, j]),
                }
            )
            next_id += 1
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    return df.astype({"hotspot_id": "int64", "n_cells": "int64", "obs_count": "int64"}), ids


def _iso(t) -> str:
    if isinstance(t, np.datetime64):
        return str(np.datetime_as_string(t.astype("datetime64[s]"), unit="s"))
    if hasattr(t, "isoformat"):
        return t.isoformat()
    return str(t)
