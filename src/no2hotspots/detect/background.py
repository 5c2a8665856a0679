"""Bring a field's regional background into the model's training range before inference.

The simulator's scenes have a background of at most ``simulate.background.mean_max`` (3e-5 mol m-2 in the demo
and paper worlds). Real polluted regions lie far above it (the real TROPOMI L3 scenes over the Netherlands: scene
medians 4.5-6e-5, Rotterdam 2.5-3.2e-4 mol m-2), and there a model sees what it never saw: a valid region of 1e-4
next to a cloud gap (input 0) is a step as high as a strong plume, and it marks the gap's edge; on a clean
compact source over such a background its relative emission falls towards 0 (benchmarks/background_shift.py).

:func:`shift_background` subtracts from every cell the part of its local background above ``max_mol_m2``: the
local background is the mean of the valid cells weighted by a Gaussian of ``sigma_km`` (normalised convolution:
cloud gaps take no part), and cells whose local background is within the training range are left as they are.
With ``mask_z`` > 0 the local background is plume-robust (:func:`masked_background`): cells standing out above it
are left out of the mean, as ddeq 1.1's ``background.estimate`` leaves out its plume detections before the same
normalised convolution.
Enhancements above the background (plumes, cities) keep their height. A smooth shift per region, not a per-tile
normalisation: the input keeps its physical scale (``input_scale``), which the relative emission reads.

``detect.background_max_mol_m2`` = 5e-5 by default: the 99th percentile of the training world's local means at
50 km (percentiles 50 / 90 / 99: 2.0 / 3.4 / 5.1e-5; a mean with plumes in it lies above the scene background, so
the training world's own background maximum, 3e-5, would shift busy scenes the model reads well: validation OSSE
composite F1 -0.01 / -0.05 for two models). Chosen under benchmarks/results/background_shift.json's rule.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_dilation, gaussian_filter

from ..robust import MAD_TO_SIGMA, median_mad

#: the Gaussian is cut at this many sigmas (scipy's ``truncate``)
TRUNCATE = 3.0


def local_background(no2: np.ndarray, valid: np.ndarray, cell_m: tuple[float, float], sigma_km: float) -> np.ndarray:
    """The Gaussian-weighted mean of the valid cells around each cell [mol m-2] (NaN where no valid cell lies
    within reach). ``cell_m``: the cell size (north-south, east-west) in metres."""
    ok = valid & np.isfinite(no2)
    sigma = tuple(sigma_km * 1000.0 / max(float(d), 1e-9) for d in cell_m)
    num = gaussian_filter(np.where(ok, no2, 0.0).astype(np.float64), sigma, mode="constant", truncate=TRUNCATE)
    den = gaussian_filter(ok.astype(np.float64), sigma, mode="constant", truncate=TRUNCATE)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-6, num / den, np.nan)


#: at most this many rounds of masking (to a fixed point a validation OSSE or Matimba field takes 4-8, some never
#: settle; benchmarks/results/background_mask.json's runs used 5)
MASK_ROUNDS = 5


def masked_background(
    no2: np.ndarray, valid: np.ndarray, cell_m: tuple[float, float], sigma_km: float, z: float
) -> tuple[np.ndarray, np.ndarray]:
    """A local background that plumes do not raise, and the cells left out of it (bool).

    Start from :func:`local_background`; a cell whose column stands more than ``z`` robust standard deviations
    (1.4826 x MAD of all valid cells' departures from the local background) above it is a *hit*; the hits, grown by
    one cell (a plume's edge), are left out and the mean is taken again over the rest, until the hits stop changing
    (at most :data:`MASK_ROUNDS` rounds). A broad enhancement of many plants (a merged plume over 100 km) is masked
    round by round from its core outwards. Where no unmasked cell lies within reach, the previous round's value
    stays. ``z`` 2.33 is the one-sided 99 % of ddeq's ``detect_plumes`` (q = 0.99).
    """
    ok = valid & np.isfinite(no2)
    bg = local_background(no2, ok, cell_m, sigma_km)
    masked = np.zeros(ok.shape, bool)
    for _ in range(MASK_ROUNDS):
        dev = np.where(ok & np.isfinite(bg), no2 - bg, np.nan)
        spread = median_mad(dev)
        if spread is None:
            break
        scale = MAD_TO_SIGMA * spread[1]
        hits = np.nan_to_num(dev, nan=-np.inf) > z * scale
        hits = binary_dilation(hits, structure=np.ones((3, 3), bool)) & ok
        if np.array_equal(hits, masked) or not np.any(ok & ~hits):
            break
        masked = hits
        again = local_background(no2, ok & ~hits, cell_m, sigma_km)
        bg = np.where(np.isfinite(again), again, bg)
    return bg, masked


def shift_background(
    no2: np.ndarray,
    valid: np.ndarray,
    cell_m: tuple[float, float],
    *,
    max_mol_m2: float,
    sigma_km: float,
    mask_z: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``no2`` minus the excess of its local background over ``max_mol_m2`` (float32, NaN stays NaN) and that
    excess per cell [mol m-2] (float32, 0 where the local background is within the range, where no valid cell
    lies within reach, and everywhere when ``max_mol_m2 <= 0``: off). ``mask_z`` > 0: the plume-robust local
    background of :func:`masked_background` (0: the plain Gaussian-weighted mean)."""
    if max_mol_m2 <= 0 or not np.any(valid):
        return no2, np.zeros(np.shape(no2), np.float32)
    if mask_z > 0:
        bg, _ = masked_background(no2, valid, cell_m, sigma_km, mask_z)
    else:
        bg = local_background(no2, valid, cell_m, sigma_km)
    shift = np.nan_to_num(np.maximum(bg - max_mol_m2, 0.0), nan=0.0)
    return (no2 - shift).astype(np.float32), shift.astype(np.float32)
