"""Inventory overlap: which inventory cells / point sources have an NO2 hotspot (the paper's Table 2 and Fig. 10).

Matching rules (config ``evaluate.match_mode``):

* ``cell`` (the paper's): a cell is found when a hotspot peak falls in the cell; a point source is found when a
  hotspot peak falls in the source's grid cell.
* ``distance``: a cell is found when a hotspot peak lies within ``match_distance_km`` of the cell (0 inside it);
  a source when a peak lies within ``match_distance_km`` of the source.

Strict (always reported beside the paper's rule): a cell is found only by a hotspot whose peak lies in the cell AND
whose nearest inventory source (searched in the whole inventory) lies in that cell.

Chance floor: the same counting as Table 2 (the paper's rule, ``min_detections``, ``min_observations``) applied to
the observed source-free cells among the 4 or 8 neighbours of a cell with a source: the share of them that collect
a hotspot is what a cell next to a source gets without a source of its own, the level below which a bin's rate
says nothing.

Hotspots come per overpass. A cell or source counts as found when hotspots on at least ``min_detections`` distinct
overpasses (distinct ``overpass`` keys) match it over the whole period. Cells / sources with fewer than
``min_observations`` valid observations are "unobserved": they are reported on their own and never count as missed.
Bins are lower-inclusive: ``[lo, hi)``; the last bin is ``>= its lower edge`` (the paper writes it "> 5000").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..inventory.gridding import bbox_tuple, cell_index
from .geo import PointIndex, distance_to_box_km, haversine_km


def bin_edges_and_labels(edges: Sequence[float]) -> tuple[np.ndarray, list[str], list[str]]:
    """Bins ``[e0,e1), ..., [e_last, inf)`` with metric-safe keys (``lt2000``, ``2000_4000``, ``gt5000``) and
    display ranges (``< 2000``, ``2000-4000``, ``> 5000``). A first edge of 0 gives a ``lt<e1>`` bin."""
    e = np.asarray(sorted(float(x) for x in edges), dtype=float)
    full = np.append(e, np.inf)
    keys, names = [], []
    for lo, hi in zip(full[:-1], full[1:]):
        if np.isinf(hi):
            keys.append(f"gt{lo:g}")
            names.append(f"> {lo:g}" if lo > 0 or len(e) == 1 else f">= {lo:g}")
        elif lo == 0 and len(e) > 1:
            keys.append(f"lt{hi:g}")
            names.append(f"< {hi:g}")
        else:
            keys.append(f"{lo:g}_{hi:g}")
            names.append(f"{lo:g}-{hi:g}")
    return full, keys, names


def assign_bins(values, full_edges) -> np.ndarray:
    """Bin index per value (-1 below the first edge)."""
    idx = np.searchsorted(full_edges, np.asarray(values, dtype=float), side="right") - 1
    return np.where((idx < 0) | (idx >= len(full_edges) - 1), -1, idx)


def _n_overpasses(keys: np.ndarray, matches: list[np.ndarray]) -> np.ndarray:
    return np.array([len(set(keys[m].tolist())) if len(m) else 0 for m in matches], dtype=int)


def _keys(hotspots: pd.DataFrame) -> np.ndarray:
    """What tells overpasses apart: the ``overpass`` column, else the time."""
    col = "overpass" if "overpass" in hotspots.columns else "time"
    return hotspots[col].astype(str).to_numpy()


def hotspot_cells(hotspots: pd.DataFrame, lat_edges, lon_edges) -> tuple[np.ndarray, np.ndarray]:
    return (
        cell_index(hotspots["peak_lat"].to_numpy(float), lat_edges),
        cell_index(hotspots["peak_lon"].to_numpy(float), lon_edges),
    )


def match_cells(
    cells: pd.DataFrame, hotspots: pd.DataFrame, lat_edges, lon_edges, *, mode: str, distance_km: float
) -> np.ndarray:
    """Number of distinct overpasses with a hotspot matching each cell (rows ``iy, ix`` of ``cells``)."""
    times = _keys(hotspots)
    lat_edges = np.asarray(lat_edges, float)
    lon_edges = np.asarray(lon_edges, float)
    if mode == "cell":
        hy, hx = hotspot_cells(hotspots, lat_edges, lon_edges)
        key = pd.Series(np.arange(len(hotspots))).groupby(hy * len(lon_edges) + hx).apply(np.asarray)
        ck = cells["iy"].to_numpy() * len(lon_edges) + cells["ix"].to_numpy()
        matches = [key.get(k, np.zeros(0, dtype=int)) for k in ck]
        return _n_overpasses(times, matches)
    index = PointIndex(hotspots["peak_lat"], hotspots["peak_lon"])
    lat0, lat1 = lat_edges[cells["iy"]], lat_edges[cells["iy"] + 1]
    lon0, lon1 = lon_edges[cells["ix"]], lon_edges[cells["ix"] + 1]
    clat, clon = 0.5 * (lat0 + lat1), 0.5 * (lon0 + lon1)
    # the farthest corner: on the equator side, where a degree of longitude is longest (a candidate search to the
    # poleward corner missed hotspots just off the other corners)
    half_diag = np.maximum(haversine_km(clat, clon, lat0, lon1), haversine_km(clat, clon, lat1, lon1))
    matches = []
    for i in range(len(cells)):
        cand = index.within(clat[i], clon[i], distance_km + half_diag[i])[0]
        if len(cand):
            d = distance_to_box_km(index.lat[cand], index.lon[cand], lat0[i], lat1[i], lon0[i], lon1[i])
            cand = cand[d <= distance_km]
        matches.append(cand)
    return _n_overpasses(times, matches)


def match_points(
    points: pd.DataFrame, hotspots: pd.DataFrame, lat_edges, lon_edges, *, mode: str, distance_km: float
) -> np.ndarray:
    """Number of distinct overpasses with a hotspot matching each point source."""
    if mode == "cell":
        cells = pd.DataFrame({"iy": cell_index(points["lat"], lat_edges), "ix": cell_index(points["lon"], lon_edges)})
        out = np.zeros(len(points), dtype=int)
        ok = (cells["iy"] >= 0) & (cells["ix"] >= 0)
        if ok.any():
            out[ok.to_numpy()] = match_cells(cells[ok], hotspots, lat_edges, lon_edges, mode="cell", distance_km=0)
        return out
    index = PointIndex(hotspots["peak_lat"], hotspots["peak_lon"])
    matches = index.within(points["lat"].to_numpy(float), points["lon"].to_numpy(float), distance_km)
    return _n_overpasses(_keys(hotspots), matches)


def inventory_cells(gridded, obs_count) -> pd.DataFrame:
    """One row per grid cell with NOx > 0: ``iy, ix, lat, lon, nox_t_per_cell_yr, co2_t_per_cell_yr, n_sources,
    obs_count``."""
    nox = gridded["nox_t_per_cell_yr"].values
    iy, ix = np.nonzero(nox > 0)
    df = pd.DataFrame(
        {
            "iy": iy,
            "ix": ix,
            "lat": gridded["lat"].values[iy],
            "lon": gridded["lon"].values[ix],
            "nox_t_per_cell_yr": nox[iy, ix],
            "n_sources": gridded["n_sources"].values[iy, ix],
            "obs_count": np.asarray(obs_count)[iy, ix],
        }
    )
    if "co2_t_per_cell_yr" in gridded:
        df.insert(5, "co2_t_per_cell_yr", gridded["co2_t_per_cell_yr"].values[iy, ix])
    return df


def rate_table(flags: pd.DataFrame, bin_col: str, keys, names, edges) -> pd.DataFrame:
    """Found / observed per bin. ``flags`` has columns ``bin_col`` (bin index), ``observed``, ``found``."""
    rows = []
    for b, (k, n) in enumerate(zip(keys, names)):
        sel = flags[flags[bin_col] == b]
        rows.append(_rate_row(k, n, edges[b], edges[b + 1], sel))
    rows.append(_rate_row("all", "all", edges[0], np.inf, flags[flags[bin_col] >= 0]))
    return pd.DataFrame(rows)


def _rate_row(key, name, lo, hi, sel) -> dict:
    obs = sel[sel["observed"]]
    found = int(obs["found"].sum())
    return {
        "bin": key,
        "range": name,
        "lower": lo,
        "upper": hi,
        "n_total": int(len(sel)),
        "n_observed": int(len(obs)),
        "n_unobserved": int(len(sel) - len(obs)),
        "n_found": found,
        "n_missed": int(len(obs) - found),
        "rate": found / len(obs) if len(obs) else np.nan,
    }


def table2(cells: pd.DataFrame, nox_bins, min_observations: int) -> pd.DataFrame:
    """The paper's Table 2 (paper order: highest bin first, then an ``all`` row)."""
    edges, keys, names = bin_edges_and_labels([0.0, *nox_bins])
    flags = pd.DataFrame(
        {
            "b": assign_bins(cells["nox_t_per_cell_yr"], edges),
            "observed": cells["obs_count"].to_numpy() >= min_observations,
            "found": cells["found"].to_numpy(bool),
        }
    )
    t = rate_table(flags, "b", keys, names, edges)
    return pd.concat([t.iloc[:-1].iloc[::-1], t.iloc[-1:]], ignore_index=True)


