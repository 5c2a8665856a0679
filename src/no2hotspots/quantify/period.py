"""Hotspot sites over a period, and the combination of their overpass estimates.

Hotspot sites: hotspots of all overpasses within ``merge_km`` of a stronger one form one site (greedy, strongest
first, as the evaluation merges them), placed at the strongest hotspot; every hotspot row carries its ``site_id``.

Period sites, where the period estimates are made (``sites``):

- ``composite`` (default): the detect stage's composite hotspots (``composite.csv``: peaks of the period's mean
  relative-emission map), the persistent sources. On the demo year these are 33 sites of which 91 % lie within
  10 km of a true source, against 629 hotspot sites of which 26 % do: most per-overpass hotspot sites are one-off
  false alarms, and a period rate for them is a rate for noise. Where the composite lists no site (a collection
  of fewer overpasses than the composite needs, e.g. a single scene) the hotspot sites are used instead;
- ``hotspots``: the hotspot sites with at least ``min_detections`` hotspots.

Each hotspot also gets ``period_site_id``: the period site within ``merge_km`` (the nearest), or none.

Which overpasses: ``use: observed`` (default) estimates every site in every overpass whose data cover it, detected
or not; ``use: detected`` only the overpasses with a hotspot at the site. The second is biased high (an overpass is
more likely to show a hotspot on a day of high emission or low wind), so it is only for comparison.

Combination of the K overpass estimates q_k of one method (weights a_k proportional to 1/noise_k^2, normalised: the
retrieval noise does not scale with the estimate, unlike the total or the cross-sectional flux's transect scatter
(its ``transects`` component), either of which would weight days of low emission up and pull the mean low):

    q = sum a_k q_k
    random    = sqrt(sum_c (1 - rho_c) sum_k a_k^2 sigma_ck^2)    over the budget components c
    systematic = sqrt(sum_c rho_c (sum_k a_k sigma_ck)^2)
    spread    = weighted standard error of the q_k (the scatter of the estimates, incl. real day-to-day changes)
    sigma     = sqrt(max(random, spread)^2 + systematic^2)

with rho_c the error correlation between overpasses assumed per component (``correlation``): the NO2 lifetime, the
NO -> NO2 conversion and the NOx/NO2 ratio are the same assumption every day (1), the wind-speed error partly so
(0.3: ERA5's speed error at the plume height is partly a persistent bias), noise and direction independent (0), the
method-structure error half (0.5: the wind regimes that curve a plume repeat). The position error is one fixed offset
of the site from its source, seen along each overpass's wind (``along_wind``): its part is |sum_k a_k sigma_k u_k|
with u_k the overpass's unit wind vector (:func:`along_wind_variance`): fully correlated where the wind always
blows from one side, averaging out like noise where it blows from all sides (a number, e.g. 1, as for the others).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..evaluate.geo import PointIndex, haversine_km, unit_vectors

#: ``correlation.position: along_wind``: the position error is one fixed offset of the site from its source, which
#: each overpass sees along its own wind: correlated between overpasses as the cosine of the angle between their wind
#: directions (:func:`along_wind_variance`), not fully (1) as for a number assumed the same every day
ALONG_WIND = "along_wind"

DEFAULT_CORRELATION = {
    "noise": 0.0,
    "transects": 0.0,
    "wind_speed": 0.3,
    "wind_direction": 0.0,
    "lifetime": 1.0,
    "no2_ramp": 1.0,
    "position": ALONG_WIND,
    "structure": 0.5,
    "nox_ratio": 1.0,
    "model": 0.0,
}


SITE_SOURCES = ("composite", "hotspots")


@dataclass(frozen=True)
class PeriodConfig:
    merge_km: float = 10.0
    use: str = "observed"
    min_overpasses: int = 1
    correlation: dict = field(default_factory=lambda: dict(DEFAULT_CORRELATION))
    sites: str = "composite"
    min_detections: int = 1


def sites_from_hotspots(h: pd.DataFrame, merge_km: float) -> tuple[pd.DataFrame, np.ndarray]:
    """Sites (site_id, lat, lon, n_detections) and, per hotspot row, its site_id."""
    if h.empty:
        return pd.DataFrame(columns=["site_id", "lat", "lon", "n_detections"]), np.zeros(0, int)
    strength = h["peak_rel_emission"].to_numpy(float) if "peak_rel_emission" in h else np.ones(len(h))
    order = np.argsort(-strength, kind="stable")
    lat, lon = h["peak_lat"].to_numpy(float), h["peak_lon"].to_numpy(float)
    vec = unit_vectors(lat, lon)
    site_vec = np.empty_like(vec)
    site_of = np.full(len(h), -1)
    slat, slon = [], []
    for i in order:
        if slat:  # the nearest site so far (straight-line distance of unit vectors, as a KD-tree ranks them)
            j = int(np.argmin(np.sum((site_vec[: len(slat)] - vec[i]) ** 2, axis=1)))
            if haversine_km(lat[i], lon[i], slat[j], slon[j]) <= merge_km:
                site_of[i] = j
                continue
        site_vec[len(slat)] = vec[i]
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


def period_sites(
    cfg: PeriodConfig, hot: pd.DataFrame, hotspot_sites: pd.DataFrame, composite: pd.DataFrame | None
) -> tuple[pd.DataFrame, np.ndarray, str]:
    """The period sites (site_id, lat, lon, n_detections), each hotspot's period site (0 = none) and what the sites
    are (``composite``, ``hotspots`` or ``hotspots (no composite sites)``). ``hot`` carries ``site_id``; the
    composite table is detect's composite.csv (site_id, peak_lat, peak_lon) or None where there is none."""
    cols = ["site_id", "lat", "lon", "n_detections"]
    if cfg.sites == "composite" and composite is not None and len(composite):
        sites = pd.DataFrame(
            {
                "site_id": composite["site_id"].to_numpy(int),
                "lat": composite["peak_lat"].to_numpy(float),
                "lon": composite["peak_lon"].to_numpy(float),
            }
        )
        of = np.zeros(len(hot), int)
        if len(hot):
            j, d = PointIndex(sites["lat"], sites["lon"]).nearest(hot["peak_lat"], hot["peak_lon"])
            of = np.where(d <= cfg.merge_km, sites["site_id"].to_numpy(int)[j], 0)
        sites["n_detections"] = [int((of == sid).sum()) for sid in sites["site_id"]]
        return sites[cols], of, "composite"
    what = "hotspots" if cfg.sites == "hotspots" else "hotspots (no composite sites)"
    sites = hotspot_sites[hotspot_sites["n_detections"] >= cfg.min_detections].reset_index(drop=True)
    kept = set(sites["site_id"].astype(int))
    of = np.array([sid if sid in kept else 0 for sid in hot["site_id"].astype(int)], dtype=int)
    return sites[cols], of, what


