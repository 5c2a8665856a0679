"""Satellites of strong plumes: recurrence sites whose peaks come when the wind blows onto them from a stronger site.

A strong source's plume puts map maxima downwind of it, and over a year they pile into cells 10-20 km away that pass
the recurrence test as sites of their own (on the validation OSSE most false sites lie 10-17 km from a source, next
to a stronger site). A real neighbour source peaks whatever the wind; a satellite peaks when the wind carries the
stronger site's plume onto it. The test, per site S with a stronger site (higher peak share) P within ``radius_km``:
over the overpasses that observed S's cell (with the wind known at every such P), ``base`` = the share in which S
lay in the downwind cone of some such P (within ``half_angle_deg`` of the wind's heading at P); over those with a
map maximum >= the recurrence level in S's cell or its 4 neighbours (what the recurrence test counts), ``k`` of
``n`` had S in such a cone. S is a satellite, and is dropped, when the one-sided binomial tail P(X >= k | n, base)
<= ``alpha``. Sites without a stronger site within the radius, and collections without winds, are not tested. The
wind is the quantify stage's (plume level, time window), sampled at P at the overpass time
(:mod:`no2hotspots.winds`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

#: km per degree of latitude (the local tangent plane the geometry uses; the radius is tens of km)
KM_PER_DEG = 111.32


def partners(lat, lon, share, radius_km: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pair, dx, dy): ``pair[s, p]`` when site p has a higher share than site s and lies within ``radius_km``;
    ``dx``/``dy`` (km, east/north) from p to s on the local tangent plane."""
    lat = np.asarray(lat, np.float64)
    lon = np.asarray(lon, np.float64)
    share = np.asarray(share, np.float64)
    coslat = np.cos(np.deg2rad(lat.mean())) if lat.size else 1.0
    dx = (lon[:, None] - lon[None, :]) * KM_PER_DEG * coslat
    dy = (lat[:, None] - lat[None, :]) * KM_PER_DEG
    dist = np.hypot(dx, dy)
    pair = (dist <= float(radius_km)) & (share[None, :] > share[:, None])
    np.fill_diagonal(pair, False)
    return pair, dx, dy


def downwind_of_partner(
    pair: np.ndarray, dx: np.ndarray, dy: np.ndarray, direction_from_deg, half_angle_deg: float
) -> np.ndarray:
    """Per site s: whether s lies within ``half_angle_deg`` of the wind's heading at some partner p (the wind comes
    FROM ``direction_from_deg[p]``, degrees clockwise from north; NaN = unknown: p does not count)."""
    d = np.deg2rad(np.asarray(direction_from_deg, np.float64))
    hx, hy = -np.sin(d), -np.cos(d)  # heading (where the air goes), east/north
    dist = np.hypot(dx, dy)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = (dx * hx[None, :] + dy * hy[None, :]) / dist
    inside = np.isfinite(cos) & (cos >= np.cos(np.deg2rad(float(half_angle_deg))))
    return (pair & inside).any(axis=1)


def satellite_test(n_obs, n_obs_down, n_hit, n_hit_down, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(p, satellite): one-sided binomial tail of ``n_hit_down`` of ``n_hit`` peak overpasses downwind of a partner
    against the share ``n_obs_down / n_obs`` of observed overpasses that were; satellite where p <= ``alpha``."""
    from scipy import stats

    n_obs = np.asarray(n_obs, np.float64)
    n_hit = np.asarray(n_hit, np.int64)
    k = np.asarray(n_hit_down, np.int64)
    base = np.where(n_obs > 0, np.asarray(n_obs_down, np.float64) / np.maximum(n_obs, 1.0), 0.0)
    p = np.where((n_hit > 0) & (base > 0), stats.binom.sf(k - 1, np.maximum(n_hit, 1), base), 1.0)
    return p, p <= float(alpha)


def count_overpasses(
    overpasses: Iterable[tuple[np.ndarray, np.ndarray, tuple[int, int]]],
    cells: np.ndarray,
    pair: np.ndarray,
    dx: np.ndarray,
    dy: np.ndarray,
    half_angle_deg: float,
) -> dict[str, np.ndarray]:
    """The counts of :func:`satellite_test` from a stream of overpasses ``(maxima, direction_from_deg per site,
    (i0, j0))``: ``maxima`` is the overpass's map window with NaN where unobserved, 1 at the map's maxima >= level
    and 0 elsewhere; ``cells`` the sites' (row, col) on the collection grid."""
    n = len(cells)
    out = {k: np.zeros(n, np.int64) for k in ("n_obs", "n_obs_down", "n_hit", "n_hit_down")}
    tested = pair.any(axis=1)
    if not tested.any():
        return out
    for mx, direction, (i0, j0) in overpasses:
        ny, nx = mx.shape
        li, lj = cells[:, 0] - i0, cells[:, 1] - j0
        inside = tested & (li >= 0) & (li < ny) & (lj >= 0) & (lj < nx)
        if not inside.any():
            continue
        direction = np.asarray(direction, np.float64)
        known = (~pair | np.isfinite(direction)[None, :]).all(axis=1)  # the wind at every partner
        down = downwind_of_partner(pair, dx, dy, direction, half_angle_deg)
        s = np.flatnonzero(inside & known)
        s = s[np.isfinite(mx[li[s], lj[s]])]  # observed in the site's own cell
        hit = cross_hits(mx)[li[s], lj[s]]
        out["n_obs"][s] += 1
        out["n_obs_down"][s] += down[s]
        out["n_hit"][s] += hit
        out["n_hit_down"][s] += hit & down[s]
    return out


def cross_hits(mx: np.ndarray) -> np.ndarray:
    """Per cell: a maximum (``mx`` > 0; NaN = unobserved) in the cell or one of its 4 neighbours."""
    m = np.nan_to_num(np.asarray(mx, np.float64), nan=0.0) > 0
    hit = m.copy()
    hit[1:, :] |= m[:-1, :]
    hit[:-1, :] |= m[1:, :]
    hit[:, 1:] |= m[:, :-1]
    hit[:, :-1] |= m[:, 1:]
    return hit
