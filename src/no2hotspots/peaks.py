"""Splitting a connected region of a map into one region per prominent peak (hotspots of neighbouring sources).

Two sources 2-5 px apart give one connected region above the threshold; if the region holds two peaks with a dip
between them, they are two hotspots. The rule, by flooding (the watershed / topographic-prominence construction):
cells are visited from the highest down; a cell joins the region of its highest labelled neighbour, and where two
regions meet at a saddle of value ``s`` the one with the lower peak ``p`` stays separate when its dip
``p - s >= prominence * p`` and the two peaks are at least ``min_separation_px`` apart (Chebyshev distance);
otherwise the lower region merges into the higher. ``prominence = 1`` (or more) never splits. Ties in value are
broken by row-major position, so the result is the same on every machine.
"""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig

from .config import require, require_int
from .labelstats import label_min

_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def split_peaks(values: np.ndarray, labels: np.ndarray, *, prominence: float, min_separation_px: int) -> np.ndarray:
    """Relabel the regions of the 2-D ``labels`` (0 = background) so that each holds one prominent peak of
    ``values``; returns the new int32 labels numbered 1..n in row-major order of their first cell (0 stays 0)."""
    labels = np.asarray(labels)
    if float(prominence) >= 1.0 or not labels.any():
        return _renumber(np.where(labels > 0, labels, 0).astype(np.int32))
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=-np.inf)
    multi = _multi_peak_regions(v, labels, float(prominence))
    return _flood(v[None], labels[None], multi, float(prominence), int(min_separation_px))[0]


def _flood(v: np.ndarray, labels: np.ndarray, multi: np.ndarray, prominence: float, min_sep: int) -> np.ndarray:
    """The flooding of the module docstring over the regions ``multi`` of a stack (N, H, W) of maps labelled uniquely
    across the stack (others stay whole; neighbours only within a map, so the maps never interact).

    Cells are numbered by their visiting rank (value descending, ties by row-major position), so a region's root is
    always its peak's rank and "the highest labelled neighbour" is the neighbour of lowest rank. A cell joins the
    region of that neighbour, so following those links from any cell ends at a local peak: its *basin* (found for
    all cells at once by pointer jumping). Regions are unions of basins, and two can only meet at a cell whose
    earlier neighbours lie in more than one basin: the union-find loop visits just those cells, in rank order, which
    gives the same merges as visiting every cell."""
    if multi.size == 0:  # no region can split: most maps, cheaply
        return _renumber(np.where(labels > 0, labels, 0).astype(np.int32))
    h, w = labels.shape[-2:]
    lab_flat = labels.ravel()
    cells = np.flatnonzero(np.isin(lab_flat, multi))
    order = cells[np.lexsort((cells, -v.ravel()[cells]))]  # highest first, ties by position
    m = order.size
    nb = _earlier_neighbours(order, lab_flat, h, w)
    seen = nb < m
    basin = np.where(seen[:, 0], nb[:, 0], np.arange(m))
    while True:  # pointer jumping: every cell to the peak its chain of highest neighbours climbs to
        up = basin[basin]
        if np.array_equal(up, basin):
            break
        basin = up
    nb_basin = np.where(seen, basin[np.minimum(nb, m - 1)], -1)
    meet = np.flatnonzero((seen & (nb_basin != basin[:, None])).any(axis=1))
    val = v.ravel()[order].tolist()
    pi, pj = np.divmod(order % (h * w), w)
    pi, pj = pi.tolist(), pj.tolist()
    parent = list(range(m))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for k, own, row in zip(meet.tolist(), basin[meet].tolist(), nb_basin[meet].tolist()):
        target = find(own)  # the region of its highest neighbour
        s = val[k]
        for r in sorted({find(b) for b in row if b >= 0}):  # by peak: highest first
            top, r = find(target), find(r)
            if r == top:
                continue
            hi, lo = (top, r) if top < r else (r, top)
            p = val[lo]
            if max(abs(pi[lo] - pi[hi]), abs(pj[lo] - pj[hi])) >= min_sep and p - s >= prominence * p:
                continue  # two peaks: both regions stay
            parent[lo] = hi
    peak_cells = np.flatnonzero(~seen[:, 0])
    region = np.arange(m)
    region[peak_cells] = [find(b) for b in peak_cells.tolist()]
    flat = np.where(lab_flat > 0, lab_flat.size + lab_flat.astype(np.int64), 0)  # unsplit regions
    flat[order] = region[basin] + 1
    return _renumber(flat.reshape(labels.shape))


