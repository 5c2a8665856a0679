"""Puff transport: the OSSE's NO2 model (deliberately unlike the training simulator's steady Gaussian plume).

Each source releases a Gaussian puff every ``release_interval_min`` over the ``release_hours`` before overpass.
Puffs are advected on the sphere by the day's time- and space-varying wind (midpoint/RK2 steps), grow as
sigma^2 = sigma0^2 + 2 K_h age (+ the variance of the plume segment a puff stands for), and lose NO2 as
exp(-age / lifetime). The column seen by a pixel is the exact pixel-area average of the isotropic Gaussians: in
the granule's (along, across) frame each puff factorises into an along-track and an across-track erf term, so
the whole rendering is one matrix product per chunk of puffs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import erf

from .geometry import EARTH_R_KM, GranuleGrid
from .weather import DayWind

NO2_G_PER_MOL = 46.0055
SECONDS_PER_YEAR = 365.25 * 86400.0


def no2_rate_mol_s(nox_t_per_yr, no2_nox_ratio: float) -> np.ndarray:
    """NO2 emission [mol s-1] from NOx [t yr-1, as NO2 mass] and the NO2/NOx molar ratio."""
    return np.asarray(nox_t_per_yr, float) * 1e6 / SECONDS_PER_YEAR / NO2_G_PER_MOL * float(no2_nox_ratio)


@dataclass
class Puffs:
    lat: np.ndarray
    lon: np.ndarray
    sigma_m: np.ndarray
    mass_mol: np.ndarray
    age_s: np.ndarray
    source: np.ndarray  # index of the emitting source


def release_puffs(
    lat,
    lon,
    q_mol_s,
    wind: DayWind,
    t_overpass_s: float,
    *,
    release_hours: float,
    release_interval_min: float,
    substeps: int,
    sigma0_m: float,
    diffusivity_m2_s: float,
    lifetime_h: float,
) -> Puffs:
    """Release and advect puffs from sources (lat, lon, q) up to ``t_overpass_s`` (seconds since 00 UTC).

    Puff k of a source carries the emission of [T-(k+1)dt, T-k dt] and is released mid-interval.
    """
    lat = np.atleast_1d(np.asarray(lat, float))
    lon = np.atleast_1d(np.asarray(lon, float))
    q = np.atleast_1d(np.asarray(q_mol_s, float))
    dt = float(release_interval_min) * 60.0
    n_rel = int(round(release_hours * 3600.0 / dt))
    h = dt / (2 * int(substeps))
    t0 = t_overpass_s - n_rel * dt
    k = np.arange(n_rel)
    t_rel = t_overpass_s - (k + 0.5) * dt  # (K,)
    S, K = lat.size, n_rel
    plat = np.repeat(lat[:, None], K, 1)
    plon = np.repeat(lon[:, None], K, 1)
    n_steps = int(round((t_overpass_s - t0) / h))
    deg = 180.0 / np.pi / (EARTH_R_KM * 1e3)
    for s in range(n_steps):
        t = t0 + s * h
        # released puffs are the columns k >= kmin (older puffs have larger k): update only that slice
        kmin = int(np.ceil((t_overpass_s - t) / dt - 0.5 - 1e-9))
        if kmin >= K:
            continue
        kmin = max(kmin, 0)
        la, lo = plat[:, kmin:], plon[:, kmin:]
        u, v = wind.uv(la, lo, t)
        mlat = la + 0.5 * h * v * deg
        mlon = lo + 0.5 * h * u * deg / np.cos(np.radians(la))
        u, v = wind.uv(mlat, mlon, t + 0.5 * h)
        plat[:, kmin:] = la + h * v * deg
        plon[:, kmin:] = lo + h * u * deg / np.cos(np.radians(mlat))
    age = np.broadcast_to((t_overpass_s - t_rel)[None, :], (S, K))
    tau = float(lifetime_h) * 3600.0
    mass = q[:, None] * dt * np.exp(-age / tau)
    # each puff stands for the segment of plume between its neighbours: widen it by that segment's variance
    # (length^2 / 12) so that fast winds give a continuous plume rather than a string of beads
    seg = np.zeros((S, K))
    if K > 1:
        dy = np.diff(plat, axis=1) * np.radians(1) * EARTH_R_KM * 1e3
        dx = (
            ((np.diff(plon, axis=1) + 180) % 360 - 180)
            * np.radians(1)
            * EARTH_R_KM
            * 1e3
            * np.cos(np.radians(0.5 * (plat[:, 1:] + plat[:, :-1])))
        )
        d = np.hypot(dx, dy)
        seg[:, :-1] += 0.5 * d
        seg[:, 1:] += 0.5 * d
        seg[:, 0] += 0.5 * d[:, 0]
        seg[:, -1] += 0.5 * d[:, -1]
    sigma = np.sqrt(float(sigma0_m) ** 2 + 2.0 * float(diffusivity_m2_s) * age + seg**2 / 12.0)
    src = np.repeat(np.arange(S)[:, None], K, 1)
    return Puffs(
        plat.ravel(),
        (plon.ravel() + 180.0) % 360.0 - 180.0,
        sigma.ravel(),
        mass.ravel(),
        age.ravel().copy(),
        src.ravel(),
    )


def _box_fraction(centres_lo, centres_hi, pos, sigma):
    """Fraction of a 1-D Gaussian (pos, sigma) between lo and hi: shape (P, N)."""
    s = np.sqrt(2.0) * sigma[:, None]
    return 0.5 * (erf((centres_hi[None, :] - pos[:, None]) / s) - erf((centres_lo[None, :] - pos[:, None]) / s))


def render_puffs(puffs: Puffs, grid: GranuleGrid, *, chunk: int = 4096, cutoff_sigma: float = 6.0) -> np.ndarray:
    """Pixel-averaged NO2 column [mol m-2] of all puffs on the granule grid, shape (n_scan, n_gp)."""
    a, c = grid.latlon_to_ac(puffs.lat, puffs.lon)  # km
    sig_km = puffs.sigma_m / 1e3
    h = grid.along_km / 2
    a_lo, a_hi = grid.a_centres - h, grid.a_centres + h
    c_lo, c_hi = grid.c_edges[:-1], grid.c_edges[1:]
    reach = cutoff_sigma * sig_km
    keep = (
        (a + reach > a_lo[0])
        & (a - reach < a_hi[-1])
        & (c + reach > c_lo[0])
        & (c - reach < c_hi[-1])
        & (puffs.mass_mol > 0)
    )
    idx = np.flatnonzero(keep)
    mass = np.zeros(grid.shape)
    for i in range(0, idx.size, chunk):
        j = idx[i : i + chunk]
        pa = _box_fraction(a_lo, a_hi, a[j], sig_km[j])
        pc = _box_fraction(c_lo, c_hi, c[j], sig_km[j])
        mass += (pa * puffs.mass_mol[j, None]).T @ pc
    return mass / grid.area_m2()
