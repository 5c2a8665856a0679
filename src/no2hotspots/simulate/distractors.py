"""Area sources ("distractors"): industrial or urban areas whose NO2 the scene holds but the target never marks.

A scene has, with probability ``distractors.probability``, 1 .. ``distractors.max_per_scene`` areas, each at a
uniform position in the scene, emitting a log-uniform NOx rate in ``distractors.nox_t_per_yr`` spread as a Gaussian
of radius ``distractors.radius_px`` (uniform). An area is ``n_sub`` sub-sources, offset N(0, radius / sqrt 2) from
its centre, each a plume of initial width radius / sqrt 2 (so the emission is spread over ~radius in every
direction): a broad, diffuse plume with no sharp peak, which both transport models carry like any other source.
"""

from __future__ import annotations

import numpy as np

from .settings import Settings

SQRT2 = np.sqrt(2.0)


def sample_distractors(rng: np.random.Generator, n: int, st: Settings, probability: float | None = None) -> dict:
    """Per-scene area sources: ``n_distractors`` (n,) and ``distractor_*`` arrays (n, max) NaN-padded, plus the
    sub-source positions ``distractor_sub_row/col`` (n, max, n_sub)."""
    d = st.distractors
    m, ns, size = d.max_per_scene, d.n_sub, st.size_px
    p = d.probability if probability is None else probability
    has = rng.random(n) < p
    count = np.where(has, rng.integers(1, m + 1, n), 0).astype(np.int8)
    live = np.arange(m)[None, :] < count[:, None]
    row = rng.uniform(0.0, size - 1.0, (n, m))
    col = rng.uniform(0.0, size - 1.0, (n, m))
    nox = np.exp(rng.uniform(np.log(d.nox_min), np.log(d.nox_max), (n, m)))
    radius = rng.uniform(d.radius_min_px, d.radius_max_px, (n, m))
    off = rng.standard_normal((n, m, ns, 2)) * (radius / SQRT2)[:, :, None, None]
    nan = lambda a: np.where(live, a, np.nan)  # noqa: E731
    nan3 = lambda a: np.where(live[:, :, None], a, np.nan)  # noqa: E731
    return {
        "n_distractors": count,
        "distractor_row": nan(row),
        "distractor_col": nan(col),
        "distractor_nox_rate": nan(nox),
        "distractor_radius_px": nan(radius),
        "distractor_sub_row": nan3(row[:, :, None] + off[..., 0]),
        "distractor_sub_col": nan3(col[:, :, None] + off[..., 1]),
    }


def no_distractors(n: int, st: Settings) -> dict:
    return sample_distractors(np.random.default_rng(0), n, st, probability=0.0)


def subsources(p, st: Settings, no2_rate):
    """Flat arrays of all sub-sources of a batch: (scene, row, col, q [mol s-1], sigma0 [m]).

    ``no2_rate`` converts NOx t/yr into NO2 mol s-1."""
    ns = st.distractors.n_sub
    live = ~np.isnan(p.distractor_sub_row)
    scene = np.nonzero(live)[0]
    q = np.repeat(no2_rate(p.distractor_nox_rate)[:, :, None], ns, axis=2)[live] / ns
    sig0 = np.repeat((p.distractor_radius_px / SQRT2)[:, :, None], ns, axis=2)[live] * st.pixel_size_m
    return scene, p.distractor_sub_row[live], p.distractor_sub_col[live], q, sig0
