"""Composite detection over a period: hotspots of the mean relative-emission map (issue 12).

A weak source seen on many overpasses gives a faint but repeated signal in the model's map; a one-off false alarm
gives a strong signal once. The composite is, per cell, the mean of the per-overpass maps over the overpasses that
observed the cell leaving out the single largest value: the repeated signal stays, a one-off alarm adds nothing
(two at the same cell: half of one). The composite threshold
is false-alarm controlled from the map itself: cells with at least ``min_valid`` observations give the background's
median and spread (median absolute deviation, robust to the sources), and a cell is marked when its mean exceeds
``median + k_sigma * 1.4826 * MAD`` (and at least ``min_value``). Each 8-connected marked region, split at
prominent peaks as the per-overpass hotspots are (``detect.peaks``), is one composite hotspot at its peak.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .hotspots import label_regions

COLUMNS = ("site_id", "peak_lat", "peak_lon", "peak_value", "n_cells", "n_valid", "n_detections", "threshold")


def threshold(mean: np.ndarray, n_valid: np.ndarray, *, min_valid: int, k_sigma: float, min_value: float) -> float:
    """The composite threshold: background median + k_sigma robust standard deviations, at least ``min_value``."""
    bg = mean[(n_valid >= min_valid) & np.isfinite(mean)]
    if bg.size == 0:
        return float("inf")
    med = float(np.median(bg))
    mad = float(np.median(np.abs(bg - med)))
    return max(float(min_value), med + float(k_sigma) * 1.4826 * mad)


def composite_hotspots(period: dict, lat: np.ndarray, lon: np.ndarray, s: dict) -> pd.DataFrame:
    """One row per composite hotspot (:data:`COLUMNS`), strongest first."""
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
        for k in np.lexsort((idx, -values)):
            i, j = peaks[k]
            rows.append(
                {
                    "peak_lat": round(float(lat[i]), 6),
                    "peak_lon": round(float(lon[j]), 6),
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
