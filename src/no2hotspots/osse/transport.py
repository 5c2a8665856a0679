"""Puff transport: the OSSE's NO2 model (deliberately unlike the training simulator's steady Gaussian plume), also
the training simulator's second transport model (:mod:`no2hotspots.simulate.puffs` calls this module).

Each source releases a Gaussian puff every ``release_interval_min`` over the ``release_hours`` before overpass.
Puffs are advected on the sphere by the day's time- and space-varying wind (midpoint/RK2 steps), grow as
sigma^2 = sigma0^2 + 2 K_h age, and lose NO2 as exp(-age / lifetime); optionally (``no2_ramp``) young NO2 is also
scaled by :func:`no2hotspots.nox.no2_ramp_factor`, the stack's NO still turning into NO2. A puff stands for the
stretch of plume its release interval makes in the wind; it is drawn as sub-puffs along that stretch
(:func:`_along_path`). The column seen by a pixel is the exact pixel-area average of the isotropic Gaussians: in the
grid's (along, across) frame each puff factorises into an along-track and an across-track erf term.

Rendering follows the puffs: a puff is evaluated only over the pixels within ``cutoff_sigma`` of its centre (its
window), never over the whole granule, so the cost grows with the puffs' footprints, not with puffs x pixels:
the puffs' along- and across-track pixel fractions are two sparse matrices and the field is their sparse
product. :func:`render_puffs_dense` is the plain puffs x pixels version (the reference
for tests and the benchmark). :func:`release_puffs` given ``near=grid`` advects only the sources whose puffs can
reach that grid (a bound from the wind's largest speed), which leaves the rendered field unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import erf

from ..nox import no2_ramp_factor
from .geometry import EARTH_R_KM, GranuleGrid
from .weather import DayWind

NO2_G_PER_MOL = 46.0055
SECONDS_PER_YEAR = 365.25 * 86400.0
#: most parts one puff's release interval is cut into along its path (:func:`_along_path`)
MAX_SUB_PUFFS = 64


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
    source: np.ndarray  # index of the emitting source (into the arrays given to release_puffs)


def _per_source(x, n: int):
    """A scalar stays a float; a per-source array becomes a column (n, 1) that broadcasts over a source's puffs."""
    a = np.asarray(x, float)
    if a.ndim == 0:
        return float(a)
    return np.broadcast_to(a.reshape(-1), (n,)).reshape(n, 1)


def _take(x, sel):
    return x if isinstance(x, float) else x[sel]


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
    sigma0_m,
    diffusivity_m2_s,
    lifetime_h,
    near: GranuleGrid | None = None,
    cutoff_sigma: float = 6.0,
    no2_ramp=None,
) -> Puffs:
    """Release and advect puffs from sources (lat, lon, q) up to ``t_overpass_s`` (seconds since 00 UTC).

    Puff k of a source carries the emission of [T-(k+1)dt, T-k dt] and is released mid-interval. ``sigma0_m``,
    ``diffusivity_m2_s`` and ``lifetime_h`` are scalars or one value per source. ``wind`` is anything with
    ``uv(lat, lon, t_s)`` (a :class:`~no2hotspots.osse.weather.DayWind`, or a
    :class:`~no2hotspots.osse.weather.SourceWinds` with one wind per source). With ``near`` (a grid), only the
    sources whose puffs can come within ``cutoff_sigma`` puff widths of that grid are advected: the others cannot
    change what :func:`render_puffs` draws on it (see :func:`sources_near`). ``Puffs.source`` always indexes the
    arrays given here. ``no2_ramp``: None or ``(m, r_s, f0)`` of :func:`~no2hotspots.nox.no2_ramp_factor` (each
    a scalar or per source)."""
    lat = np.atleast_1d(np.asarray(lat, float))
    lon = np.atleast_1d(np.asarray(lon, float))
    q = np.atleast_1d(np.asarray(q_mol_s, float))
    sig0 = _per_source(sigma0_m, lat.size)
    kh = _per_source(diffusivity_m2_s, lat.size)
    tau_h = _per_source(lifetime_h, lat.size)
    ramp = None if no2_ramp is None else tuple(_per_source(x, lat.size) for x in no2_ramp)
    sel = np.arange(lat.size)
    if near is not None and lat.size:
        sel = sources_near(
            near,
            lat,
            lon,
            wind,
            t_overpass_s,
            release_hours=release_hours,
            release_interval_min=release_interval_min,
            sigma0_m=np.max(sig0),
            diffusivity_m2_s=np.max(kh),
            cutoff_sigma=cutoff_sigma,
        )
        lat, lon, q = lat[sel], lon[sel], q[sel]
        sig0, kh, tau_h = _take(sig0, sel), _take(kh, sel), _take(tau_h, sel)
        ramp = None if ramp is None else tuple(_take(x, sel) for x in ramp)
        if hasattr(wind, "take"):
            wind = wind.take(sel)
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
    return _along_path(plat, plon, age, q, sig0, kh, tau_h * 3600.0, dt, sel, ramp)


