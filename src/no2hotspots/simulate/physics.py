"""Gaussian column-plume physics on a pixel grid, vectorised over many sources at once.

A point source of NO2 (mass rate ``Q`` [mol s-1]) in a steady wind ``u`` [m s-1] gives, integrated over height, the
column (mol m-2)::

    C(s, t) = Q / (sqrt(2 pi) sigma_y(s) u) * exp(-t^2 / (2 sigma_y^2)) * exp(-s / (u tau))   for s > 0, else 0

with ``s`` the downwind and ``t`` the cross-wind distance from the source, ``tau`` the NO2 lifetime and
``sigma_y(s)^2 = sigma0^2 + sigma_PG(s)^2``: Briggs' rural fits of the Pasquill-Gifford curves
``sigma_PG = c_k s / sqrt(1 + 1e-4 s)`` (c = 0.22, 0.16, 0.11, 0.08, 0.06, 0.04 for classes A-F) plus a small initial
width ``sigma0`` so the column is finite at the source.

Pixel-area averaging. TROPOMI-sized pixels (5.5 km) are much wider than a stable plume (class F: ~0.3 km at 10 km),
so sampling ``C`` at pixel centres would be badly wrong. A square pixel of side ``a``, seen across the wind at angle
theta, is a trapezoid: a box of width ``a|cos theta|`` convolved with a box of width ``a|sin theta|``. Each pixel value
is the Gaussian cross-wind profile averaged exactly over that trapezoid (closed form in erfc/exp), evaluated with the
along-wind quantities (sigma_y, decay) at the pixel centre. This conserves the cross-wind integral (for a wind along a
grid axis the boxes tile the line) at any wind angle and any plume width. Along the wind the column varies slowly
except at the source itself (the plume starts inside the source pixel); pixels within ``radius_px`` of the source
are therefore averaged from ``factor x factor`` sub-pixels, each an exact trapezoid average of its own (smaller)
square. Far pixels are computed only where the plume can matter (downwind and within ``truncate_sigma`` cross-wind
widths), so the cost follows the plume area, not the scene area.

Grid convention: pixel ``(row, col)`` has its centre at ``(row, col)`` in pixel units; ``col`` increases eastward,
``row`` increases northward (matching the ascending latitude of the detection grid). Wind directions are
meteorological "from" directions in degrees clockwise from north.
"""

from __future__ import annotations

import numpy as np

from ..nox import no2_ramp_factor

#: stability class letters in index order (``stability_class`` 0..5)
STABILITY_CLASSES = ("A", "B", "C", "D", "E", "F")
#: Briggs (1973) rural sigma_y coefficients, sigma_y = c x (1 + 1e-4 x)^-1/2, x in m
BRIGGS_RURAL_C = np.array([0.22, 0.16, 0.11, 0.08, 0.06, 0.04], dtype=np.float64)
BRIGGS_RURAL_B = 1.0e-4

NO2_MOLAR_MASS_G = 46.0055
SECONDS_PER_YEAR = 365.25 * 86400.0


def no2_rate_mol_s(nox_t_per_yr, no2_nox_ratio: float):
    """NO2 mass rate [mol s-1] from an inventory NOx rate [t yr-1, expressed as NO2 mass]."""
    return np.asarray(nox_t_per_yr, dtype=np.float64) * no2_nox_ratio * 1.0e6 / SECONDS_PER_YEAR / NO2_MOLAR_MASS_G


def sigma_y(x_m, stability_class, sigma0_m: float = 0.0):
    """Cross-wind plume width [m] at downwind distance ``x_m`` [m] (0 upwind -> sigma0)."""
    x = np.maximum(np.asarray(x_m, dtype=np.float64), 0.0)
    c = BRIGGS_RURAL_C[np.asarray(stability_class)]
    pg = c * x / np.sqrt(1.0 + BRIGGS_RURAL_B * x)
    return np.sqrt(sigma0_m**2 + pg**2)