def in_region(lat, lon, bbox, key) -> np.ndarray:
    lat0, lat1, lon0, lon1 = bbox_tuple(bbox, key)
    lat = np.asarray(lat, float)
    lon = np.asarray(lon, float)
    return (lat >= lat0) & (lat <= lat1) & (lon >= lon0) & (lon <= lon1)


def region_names(points: pd.DataFrame, regions: Mapping | None, key: str) -> pd.Series:
    """First configured region holding each point ('' when none)."""
    out = pd.Series([""] * len(points), index=points.index, dtype=object)
    for name, bbox in (regions or {}).items():
        inside = in_region(points["lat"], points["lon"], bbox, f"{key}.{name}") & (out == "").to_numpy()
        out[inside] = str(name)
    return out


def co2_overlap_by_region(sources: pd.DataFrame, regions: Mapping | None, key: str) -> pd.DataFrame:
    """Fig. 10 numbers: strong CO2 sources with a hotspot, over all sources and per configured region."""
    groups = [("all", np.ones(len(sources), bool))]
    for name, bbox in (regions or {}).items():
        groups.append((str(name), in_region(sources["lat"], sources["lon"], bbox, f"{key}.{name}")))
    rows = []
    for name, sel in groups:
        s = sources[sel]
        obs = s[s["observed"]]
        n = int(obs["matched"].sum())
        rows.append(
            {
                "region": name,
                "n_sources": int(len(s)),
                "n_observed": int(len(obs)),
                "n_unobserved": int(len(s) - len(obs)),
                "n_matched": n,
                "pct_matched": 100.0 * n / len(obs) if len(obs) else np.nan,
            }
        )
    return pd.DataFrame(rows)