def _along_path(plat, plon, age, q, sig0, kh, tau_s, dt, sel, ramp=None) -> Puffs:
    """Spread each puff's emission along the stretch of plume it stands for, as sub-puffs on the path.

    Puff k carries the emission of one release interval, which in the wind lies along the path from half-way to
    its younger neighbour to half-way to its older one (the ends mirror their one neighbour). Drawn as one round
    puff, that stretch (``seg`` = release interval x wind speed, up to 18 km at 10 m/s and 30 min) would be either
    a string of beads or, widened by seg^2/12 in every direction, too wide across the wind. Instead the interval is
    cut into ``n = ceil(seg / sigma)`` equal parts (``sigma`` the puff's own width), each a sub-puff at its
    time's place on the path, with its own age (width and decay) and the residual (seg/n)^2/12 of variance: sub-puffs
    at most one width apart sum to a smooth line (ripple < 1e-8), and the plume is as wide across the wind as its
    diffusion makes it. Against a 2-min release, the near-source peak of a 30-min release is 0.97-0.99 of it at
    3-10 m/s (one round puff per interval widened by seg^2/12: 0.52 at 10 m/s); the total mass is unchanged.
    """
    S, K = plat.shape

    def per_puff(x):  # a scalar or a per-source column (S, 1), as one value per puff (S * K,)
        return np.broadcast_to(np.asarray(x, float), (S, K)).ravel()

    var_k = per_puff(sig0**2 + 2.0 * kh * age)
    src = np.repeat(np.asarray(sel)[:, None], K, 1)
    if K > 1:
        ext_lat = np.concatenate([2 * plat[:, :1] - plat[:, 1:2], plat, 2 * plat[:, -1:] - plat[:, -2:-1]], 1)
        ext_lon = np.concatenate([2 * plon[:, :1] - plon[:, 1:2], plon, 2 * plon[:, -1:] - plon[:, -2:-1]], 1)
        d_lat = np.diff(ext_lat, axis=1)  # (S, K + 1): step from each puff to the next older one
        d_lon = (np.diff(ext_lon, axis=1) + 180.0) % 360.0 - 180.0
        km = np.radians(1) * EARTH_R_KM * 1e3
        mid = np.radians(0.5 * (ext_lat[:, 1:] + ext_lat[:, :-1]))
        step_m = np.hypot(d_lat * km, d_lon * km * np.cos(mid))
        seg = 0.5 * (step_m[:, :-1] + step_m[:, 1:])
        n = np.clip(np.ceil(seg / np.sqrt(var_k.reshape(S, K))), 1, MAX_SUB_PUFFS).astype(np.int64)
    else:
        d_lat = d_lon = np.zeros((S, 2))
        seg = np.zeros((S, K))
        n = np.ones((S, K), np.int64)
    n_f = n.ravel()
    idx = np.repeat(np.arange(n_f.size), n_f)
    first = np.repeat(np.cumsum(n_f) - n_f, n_f)
    # fraction of the interval from its middle, -1/2 (younger end) .. +1/2 (older end), at each part's centre
    f = (np.arange(idx.size) - first + 0.5) / n_f[idx] - 0.5
    younger = f < 0
    step_lat = np.where(younger, -d_lat[:, :-1].ravel()[idx], d_lat[:, 1:].ravel()[idx])
    step_lon = np.where(younger, -d_lon[:, :-1].ravel()[idx], d_lon[:, 1:].ravel()[idx])
    age_j = age.ravel()[idx] + f * dt
    var_j = per_puff(sig0**2)[idx] + 2.0 * per_puff(kh)[idx] * age_j
    sigma = np.sqrt(var_j + (seg.ravel()[idx] / n_f[idx]) ** 2 / 12.0)
    mass = per_puff(q[:, None])[idx] * dt / n_f[idx] * np.exp(-age_j / per_puff(tau_s)[idx])
    if ramp is not None:
        mass = mass * no2_ramp_factor(age_j, *(per_puff(x)[idx] for x in ramp))
    return Puffs(
        plat.ravel()[idx] + np.abs(f) * step_lat,
        (plon.ravel()[idx] + np.abs(f) * step_lon + 180.0) % 360.0 - 180.0,
        sigma,
        mass,
        age_j,
        src.ravel()[idx],
    )


