"""Robust background statistics: the composite threshold, the hybrid z, the masked background, quantify's clipping.

A map of sources on a background: its median and median absolute deviation barely move with the few cells the
sources hold, and ``MAD_TO_SIGMA`` x MAD is the background's standard deviation where its noise is Gaussian.
"""

from __future__ import annotations

import numpy as np

#: 1.4826 x MAD is the standard deviation of a normal distribution
MAD_TO_SIGMA = 1.4826


def median_mad(values: np.ndarray) -> tuple[float, float] | None:
    """Median and median absolute deviation of the finite ``values``; None when none is finite."""
    bg = values[np.isfinite(values)]
    if bg.size == 0:
        return None
    med = float(np.median(bg))
    return med, float(np.median(np.abs(bg - med)))
