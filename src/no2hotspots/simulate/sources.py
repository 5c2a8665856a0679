"""Point sources: emission rates from the real CoCO2 distribution, stratified by emission class, and placement.

Population: every CoCO2 site (units at one location summed; with ``sources.merge_within_px`` > 0, sites closer
than that many scene pixels merged into one, rates summed, at their rate-weighted centre: what one 5.5 km pixel
cannot separate is one source) with NOx >= ``sources.min_nox_t_per_yr``. Its max (and, for
``normalise_from: population_min``, its min) is the global normalisation: ``r = Q / max`` (``zero``) or
``r = (Q - min) / (max - min)`` (``population_min``, the paper's convention, which gives the weakest simulated
plants r ~ 0 over a visible plume). ``r`` does not depend on how many scenes or workers there are and maps back
to t/yr through the shards' ``emission_min_t_per_yr`` (0 for ``zero``) and ``emission_max_t_per_yr``.

The real distribution is heavy-tailed (with a 1000 t/yr floor, about 95 % of sites have r < 0.33 and a handful
r > 0.66), so the rates of randomly laid out sources are drawn *stratified*: each source first draws its class (low
r < 0.33, mid, high r > 0.66) with ``sources.class_weights``, then a site from the population inside that class
range, then a small multiplicative log-normal jitter (``jitter_sigma``), dropped where it would leave the class
range, so rare strong sources are seen often enough without inventing rates outside the real ones' span. Sources
in CoCO2 cluster windows (:mod:`.clusters`) keep their sites' real rates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError

CLASS_EDGES = (0.33, 0.66)
EARTH_R_KM = 6371.0


@dataclass(frozen=True)
class EmissionPopulation:
    nox_t_per_yr: np.ndarray  # sorted ascending
    lat: np.ndarray = field(default_factory=lambda: np.zeros(0))  # aligned with nox_t_per_yr (may be empty)
    lon: np.ndarray = field(default_factory=lambda: np.zeros(0))
    normalise_from: str = "population_min"

    @property
    def emission_min(self) -> float:
        """The rate that maps to r = 0: 0 (``zero``) or the population's smallest site (``population_min``)."""
        return 0.0 if self.normalise_from == "zero" else float(self.nox_t_per_yr[0])

    @property
    def emission_max(self) -> float:
        return float(self.nox_t_per_yr[-1])

    def relative(self, q):
        return (np.asarray(q, dtype=np.float64) - self.emission_min) / (self.emission_max - self.emission_min)

    def class_bounds(self):
        """[(lo, hi)] NOx t/yr of the low, mid, high classes, both ends inclusive.

        The class edges are kept 1e-5 (relative) away from r = 0.33 / 0.66 so that a rate and its float32 relative
        emission in the dataset always fall in the same class."""
        lo, hi = self.emission_min, self.emission_max
        d = hi - lo
        e1, e2 = lo + CLASS_EDGES[0] * d, lo + CLASS_EDGES[1] * d
        eps = 1e-5 * d
        return [(lo, e1 - eps), (e1 + eps, e2 - eps), (e2 + eps, hi)]


def _unit_vectors(lat, lon):
    la, lo = np.radians(lat), np.radians(lon)
    return np.column_stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])


def merge_sites(lat, lon, q, within_km: float):
    """Greedy merge, strongest first: each site absorbs the not yet merged sites within ``within_km`` of it.

    Returns (lat, lon, q) of the merged sites (rate-weighted centres, summed rates), strongest-first order."""
    from scipy.spatial import cKDTree

    order = np.lexsort((lon, lat, -q))  # strongest first; ties by position (deterministic)
    lat, lon, q = lat[order], lon[order], q[order]
    if within_km <= 0 or q.size < 2:
        return lat, lon, q
    xyz = _unit_vectors(lat, lon)
    tree = cKDTree(xyz)
    chord = 2.0 * np.sin(within_km / EARTH_R_KM / 2.0)
    taken = np.zeros(q.size, bool)
    out = []
    for i in range(q.size):
        if taken[i]:
            continue
        members = [j for j in tree.query_ball_point(xyz[i], chord) if not taken[j]]
        taken[members] = True
        w = q[members]
        v = (xyz[members] * w[:, None]).sum(0) if w.sum() > 0 else xyz[i]
        v = v / np.linalg.norm(v)
        out.append((np.degrees(np.arcsin(np.clip(v[2], -1, 1))), np.degrees(np.arctan2(v[1], v[0])), w.sum()))
    arr = np.array(out)
    return arr[:, 0], arr[:, 1], arr[:, 2]


