"""Flux divergence (Beirle et al. 2019, Sci. Adv. 5, eaax9800; catalogue: Beirle et al. 2021, ESSD 13, 2995, and
v2: Beirle et al. 2023, ESSD 15, 3051), applied per overpass around one source:

    E = div(V c') + c' / tau,        Q = sum over a disk of radius R of A_i E_i

with c' the column above a background plane (fitted to a ring outside the disk, downwind sector excluded, as for
:mod:`.ime`), V the wind at the source (taken uniform over the disk) and tau the NO2 lifetime (the sink term). The
divergence uses central differences on the grid (metric cell sizes per latitude). For a uniform wind the disk sum of
the divergence telescopes to the flux through the disk's edge, so the estimate is the outflow through a circle plus
the NO2 lost inside it. Period estimates (Beirle et al. average the divergence map over many overpasses) are the
mean of these per-overpass values (:mod:`.period`), which is the same because the estimator is linear in c.

With ``split_disk`` (off by default) other known sources (from ``quantify.disk_split_min_km``, 10 km, to 2R away) take
their side of the disk (:mod:`.neighbours`): the sum runs over the cells nearer to this source than to each of them,
which still telescopes (their emission stays on their side, a plume that passes through adds nothing). Off because
the source's E is spread over the pixels and a period site sits a few km from its source: on the validation OSSE the
cut took 27 % of the rate at sites without a neighbour (0.91 -> 0.67 of the truth), more than it took of a neighbour's
at sites with one (1.25 -> 0.88).

Cells without data count as background (c' = 0) and are not used; an estimate is refused when less than
``min_valid_fraction`` of the disk (+1 cell) is observed. Uncertainty as for the other estimators: exact cell weights
(the transposed difference stencil) for the noise; re-evaluation for wind speed, direction, lifetime and the
conversion's m and r.

Near-source NO -> NO2 conversion (where on, :class:`.estimate.Ramp`): NO2 is made inside the disk as the stack's NO
converts, which the balance above does not count, so the sum sees Q times the NO2 flux leaving the disk plus that
lost in it, exp(-T / tau) share(T) + integral_0^T exp(-t / tau) share(t) dt / tau with T = R / U (~0.94 at 20 km
and 5 m/s with the fits' medians); the estimate is divided by it.

Deviation from Beirle et al.: they fit a peak function to the temporally averaged divergence map (and correct for
topography with a scale height), we integrate over a fixed disk around the hotspot with a local background plane.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .estimate import Estimate, Lifetime, Ramp, Wind, sensitivity
from .neighbours import own_side
from .scene import EARTH_RADIUS_M, Scene, background_ring, fit_plane, functional_sigma, noise_model

METHOD = "divergence"


@dataclass(frozen=True)
class DivergenceConfig:
    radius_km: float = 20.0
    gap_km: float = 5.0
    ring_km: float = 20.0
    sector_half_angle_deg: float = 45.0
    min_valid_fraction: float = 0.9
    split_disk: bool = False  # the sources sharing the disk take their side of it (:mod:`.neighbours`: off, it cuts
    # the source's own E where the site sits a few km from it; validation OSSE, docs/quantify.md)


def _stencils(scene: Scene, disk: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell weights per unit u, v and 1/tau: Q = sum (u Gx + v Gy + Gt / tau) c' (the transposed central-difference
    stencil and the sink term over the disk), 0 on cells without data."""
    dlon = np.radians(np.median(np.diff(scene.lon))) if scene.lon.size > 1 else np.radians(0.05)
    dlat = np.radians(np.median(np.diff(scene.lat))) if scene.lat.size > 1 else np.radians(0.05)
    dx = EARTH_RADIUS_M * np.cos(np.radians(scene.lat))[:, None] * dlon * np.ones_like(scene.c)
    dy = EARTH_RADIUS_M * dlat
    ad = np.where(disk, scene.area, 0.0)
    ex = ad / (2 * dx)
    ey = ad / (2 * dy)
    gx = np.zeros_like(ad)
    gx[:, 1:] += ex[:, :-1]  # cell i uses its east neighbour with +u/(2dx)
    gx[:, :-1] -= ex[:, 1:]  # ... and its west neighbour with -u/(2dx)
    gy = np.zeros_like(ad)
    gy[1:, :] += ey[:-1, :]  # north neighbour (+), rows ascend northward
    gy[:-1, :] -= ey[1:, :]
    return tuple(np.where(scene.valid, g, 0.0) for g in (gx, gy, ad))


