"""Point sources: emission rates from the real CoCO2 distribution, stratified by emission class, and placement.

Population: every CoCO2 site (units at one location summed) with NOx >= ``sources.min_nox_t_per_yr``. Its min/max
are the global normalisation, ``r = (Q - min) / (max - min)``, so ``r`` does not depend on how many scenes or
workers there are and maps back to t/yr. The real distribution is heavy-tailed (with the default 1000 t/yr cut,
about 95 % of sites have r < 0.33 and a handful r > 0.66), so rates are drawn *stratified*: each source first draws
its class (low r < 0.33, mid, high r > 0.66) with ``sources.class_weights``, then a site from the population inside
that class range, then a small multiplicative log-normal jitter (``jitter_sigma``), dropped where it would leave
the class range, so rare strong sources are seen often enough without inventing rates outside the real ones' span.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

CLASS_EDGES = (0.33, 0.66)


@dataclass(frozen=True)
class EmissionPopulation:
    nox_t_per_yr: np.ndarray  # sorted ascending

    @property
    def emission_min(self) -> float:
        return float(self.nox_t_per_yr[0])

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


def load_population(csv_path: str, min_nox_t_per_yr: float, class_weights) -> EmissionPopulation:
    """Read CoCO2 sites and keep those emitting at least ``min_nox_t_per_yr``; check every weighted class has sites."""
    from ..inventory.coco2 import read_coco2

    q = read_coco2(csv_path)["nox_t_per_yr"].to_numpy(dtype=np.float64)
    q = np.sort(q[q >= min_nox_t_per_yr])
    if q.size < 2 or q[-1] <= q[0]:
        raise ConfigError(
            "simulate.sources.min_nox_t_per_yr", f"leaves {q.size} distinct site(s) in {csv_path}; lower it"
        )
    pop = EmissionPopulation(q)
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
):
    """Float (row, col) pixel positions ``(n_scenes, max_sources)`` (NaN-padded), >= ``separation`` px apart."""
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
            if k:
                d2 = (rows[todo, :k] - r[:, None]) ** 2 + (cols[todo, :k] - c[:, None]) ** 2
                ok = np.all(d2 >= separation**2, axis=1)
            else:
                ok = np.ones(todo.size, dtype=bool)
            rows[todo[ok], k] = r[ok]
            cols[todo[ok], k] = c[ok]
            todo = todo[~ok]
        if todo.size:
            raise ConfigError(
                "simulate.sources.min_separation_px", f"could not place {k + 1} sources {separation} px apart; lower it"
            )
    return rows, cols
