"""Real CoCO2 geography in training scenes: windows around real plant clusters.

A *window* is a population site (the centre) with every other population site within ``clusters.radius_px``
scene pixels of it, as east/north offsets in km on a sinusoidal plane about the centre
(:class:`no2hotspots.osse.geometry.LocalPlane`, the OSSE's projection). A cluster scene takes one window at random,
rotates it by a random angle (``clusters.rotate``; the relative positions are kept), puts its centre site at a
random place inside the scene margins, keeps the sites that fall inside the margins nearest the centre first, skips
a site closer than ``sources.min_separation_px`` to one already kept, and stops at ``sources.max_per_scene``. The
sites keep their real rates: dense clusters of mostly weak plants, as in the Highveld or Shanxi.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .sources import EARTH_R_KM, EmissionPopulation, _unit_vectors


@dataclass(frozen=True)
class ClusterWindows:
    centre: np.ndarray  # (W,) population index of each window's centre site
    start: np.ndarray  # (W + 1,) CSR offsets into the member arrays
    member: np.ndarray  # (M,) population index of each member (the centre first, at offset 0)
    dx_km: np.ndarray  # (M,) east offset from the centre site
    dy_km: np.ndarray  # (M,) north offset

    @property
    def n(self) -> int:
        return int(self.centre.size)

    def members(self, w: int):
        s = slice(self.start[w], self.start[w + 1])
        return self.member[s], self.dx_km[s], self.dy_km[s]


def build_windows(pop: EmissionPopulation, radius_km: float, min_sites: int) -> ClusterWindows:
    """Every population site with at least ``min_sites`` sites (itself included) within ``radius_km``."""
    from scipy.spatial import cKDTree

    from ..osse.geometry import LocalPlane

    if pop.lat.size != pop.nox_t_per_yr.size:
        raise ValueError("the population has no site positions (load it with load_population)")
    xyz = _unit_vectors(pop.lat, pop.lon)
    tree = cKDTree(xyz)
    chord = 2.0 * np.sin(radius_km / EARTH_R_KM / 2.0)
    centre, start, member, dx, dy = [], [0], [], [], []
    for i, near in enumerate(tree.query_ball_point(xyz, chord)):
        if len(near) < min_sites:
            continue
        near = np.asarray(sorted(near), dtype=np.int64)
        x, y = LocalPlane(pop.lat[i], pop.lon[i]).to_xy(pop.lat[near], pop.lon[near])
        order = np.lexsort((near, np.hypot(x, y)))  # the centre (distance 0) first, then outwards
        centre.append(i)
        member.append(near[order])
        dx.append(x[order])
        dy.append(y[order])
        start.append(start[-1] + near.size)
    if not centre:
        return ClusterWindows(*(np.zeros(0, np.int64),) * 2, np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    return ClusterWindows(
        np.asarray(centre, np.int64),
        np.asarray(start, np.int64),
        np.concatenate(member),
        np.concatenate(dx),
        np.concatenate(dy),
    )


def sample_cluster_layouts(
    rng: np.random.Generator,
    n: int,
    windows: ClusterWindows,
    pop: EmissionPopulation,
    *,
    max_sources: int,
    size_px: int,
    margin: float,
    separation: float,
    pixel_km: float,
    rotate: bool,
):
    """(rows, cols, site, nox) of ``n`` cluster scenes, each (n, max_sources) NaN / -1 padded (see module doc)."""
    rows = np.full((n, max_sources), np.nan)
    cols = np.full((n, max_sources), np.nan)
    site = np.full((n, max_sources), -1, np.int64)
    w_pick = rng.integers(0, windows.n, n)
    theta = rng.uniform(0.0, 2 * np.pi, n) if rotate else np.zeros(n)
    lo, hi = margin, size_px - 1 - margin
    r0 = rng.uniform(lo, hi, n)
    c0 = rng.uniform(lo, hi, n)
    for i in range(n):
        idx, dx, dy = windows.members(int(w_pick[i]))
        ct, st = np.cos(theta[i]), np.sin(theta[i])
        c = c0[i] + (dx * ct - dy * st) / pixel_km  # east -> columns
        r = r0[i] + (dx * st + dy * ct) / pixel_km  # north -> rows
        inside = np.flatnonzero((r >= lo) & (r <= hi) & (c >= lo) & (c <= hi))
        k = 0
        for j in inside:  # nearest the centre first (the window's order)
            if k and np.min((rows[i, :k] - r[j]) ** 2 + (cols[i, :k] - c[j]) ** 2) < separation**2:
                continue
            rows[i, k], cols[i, k], site[i, k] = r[j], c[j], idx[j]
            k += 1
            if k == max_sources:
                break
    nox = np.where(site >= 0, pop.nox_t_per_yr[np.maximum(site, 0)], np.nan)
    return rows, cols, site, nox