def _earlier_neighbours(order: np.ndarray, lab_flat: np.ndarray, h: int, w: int) -> np.ndarray:
    """(m, 8) int64: per cell of ``order`` (by rank; flat indices into a stack of h x w maps), the ranks of its 8
    in-map neighbours in the same region visited before it, lowest rank (highest value) first, padded with m."""
    m = order.size
    rank = np.full(lab_flat.size, m, dtype=np.int64)
    rank[order] = np.arange(m)
    plane, rest = np.divmod(order, h * w)
    i, j = np.divmod(rest, w)
    nb = np.full((m, len(_NEIGHBOURS)), m, dtype=np.int64)
    for k, (di, dj) in enumerate(_NEIGHBOURS):
        a, b = i + di, j + dj
        inside = (a >= 0) & (a < h) & (b >= 0) & (b < w)
        f = plane * (h * w) + np.where(inside, a * w + b, 0)
        ok = inside & (rank[f] < np.arange(m)) & (lab_flat[f] == lab_flat[order])
        nb[ok, k] = rank[f[ok]]
    nb.sort(axis=1)
    return nb


def _multi_peak_regions(v: np.ndarray, labels: np.ndarray, prominence: float) -> np.ndarray:
    """Labels of the regions that hold at least two local maxima (3 x 3 over the last two axes) able to stand out: a
    peak ``p`` can only keep a dip ``p - s >= prominence * p`` to a saddle ``s`` inside its region if
    ``(1 - prominence) * p`` reaches down to the region's lowest value. ``v``/``labels`` may be a stack (..., H, W)
    of maps labelled uniquely across the stack."""
    from scipy import ndimage

    inside = labels > 0
    vv = np.where(inside, v, -np.inf)
    size = (1,) * (v.ndim - 2) + (3, 3)
    peak = inside & (vv >= ndimage.maximum_filter(vv, size=size, mode="constant", cval=-np.inf))
    n = int(labels.max())
    low = label_min(v, labels, n)
    lab = labels[peak]
    able = (1.0 - prominence) * v[peak] >= low[lab - 1]
    counts = np.bincount(lab[able], minlength=n + 1)
    return np.flatnonzero(counts >= 2)


def split_peaks_stack(
    values: np.ndarray, labels: np.ndarray, *, prominence: float, min_separation_px: int
) -> tuple[np.ndarray, int]:
    """:func:`split_peaks` for a stack (N, H, W) of maps whose ``labels`` are unique across the stack (no region
    spans two maps): returns the new int64 labels, numbered 1..n in row-major order of the stack (map by map, as
    splitting each map and counting on does), and n. The multi-peak screen and the flooding run once over the
    whole stack."""
    labels = np.asarray(labels)
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=-np.inf)
    multi = np.zeros(0, np.int64)
    if float(prominence) < 1.0 and labels.any():
        multi = _multi_peak_regions(v, labels, float(prominence))
    out = _flood(v, labels, multi, float(prominence), int(min_separation_px)).astype(np.int64)
    return out, int(out.max(initial=0))


def _renumber(lab: np.ndarray) -> np.ndarray:
    """Labels 1..n in row-major order of each region's first cell."""
    flat = lab.ravel()
    nz = flat > 0
    if not nz.any():
        return np.zeros(lab.shape, dtype=np.int32)
    uniq, first = np.unique(flat[nz], return_index=True)
    rank = np.empty(uniq.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(1, uniq.size + 1)
    out = np.zeros(flat.size, dtype=np.int32)
    out[nz] = rank[np.searchsorted(uniq, flat[nz])]
    return out.reshape(lab.shape)


def settings(cfg: DictConfig, key: str) -> dict:
    """The checked ``<key>.prominence`` (> 0; >= 1 never splits) and ``<key>.min_separation_px`` (>= 1)."""
    return {
        "prominence": float(require(cfg, key + ".prominence", lambda v: float(v) > 0, "must be > 0")),
        "min_separation_px": require_int(cfg, key + ".min_separation_px", 1),
    }
