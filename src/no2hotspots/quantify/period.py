"""Hotspot sites over a period, and the combination of their overpass estimates.

Sites: hotspots of all overpasses within ``merge_km`` of a stronger one form one site (greedy, strongest first, as the
evaluation merges them), placed at the strongest hotspot.

Which overpasses: ``use: observed`` (default) estimates every site in every overpass whose data cover it, detected
or not; ``use: detected`` only the overpasses with a hotspot at the site. The second is biased high (an overpass is
more likely to show a hotspot on a day of high emission or low wind), so it is only for comparison.

Combination of the K overpass estimates q_k of one method (weights a_k proportional to 1/noise_k^2, normalised: the
noise does not scale with the estimate, unlike the total, which would pull the mean low):

    q = sum a_k q_k
    random    = sqrt(sum_c (1 - rho_c) sum_k a_k^2 sigma_ck^2)    over the budget components c
    systematic = sqrt(sum_c rho_c (sum_k a_k sigma_ck)^2)
    spread    = weighted standard error of the q_k (the scatter of the estimates, incl. real day-to-day changes)
    sigma     = sqrt(max(random, spread)^2 + systematic^2)

with rho_c the error correlation between overpasses assumed per component (``correlation``): the NO2 lifetime and
NOx/NO2 ratio are the same assumption every day (1), the wind-speed error partly so (0.3: ERA5's speed error at the
plume height is partly a persistent bias), noise and direction independent (0), the position error of a fixed site
position common (1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..evaluate.geo import PointIndex

DEFAULT_CORRELATION = {
    "noise": 0.0,
    "wind_speed": 0.3,
    "wind_direction": 0.0,
    "lifetime": 1.0,
    "position": 1.0,
    "nox_ratio": 1.0,
    "model": 0.0,
}


@dataclass(frozen=True)
class PeriodConfig:
    merge_km: float = 10.0
    use: str = "observed"
    min_overpasses: int = 1
    correlation: dict = field(default_factory=lambda: dict(DEFAULT_CORRELATION))


def sites_from_hotspots(h: pd.DataFrame, merge_km: float) -> tuple[pd.DataFrame, np.ndarray]:
    """Sites (site_id, lat, lon, n_detections) and, per hotspot row, its site_id."""
    if h.empty:
        return pd.DataFrame(columns=["site_id", "lat", "lon", "n_detections"]), np.zeros(0, int)
    strength = h["peak_rel_emission"].to_numpy(float) if "peak_rel_emission" in h else np.ones(len(h))
    order = np.argsort(-strength, kind="stable")
    lat, lon = h["peak_lat"].to_numpy(float), h["peak_lon"].to_numpy(float)
    site_of = np.full(len(h), -1)
    slat, slon = [], []
    for i in order:
        if slat:
            j, d = PointIndex(slat, slon).nearest(lat[i], lon[i])
            if d[0] <= merge_km:
                site_of[i] = j[0]
                continue
        slat.append(lat[i])
        slon.append(lon[i])
        site_of[i] = len(slat) - 1
    sites = pd.DataFrame(
        {
            "site_id": np.arange(1, len(slat) + 1),
            "lat": slat,
            "lon": slon,
            "n_detections": np.bincount(site_of, minlength=len(slat)),
        }
    )
    return sites, site_of + 1


def combine(q: np.ndarray, comps: dict[str, np.ndarray], correlation: dict[str, float]) -> dict:
    """Combine overpass estimates of one method (arrays over overpasses); returns value and uncertainty parts."""
    q = np.asarray(q, float)
    ok = np.isfinite(q)
    n = int(ok.sum())
    out = {
        "n_overpasses": n,
        "value": np.nan,
        "sigma": np.nan,
        "random": np.nan,
        "systematic": np.nan,
        "spread": np.nan,
    }
    if n == 0:
        return out
    noise = np.asarray(comps.get("noise", np.ones_like(q)), float)[ok]
    noise = np.where(np.isfinite(noise) & (noise > 0), noise, np.nanmax(noise[np.isfinite(noise)], initial=1.0))
    a = 1.0 / noise**2
    a /= a.sum()
    qq = q[ok]
    val = float(np.sum(a * qq))
    rand2, sys2, parts = 0.0, 0.0, {}
    for c, s in comps.items():
        s = np.nan_to_num(np.asarray(s, float)[ok])
        rho = float(correlation.get(c, 0.0))
        r2 = (1 - rho) * float(np.sum(a**2 * s**2))
        y2 = rho * float(np.sum(a * s)) ** 2
        rand2 += r2
        sys2 += y2
        parts[c] = float(np.sqrt(r2 + y2))
    sw2 = float(np.sum(a**2))
    spread = float(np.sqrt(np.sum(a * (qq - val) ** 2) / max(1 - sw2, 1e-9) * sw2)) if n > 1 else np.nan
    rnd = float(np.sqrt(rand2))
    total = float(np.sqrt(max(rnd, 0.0 if np.isnan(spread) else spread) ** 2 + sys2))
    out.update(value=val, sigma=total, random=rnd, systematic=float(np.sqrt(sys2)), spread=spread, parts=parts)
    return out
