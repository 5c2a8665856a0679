"""The position error of the point an estimate is made at: the 1-sigma, along the wind, of where the source really is.

The integrated mass enhancement and the cross-sectional flux assume the source sits at that point (:mod:`.ime`: the
plume leaves the disk after R; :mod:`.csf`: the decay correction counts the travel time from it); the flux
divergence does not (a source anywhere inside its disk gives the same sum). The error is taken from the data where
there are data, and ``floor_km`` is both its floor and the fallback:

- a per-overpass hotspot: half a grid cell (the peak is a cell centre) and the detection model's own localisation
  error ``model_sigma_km``, in quadrature;
- a period site: half a grid cell and the spread of the per-overpass hotspot peaks assigned to it (their
  root-mean-square offset from the site per axis; hotspot rows carry ``period_site_id``), in quadrature; a site with
  fewer than ``min_hotspots`` hotspots gets ``floor_km``.

The offset of a site from its source is the same in every overpass (a fixed site position), and each overpass sees
it along its own wind: ``period.correlation.position: along_wind`` (:func:`.period.along_wind_variance`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .scene import EARTH_RADIUS_M


@dataclass(frozen=True)
class PositionConfig:
    floor_km: float = 2.5
    model_sigma_km: float = 3.9
    min_hotspots: int = 2
    from_data: bool = True  # false: floor_km everywhere (the fixed error of earlier versions)


def position_sigma_km(cfg: PositionConfig, spread_km: float, cell_km: float) -> float:
    """1-sigma along the wind [km]: ``spread_km`` (the model's error or the site's hotspot spread; NaN = unknown)
    and half a cell ``cell_km`` in quadrature, at least ``floor_km``; ``floor_km`` where unknown."""
    if not cfg.from_data or not np.isfinite(spread_km):
        return float(cfg.floor_km)
    return float(max(cfg.floor_km, np.hypot(spread_km, 0.5 * cell_km)))


def site_spread_km(sites: pd.DataFrame, hot: pd.DataFrame, period_of: np.ndarray, min_hotspots: int) -> np.ndarray:
    """Per period site (rows of ``sites``: site_id, lat, lon), the root-mean-square offset per axis [km] of the
    hotspot peaks assigned to it (``period_of``: each hotspot's period site id, 0 = none) from the site; NaN for
    a site with fewer than ``min_hotspots`` of them."""
    out = np.full(len(sites), np.nan)
    if not len(hot):
        return out
    period_of = np.asarray(period_of, int)
    hlat, hlon = hot["peak_lat"].to_numpy(float), hot["peak_lon"].to_numpy(float)
    km_per_deg = np.radians(1.0) * EARTH_RADIUS_M / 1e3
    for k, (sid, lat, lon) in enumerate(sites[["site_id", "lat", "lon"]].itertuples(index=False)):
        sel = period_of == int(sid)
        if sel.sum() < max(min_hotspots, 1):
            continue
        dy = (hlat[sel] - lat) * km_per_deg
        dx = (hlon[sel] - lon) * km_per_deg * np.cos(np.radians(lat))
        out[k] = float(np.sqrt(np.mean(dx**2 + dy**2) / 2.0))
    return out
