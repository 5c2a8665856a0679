"""The smoothed period map of the baseline (outside :mod:`.divergence`, whose code digest keys the per-overpass
units: a change here never recomputes them)."""

from __future__ import annotations

import numpy as np


def smoothed_mean(mean: np.ndarray, n_valid: np.ndarray, min_valid: int, cells: int) -> np.ndarray:
    """The period map with cells observed < ``min_valid`` times as NaN, box-smoothed over ``cells`` (odd, >= 1; NaN
    cells left out of each box): the baseline's hotspot map, and what the hybrid's confirmation standardises."""
    from scipy import ndimage

    m = np.where(np.asarray(n_valid) >= int(min_valid), np.asarray(mean, np.float64), np.nan)
    if int(cells) <= 1:
        return m
    ok = np.isfinite(m)
    num = ndimage.uniform_filter(np.where(ok, m, 0.0), int(cells), mode="constant")
    den = ndimage.uniform_filter(ok.astype(np.float64), int(cells), mode="constant")
    return np.where(ok, num / np.maximum(den, 1e-9), np.nan)
