"""Which hotspot detects which inventory source, under each of the four per-source rules (docs/evaluate.md):

* ``cell``     the hotspot's peak lies in the source's evaluation cell (the paper's rule);
* ``strict``   as ``cell``, and the hotspot's nearest inventory source is this source;
* ``distance`` the peak lies within ``match_distance_km`` of the source;
* ``nearest``  the hotspot's nearest inventory source is this source and lies within ``match_distance_km``
  (one hotspot credits at most one source: two neighbours cannot share one detection).

The nearest source is searched in the whole inventory (also outside the evaluation grid). A detection is a pair
(hotspot, source); a source is found over the period when its pairs span at least ``min_detections`` distinct
overpasses (a composite table's rows all belong to one pseudo-overpass).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..inventory.gridding import cell_index
from .geo import PointIndex

RULES = ("cell", "strict", "distance", "nearest")


@dataclass
class HotspotSources:
    """Per hotspot of a table: its evaluation cell and its nearest inventory source."""

    iy: np.ndarray
    ix: np.ndarray
    nearest_inv: np.ndarray  # index into the whole inventory (-1: empty inventory)
    nearest_km: np.ndarray
    nearest_src: np.ndarray  # index into the sources inside the grid (-1: outside or none)
    nearest_iy: np.ndarray  # cell of the nearest source (-1 outside the grid)
    nearest_ix: np.ndarray


def hotspot_sources(table: pd.DataFrame, inv_index: PointIndex, inv_to_src: np.ndarray, lat_edges, lon_edges):
    lat = table["peak_lat"].to_numpy(float)
    lon = table["peak_lon"].to_numpy(float)
    idx, dist = inv_index.nearest(lat, lon)
    ok = idx >= 0
    src = np.where(ok, inv_to_src[np.maximum(idx, 0)], -1) if len(idx) else np.zeros(0, int)
    nlat = np.where(ok, inv_index.lat[np.maximum(idx, 0)], np.nan) if len(idx) else np.zeros(0)
    nlon = np.where(ok, inv_index.lon[np.maximum(idx, 0)], np.nan) if len(idx) else np.zeros(0)
    return HotspotSources(
        iy=cell_index(lat, lat_edges),
        ix=cell_index(lon, lon_edges),
        nearest_inv=idx,
        nearest_km=dist,
        nearest_src=src,
        nearest_iy=cell_index(nlat, lat_edges),
        nearest_ix=cell_index(nlon, lon_edges),
    )


def pairs(
    table: pd.DataFrame, hs: HotspotSources, src: pd.DataFrame, src_index: PointIndex, distance_km: float
) -> dict[str, pd.DataFrame]:
    """For each rule, the (hotspot row ``h``, source ``s``) pairs it accepts, with the hotspot's ``overpass``."""
    n = len(table)
    out: dict[str, pd.DataFrame] = {}
    # cell: sources grouped by their cell
    s_cell = src["iy"].to_numpy() * 1_000_000 + src["ix"].to_numpy()
    by_cell: dict[int, list[int]] = {}
    for s, c in enumerate(s_cell):
        by_cell.setdefault(int(c), []).append(s)
    h_cell = hs.iy * 1_000_000 + hs.ix
    hh, ss = [], []
    for h in range(n):
        if hs.iy[h] < 0 or hs.ix[h] < 0:
            continue
        for s in by_cell.get(int(h_cell[h]), ()):
            hh.append(h)
            ss.append(s)
    cell = _frame(hh, ss, table)
    out["cell"] = cell
    out["strict"] = cell[hs.nearest_src[cell["h"].to_numpy()] == cell["s"].to_numpy()].reset_index(drop=True)
    within = src_index.within(table["peak_lat"].to_numpy(float), table["peak_lon"].to_numpy(float), distance_km)
    hh = [h for h, m in enumerate(within) for _ in m]
    ss = [int(s) for m in within for s in m]
    out["distance"] = _frame(hh, ss, table)
    sel = (hs.nearest_src >= 0) & (hs.nearest_km <= distance_km)
    h = np.nonzero(sel)[0]
    out["nearest"] = _frame(h, hs.nearest_src[h], table)
    return out


def _frame(h, s, table: pd.DataFrame) -> pd.DataFrame:
    h = np.asarray(h, dtype=int)
    return pd.DataFrame({"h": h, "s": np.asarray(s, dtype=int), "overpass": table["overpass"].to_numpy()[h]})


def n_overpasses(p: pd.DataFrame, n_points: int) -> np.ndarray:
    """Distinct overpasses per point among the pairs ``p`` (columns ``s``, ``overpass``)."""
    out = np.zeros(n_points, dtype=int)
    if len(p):
        counts = p.drop_duplicates(["s", "overpass"]).groupby("s").size()
        out[counts.index.to_numpy()] = counts.to_numpy()
    return out


def per_overpass(p: pd.DataFrame) -> dict[str, np.ndarray]:
    """``{overpass key: sorted distinct point indices}`` detected in that overpass."""
    if not len(p):
        return {}
    return {str(k): np.unique(g["s"].to_numpy()) for k, g in p.groupby("overpass", sort=False)}
