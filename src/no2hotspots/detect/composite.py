"""Composite detection over a period: sites where the per-overpass peaks recur, or hotspots of the mean map (issue 12).

A weak source seen on many overpasses gives a faint but repeated signal in the model's map; a one-off false alarm
gives a strong signal once. With ``rule: mean`` the composite is, per cell, the mean of the per-overpass maps over
the overpasses that observed the cell leaving out the single largest value: the repeated signal stays, a one-off
alarm adds nothing (two at the same cell: half of one). The composite threshold is false-alarm controlled from the
map itself: cells with at least ``min_valid`` observations give the background's median and spread (median absolute
deviation, robust to the sources), and a cell is marked when its mean exceeds ``median + k_sigma * 1.4826 * MAD``
(and at least ``min_value``). Each 8-connected marked region, split at prominent peaks as the per-overpass hotspots
are (``detect.peaks``), is one composite hotspot.

Where a site lies (``peak_lat``/``peak_lon``; ``detect.composite.position``): ``peak``, the centre of the region's
highest cell, or ``centroid``, the mean-weighted centroid of the region's cells at or above half its peak (the score
stage's blob location). The centroid is sub-cell and averages the flat, plume-smeared top of the period map instead
of picking one of its cells: on the year-long demo OSSE (sources > 3 kt NOx/yr matched within 10 km) the median
site-source distance falls from 3.3 to 2.3 km and the along-wind bias from +0.5 to +0.8 km median, but its
16-84 % range narrows (-2.8..+2.7 -> -1.3..+2.2 km); on an earlier demo run 4.7 -> 2.6 km and +2.5 -> +0.2 km.
``n_valid``/``n_detections`` are those of the peak cell either way.

``rule: recurrence`` (the default since 8c6b099; ``mean`` is opt-in) builds the sites from the per-overpass PEAKS
instead of the mean map: a source the model marks on a few per cent of its overpasses puts its peaks into the same
few cells again and again, a false alarm lands anywhere. The peaks are every local maximum of an overpass's map
over its fully observed 3x3 block at or above ``recurrence.level`` (0.02, the marking level of Table 1; counted per
cell in ``n_maxima``, out of the ``n_maxima_valid`` overpasses that observed the whole block: a cell on the map's
border or by a cloud gap, with fewer neighbours to beat, would otherwise be a maximum more often), so a source too
weak for a hotspot (r < ``detect.threshold``) recurs too; ``level: null`` counts the hotspot peaks only
(``n_peaks``, out of ``n_valid``). Per cell: the peak count and its share of those overpasses. A cell is a site
when (1) its share is the highest in its (2r+1)^2 neighbourhood (``separation_cells`` r; ties go to more peaks,
then to the first cell in row-major order), (2) it holds at least ``min_peaks`` peaks and (3) the peaks in it and its
4 neighbours are more than a uniform false-alarm rate explains: Poisson tail against ``lambda0 x`` their overpasses,
with ``lambda0`` = all peaks / all cell-overpasses counted of the map (sources included, so conservative), at a
Benjamini-Hochberg false-discovery rate ``alpha`` over the cells. ``peak_value`` is the share, ``threshold`` is
``lambda0``, ``n_cells`` is 1. The rule and its settings were chosen on a validation OSSE (another region, seed 7:
benchmarks/composite_rule.py), not on the demo's: F1 0.30 (mean) -> 0.46 (hotspot peaks) -> 0.49 (local maxima >=
0.02); quantify's period rates at its sites (at the share centroids, ``position: centroid``) meet their targets on
that OSSE (README). With ``level: null`` a source that never makes a per-overpass hotspot gives no recurrence site.
Sites whose peaks come with the wind blowing onto them from a stronger site (satellites of its plume) are dropped by
the downwind test of :mod:`.downwind` (``recurrence.downwind``; the ``satellites`` argument).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..labelstats import half_peak_centroid
from ..robust import MAD_TO_SIGMA, median_mad
from .hotspots import label_regions

#: ways to place a composite site (``detect.composite.position``)
POSITIONS = ("peak", "centroid")
#: ways to place a recurrence site (``detect.composite.recurrence.position``)
RECURRENCE_POSITIONS = ("cell", "centroid")
#: composite rules (``detect.composite.rule``)
RULES = ("mean", "recurrence")
COLUMNS = ("site_id", "peak_lat", "peak_lon", "peak_value", "n_cells", "n_valid", "n_detections", "threshold")


def threshold(mean: np.ndarray, n_valid: np.ndarray, *, min_valid: int, k_sigma: float, min_value: float) -> float:
    """The composite threshold: background median + k_sigma robust standard deviations, at least ``min_value``."""
    background = median_mad(mean[n_valid >= min_valid])
    if background is None:
        return float("inf")
    med, mad = background
    return max(float(min_value), med + float(k_sigma) * MAD_TO_SIGMA * mad)


def check_position(position, choices: tuple = POSITIONS, key: str = "detect.composite.position") -> str:
    """``position`` if it is one of ``choices``, else a one-line ConfigError naming ``key``."""
    if position not in choices:
        raise ConfigError(key, f"must be one of {', '.join(choices)} (got {position!r})")
    return str(position)


def site_positions(values: np.ndarray, lab: np.ndarray, n: int, position: str = "peak") -> np.ndarray:
    """Fractional (row, col) of regions 1..n of ``lab`` on the map ``values`` (NaN = 0), shape (n, 2): ``peak`` the
    highest cell (first in row-major order on ties), ``centroid`` the value-weighted centroid of the region's cells
    >= half its peak value (:func:`~no2hotspots.labelstats.half_peak_centroid`, as the score stage's blobs)."""
    from scipy import ndimage

    check_position(position)
    if n == 0:
        return np.zeros((0, 2))
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    idx = np.arange(1, n + 1)
    if position == "peak":
        return np.asarray(ndimage.maximum_position(v, lab, idx), dtype=np.float64).reshape(-1, 2)
    return half_peak_centroid(v, lab, n)


def index_to_latlon(pos: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude of fractional (row, col) positions on the grid of cell centres ``lat``/``lon``."""
    pos = np.asarray(pos, np.float64).reshape(-1, 2)
    return (
        np.interp(pos[:, 0], np.arange(len(lat)), np.asarray(lat, dtype=np.float64)),
        np.interp(pos[:, 1], np.arange(len(lon)), np.asarray(lon, dtype=np.float64)),
    )


def composite_hotspots(period: dict, lat: np.ndarray, lon: np.ndarray, s: dict, satellites=None) -> pd.DataFrame:
    """One row per composite hotspot (:data:`COLUMNS`), strongest first. ``s["rule"]`` (default ``mean``):
    ``mean`` = regions of the trimmed mean map, placed by ``s["position"]`` (default ``peak``;
    :func:`site_positions`); ``recurrence`` = :func:`recurrence_hotspots` (needs ``period["n_peaks"]``; with
    ``satellites``, its sites less those that call flags)."""
    if s.get("rule", "mean") == "recurrence":
        return recurrence_hotspots(
            period, lat, lon, s["recurrence"], min_valid=int(s["min_valid"]), satellites=satellites
        )
    position = check_position(s.get("position", "peak"))
    mean = np.where(period["n_valid"] >= s["min_valid"], period["rel_trimmed"], np.nan)
    thr = threshold(mean, period["n_valid"], min_valid=s["min_valid"], k_sigma=s["k_sigma"], min_value=s["min_value"])
    lab, n = label_regions(mean, thr, int(s["min_cells"]), **s["peaks"])
    rows = []
    if n:
        from scipy import ndimage

        m = np.nan_to_num(mean, nan=0.0)
        idx = np.arange(1, n + 1)
        peaks = ndimage.maximum_position(m, lab, idx)
        values = np.asarray(ndimage.maximum(m, lab, idx), dtype=float)
        cells = np.bincount(lab.ravel(), minlength=n + 1)[1:]
        pos = site_positions(mean, lab, n, position)
        site_lat, site_lon = index_to_latlon(pos, lat, lon)
        for k in np.lexsort((idx, -values)):
            i, j = peaks[k]
            rows.append(
                {
                    "peak_lat": round(float(site_lat[k]), 6),
                    "peak_lon": round(float(site_lon[k]), 6),
                    "peak_value": float(values[k]),
                    "n_cells": int(cells[k]),
                    "n_valid": int(period["n_valid"][i, j]),
                    "n_detections": int(period["n_detections"][i, j]),
                    "threshold": float(thr),
                }
            )
    df = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "site_id"])
    df.insert(0, "site_id", np.arange(1, len(df) + 1, dtype=np.int64))
    return df


def peak_cells(peak_lat, peak_lon, lat: np.ndarray, lon: np.ndarray, res: float) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of the cell of the regular grid ``lat``/``lon`` (ascending centres, cells of ``res`` degrees:
    the grid's ``resolution_deg``) that holds each peak; off the grid they fall outside ``0..len - 1``."""
    i = np.rint((np.asarray(peak_lat, float) - float(lat[0])) / float(res)).astype(np.int64)
    j = np.rint((np.asarray(peak_lon, float) - float(lon[0])) / float(res)).astype(np.int64)
    return i, j


def peak_counts(peak_lat, peak_lon, lat: np.ndarray, lon: np.ndarray, res: float) -> np.ndarray:
    """Hotspot peaks per cell of the regular grid (:func:`peak_cells`); peaks off the grid are left out."""
    i, j = peak_cells(peak_lat, peak_lon, lat, lon, res)
    ok = (i >= 0) & (i < len(lat)) & (j >= 0) & (j < len(lon))
    flat = np.bincount(i[ok] * len(lon) + j[ok], minlength=len(lat) * len(lon))
    return flat.reshape(len(lat), len(lon)).astype(np.int64)


def benjamini_hochberg(p: np.ndarray, alpha: float) -> float:
    """The largest p-value that the Benjamini-Hochberg procedure at false-discovery rate ``alpha`` rejects
    (-1 when none): a test is a discovery when its p <= the returned value."""
    pv = np.sort(np.asarray(p, float)[np.isfinite(p)])
    if not len(pv):
        return -1.0
    k = np.nonzero(pv <= float(alpha) * np.arange(1, len(pv) + 1) / len(pv))[0]
    return float(pv[k.max()]) if len(k) else -1.0


def recurrence_map(
    n_peaks: np.ndarray, n_valid: np.ndarray, *, min_valid: int, alpha: float, ring_cells: int = 0
) -> dict:
    """Per cell: ``share`` of valid overpasses with a hotspot peak in it, ``p`` the Poisson tail of the peaks in the
    cell and its 4 neighbours against ``lambda0`` x their valid overpasses, ``significant`` (Benjamini-Hochberg at
    ``alpha``); ``lambda0`` (all peaks / all cell-overpasses counted in ``n_valid``, cells with >= ``min_valid``
    only). With ``ring_cells`` R >= 2 the rate per cell is the larger of ``lambda0`` and the local rate in the ring
    of cells 2..R away (Chebyshev distance; the 3x3 block left out), so peaks that a strong neighbour's plume
    scatters around it are tested against their own surroundings (``local_rate``)."""
    from scipy import ndimage, stats

    seen = np.asarray(n_valid) >= int(min_valid)
    k = np.where(seen, np.asarray(n_peaks, np.float64), 0.0)
    n = np.where(seen, np.asarray(n_valid, np.float64), 0.0)
    cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=np.float64)
    s_k = ndimage.convolve(k, cross, mode="constant")
    s_n = ndimage.convolve(n, cross, mode="constant")
    lambda0 = float(k.sum() / n.sum()) if n.sum() > 0 else 0.0
    rate = np.full(k.shape, lambda0)
    if int(ring_cells) >= 2:
        ring = np.ones((2 * int(ring_cells) + 1,) * 2)
        ring[ring_cells - 1 : ring_cells + 2, ring_cells - 1 : ring_cells + 2] = 0.0
        r_k = ndimage.convolve(k, ring, mode="constant")
        r_n = ndimage.convolve(n, ring, mode="constant")
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.maximum(rate, np.where(r_n > 0, r_k / np.maximum(r_n, 1.0), 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(seen & (s_n > 0), stats.poisson.sf(s_k - 1, rate * s_n), np.nan)
        share = np.where(seen, k / np.maximum(n, 1), 0.0)
    significant = seen & np.isfinite(p) & (p <= benjamini_hochberg(p, alpha)) if lambda0 > 0 else np.zeros_like(seen)
    return {"share": share, "p": p, "significant": significant, "lambda0": lambda0, "local_rate": rate}


def full_blocks(rel: np.ndarray) -> np.ndarray:
    """Cells of one overpass's map (NaN = no valid input) whose whole 3x3 block is observed: the cells that can be a
    local maximum (:func:`local_maxima`); cells on the map's border never are."""
    from scipy import ndimage

    ok = np.isfinite(np.asarray(rel, np.float64))
    return ndimage.minimum_filter(ok.astype(np.uint8), size=3, mode="constant", cval=0).astype(bool)


def local_maxima(rel: np.ndarray, level: float, blocks: np.ndarray | None = None) -> np.ndarray:
    """Cells of one overpass's relative-emission map (NaN = no valid input) that are the highest of their fully
    observed 3x3 block (:func:`full_blocks`) and reach ``level``: the map's peaks, also those too weak for a hotspot
    (``recurrence.level``). A cell with an unobserved or off-map neighbour is never one: it would beat 5 (edge) or
    3 (corner) neighbours instead of 8, and pure noise would put its false sites on the map's border and along
    cloud gaps (tests/detect/test_composite_recurrence.py). ``blocks``: :func:`full_blocks` of ``rel`` where the
    caller has it already."""
    from scipy import ndimage

    v = np.where(np.isfinite(rel), np.asarray(rel, np.float64), -np.inf)
    top = v >= ndimage.maximum_filter(v, size=3, mode="constant", cval=-np.inf)
    return top & (v >= float(level)) & (full_blocks(rel) if blocks is None else blocks)


def recurrence_counts(period: dict, r: dict) -> tuple[np.ndarray, np.ndarray]:
    """What the recurrence rule counts per cell, and out of how many overpasses: overpasses whose map has a local
    maximum >= ``r["level"]`` in it (``period["n_maxima"]``) out of those that observed its whole 3x3 block
    (``n_maxima_valid``), or, with ``level`` None, overpasses whose hotspot peak lies in it (``n_peaks``) out of
    those that observed it (``n_valid``)."""
    if r.get("level") is None:
        return np.asarray(period["n_peaks"]), np.asarray(period["n_valid"])
    if "n_maxima" not in period or "n_maxima_valid" not in period:
        raise ConfigError("detect.composite.recurrence.level", "set, but the period has no local-maximum counts")
    return np.asarray(period["n_maxima"]), np.asarray(period["n_maxima_valid"])


def share_centroids(share: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Fractional (row, col) of the share-weighted centroid of each cell's 3x3 block (cells off the map left out),
    shape (n, 2); a block of zero share keeps its cell."""
    if not len(cells):
        return np.zeros((0, 2))
    w = np.pad(np.asarray(share, np.float64), 1)
    di, dj = np.mgrid[-1:2, -1:2]
    out = np.empty((len(cells), 2))
    for k, (i, j) in enumerate(cells):
        b = w[i : i + 3, j : j + 3]
        tot = b.sum()
        out[k] = (i + (b * di).sum() / tot, j + (b * dj).sum() / tot) if tot > 0 else (i, j)
    return out


def recurrence_hotspots(
    period: dict, lat: np.ndarray, lon: np.ndarray, r: dict, *, min_valid: int, satellites=None
) -> pd.DataFrame:
    """Composite sites of the ``recurrence`` rule (module docstring): one row per cell that is a local maximum of
    the peak share, holds >= ``r["min_peaks"]`` peaks and is significant at ``r["alpha"]``; peaks are hotspot peaks
    or, with ``r["level"]``, the maps' local maxima >= level (:func:`recurrence_counts`). The site lies at the
    cell's centre (``r["position"]`` ``cell``) or at the share-weighted centroid of its 3x3 block (``centroid``:
    :func:`share_centroids`). ``satellites(cells, site_lat, site_lon, share)`` -> bool per site, if given, names
    sites to drop (the downwind test, :mod:`.downwind`)."""
    from scipy import ndimage

    n_peaks, n_valid = recurrence_counts(period, r)
    m = recurrence_map(
        n_peaks, n_valid, min_valid=min_valid, alpha=float(r["alpha"]), ring_cells=int(r.get("ring_cells", 0))
    )
    share = m["share"]
    # a strict total order (share, then peaks, then the first cell in row-major order): one maximum per plateau
    order = np.lexsort((-np.arange(share.size), n_peaks.ravel(), share.ravel()))
    rank = np.empty(share.size, np.int64)
    rank[order] = np.arange(1, share.size + 1)
    rank = rank.reshape(share.shape)
    size = 2 * int(r["separation_cells"]) + 1
    top = rank >= ndimage.maximum_filter(rank, size=size, mode="constant", cval=0)
    keep = top & m["significant"] & (n_peaks >= int(r["min_peaks"]))
    cells = np.argwhere(keep)
    cells = cells[np.lexsort((cells[:, 1], cells[:, 0], -share[keep]))] if len(cells) else cells.reshape(0, 2)
    position = check_position(r.get("position", "cell"), RECURRENCE_POSITIONS, "detect.composite.recurrence.position")
    pos = share_centroids(share, cells) if position == "centroid" else cells.astype(np.float64).reshape(-1, 2)
    site_lat, site_lon = index_to_latlon(pos, lat, lon)
    if satellites is not None and len(cells):
        keep = ~np.asarray(satellites(cells, site_lat, site_lon, share[cells[:, 0], cells[:, 1]]), bool)
        cells, site_lat, site_lon = cells[keep], site_lat[keep], site_lon[keep]
    df = pd.DataFrame(
        {
            "peak_lat": [round(float(v), 6) for v in site_lat],
            "peak_lon": [round(float(v), 6) for v in site_lon],
            "peak_value": [float(share[i, j]) for i, j in cells],
            "n_cells": np.ones(len(cells), np.int64),
            "n_valid": [int(period["n_valid"][i, j]) for i, j in cells],
            "n_detections": [int(period["n_detections"][i, j]) for i, j in cells],
            "threshold": np.full(len(cells), m["lambda0"]),
        },
        columns=[c for c in COLUMNS if c != "site_id"],
    )
    df.insert(0, "site_id", np.arange(1, len(df) + 1, dtype=np.int64))
    return df
