"""The second transport model of training scenes: the OSSE's puffs in a turning, time-varying wind.

The scenes of a batch whose ``transport`` is puff are rendered by :mod:`no2hotspots.osse.transport` itself (not a
copy): every source (point sources and the sub-sources of area distractors) releases a puff every
``transport.release_interval_min`` over the ``transport.release_hours`` before the overpass; puffs are advected by
their scene's own wind series (:class:`no2hotspots.osse.weather.SourceWinds`, drawn with the OSSE's turning-wind
model :func:`no2hotspots.osse.weather.wind_series`), grow with the scene's horizontal diffusivity, decay with its
NO2 lifetime, and are integrated exactly over the scene's pixels (:func:`no2hotspots.osse.transport.render_puffs`,
one grid copy per scene). All scenes are laid on one plane at the equator, a scene pixel = ``pixel_size_m``: row
= north, column = east, as the Gaussian path.
"""

from __future__ import annotations

import numpy as np

from ..osse.geometry import GranuleGrid, LocalPlane
from ..osse.transport import release_puffs, render_puffs
from ..osse.weather import SourceWinds, smooth_series, wind_series
from .settings import Settings

#: wind series sampling step [s] (as the OSSE's day winds)
SERIES_STEP_S = 900.0


def series_times(st: Settings) -> np.ndarray:
    """Times [s] of the wind series of a scene: overpass at ``release_hours``, one step of margin either side."""
    t_ov = st.puffs.release_hours * 3600.0
    return np.arange(-SERIES_STEP_S, t_ov + 2 * SERIES_STEP_S, SERIES_STEP_S)


def sample_winds(rng: np.random.Generator, n: int, st: Settings, mean_speed, direction0):
    """(speed, direction_from) series (n, T) of ``n`` turning winds about the given means (the OSSE's model)."""
    t = series_times(st)
    pf = st.puffs
    g_dir = smooth_series(rng, t.size, SERIES_STEP_S, pf.timescale_h, rows=n)
    g_spd = smooth_series(rng, t.size, SERIES_STEP_S, pf.timescale_h, rows=n)
    return wind_series(
        g_dir,
        g_spd,
        np.asarray(mean_speed, float)[:, None],
        np.asarray(direction0, float)[:, None],
        turn_deg=pf.turn_deg,
        speed_variability=pf.speed_variability,
        speed_min_m_s=pf.speed_min_m_s,
    )


def scene_grid(st: Settings) -> tuple[GranuleGrid, LocalPlane]:
    n, a_km = st.size_px, st.pixel_size_m / 1e3
    c0 = (n - 1) / 2
    plane = LocalPlane(0.0, 0.0)
    grid = GranuleGrid(
        plane, 0.0, (np.arange(n) - c0) * a_km, a_km, (np.arange(n + 1) - 0.5 - c0) * a_km, ground_pixel_offset=0
    )
    return grid, plane


def puff_columns(
    scene,
    row,
    col,
    q_mol_s,
    sigma0_m,
    speed,
    direction,
    lifetime_h,
    diffusivity,
    *,
    n_scenes: int,
    st: Settings,
    no2_ramp=None,
):
    """Puff-rendered columns (n_scenes, size, size) float32 [mol m-2] of the given sources.

    Per-source arrays: ``scene`` (0..n_scenes-1), ``row``/``col`` (float pixel index), ``q_mol_s``, ``sigma0_m``;
    per-scene arrays: ``speed``/``direction`` (n_scenes, T) series on :func:`series_times`, ``lifetime_h``,
    ``diffusivity`` [m2 s-1]; ``no2_ramp``: None or (n_scenes, 3) m, r [s], f0 of the near-source NO -> NO2
    conversion."""
    size = st.size_px
    if np.size(scene) == 0:
        return np.zeros((n_scenes, size, size), np.float32)
    grid, plane = scene_grid(st)
    a_km = st.pixel_size_m / 1e3
    c0 = (size - 1) / 2
    lat, lon = plane.to_latlon((np.asarray(col) - c0) * a_km, (np.asarray(row) - c0) * a_km)
    pf = st.puffs
    t = series_times(st)
    winds = SourceWinds(t, speed[scene], direction[scene])
    puffs = release_puffs(
        lat,
        lon,
        q_mol_s,
        winds,
        pf.release_hours * 3600.0,
        release_hours=pf.release_hours,
        release_interval_min=pf.release_interval_min,
        substeps=pf.substeps,
        sigma0_m=sigma0_m,
        diffusivity_m2_s=np.asarray(diffusivity)[scene],
        lifetime_h=np.asarray(lifetime_h)[scene],
        no2_ramp=None if no2_ramp is None else tuple(np.asarray(no2_ramp)[scene].T),
    )
    out = render_puffs(
        puffs, grid, cutoff_sigma=pf.cutoff_sigma, group=np.asarray(scene)[puffs.source], n_groups=n_scenes
    )
    return out.astype(np.float32)