def _plane_and_enhancement(scene: Scene, direction_from: float, cfg: DivergenceConfig):
    """The background plane (ring minus the downwind sector) and c' (0 where not observed), or None."""
    r_in = cfg.radius_km + cfg.gap_km
    s = scene.rotate(direction_from)[0]
    plane = fit_plane(scene, background_ring(scene, r_in, r_in + cfg.ring_km, s, cfg.sector_half_angle_deg))
    if plane is None:
        return None
    return plane, np.where(scene.valid, scene.c - plane.at(scene.x, scene.y), 0.0)


def _disk(scene: Scene, cfg: DivergenceConfig):
    """(stencils, failure flag or None): this source's part of the disk (:mod:`.neighbours`) must be observed and
    lie inside the scene."""
    r = scene.r
    own = own_side(scene, cfg.radius_km) if cfg.split_disk else np.ones(r.shape, dtype=bool)
    disk = (r <= cfg.radius_km) & own
    edge = (r <= cfg.radius_km + 1.5 * scene.cell_km) & own
    if scene.area[edge & scene.valid].sum() < cfg.min_valid_fraction * scene.area[edge].sum():
        return None, "disk_not_observed"
    if disk[0].any() or disk[-1].any() or disk[:, 0].any() or disk[:, -1].any():
        return None, "disk_at_scene_edge"
    return _stencils(scene, disk), None


def estimate(
    scene: Scene, wind: Wind, life: Lifetime, cfg: DivergenceConfig = DivergenceConfig(), *, _sens: bool = True
) -> Estimate:
    if not np.isfinite(wind.direction_from):
        return Estimate.failed(METHOD, "no_wind_direction")
    if not (np.isfinite(wind.speed) and wind.speed > 0):
        return Estimate.failed(METHOD, "no_wind_speed")
    pe = _plane_and_enhancement(scene, wind.direction_from, cfg)
    if pe is None:
        return Estimate.failed(METHOD, "too_few_background_cells")
    plane, enh = pe
    noise = noise_model(scene, plane)
    key = ("divergence_disk", cfg.radius_km, cfg.min_valid_fraction, cfg.split_disk)
    stencils, why = scene.cached(key, lambda: _disk(scene, cfg))
    if why:
        return Estimate.failed(METHOD, why)
    gx, gy, gt = stencils

    def g_of(speed: float, direction: float, tau: float) -> np.ndarray:
        phi = np.radians(direction)
        g = -speed * np.sin(phi) * gx + -speed * np.cos(phi) * gy
        return g + gt / tau if np.isfinite(tau) else g

    ramp, radius_m = life.ramp, cfg.radius_km * 1e3

    def seen(speed: float, tau: float, rp: Ramp = ramp) -> float:
        """The share of Q the disk sum sees with the conversion on (1 without: every value as before it)."""
        return rp.divergence_share(radius_m / speed, tau) if rp.on else 1.0

    def q_of(speed: float, direction: float, tau: float, c=enh, rp: Ramp = ramp) -> float:
        return float(np.sum(g_of(speed, direction, tau) * c)) / seen(speed, tau, rp)

    def q_at_direction(d: float) -> float:
        pd = _plane_and_enhancement(scene, d, cfg)
        return float("nan") if pd is None else q_of(wind.speed, d, life.tau_s, pd[1])

    q = q_of(wind.speed, wind.direction_from, life.tau_s)
    g_q = g_of(wind.speed, wind.direction_from, life.tau_s) / seen(wind.speed, life.tau_s)
    sig = {"noise": functional_sigma(scene, g_q, plane, noise)}
    if _sens:
        sig["wind_speed"] = sensitivity(
            lambda u: q_of(max(u, 0.1), wind.direction_from, life.tau_s), wind.speed, wind.sigma_speed
        )
        sig["lifetime"] = sensitivity(
            lambda tau: q_of(wind.speed, wind.direction_from, max(tau, 600.0)), life.tau_s, life.sigma_s
        )
        sig["wind_direction"] = sensitivity(q_at_direction, wind.direction_from, wind.sigma_direction)
        if ramp.on:
            sig["no2_ramp"] = ramp.sigma(lambda rp: q_of(wind.speed, wind.direction_from, life.tau_s, rp=rp))
    diag = {
        "radius_km": cfg.radius_km,
        "background_mol_m2": float(plane.coef[0]),
        "noise_chi": noise.chi,
        "noise_k": noise.k,
    }
    return Estimate(METHOD, q, sig, [], diag)