def noise_weights(noise: np.ndarray) -> np.ndarray:
    """Normalised weights 1/noise^2 of the used estimates; an estimate without a usable noise (NaN or <= 0) gets the
    least weight any other has (the largest known noise), and equal weights where none has one."""
    good = np.isfinite(noise) & (noise > 0)
    noise = np.where(good, noise, noise[good].max() if good.any() else 1.0)
    a = 1.0 / noise**2
    return a / a.sum()


def impute_unknown(s: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, int]:
    """One component's sigmas over the used estimates, its unknown (NaN) ones replaced by the largest relative value
    (sigma / |q|) among the known ones times |q|: a component is unknown where the estimate broke down at the
    perturbed input (e.g. the wind direction +- its sigma), so it is large there, not 0. Returns the sigmas and the
    number left unknown (no estimate has the component: counted as 0, the period sigma a lower bound)."""
    unknown = ~np.isfinite(s)
    if not unknown.any():
        return s, 0
    rel = np.abs(s[~unknown]) / np.abs(q[~unknown])
    rel = rel[np.isfinite(rel)]
    if not rel.size:
        return np.where(unknown, 0.0, s), int(unknown.sum())
    return np.where(unknown, rel.max() * np.abs(q), s), 0


def combine(q: np.ndarray, comps: dict[str, np.ndarray], correlation: dict, direction_deg=None) -> dict:
    """Combine overpass estimates of one method (arrays over overpasses); returns value and uncertainty parts.
    ``n_unknown_left``: component values that neither the estimate nor the others could give (counted as 0).
    ``direction_deg``: each overpass's wind (or plume) direction, for the components correlated ``along_wind``."""
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
        "n_unknown_left": 0,
    }
    if n == 0:
        return out
    qq = q[ok]
    a = noise_weights(np.asarray(comps.get("noise", np.ones_like(q)), float)[ok])
    val = float(np.sum(a * qq))
    rand2, sys2, parts, left = 0.0, 0.0, {}, 0
    for c, s in comps.items():
        s, n_left = impute_unknown(np.asarray(s, float)[ok], qq)
        left += n_left
        rho = correlation.get(c, 0.0)
        if rho == ALONG_WIND:
            d = None if direction_deg is None else np.asarray(direction_deg, float)[ok]
            r2, y2 = 0.0, along_wind_variance(a * s, d)
        else:
            r2 = (1 - float(rho)) * float(np.sum(a**2 * s**2))
            y2 = float(rho) * float(np.sum(a * s)) ** 2
        rand2 += r2
        sys2 += y2
        parts[c] = float(np.sqrt(r2 + y2))
    sw2 = float(np.sum(a**2))
    spread = float(np.sqrt(np.sum(a * (qq - val) ** 2) / max(1 - sw2, 1e-9) * sw2)) if n > 1 else np.nan
    rnd = float(np.sqrt(rand2))
    total = float(np.sqrt(max(rnd, 0.0 if np.isnan(spread) else spread) ** 2 + sys2))
    out.update(value=val, sigma=total, random=rnd, systematic=float(np.sqrt(sys2)), spread=spread, parts=parts)
    out["n_unknown_left"] = left
    return out


def along_wind_variance(w: np.ndarray, direction_deg: np.ndarray | None) -> float:
    """The variance of sum_k w_k e_k where e_k = (offset . u_k) / sigma_d is one fixed source offset (isotropic, per
    axis sigma_d) seen along overpass k's unit wind vector u_k, and w_k the weighted 1-sigma of that error in overpass
    k: |sum_k w_k u_k|^2 (all winds alike: (sum w_k)^2, fully correlated; winds from all sides: about sum w_k^2, as if
    independent). Overpasses without a direction (NaN; ``direction_deg`` None: all) count as if their wind were the
    others': their w_k add in full."""
    w = np.asarray(w, float)
    if direction_deg is None:
        return float(np.sum(w)) ** 2
    d = np.asarray(direction_deg, float)
    known = np.isfinite(d)
    th = np.radians(d[known])
    vec = float(np.hypot(np.sum(w[known] * np.sin(th)), np.sum(w[known] * np.cos(th))))
    return (vec + float(np.sum(w[~known]))) ** 2
