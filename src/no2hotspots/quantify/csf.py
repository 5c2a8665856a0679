"""Cross-sectional flux (CSF): the NO2 flux through transects downwind of the source, corrected for decay.

Following the CSF method as described and implemented in ddeq (Kuhlmann et al. 2024, GMD 17, 4773; Kuhlmann et al.
2020/2021 for CO2M), on the ingest grid and with a straight plume along the wind:

1. rotate the scene into the wind: s downwind, t across (:meth:`Scene.rotate`);
2. background: a plane fitted to the cells of the box s in [-upwind_km, end_km + step], |t| <= W(s) + band_km that
   lie outside the plume cone |t| <= W(s) = core_half_width_km + s tan(widen_deg) (other sources excluded);
3. transects: strips of length ``step`` (default one cell) from ``start_km`` to ``end_km``; a strip counts only if at
   least ``min_valid_fraction`` of its cone area is observed (a cloud gap over the plume would bias it low);
   its line density is LD_k = sum_i f_ik A_i (c_i - b_i) / step [mol m-1] (the enhancement mass per unit length),
   f_ik the share of cell i's area inside strip k (5 x 5 sub-samples; whole cells counted by their centre make a
   narrow plume's path length per strip jump by up to +-50 % with the wind angle);
4. flux F_k = U LD_k exp(s_k / (U tau)) / share(s_k / U): the NO2 that left the source, undoing first-order loss
   over the travel time s_k / U (tau: NO2 lifetime) and, where on, the near-source NO -> NO2 conversion (share: the
   NO2 present at that age, :class:`.estimate.Ramp`);
5. Q = sum_k a_k F_k with a_k the inverse noise variance of F_k (normalised), taken as that of the strip's observed
   nominal area (L x 2 W, times its observed share) tiled by whole cells of the strip's mean precision: the variance
   of LD_k through the sub-sampled shares f_ik grows with how many of a cell's sub-samples a strip happens to get,
   and weighting by it down-weighted the strips that caught more of the plume (a low bias).

Uncertainty: noise through the exact weights on every cell (:func:`scene.functional_sigma`), at least the scatter
between transects (weighted standard error); wind speed, lifetime and the conversion's m and r by re-evaluating F_k
at +-1 sigma; wind direction by re-running 2.-5. with the direction +-1 sigma; the source position error d along the
wind through the corrections' travel time, Q sinh(d / (U tau)) without the conversion, the RMS of the changes of Q
with F_k re-evaluated at s_k +- d with it (d: ``position_sigma_km``, :func:`.overpass.position_sigma_km`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .estimate import NO_RAMP, Estimate, Lifetime, Ramp, Wind, sensitivity
from .scene import Plane, Scene, beyond_scene, cell_reach, fit_plane, functional_sigma, noise_model, sub_offsets

METHOD = "csf"


@dataclass(frozen=True)
class CSFConfig:
    start_km: float = 3.0
    end_km: float = 30.0
    step_km: float | None = None  # None: one grid cell
    core_half_width_km: float = 12.0
    widen_deg: float = 15.0
    band_km: float = 15.0
    upwind_km: float = 15.0
    min_valid_fraction: float = 0.8
    min_transects: int = 2
    inflow_km: tuple[float, ...] = ()  # (): off; (a, b): the plume entering from upwind, s in [-b, -a], is taken off


def _upwind_km(cfg: CSFConfig) -> float:
    """How far upwind the cone reaches: past the inflow strip where it is on (its cells are no background)."""
    return max(cfg.core_half_width_km, cfg.inflow_km[1]) if cfg.inflow_km else cfg.core_half_width_km


def _geometry(scene: Scene, direction_from: float, cfg: CSFConfig):
    s, t = scene.rotate(direction_from)
    step = float(cfg.step_km or scene.cell_km)
    W = cfg.core_half_width_km + np.maximum(s, 0.0) * np.tan(np.radians(cfg.widen_deg))
    cone = (s >= -_upwind_km(cfg)) & (np.abs(t) <= W)
    box = (s >= -max(cfg.upwind_km, _upwind_km(cfg))) & (s <= cfg.end_km + step) & (np.abs(t) <= W + cfg.band_km)
    edges = np.arange(cfg.start_km, cfg.end_km + 1e-6, step)
    return s, t, step, cone, box & ~cone, edges


@dataclass
class _Strips:
    """The transects observed well enough (step 3), on the scene cells ``cells`` (flat indices) they touch."""

    plane: Plane
    cells: np.ndarray
    weights: np.ndarray  # (k, n_cells) observed area of each cell in each strip [m2] (0 where not observed)
    length_m: np.ndarray  # (k,)
    sbar_km: np.ndarray  # (k,) mid distance downwind
    ld: np.ndarray  # (k,) line density [mol m-1]
    var_ld: np.ndarray  # (k,) its noise variance from the precision
    var_w: np.ndarray  # (k,) the noise variance the weights use: one the partition into strips cannot change
    inflow: _Strips | None = None  # the upwind strip s in [-b, -a] (csf.inflow_km), where on and observed


def _strips(scene: Scene, direction_from: float, cfg: CSFConfig) -> _Strips | str:
    """Steps 1-3 for one direction; a failure flag (str) where the background or the transects are missing."""
    s, t, step, cone, bgmask, edges = _geometry(scene, direction_from, cfg)
    plane = fit_plane(scene, bgmask)
    if plane is None:
        return "too_few_background_cells"
    st = _transects(scene, plane, s, t, edges, direction_from, cfg)
    if cfg.inflow_km:
        a, b = cfg.inflow_km
        up = _transects(scene, plane, s, t, np.array([-b, -a]), direction_from, cfg)
        st.inflow = up if len(up.ld) else None
    return st


def _passing(st: _Strips, u: float, tau: float) -> np.ndarray:
    """The line density the plume entering from upwind adds to each transect (zero without an inflow strip): that
    of the inflow strip, decayed over the travel time from it. It is the same NO2 flux at any distance once decay
    is undone, so the transects' fluxes minus it are this source's (in a uniform wind the divergence cancels it)."""
    if st.inflow is None:
        return np.zeros_like(st.ld)
    return st.inflow.ld[0] * _carried(st, u, tau)


def _carried(st: _Strips, u: float, tau: float) -> np.ndarray:
    """What is left at each transect of the NO2 that passed the inflow strip (:func:`_passing_decay`)."""
    return _passing_decay((st.sbar_km - st.inflow.sbar_km[0]) * 1e3, u, tau)


def _q(st: _Strips, a: np.ndarray, u: float, tau: float, ramp: Ramp) -> float:
    """Q (mol s-1) with the transects' weights ``a`` held, at wind speed ``u`` and lifetime ``tau``."""
    return float(np.sum(a * _factors(st.sbar_km * 1e3, u, tau, ramp) * (st.ld - _passing(st, u, tau))))


