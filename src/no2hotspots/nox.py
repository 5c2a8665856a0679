"""The near-source NO -> NO2 conversion, shared by the worlds that render it (the OSSE's puffs, the training
simulator's plumes) and the estimators that undo it (:class:`no2hotspots.quantify.estimate.Ramp`): one function,
so what is rendered and what is undone cannot drift apart."""

from __future__ import annotations

import numpy as np


def no2_ramp_factor(age_s, m, r_s, f0):
    """Share of the far-field NO2 present at plume age ``age_s`` [s] while the stack's NO turns into NO2: Meier et al.
    (2024) fit NOx/NO2 = m exp(-t / r) + f0 along real plumes (ddeq 1.1, ``ddeq.functions.NO2toNOxConversion``);
    keeping the configured far-field NO2 share, the column is scaled by f0 / (m exp(-t / r) + f0): 1 / (1 + m / f0)
    at the stack, 1 downwind, exactly 1 at m = 0. Arguments broadcast (NumPy) and keep their float type (the
    Gaussian plume's float32 kernel passes the along-wind distance as ``age_s`` and u x r as ``r_s``)."""
    return f0 / (m * np.exp(-np.maximum(age_s, 0.0) / r_s) + f0)