def sources_near(
    grid: GranuleGrid,
    lat,
    lon,
    wind,
    t_overpass_s: float,
    *,
    release_hours: float,
    release_interval_min: float,
    sigma0_m: float,
    diffusivity_m2_s: float,
    cutoff_sigma: float,
) -> np.ndarray:
    """Indices of the sources whose puffs can reach within ``cutoff_sigma`` widths of ``grid`` by ``t_overpass_s``.

    A puff of age A lies at most ``v_max A`` from its source (``v_max`` bounds the wind's speed anywhere over the
    release period, :meth:`~no2hotspots.osse.weather.DayWind.max_speed`; the real largest displacement is about
    half that bound; a sub-puff of :func:`_along_path` is no older than A) and is at most
    ``sqrt(sigma0^2 + 2 K A + seg^2 / 12)`` wide (a bound: a sub-puff's share of the stretch is smaller), ``seg``
    the spacing of neighbouring puffs, taken as ``2 v_max dt`` (twice their release spacing in the fastest wind;
    the OSSE's largest is ~0.8 v_max dt). The distance to the grid is measured in the grid's plane, whose shear far from
    nadir lengthens a displacement by < 20 % up to 3000 km off nadir and 54 deg latitude: hence the reach
    ``1.25 v_max A + cutoff_sigma sigma_max + 25 km``. A source beyond it cannot put a puff where
    :func:`render_puffs` evaluates it.
    """
    age = float(release_hours) * 3600.0
    dt = float(release_interval_min) * 60.0
    vmax = float(wind.max_speed(t_overpass_s - age, t_overpass_s))
    travel_km = vmax * age / 1e3
    seg_m = 2.0 * vmax * dt
    sig_km = np.sqrt(float(sigma0_m) ** 2 + 2.0 * float(diffusivity_m2_s) * age + seg_m**2 / 12.0) / 1e3
    reach = 1.25 * travel_km + float(cutoff_sigma) * sig_km + 25.0
    a, c = grid.latlon_to_ac(lat, lon)
    h = grid.along_km / 2
    da = np.maximum(np.maximum(grid.a_centres[0] - h - a, a - grid.a_centres[-1] - h), 0.0)
    dc = np.maximum(np.maximum(grid.c_edges[0] - c, c - grid.c_edges[-1]), 0.0)
    return np.flatnonzero(np.hypot(da, dc) <= reach)


def _box_fraction(centres_lo, centres_hi, pos, sigma):
    """Fraction of a 1-D Gaussian (pos, sigma) between lo and hi: shape (P, N)."""
    s = np.sqrt(2.0) * sigma[:, None]
    return 0.5 * (erf((centres_hi[None, :] - pos[:, None]) / s) - erf((centres_lo[None, :] - pos[:, None]) / s))


def _grid_axes(grid: GranuleGrid):
    """Pixel edges [km] along track (n_scan + 1) and across track (n_gp + 1) of a grid."""
    h = grid.along_km / 2
    a_edges = np.append(grid.a_centres - h, grid.a_centres[-1] + h)
    return a_edges, np.asarray(grid.c_edges, float)


def render_puffs_dense(puffs: Puffs, grid: GranuleGrid, *, chunk: int = 4096, cutoff_sigma: float = 6.0):
    """Reference: every puff over every pixel of the granule (puffs x pixels matrices). Slow on purpose."""
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


def _windows(edges: np.ndarray, pos: np.ndarray, reach: np.ndarray):
    """First pixel and pixel count of each puff's window: pixels whose extent meets [pos - reach, pos + reach]."""
    n = edges.size - 1
    i0 = np.clip(np.searchsorted(edges, pos - reach, side="right") - 1, 0, n)
    i1 = np.clip(np.searchsorted(edges, pos + reach, side="left"), 0, n)
    return i0, np.maximum(i1 - i0, 0)