def _cell_weights(scene: Scene, st: _Strips, af0: np.ndarray, u: float, tau: float) -> np.ndarray:
    """dQ/dc of every scene cell (the noise functional): sum_k a_k f0_k w_ik / L_k, minus, with the inflow strip,
    its line density's weights times sum_k a_k f0_k exp(-ds_k / (U tau))."""
    g = np.zeros(scene.c.shape)
    g.flat[st.cells] = np.sum((af0 / st.length_m)[:, None] * st.weights, axis=0)
    if st.inflow is not None:
        carried = float(np.sum(af0 * _carried(st, u, tau)))
        g.flat[st.inflow.cells] -= carried * st.inflow.weights[0] / st.inflow.length_m[0]
    return g


def _passing_decay(ds_m, u: float, tau: float):
    """exp(-ds / (U tau)): what is left of NO2 after ``ds_m`` metres downwind (1 without decay)."""
    return np.exp(-np.asarray(ds_m, float) / (u * tau)) if np.isfinite(tau) else np.ones(np.shape(ds_m))


def _factors(sbar_m: np.ndarray, u: float, tau: float, ramp: Ramp = NO_RAMP) -> np.ndarray:
    """Step 4: flux per unit line density, U exp(s / (U tau)) / share(s / U) (U without decay; share 1 exactly
    without the conversion)."""
    f = u * (np.exp(sbar_m / (u * tau)) if np.isfinite(tau) else np.ones_like(sbar_m))
    return f / ramp.share(sbar_m / u)


