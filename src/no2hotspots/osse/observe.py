"""What the instrument reports: precision, noisy columns and qa_value from cloud fraction."""

from __future__ import annotations

import numpy as np


def precision(column, area_m2, cloud, noise_cfg) -> np.ndarray:
    """TROPOMI-like precision [mol m-2]: an absolute term scaling with pixel area^-1/2 plus a relative term,
    inflated under clouds: sqrt((p0 sqrt(A0/A))^2 + (rel * column)^2) * (1 + cloud_factor * cloud)."""
    a0 = float(noise_cfg.reference_area_km2) * 1e6
    absolute = float(noise_cfg.precision_mol_m2) * np.sqrt(a0 / np.asarray(area_m2, float))
    rel = float(noise_cfg.relative) * np.abs(column)
    return np.hypot(absolute, rel) * (1.0 + float(noise_cfg.cloud_factor) * np.asarray(cloud, float))


def qa_from_cloud(cloud, qa_levels) -> np.ndarray:
    """qa_value in 0..1 from cloud fraction: ``qa_levels`` is a list of [cloud_fraction_below, qa] (ascending)."""
    cloud = np.asarray(cloud, float)
    qa = np.full(cloud.shape, float(qa_levels[-1][1]))
    for limit, value in reversed([tuple(map(float, lv)) for lv in qa_levels]):
        qa = np.where(cloud < limit, value, qa)
    return qa
