"""The plume's own direction, for scenes without a known wind direction (fallback wind) or to check the wind.

The background plane is fitted to a ring around the source with no sector excluded (the plume covers a small part
of the ring; clipping removes it); the enhancement above it is summed in sectors of +-``half_angle_deg`` from
``r_min_km`` to ``r_max_km`` for bearings every ``step_deg``. The bearing with the largest mass is the direction the
plume goes; the wind comes from the opposite side. Its 1-sigma is ``sigma_deg`` when the best sector's mass exceeds
``min_snr`` times its noise, otherwise the direction is reported as unknown (NaN).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scene import Scene, background_ring, fit_plane, functional_sigma, noise_model


@dataclass(frozen=True)
class PlumeDirectionConfig:
    r_min_km: float = 4.0
    r_max_km: float = 35.0
    half_angle_deg: float = 25.0
    step_deg: float = 5.0
    ring_km: tuple[float, float] = (40.0, 60.0)
    sigma_deg: float = 20.0
    min_snr: float = 3.0


def plume_direction(scene: Scene, cfg: PlumeDirectionConfig = PlumeDirectionConfig()) -> tuple[float, float, float]:
    """(direction the wind blows from [deg], 1-sigma [deg], signal-to-noise of the best sector); NaNs if unknown."""
    plane = fit_plane(scene, background_ring(scene, *cfg.ring_km))
    if plane is None:
        return float("nan"), float("nan"), 0.0
    noise = noise_model(scene, plane)
    e = np.where(scene.valid, scene.c - plane.at(scene.x, scene.y), 0.0) * scene.area
    r = scene.r
    bearing = np.degrees(np.arctan2(scene.x, scene.y)) % 360.0  # direction towards the cell, from north
    inring = (r >= cfg.r_min_km) & (r <= cfg.r_max_km) & ~scene.exclude
    best, best_b, best_w = -np.inf, np.nan, None
    for b in np.arange(0.0, 360.0, cfg.step_deg):
        d = np.abs((bearing - b + 180.0) % 360.0 - 180.0)
        w = inring & (d <= cfg.half_angle_deg)
        m = float(e[w].sum())
        if m > best:
            best, best_b, best_w = m, b, w
    if best_w is None or not np.isfinite(best):
        return float("nan"), float("nan"), 0.0
    g = np.where(best_w & scene.valid, scene.area, 0.0)
    sig = functional_sigma(scene, g, plane, noise)
    snr = best / sig if sig > 0 else 0.0
    if snr < cfg.min_snr:
        return float("nan"), float("nan"), float(snr)
    return float((best_b + 180.0) % 360.0), float(cfg.sigma_deg), float(snr)
