"""Integrated mass enhancement (IME): the NO2 mass above background near the source, divided by its residence time.

For a steady point source with first-order loss (lifetime tau) and wind speed U, the plume mass within a distance R
downwind is M = Q tau (1 - exp(-R / (U tau))) (-> Q R / U without loss). This is the IME formula with decay used by
ddeq (``ddeq.ime.calculate_flux``, Kuhlmann et al. 2024, GMD 17, 4773; cf. Varon et al. 2018 for the IME method),
with the integration length L = R. Here the mass is taken over a disk of radius R = ``radius_km`` around the source
(the plume enters it at the centre and leaves it after R whatever the wind direction, so the direction only matters
for the background):

1. background: a plane fitted to the ring ``R + gap_km`` .. ``R + gap_km + ring_km`` minus the downwind sector
   +-``sector_half_angle_deg`` (the plume continues through the ring there), other sources excluded;
2. M = sum_disk A_i (c_i - b_i) over observed cells; refused if less than ``min_valid_fraction`` of the disk area is
   observed (no gap filling: a gap over the plume would bias it low), or if the disk reaches beyond the scene's
   outer cell edges (``disk_at_scene_edge``: the collection grid ends inside it, and the area beyond, never observed,
   is not in the scene to count as a gap);
3. Q = M / (tau (1 - exp(-R / (U tau)))); with the near-source NO -> NO2 conversion on (:class:`.estimate.Ramp`),
   whose first minutes hold less NO2, Q = M / integral_0^(R/U) exp(-t / tau) share(t) dt.

Other known sources (from ``quantify.disk_split_min_km``, 10 km, to 2R away) take their side of the disk
(:mod:`.neighbours`): the mass is taken over this source's side of the half-way lines, and R above becomes L, where
the plume's path along the wind leaves that part (also in the position term below).

Uncertainty: noise through the exact cell weights (incl. the background plane's), wind speed, lifetime and the
conversion's m and r by re-evaluation at +-1 sigma, wind direction by re-running with the sector moved by +-1
sigma, and the hotspot's position error d = ``position_sigma_km`` along the wind (it shifts where the plume leaves
the disk: d: see :func:`.position.position_sigma_km`): the RMS of the changes of Q with the residence time of R + d
and of R - d (at least R/10).
Cells on the disk's edge count with the fraction of their area inside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .estimate import NO_RAMP, Estimate, Lifetime, Ramp, Wind, sensitivity
from .neighbours import exit_km, own_fraction
from .scene import (
    Scene,
    background_ring,
    beyond_scene,
    disk_fraction,
    fit_plane,
    functional_sigma,
    noise_model,
)

METHOD = "ime"


@dataclass(frozen=True)
class IMEConfig:
    radius_km: float = 20.0
    gap_km: float = 5.0
    ring_km: float = 20.0
    sector_half_angle_deg: float = 45.0
    min_valid_fraction: float = 0.9
    split_disk: bool = True  # the sources sharing the disk (Scene.sharing) take their side of it (:mod:`.neighbours`)


def residence_time(radius_m: float, u: float, tau: float, ramp: Ramp = NO_RAMP) -> float:
    """tau (1 - exp(-R / (U tau))) [s]; R / U when tau is infinite; with the conversion on, the integral of
    exp(-t / tau) share(t) over the first R / U (:meth:`.estimate.Ramp.mass_time`)."""
    if ramp.on:
        return ramp.mass_time(radius_m / u, tau)
    if not np.isfinite(tau):
        return radius_m / u
    return tau * (1.0 - np.exp(-radius_m / (u * tau)))


def _mass(scene: Scene, direction_from: float, cfg: IMEConfig):
    """Steps 1-2: (background plane, disk cell weights fa [m2], mass [mol], integration length L [km]) or a failure
    flag (str). An unknown direction (NaN) keeps the whole ring as background, and the whole disk (:mod:`.neighbours`:
    where the plume leaves this source's part of it is unknown)."""
    known_dir = np.isfinite(direction_from)
    s = scene.rotate(direction_from)[0] if known_dir else None
    r_in = cfg.radius_km + cfg.gap_km
    ring = background_ring(scene, r_in, r_in + cfg.ring_km, s, cfg.sector_half_angle_deg if known_dir else None)
    plane = fit_plane(scene, ring)
    if plane is None:
        return "too_few_background_cells"
    split = known_dir and cfg.split_disk
    key = ("ime_disk", cfg.radius_km, cfg.min_valid_fraction, split)
    fa, w, observed = scene.cached(key, lambda: _disk(scene, cfg, split))
    if not observed:
        return "disk_not_observed"
    beyond = scene.cached_geometry(("ime_beyond", cfg.radius_km), lambda: _disk_beyond_scene(scene, cfg.radius_km))
    if beyond:  # the collection grid ends inside the disk
        return "disk_at_scene_edge"
    mass = float(np.sum(fa[w] * (scene.c[w] - plane.at(scene.x[w], scene.y[w]))))
    exit_at = exit_km(scene, cfg.radius_km, direction_from) if split else cfg.radius_km
    return plane, np.where(w, fa, 0.0), mass, exit_at


def _disk_beyond_scene(scene: Scene, radius_km: float) -> bool:
    """Whether the disk reaches beyond the scene's outer cell edges (72 points of its rim)."""
    a = np.radians(np.arange(0.0, 360.0, 5.0))
    return bool(beyond_scene(scene, radius_km * np.sin(a), radius_km * np.cos(a)).any())


def _disk(scene: Scene, cfg: IMEConfig, split: bool) -> tuple[np.ndarray, np.ndarray, bool]:
    """The cell areas in the disk [m2] (in this source's part of it if ``split``), its observed cells, and whether
    enough of it is observed."""
    frac = own_fraction(scene, cfg.radius_km) if split else disk_fraction(scene, cfg.radius_km)
    fa = frac * scene.area
    observed = not fa[scene.valid].sum() < cfg.min_valid_fraction * fa.sum()
    return fa, (frac > 0) & scene.valid, observed


def estimate(
    scene: Scene,
    wind: Wind,
    life: Lifetime,
    cfg: IMEConfig = IMEConfig(),
    *,
    position_sigma_km: float = 2.5,
    _sens: bool = True,
) -> Estimate:
    """``position_sigma_km``: the 1-sigma error of the source position along the wind (the position term)."""
    if not (np.isfinite(wind.speed) and wind.speed > 0):
        return Estimate.failed(METHOD, "no_wind_speed")
    known_dir = np.isfinite(wind.direction_from)
    m = _mass(scene, wind.direction_from, cfg)
    if isinstance(m, str):
        return Estimate.failed(METHOD, m)
    plane, g_mass, mass, exit_at_km = m
    noise = noise_model(scene, plane)
    radius_m = exit_at_km * 1e3  # L: R, or less where the plume meets another source's part of the disk first

    ramp = life.ramp

    def q_of(u: float, tau: float, rp: Ramp = ramp) -> float:
        return mass / residence_time(radius_m, u, tau, rp)

    def q_at_direction(d: float) -> float:
        md = _mass(scene, d, cfg)  # the exit L moves with the direction where another source shares the disk
        if isinstance(md, str):
            return float("nan")
        return md[2] / residence_time(md[3] * 1e3, wind.speed, life.tau_s, ramp)

    q = q_of(wind.speed, life.tau_s)
    g = g_mass / residence_time(radius_m, wind.speed, life.tau_s, ramp)
    sig = {"noise": functional_sigma(scene, g, plane, noise)}
    # the plume leaves the disk after R only if the source sits at its centre: a hotspot offset d along the wind
    # makes the plume's path in the disk R +- d (csf has its own term, through the decay correction; divergence has
    # none): Q with the residence time of R + d and of R - d, the term the RMS of the two changes. Q d/R, its form
    # without loss or conversion, stated 0.85-1.82x the error of sources placed at +-d (rendered plumes, 2-9 m/s,
    # 2-8 h; 0.55-1.58x with the conversion, whose NO2-poor first minutes are in the disk wherever the source sits)
    ends = (radius_m + position_sigma_km * 1e3, max(radius_m - position_sigma_km * 1e3, 0.1 * radius_m))
    shifted = [mass / residence_time(r_end, wind.speed, life.tau_s, ramp) for r_end in ends]
    sig["position"] = float(np.sqrt(np.mean(np.square(np.subtract(shifted, q)))))
    if _sens:
        sig["wind_speed"] = sensitivity(lambda u: q_of(max(u, 0.1), life.tau_s), wind.speed, wind.sigma_speed)
        sig["lifetime"] = sensitivity(lambda tau: q_of(wind.speed, max(tau, 600.0)), life.tau_s, life.sigma_s)
        if ramp.on:
            sig["no2_ramp"] = ramp.sigma(lambda rp: q_of(wind.speed, life.tau_s, rp))
        sig["wind_direction"] = (
            sensitivity(q_at_direction, wind.direction_from, wind.sigma_direction) if known_dir else 0.0
        )
    diag = {
        "mass_mol": mass,
        "radius_km": cfg.radius_km,
        "exit_km": exit_at_km,
        "background_mol_m2": float(plane.coef[0]),
        "noise_chi": noise.chi,
        "noise_k": noise.k,
    }
    return Estimate(METHOD, q, sig, [] if known_dir else ["background_ring_without_sector"], diag)
