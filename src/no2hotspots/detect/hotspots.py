"""Hotspots: connected regions (8-connectivity) of the relative-emission map at or above a threshold, split where a
region holds several prominent peaks (neighbouring sources; :mod:`no2hotspots.peaks`).

One hotspot per region and overpass. With ``edge_cells`` > 0 (opt-in), a region whose peak lies that close to the
outer edge of the overpass's field is no hotspot: whether it peaks there or beyond cannot be told (an ingest
overpass is the part of the collection grid its granule reaches; nothing beyond it was observed), and NO2 carried
in from outside the field piles up there (as scikit-image's ``peak_local_max`` excludes the border).
``gap_cells`` is the chessboard distance in cells from the region's peak to the nearest cell the overpass did not
observe (a cloud gap, the swath's end, or beyond the field: 1 = next to one): hotspots beside a gap are less often at
a source (measured: README "Limitations"), so users can filter on it. With ``min_gap_cells_shifted`` > 0 a region
whose peak had more than ``gap_shift_min_mol_m2`` of background taken off (``background_shift``: a regional
background above the training world's, :mod:`.background`) and lies fewer than that many cells from an unobserved
cell is no hotspot: on such backgrounds a gap's edge is a step higher than any the model was trained on, and the model
marks it (README "Backgrounds").
``nox_rate_estimate_t_per_yr`` maps the region's peak relative emission back to a NOx rate with the training range
stored in the model (r = (Q - Qmin) / (Qmax - Qmin)); it is an ESTIMATE that inherits every simulation/reality
mismatch of the model (the paper's stated limitation: no absolute emissions).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..peaks import split_peaks

EIGHT = np.ones((3, 3), dtype=bool)


def nox_estimate(peak: np.ndarray | float, emission_min: float, emission_max: float) -> np.ndarray | float:
    return emission_min + np.asarray(peak, dtype=float) * (emission_max - emission_min)


def edge_distance(i, j, shape: tuple[int, int]) -> np.ndarray:
    """Distance in cells of the cells ``(i, j)`` of a ``shape`` map from its outer edge (0 = on the outermost row or
    column)."""
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    return np.minimum.reduce([i, shape[0] - 1 - i, j, shape[1] - 1 - j])


def gap_distance(valid: np.ndarray) -> np.ndarray:
    """Chessboard distance in cells from each cell of a 2-D ``valid`` mask to the nearest unobserved cell (``valid``
    False, or beyond the mask's outer edge: the field ends there); 0 on unobserved cells."""
    padded = np.pad(np.asarray(valid, dtype=bool), 1)
    return ndimage.distance_transform_cdt(padded, metric="chessboard")[1:-1, 1:-1].astype(np.int64)


def label_regions(
    rel: np.ndarray, threshold: float, min_cells: int = 1, *, prominence: float = 1.0, min_separation_px: int = 2
) -> tuple[np.ndarray, int]:
    """Label 8-connected regions of ``rel >= threshold`` (NaN = below) in a 2-D map; drop those < ``min_cells``;
    split regions holding several prominent peaks (:func:`no2hotspots.peaks.split_peaks`; ``prominence`` >= 1:
    never).

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
    if n and float(prominence) < 1.0:
        lab = split_peaks(rel, lab, prominence=prominence, min_separation_px=min_separation_px)
        n = int(lab.max())
    return lab, int(n)


def find_hotspots(
    rel: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    *,
    cell_area_km2: np.ndarray,
    emission_min: float,
    emission_max: float,
    threshold: float = 0.2,
    min_cells: int = 1,
    prominence: float = 1.0,
    min_separation_px: int = 2,
    edge_cells: int = 0,
    min_gap_cells_shifted: int = 0,
    gap_shift_min_mol_m2: float = 0.0,
    valid: np.ndarray | None = None,
    background_shift: np.ndarray | None = None,
) -> tuple[list[dict], np.ndarray]:
    """Hotspots of one overpass's map ``rel (lat, lon)``: one row per region (``overpass_hotspot`` = 1, 2, ...
    by descending peak; peak position, peak and summed relative emission, NOx estimate, area, cells) and the
    int32 image of region numbers (0 = no hotspot). Regions whose peak lies fewer than ``edge_cells`` cells from
    the map's outer edge (1: on its outermost row or column) are left out of both (0: none), and so are those whose
    peak had more than ``gap_shift_min_mol_m2`` of background taken off and lies fewer than ``min_gap_cells_shifted``
    cells from an unobserved cell (``gap_cells`` below it; 0: none). ``valid`` (bool, the
    map's shape) marks the cells the overpass observed, for ``gap_cells`` (default: where ``rel`` is finite);
    ``background_shift`` (the map's shape, mol m-2) what detection took off each cell's background before the model
    ran (:mod:`.background`), read at the peak for ``background_shift_mol_m2`` (default: 0, nothing taken off)."""
    rel = np.asarray(rel, dtype=np.float32)
    lab, n = label_regions(rel, threshold, min_cells, prominence=prominence, min_separation_px=min_separation_px)
    ids = np.zeros(rel.shape, dtype=np.int32)
    if n == 0:
        return [], ids
    r = np.nan_to_num(rel, nan=0.0)
    idx = np.arange(1, n + 1)
    peaks = ndimage.maximum_position(r, lab, idx)
    peak_val = np.asarray(ndimage.maximum(r, lab, idx), dtype=float)
    sums = np.asarray(ndimage.sum(r, lab, idx), dtype=float)
    areas = np.asarray(ndimage.sum(cell_area_km2, lab, idx), dtype=float)
    ncell = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    gap = gap_distance(np.isfinite(rel) if valid is None else valid)
    order = np.lexsort((idx, -peak_val))  # by peak, ties by region label (row-major position): the same everywhere
    pi, pj = np.asarray(peaks, dtype=np.int64).reshape(-1, 2).T
    if edge_cells > 0:
        inner = edge_distance(pi, pj, rel.shape) >= int(edge_cells)
        order = order[inner[order]]
    if min_gap_cells_shifted > 0 and background_shift is not None:
        shifted = np.asarray(background_shift)[pi, pj] > float(gap_shift_min_mol_m2)
        beside = shifted & (gap[pi, pj] < int(min_gap_cells_shifted))
        order = order[~beside[order]]
    remap = np.zeros(n + 1, dtype=np.int32)
    remap[order + 1] = 1 + np.arange(len(order), dtype=np.int32)
    ids = remap[lab]
    rows = []
    for rank, k in enumerate(order, start=1):
        i, j = peaks[k]
        rows.append(
            {
                "overpass_hotspot": rank,
                "peak_lat": round(float(lat[i]), 6),
                "peak_lon": round(float(lon[j]), 6),
                "peak_rel_emission": float(peak_val[k]),
                "sum_rel_emission": float(sums[k]),
                "nox_rate_estimate_t_per_yr": float(nox_estimate(peak_val[k], emission_min, emission_max)),
                "area_km2": float(areas[k]),
                "n_cells": int(ncell[k]),
                "gap_cells": int(gap[i, j]),
                "background_shift_mol_m2": 0.0 if background_shift is None else float(background_shift[i, j]),
            }
        )
    return rows, ids