def _weights(st: _Strips, f0: np.ndarray) -> np.ndarray:
    """Step 5: the transects' weights, inverse noise variance of their fluxes (normalised), from a variance the
    partition of cells between strips cannot change (:attr:`_Strips.var_w`)."""
    inv = 1.0 / np.maximum(st.var_w * f0**2, 1e-300)
    return inv / inv.sum()


def _rate(scene: Scene, direction_from: float, speed: float, life: Lifetime, cfg: CSFConfig) -> float:
    """Q alone (mol s-1) for a wind direction: what the direction term re-runs; NaN where no estimate."""
    st = _strips(scene, direction_from, cfg)
    if isinstance(st, str) or len(st.ld) < cfg.min_transects:
        return float("nan")
    return _q(st, _weights(st, _factors(st.sbar_km * 1e3, speed, life.tau_s, life.ramp)), speed, life.tau_s, life.ramp)


def estimate(
    scene: Scene,
    wind: Wind,
    life: Lifetime,
    cfg: CSFConfig = CSFConfig(),
    *,
    position_sigma_km: float = 2.5,
    _sens: bool = True,
) -> Estimate:
    """``position_sigma_km``: the 1-sigma error of the source position along the wind (the position term)."""
    if not np.isfinite(wind.direction_from):
        return Estimate.failed(METHOD, "no_wind_direction")
    if not (np.isfinite(wind.speed) and wind.speed > 0):
        return Estimate.failed(METHOD, "no_wind_speed")
    st = _strips(scene, wind.direction_from, cfg)
    if isinstance(st, str):
        return Estimate.failed(METHOD, st)
    k = len(st.ld)
    if k < cfg.min_transects:
        return Estimate.failed(METHOD, "too_few_transects", n_transects=k)
    sbar_m, ramp = st.sbar_km * 1e3, life.ramp
    ld = st.ld - _passing(st, wind.speed, life.tau_s)
    f0 = _factors(sbar_m, wind.speed, life.tau_s, ramp)
    a = _weights(st, f0)
    flux = f0 * ld
    q = float(np.sum(a * flux))

    noise = noise_model(scene, st.plane)
    sig_noise = functional_sigma(scene, _cell_weights(scene, st, a * f0, wind.speed, life.tau_s), st.plane, noise)
    sig_transects = 0.0
    if k >= 3:  # the scatter between transects, where it exceeds the noise: its own component, since it grows with
        # the emission (plume structure) and the noise, which weights the period mean, must not (period.combine)
        sw2 = float(np.sum(a**2))
        sd = np.sqrt(np.sum(a * (flux - q) ** 2) / max(1.0 - sw2, 1e-9))
        sig_transects = float(np.sqrt(max(float(sd) ** 2 * sw2 - sig_noise**2, 0.0)))

    sig = {"noise": sig_noise, "transects": sig_transects}
    # the decay correction exp(s / (U tau)) counts the travel time from the scene's centre: a source d further
    # upwind (downwind) makes every transect's travel time d / U longer (shorter), a factor exp(+-d / (U tau))
    # on Q; half the change over +-1 sigma. With the conversion, whose correction shrinks with the age while the
    # decay's grows, F_k is re-evaluated at s_k +- d and the term is the RMS of the two changes: Q(+d) and Q(-d) can
    # lie on the same side of Q, and half their difference then misses the change (a source 4 km upwind at 3 m/s:
    # Q 13 % low, half the difference 1 %, the RMS 14 %; test)
    if ramp.on:
        d_m = position_sigma_km * 1e3
        shifted = [float(np.sum(a * _factors(sbar_m + k * d_m, wind.speed, life.tau_s, ramp) * ld)) for k in (1, -1)]
        sig["position"] = float(np.sqrt(np.mean(np.square(np.subtract(shifted, q)))))
    else:
        sig["position"] = abs(q) * float(np.sinh(position_sigma_km * 1e3 / (wind.speed * life.tau_s)))
    if _sens:
        sig["wind_speed"] = sensitivity(lambda u: _q(st, a, u, life.tau_s, ramp), wind.speed, wind.sigma_speed)
        sig["lifetime"] = sensitivity(
            lambda tau: _q(st, a, wind.speed, max(tau, 600.0), ramp), life.tau_s, life.sigma_s
        )
        if ramp.on:
            sig["no2_ramp"] = ramp.sigma(
                lambda rp: float(np.sum(a * _factors(sbar_m, wind.speed, life.tau_s, rp) * ld))
            )
        sig["wind_direction"] = sensitivity(
            lambda d: _rate(scene, d, wind.speed, life, cfg), wind.direction_from, wind.sigma_direction
        )
    diag = {
        "n_transects": k,
        "transect_km": [float(st.sbar_km[0]), float(st.sbar_km[-1])],
        "flux_transects_mol_s": [float(x) for x in flux],
        "background_mol_m2": float(st.plane.coef[0]),
        "noise_chi": noise.chi,
        "noise_k": noise.k,
    }
    flags = []
    if st.inflow is not None:  # the flux entering from upwind at the source, decay undone
        s_in = float(st.inflow.sbar_km[0]) * 1e3
        diag["inflow_mol_s"] = float(wind.speed * st.inflow.ld[0] * _passing_decay(-s_in, wind.speed, life.tau_s))
    elif cfg.inflow_km:
        flags.append("no_inflow_strip")  # not observed well enough: nothing taken off
    return Estimate(METHOD, q, sig, flags, diag)