def _window_matrix(edges, pos, sigma, reach, weight=None, offset=None, n_cols=None):
    """Sparse (P, n_cols) CSR matrix of each Gaussian's fraction in the pixels of its window along one axis.

    Row p holds, in columns ``offset[p] + i`` for the pixels i of its window, the exact integral of the
    Gaussian (pos, sigma) over pixel i (times ``weight[p]``)."""
    import scipy.sparse as sp

    i0, n = _windows(edges, pos, reach)
    indptr = np.concatenate([[0], np.cumsum(n)])
    pix = np.repeat(i0 - indptr[:-1], n) + np.arange(indptr[-1])
    inv = 1.0 / (np.sqrt(2.0) * sigma)
    # the Gaussian's CDF at each pixel's lower edge; the upper edge is the next pixel's lower edge, or for the
    # window's last pixel the window's end (one CDF per edge: n + 1 per puff)
    lo = erf((edges[pix] - np.repeat(pos, n)) * np.repeat(inv, n))
    hi = np.empty_like(lo)
    hi[:-1] = lo[1:]
    live = n > 0
    hi[indptr[1:][live] - 1] = erf((edges[(i0 + n)[live]] - pos[live]) * inv[live])
    frac = 0.5 * (hi - lo)
    if weight is not None:
        frac *= np.repeat(weight, n)
    cols = pix if offset is None else pix + np.repeat(offset, n)
    shape = (pos.size, n_cols if n_cols is not None else edges.size - 1)
    return sp.csr_matrix((frac, cols, indptr), shape=shape)


def render_windows(a_edges, c_edges, a, c, sigma, mass, *, group=None, n_groups: int = 1, cutoff_sigma: float = 6.0):
    """Sum isotropic Gaussians (centres ``a``, ``c`` and widths ``sigma`` in the edges' unit, ``mass``) into the
    pixels of the separable grid ``a_edges x c_edges`` (both increasing): returns ``(n_groups, n_a, n_c)`` masses.

    Each Gaussian is integrated exactly (erf) over the pixels within ``cutoff_sigma`` of its centre and nowhere
    else: its along- and across-track fractions are the rows of two sparse matrices A (puffs x along pixels) and
    C (puffs x across pixels) and the field is the sparse product A^T C, whose cost is the sum over puffs of
    their window areas. ``group`` (int per Gaussian, default all 0) says which of ``n_groups`` grids it belongs
    to (A's columns are then group-major: group * n_a + along pixel).
    """
    a_edges = np.asarray(a_edges, float)
    c_edges = np.asarray(c_edges, float)
    na_pix, nc_pix = a_edges.size - 1, c_edges.size - 1
    a, c, sigma, mass = (np.atleast_1d(np.asarray(x, float)) for x in (a, c, sigma, mass))
    reach = cutoff_sigma * sigma
    live = np.flatnonzero(
        (a + reach > a_edges[0])
        & (a - reach < a_edges[-1])
        & (c + reach > c_edges[0])
        & (c - reach < c_edges[-1])
        & (mass > 0)
    )
    if live.size == 0:
        return np.zeros((n_groups, na_pix, nc_pix))
    off = None if group is None else np.asarray(group, np.int64)[live] * na_pix
    A = _window_matrix(a_edges, a[live], sigma[live], reach[live], mass[live], off, n_groups * na_pix)
    C = _window_matrix(c_edges, c[live], sigma[live], reach[live])
    return (A.T.tocsr() @ C).toarray().reshape(n_groups, na_pix, nc_pix)


def render_puffs(
    puffs: Puffs,
    grid: GranuleGrid,
    *,
    chunk: int = 4096,
    cutoff_sigma: float = 6.0,
    group=None,
    n_groups: int | None = None,
) -> np.ndarray:
    """Pixel-averaged NO2 column [mol m-2] of all puffs on the granule grid, shape (n_scan, n_gp).

    Each puff is evaluated only over the pixels within ``cutoff_sigma`` of its centre (:func:`render_windows`).
    With ``group`` (one int per puff) and ``n_groups``, the puffs are drawn on ``n_groups`` copies of the grid
    (e.g. one per simulated scene): shape (n_groups, n_scan, n_gp). ``chunk`` is kept for the callers' configs
    (the sparse renderer sizes its own batches).
    """
    del chunk
    a, c = grid.latlon_to_ac(puffs.lat, puffs.lon)  # km
    a_edges, c_edges = _grid_axes(grid)
    g = 1 if n_groups is None else int(n_groups)
    mass = render_windows(
        a_edges, c_edges, a, c, puffs.sigma_m / 1e3, puffs.mass_mol, group=group, n_groups=g, cutoff_sigma=cutoff_sigma
    )
    col = mass / grid.area_m2()[None]
    return col if n_groups is not None else col[0]