def load_population(
    csv_path: str,
    min_nox_t_per_yr: float,
    class_weights,
    *,
    normalise_from: str = "population_min",
    merge_within_km: float = 0.0,
) -> EmissionPopulation:
    """Read CoCO2 sites (merged within ``merge_within_km``), keep those emitting at least ``min_nox_t_per_yr``;
    check every weighted class has sites."""
    from ..inventory.coco2 import read_coco2

    df = read_coco2(csv_path)
    q = df["nox_t_per_yr"].to_numpy(dtype=np.float64)
    lat = df["lat"].to_numpy(dtype=np.float64)
    lon = df["lon"].to_numpy(dtype=np.float64)
    pos = np.isfinite(q) & (q > 0)
    lat, lon, q = merge_sites(lat[pos], lon[pos], q[pos], float(merge_within_km))
    keep = q >= min_nox_t_per_yr
    lat, lon, q = lat[keep], lon[keep], q[keep]
    order = np.lexsort((lon, lat, q))  # ascending rate, ties by position
    lat, lon, q = lat[order], lon[order], q[order]
    if q.size < 2 or q[-1] <= q[0]:
        raise ConfigError(
            "simulate.sources.min_nox_t_per_yr", f"leaves {q.size} distinct site(s) in {csv_path}; lower it"
        )
    pop = EmissionPopulation(q, lat, lon, normalise_from)
    for i, ((lo, hi), w) in enumerate(zip(pop.class_bounds(), class_weights)):
        if w > 0 and not np.any((q >= lo) & (q <= hi)):
            raise ConfigError(
                f"simulate.sources.class_weights[{i}]", "has weight but the population has no site in that class"
            )
    return pop


def sample_rates(rng: np.random.Generator, n: int, pop: EmissionPopulation, class_weights, jitter_sigma: float):
    """Draw ``n`` NOx rates [t/yr] stratified by emission class (see module docstring)."""
    w = np.asarray(class_weights, dtype=np.float64)
    cls = rng.choice(3, size=n, p=w / w.sum())
    u = rng.random(n)
    jit = np.exp(jitter_sigma * rng.standard_normal(n))
    q = np.empty(n, dtype=np.float64)
    for c, (lo, hi) in enumerate(pop.class_bounds()):
        sel = cls == c
        if not sel.any():
            continue
        lo, hi = max(lo, pop.nox_t_per_yr[0]), min(hi, pop.nox_t_per_yr[-1])  # never outside the real rates
        i0 = np.searchsorted(pop.nox_t_per_yr, lo, side="left")
        i1 = np.searchsorted(pop.nox_t_per_yr, hi, side="right")
        members = pop.nox_t_per_yr[i0:i1]
        pick = members[np.minimum((u[sel] * members.size).astype(np.int64), members.size - 1)]
        jittered = pick * jit[sel]
        # a jitter that would leave the class keeps the drawn site's own rate (clipping would pile rates up on the
        # class edges)
        q[sel] = np.where((jittered >= lo) & (jittered <= hi), jittered, pick)
    return q


def place_sources(
    rng: np.random.Generator,
    n_sources: np.ndarray,
    max_sources: int,
    size_px: int,
    margin: float,
    separation: float,
    max_tries: int = 2000,
    neighbour_fraction: float = 0.0,
    neighbour_max_px: float = 0.0,
):
    """Float (row, col) pixel positions ``(n_scenes, max_sources)`` (NaN-padded), >= ``separation`` px apart.

    Each source after the first is, with probability ``neighbour_fraction``, proposed ``separation`` ..
    ``neighbour_max_px`` away from an earlier source of its scene (close pairs and small groups, as real plants
    stand), otherwise uniformly; proposals closer than ``separation`` to any source or outside the margins are
    drawn again."""
    b = n_sources.size
    rows = np.full((b, max_sources), np.nan)
    cols = np.full((b, max_sources), np.nan)
    lo, hi = margin, size_px - 1 - margin
    for k in range(max_sources):
        todo = np.flatnonzero(n_sources > k)
        for _ in range(max_tries):
            if todo.size == 0:
                break
            r = rng.uniform(lo, hi, todo.size)
            c = rng.uniform(lo, hi, todo.size)
            if k and neighbour_fraction > 0:
                near = rng.random(todo.size) < neighbour_fraction
                parent = rng.integers(0, k, todo.size)
                d = rng.uniform(separation, max(neighbour_max_px, separation), todo.size)
                phi = rng.uniform(0.0, 2 * np.pi, todo.size)
                r = np.where(near, rows[todo, parent] + d * np.sin(phi), r)
                c = np.where(near, cols[todo, parent] + d * np.cos(phi), c)
            ok = (r >= lo) & (r <= hi) & (c >= lo) & (c <= hi)
            if k:
                d2 = (rows[todo, :k] - r[:, None]) ** 2 + (cols[todo, :k] - c[:, None]) ** 2
                ok &= np.all(d2 >= separation**2, axis=1)
            rows[todo[ok], k] = r[ok]
            cols[todo[ok], k] = c[ok]
            todo = todo[~ok]
        if todo.size:
            raise ConfigError(
                "simulate.sources.min_separation_px", f"could not place {k + 1} sources {separation} px apart; lower it"
            )
    return rows, cols
