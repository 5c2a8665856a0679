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

_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def split_peaks(values: np.ndarray, labels: np.ndarray, *, prominence: float, min_separation_px: int) -> np.ndarray:
    """Relabel the regions of the 2-D ``labels`` (0 = background) so that each holds one prominent peak of
    ``values``; returns the new int32 labels numbered 1..n in row-major order of their first cell (0 stays 0)."""
    labels = np.asarray(labels)
    if float(prominence) >= 1.0 or not labels.any():
        return _renumber(np.where(labels > 0, labels, 0).astype(np.int32))
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=-np.inf)
    h, w = labels.shape
    multi = _multi_peak_regions(v, labels, float(prominence))
    if multi.size == 0:  # no region can split: most maps, cheaply
        return _renumber(np.where(labels > 0, labels, 0).astype(np.int32))
    cells = np.flatnonzero(np.isin(labels.ravel(), multi))
    order = cells[np.lexsort((cells, -v.ravel()[cells]))]  # highest first, ties by position
    parent: dict[int, int] = {}
    peak: dict[int, int] = {}  # root -> flat index of its peak
    lab_flat = labels.ravel()

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    owner = np.full(labels.size, -1, dtype=np.int64)  # flat index -> its region's (original) root at assignment
    vf = v.ravel()
    for c in order.tolist():
        i, j = divmod(c, w)
        roots: dict[int, float] = {}
        best, best_v = -1, -np.inf
        for di, dj in _NEIGHBOURS:
            a, b = i + di, j + dj
            if 0 <= a < h and 0 <= b < w:
                nb = a * w + b
                if owner[nb] >= 0 and lab_flat[nb] == lab_flat[c]:
                    r = find(int(owner[nb]))
                    roots[r] = vf[peak[r]]
                    if vf[nb] > best_v or (vf[nb] == best_v and nb < best):
                        best, best_v = nb, vf[nb]
        if not roots:
            parent[c], peak[c], owner[c] = c, c, c
            continue
        target = find(int(owner[best]))
        owner[c] = target
        for r in sorted(roots, key=lambda q: (-roots[q], peak[q])):
            top = find(target)
            r = find(r)
            if r == top:
                continue
            hi, lo = (top, r) if (vf[peak[top]], -peak[top]) >= (vf[peak[r]], -peak[r]) else (r, top)
            p, s = vf[peak[lo]], vf[c]
            (pi, pj), (qi, qj) = divmod(peak[lo], w), divmod(peak[hi], w)
            apart = max(abs(pi - qi), abs(pj - qj)) >= int(min_separation_px)
            if apart and p - s >= float(prominence) * p:
                continue  # two peaks: both regions stay
            parent[lo] = hi
    flat = np.where(labels.ravel() > 0, labels.size + labels.ravel().astype(np.int64), 0)  # unsplit regions
    flat[cells] = [find(int(owner[c])) + 1 for c in cells.tolist()]
    return _renumber(flat.reshape(labels.shape))


def _multi_peak_regions(v: np.ndarray, labels: np.ndarray, prominence: float) -> np.ndarray:
    """Labels of the regions that hold at least two local maxima (3 x 3) able to stand out: a peak ``p`` can only
    keep a dip ``p - s >= prominence * p`` to a saddle ``s`` inside its region if ``(1 - prominence) * p`` reaches
    down to the region's lowest value."""
    from scipy import ndimage

    inside = labels > 0
    vv = np.where(inside, v, -np.inf)
    peak = inside & (vv >= ndimage.maximum_filter(vv, size=3, mode="constant", cval=-np.inf))
    n = int(labels.max())
    low = np.asarray(ndimage.minimum(v, labels, np.arange(1, n + 1)), dtype=np.float64)
    lab = labels[peak]
    able = (1.0 - prominence) * v[peak] >= low[lab - 1]
    counts = np.bincount(lab[able], minlength=n + 1)
    return np.flatnonzero(counts >= 2)


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