def wind_unit_vector(wind_from_direction_deg):
    """(east, north) components of the unit vector the wind blows *towards*."""
    phi = np.deg2rad(np.asarray(wind_from_direction_deg, dtype=np.float64))
    return -np.sin(phi), -np.cos(phi)


def column_point(s_m, t_m, q_mol_s, u, tau_s, stability_class, sigma0_m: float):
    """Point value of the column [mol m-2] at downwind ``s_m`` / cross-wind ``t_m`` (NumPy broadcasting)."""
    s = np.asarray(s_m, dtype=np.float64)
    sig = sigma_y(s, stability_class, sigma0_m)
    c = q_mol_s / (np.sqrt(2 * np.pi) * sig * u) * np.exp(-(np.asarray(t_m) ** 2) / (2 * sig**2))
    c = c * np.exp(-np.maximum(s, 0.0) / (u * tau_s))
    return np.where(s > 0, c, 0.0)


def _pixel_column(s, t, amp, inv_ut, c, sig0sq, ha, hb, ramp=None):
    """Column averaged over a (sub-)pixel whose cross-wind projection is a box(2 ha) * box(2 hb) trapezoid.

    ``s``, ``t`` [m] float32 arrays (downwind / cross-wind offset of the (sub-)pixel centre); the others broadcast:
    ``amp`` = Q/u, ``inv_ut`` = 1/(u tau), ``c`` = Briggs coefficient, ``sig0sq`` = sigma0^2, ``ha >= hb > 0`` the
    half-widths. Exact for the cross-wind average (the Gaussian convolved with the trapezoid, written as the second
    difference of Psi(z) = max(z, 0) + Psi(-|z|), which keeps float32 free of cancellation); the along-wind variation
    is sampled at the centre. ``ramp``: None or ``(m, u r, f0)`` of the near-source NO -> NO2 conversion
    (:func:`~no2hotspots.nox.no2_ramp_factor` at plume age s / u), sampled at the centre as well.
    """
    f32 = np.float32
    sp = np.maximum(s, f32(0.0))
    pg = c * sp / np.sqrt(f32(1.0) + f32(BRIGGS_RURAL_B) * sp)
    sig = np.sqrt(sig0sq + pg * pg)
    inv = f32(1.0) / sig
    at = np.abs(t)
    dens = np.clip(ha + hb - at, f32(0.0), f32(2.0) * hb)  # the sigma -> 0 limit, times 4 ha hb
    hp, hm = ha + hb, ha - hb
    z = np.abs(np.stack(np.broadcast_arrays(at + hp, at + hm, at - hm, at - hp))) * inv  # (4, ...) = |z| / sigma
    psi = _psi_unit(z)
    dens = dens + sig * ((psi[0] - psi[1]) - (psi[2] - psi[3]))
    val = amp * np.exp(-sp * inv_ut) * dens / (f32(4.0) * ha * hb)
    if ramp is not None:
        m, ur, f0 = ramp
        val = val * no2_ramp_factor(sp, m, ur, f0)  # exp(-(s / u) / r) = exp(-s / (u r))
    return np.where(s > 0, val, f32(0.0))


# Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7): erfc(x) = t P(t) exp(-x^2), t = 1 / (1 + p x), x >= 0
_AS_P = 0.3275911
_AS_A = (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)


def _psi_unit(zeta):
    """phi(zeta) - zeta * Phi(-zeta) for zeta >= 0 (float32), sharing one exp between phi and erfc."""
    f32 = np.float32
    e = np.exp(f32(-0.5) * zeta * zeta)
    tt = f32(1.0) / (f32(1.0) + f32(_AS_P / np.sqrt(2.0)) * zeta)
    poly = f32(_AS_A[0])
    for coef in _AS_A[1:]:
        poly = poly * tt + f32(coef)
    poly = poly * tt  # erfc(zeta / sqrt2) = poly * e
    return e * (f32(1.0 / np.sqrt(2 * np.pi)) - f32(0.5) * zeta * poly)