def _strip_cells(scene: Scene, edges: np.ndarray, cfg: CSFConfig) -> np.ndarray:
    """Flat indices of the cells a strip can touch: the cone up to the farthest edge (upwind too, for the inflow
    strip), widened by a cell's reach."""
    far = max(abs(float(edges[0])), abs(float(edges[-1])))
    wide = max(float(edges[-1]), 0.0) * abs(np.tan(np.radians(cfg.widen_deg)))
    reach = np.hypot(far, cfg.core_half_width_km + wide)
    return scene.cached_geometry(("strip_cells", reach), lambda: np.flatnonzero(scene.r <= reach + cell_reach(scene)))


def _subsamples(scene: Scene, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sub-sample positions (km east, km north of the source) in the cells ``cells``: arrays (25, n)."""
    ox, oy = sub_offsets(scene, cells)
    return scene.x.ravel()[cells][None] + ox, scene.y.ravel()[cells][None] + oy


def _strips_beyond_scene(scene: Scene, edges, ex: float, ey: float, tan_w: float, core_km: float) -> np.ndarray:
    """Per strip, whether a corner of its cone section (s in [edges[k], edges[k+1]], |t| <= the cone's half-width)
    lies beyond the scene's outer cell edges (the section is convex, the edges nearly straight)."""
    s = np.stack([edges[:-1], edges[:-1], edges[1:], edges[1:]], axis=1)
    half = core_km + np.maximum(s, 0.0) * tan_w
    t = half * np.array([-1.0, 1.0, -1.0, 1.0])
    # (s, t) -> (x, y): s along the wind (ex, ey), t to its left (-ey, ex), as _transects measures them
    x, y = s * ex - t * ey, s * ey + t * ex
    return beyond_scene(scene, x, y).any(axis=1)


def _transects(scene: Scene, plane: Plane, s, t, edges, direction_from: float, cfg: CSFConfig) -> _Strips:
    """Step 3: the strips observed well enough, their line density [mol m-1] and its noise variance."""
    # cells are split between strips by the share of their area in each (5 x 5 sub-samples): counting whole cells
    # by their centre makes a narrow plume's path length per strip jump by up to +-50 % with the wind angle
    cells = _strip_cells(scene, edges, cfg)
    n = cells.size
    x_sub, y_sub = scene.cached_geometry(("strip_subsamples", cells.tobytes()), lambda: _subsamples(scene, cells))
    n_sub = x_sub.shape[0]
    phi = np.radians(direction_from)
    ex, ey = -np.sin(phi), -np.cos(phi)
    s_sub = x_sub * ex + y_sub * ey
    t_sub = y_sub * ex - x_sub * ey
    tan_w = np.tan(np.radians(cfg.widen_deg))
    in_cone = np.abs(t_sub) <= cfg.core_half_width_km + np.maximum(s_sub, 0.0) * tan_w
    n_strips = len(edges) - 1
    strip = np.searchsorted(edges, s_sub, side="right") - 1  # edges[k] <= s < edges[k + 1]
    ok = in_cone & (strip >= 0) & (strip < n_strips)
    counts = np.bincount((strip * n + np.arange(n)[None])[ok], minlength=max(n_strips, 0) * n)
    frac = counts.reshape(n_strips, n) / n_sub
    area, valid = scene.area.ravel()[cells], scene.valid.ravel()[cells]
    fa = frac * area[None]
    wa = np.where(valid[None], fa, 0.0)
    keep = (frac > 0).any(axis=1) & ~(wa.sum(axis=1) < cfg.min_valid_fraction * fa.sum(axis=1))
    # a strip whose cone section reaches beyond the scene's outer cell edges is cut by the end of the collection
    # grid (a scene is +-scene_half_km around the source, far beyond the strips, unless the grid ends first): the
    # area beyond was never observed and is not in the scene to count against its observed share, so it is dropped
    keep &= ~_strips_beyond_scene(scene, edges, ex, ey, tan_w, cfg.core_half_width_km)
    lo, hi = edges[:-1][keep], edges[1:][keep]
    length_m = (hi - lo) * 1e3
    wa = wa[keep]
    enh = scene.c.ravel()[cells] - plane.at(scene.x.ravel()[cells], scene.y.ravel()[cells])
    ld = np.nansum(wa * enh[None], axis=1) / length_m
    sig = scene.sigma.ravel()[cells][None]
    var_ld = np.sum((wa * sig) ** 2, axis=1) / length_m**2
    sbar = 0.5 * (lo + hi)
    # observed nominal strip area: the cone's area in the strip (L x 2 W at its middle) times its observed share
    nominal = length_m * 2e3 * (cfg.core_half_width_km + np.maximum(sbar, 0.0) * tan_w)
    obs = wa.sum(axis=1)
    a_obs = nominal * obs / np.maximum(fa[keep].sum(axis=1), 1e-300)
    # the weights' variance: that of the observed nominal area tiled by whole cells of the strip's mean variance and
    # mean cell area. var_ld grows with the square of the area shares the 5 x 5 sub-sampling happens to give a strip
    # (more where more of the plume's cells fall in it), so weighting by it down-weights the strips that caught more
    # plume: ~-3 % on the OSSE (issue 15)
    mean_var = np.sum(wa * sig**2, axis=1) / np.maximum(obs, 1e-300)
    cell_area = np.sum(wa * area[None], axis=1) / np.maximum(obs, 1e-300)
    var_w = mean_var * cell_area * a_obs / length_m**2
    return _Strips(plane, cells, wa, length_m, sbar, ld, var_ld, var_w)