def match_cells_strict(cells: pd.DataFrame, hotspots: pd.DataFrame, hs) -> np.ndarray:
    """Distinct overpasses per cell with a hotspot whose peak AND nearest inventory source lie in the cell
    (``hs``: :class:`~no2hotspots.evaluate.matching.HotspotSources` of ``hotspots``)."""
    keys = _keys(hotspots)
    ok = (hs.iy >= 0) & (hs.ix >= 0) & (hs.iy == hs.nearest_iy) & (hs.ix == hs.nearest_ix)
    by_cell: dict[tuple[int, int], set] = {}
    for h in np.nonzero(ok)[0]:
        by_cell.setdefault((int(hs.iy[h]), int(hs.ix[h])), set()).add(keys[h])
    return np.array([len(by_cell.get((int(i), int(j)), ())) for i, j in zip(cells["iy"], cells["ix"])], dtype=int)


def neighbour_cells(source_cells: np.ndarray, neighbourhood: int) -> pd.DataFrame:
    """Cells without a source among the 4 or 8 neighbours of the cells where ``source_cells`` (bool grid) is true:
    rows ``iy, ix``."""
    src = np.asarray(source_cells, bool)
    ny, nx = src.shape
    near = np.zeros_like(src)
    steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if neighbourhood == 8:
        steps += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    for dy, dx in steps:
        shifted = np.zeros_like(src)
        shifted[max(dy, 0) : ny + min(dy, 0), max(dx, 0) : nx + min(dx, 0)] = src[
            max(-dy, 0) : ny + min(-dy, 0), max(-dx, 0) : nx + min(-dx, 0)
        ]
        near |= shifted
    iy, ix = np.nonzero(near & ~src)
    return pd.DataFrame({"iy": iy, "ix": ix})


def chance_floor(
    source_cells: np.ndarray,
    obs_count: np.ndarray,
    hotspots: pd.DataFrame,
    lat_edges,
    lon_edges,
    *,
    neighbourhood: int,
    mode: str,
    distance_km: float,
    min_observations: int,
    min_detections: int,
) -> pd.DataFrame:
    """The source-free neighbour cells with their observation count, detections and found flag."""
    cells = neighbour_cells(source_cells, neighbourhood)
    lat_edges = np.asarray(lat_edges, float)
    lon_edges = np.asarray(lon_edges, float)
    cells["lat"] = 0.5 * (lat_edges[cells["iy"]] + lat_edges[cells["iy"] + 1])
    cells["lon"] = 0.5 * (lon_edges[cells["ix"]] + lon_edges[cells["ix"] + 1])
    cells["obs_count"] = np.asarray(obs_count)[cells["iy"], cells["ix"]] if len(cells) else []
    cells["n_detections"] = (
        match_cells(cells, hotspots, lat_edges, lon_edges, mode=mode, distance_km=distance_km) if len(cells) else []
    )
    cells["observed"] = cells["obs_count"] >= min_observations
    cells["found"] = cells["observed"] & (cells["n_detections"] >= min_detections)
    return cells


def rate_of(flags: pd.DataFrame) -> dict:
    """found / observed of a frame with ``observed`` and ``found`` columns."""
    obs = flags[flags["observed"]] if len(flags) else flags
    n, k = int(len(obs)), int(obs["found"].sum()) if len(obs) else 0
    return {"n_total": int(len(flags)), "n_observed": n, "n_found": k, "rate": k / n if n else np.nan}