def plume_pixels(
    scene_index,
    row,
    col,
    q_mol_s,
    wind_speed,
    wind_from_direction,
    tau_s,
    stability_class,
    *,
    n_scenes: int,
    size_px: int,
    pixel_size_m: float,
    sigma0_m,
    subpixel_factor: int,
    subpixel_radius_px: int,
    truncate_sigma: float,
    chunk: int = 16,
    no2_ramp=None,
) -> np.ndarray:
    """Pixel-averaged plume columns of many sources summed into ``(n_scenes, size_px, size_px)`` float32 [mol m-2].

    Per-source 1-D arrays: ``scene_index`` (which scene the source belongs to), ``row``/``col`` (float pixel index),
    ``q_mol_s``, ``wind_speed`` [m s-1], ``wind_from_direction`` [deg], ``tau_s`` [s], ``stability_class`` (0..5);
    ``sigma0_m`` is one initial width for all or one per source (area sources are wide). ``no2_ramp``: None or
    per-source ``(m, r_s, f0)`` of the near-source NO -> NO2 conversion
    (:func:`no2hotspots.nox.no2_ramp_factor`).
    """
    f32 = np.float32
    n = size_px
    a = float(pixel_size_m)
    npix = n * n
    scene_index = np.asarray(scene_index, dtype=np.int64)
    nsrc = scene_index.size
    if nsrc == 0:
        return np.zeros((n_scenes, n, n), dtype=f32)

    ex, ey = wind_unit_vector(wind_from_direction)
    u = np.asarray(wind_speed, dtype=np.float64)
    amp = (np.asarray(q_mol_s, dtype=np.float64) / u).astype(f32)
    inv_ut = (1.0 / (u * np.asarray(tau_s, dtype=np.float64))).astype(f32)
    cc = BRIGGS_RURAL_C[np.asarray(stability_class, dtype=np.int64)].astype(f32)
    row = np.asarray(row, dtype=np.float64)
    col = np.asarray(col, dtype=np.float64)
    r0 = np.floor(row + 0.5).astype(np.int64)  # pixel holding the source
    c0 = np.floor(col + 0.5).astype(np.int64)
    # half-widths of the pixel's cross-wind projection (a box of a|ex| convolved with a box of a|ey|); the smaller
    # one is kept >= 0.5 % of a pixel, still an exact mass-conserving kernel, so nothing divides by zero
    ha = (0.5 * a * np.maximum(np.abs(ex), np.abs(ey))).astype(f32)
    hb = (0.5 * a * np.maximum(np.minimum(np.abs(ex), np.abs(ey)), 0.01)).astype(f32)
    sig0 = np.broadcast_to(np.asarray(sigma0_m, dtype=np.float64), (nsrc,))
    sig0sq = (sig0**2).astype(f32)
    R = int(subpixel_radius_px)
    idx = np.arange(n, dtype=np.float64)
    ramp = None
    if no2_ramp is not None:
        rm, rr, rf = (np.broadcast_to(np.asarray(x, dtype=np.float64), (nsrc,)) for x in no2_ramp)
        ramp = (rm.astype(f32), (u * rr).astype(f32), rf.astype(f32))

    keys_all, vals_all = [], []
    # --- far field: pixel averages at pixel centres, only where the plume can matter ------------------------------
    # s[k, r, c] = sy[k, r] + sx[k, c] (and likewise t): two broadcast adds instead of a full rotation per pixel
    dc = (idx[None, :] - col[:, None]) * a  # east offsets (nsrc, n)
    dr = (idx[None, :] - row[:, None]) * a  # north offsets
    sx = (dc * ex[:, None]).astype(f32)
    sy = (dr * ey[:, None]).astype(f32)
    tx = (-dc * ey[:, None]).astype(f32)
    ty = (dr * ex[:, None]).astype(f32)
    slope = (truncate_sigma * cc).astype(f32)
    reach0 = (truncate_sigma * sig0 + 0.75 * a).astype(f32)  # the trapezoid reaches at most a / sqrt(2) across
    for lo in range(0, nsrc, chunk):
        hi = min(lo + chunk, nsrc)
        s = sy[lo:hi, :, None] + sx[lo:hi, None, :]
        t = ty[lo:hi, :, None] + tx[lo:hi, None, :]
        # sigma_y <= sigma0 + sigma_PG, so beyond `reach` the Gaussian is below `truncate_sigma` widths
        reach = slope[lo:hi, None, None] * s / np.sqrt(f32(1.0) + f32(BRIGGS_RURAL_B) * np.abs(s))
        mask = (s > 0) & (np.abs(t) - reach < reach0[lo:hi, None, None])
        flat = np.flatnonzero(mask)
        ks = flat // npix
        kp = flat - ks * npix
        gs = ks + lo
        if R >= 0:
            far = (np.abs(kp // n - r0[gs]) > R) | (np.abs(kp % n - c0[gs]) > R)
            flat, gs, kp = flat[far], gs[far], kp[far]
        if flat.size == 0:
            continue
        v = _pixel_column(
            s.ravel()[flat],
            t.ravel()[flat],
            amp[gs],
            inv_ut[gs],
            cc[gs],
            sig0sq[gs],
            ha[gs],
            hb[gs],
            None if ramp is None else tuple(x[gs] for x in ramp),
        )
        keys_all.append(scene_index[gs] * npix + kp)
        vals_all.append(v)

    # --- near field: sub-pixel averages in the (2R+1)^2 block around each source -----------------------------------
    if R >= 0:
        f = int(subpixel_factor)
        off = (np.arange(f, dtype=np.float64) + 0.5) / f - 0.5  # sub-pixel centre offsets in pixel units
        bo = np.arange(-R, R + 1)
        br, bc = np.meshgrid(bo, bo, indexing="ij")
        br, bc = br.ravel(), bc.ravel()  # (P,)
        sr, sc = np.meshgrid(off, off, indexing="ij")
        sr, sc = sr.ravel(), sc.ravel()  # (f*f,)
        big = 4 * chunk
        for lo in range(0, nsrc, big):
            sl = slice(lo, min(lo + big, nsrc))
            pr = r0[sl][:, None] + br[None, :]  # (k, P) pixel rows
            pc = c0[sl][:, None] + bc[None, :]
            de = ((pc[:, :, None] + sc[None, None, :]) - col[sl][:, None, None]) * a
            dn = ((pr[:, :, None] + sr[None, None, :]) - row[sl][:, None, None]) * a
            exs = ex[sl][:, None, None]
            eys = ey[sl][:, None, None]
            s = (de * exs + dn * eys).astype(f32)
            t = (dn * exs - de * eys).astype(f32)
            e3 = (slice(None), None, None)
            v = _pixel_column(
                s,
                t,
                amp[sl][e3],
                inv_ut[sl][e3],
                cc[sl][e3],
                sig0sq[sl][e3],
                ha[sl][e3] / f32(f),
                hb[sl][e3] / f32(f),
                None if ramp is None else tuple(x[sl][e3] for x in ramp),
            ).mean(axis=2, dtype=np.float64)  # (k, P)
            inside = (pr >= 0) & (pr < n) & (pc >= 0) & (pc < n)
            keys = scene_index[sl][:, None] * npix + pr * n + pc
            keys_all.append(keys[inside])
            vals_all.append(v[inside])

    if not keys_all:
        return np.zeros((n_scenes, n, n), dtype=f32)
    keys = np.concatenate(keys_all)
    vals = np.concatenate([np.asarray(v, dtype=np.float64) for v in vals_all])
    acc = np.bincount(keys, weights=vals, minlength=n_scenes * npix)
    return acc.reshape(n_scenes, n, n).astype(f32)


def footprint_slices(row, col, k: int):
    """Start indices of the k x k footprint block centred (as well as k allows) on a source at float (row, col)."""
    r = np.floor(np.asarray(row) - (k - 1) / 2 + 0.5).astype(np.int64)
    c = np.floor(np.asarray(col) - (k - 1) / 2 + 0.5).astype(np.int64)
    return r, c
