"""Scene parameters (sampled) and the pure batch simulator ``simulate_batch(params, settings, rng)``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import fields
from .physics import footprint_slices, no2_rate_mol_s, plume_pixels
from .settings import Settings
from .sources import CLASS_EDGES, EmissionPopulation, place_sources, sample_rates


@dataclass
class SceneParams:
    """Everything that defines a batch of scenes except the random fields. Per-source arrays are (n, max_sources),
    NaN-padded beyond ``n_sources``."""

    wind_speed: np.ndarray  # (n,) m s-1
    wind_from_direction: np.ndarray  # (n,) degree
    stability_class: np.ndarray  # (n,) int8 0..5
    no2_lifetime_h: np.ndarray  # (n,) h
    cloud_fraction: np.ndarray  # (n,) target fraction
    noise_std: np.ndarray  # (n,) mol m-2
    background_mean: np.ndarray  # (n,) mol m-2
    stripe_std: np.ndarray  # (n,) mol m-2 (0 = no striping)
    n_sources: np.ndarray  # (n,) int8
    source_row: np.ndarray
    source_col: np.ndarray
    source_nox_rate: np.ndarray  # t yr-1 NOx as NO2
    source_rel_emission: np.ndarray
    source_no2_rate: np.ndarray  # mol s-1

    @property
    def n(self) -> int:
        return int(self.wind_speed.size)

    def subset(self, idx) -> SceneParams:
        return SceneParams(**{k: v[idx] for k, v in self.__dict__.items()})


def sample_scenes(rng: np.random.Generator, n: int, st: Settings, pop: EmissionPopulation) -> SceneParams:
    """Draw the parameters of ``n`` scenes."""
    empty = rng.random(n) < st.empty_fraction
    n_src = np.where(empty, 0, rng.integers(1, st.max_sources + 1, n)).astype(np.int8)
    rows, cols = place_sources(rng, n_src, st.max_sources, st.size_px, st.edge_margin_px, st.min_separation_px)
    has = ~np.isnan(rows)
    nox = np.full(rows.shape, np.nan)
    nox[has] = sample_rates(rng, int(has.sum()), pop, st.class_weights, st.jitter_sigma)
    w = np.asarray(st.stability_weights)
    clear = rng.random(n) < st.cloud_clear_probability
    cf = np.where(clear, 0.0, rng.uniform(st.cloud_fraction_min, st.cloud_fraction_max, n))
    striped = rng.random(n) < st.striping_probability
    return SceneParams(
        wind_speed=rng.uniform(st.wind_speed_min, st.wind_speed_max, n),
        wind_from_direction=rng.uniform(0.0, 360.0, n),
        stability_class=rng.choice(6, size=n, p=w / w.sum()).astype(np.int8),
        no2_lifetime_h=rng.uniform(st.lifetime_h_min, st.lifetime_h_max, n),
        cloud_fraction=cf,
        noise_std=rng.uniform(st.noise_std_min, st.noise_std_max, n),
        background_mean=rng.uniform(st.background_mean_min, st.background_mean_max, n),
        stripe_std=np.where(striped, st.striping_std, 0.0),
        n_sources=n_src,
        source_row=rows,
        source_col=cols,
        source_nox_rate=nox,
        source_rel_emission=pop.relative(nox),
        source_no2_rate=no2_rate_mol_s(nox, st.no2_nox_ratio),
    )


def _source_arrays(p: SceneParams):
    has = ~np.isnan(p.source_row)
    scene, _ = np.nonzero(has)
    return scene, has


def plume_columns(p: SceneParams, st: Settings) -> np.ndarray:
    """Noise-free plume columns (n, size, size) float32 [mol m-2] of all sources of the batch (the physics core)."""
    scene, has = _source_arrays(p)
    return plume_pixels(
        scene,
        p.source_row[has],
        p.source_col[has],
        p.source_no2_rate[has],
        p.wind_speed[scene],
        p.wind_from_direction[scene],
        p.no2_lifetime_h[scene] * 3600.0,
        p.stability_class[scene],
        n_scenes=p.n,
        size_px=st.size_px,
        pixel_size_m=st.pixel_size_m,
        sigma0_m=st.sigma0_m,
        subpixel_factor=st.subpixel_factor,
        subpixel_radius_px=st.subpixel_radius_px,
        truncate_sigma=st.truncate_sigma,
    )


def emission_map(p: SceneParams, st: Settings) -> np.ndarray:
    """Target (n, size, size) float32: r over each source's k x k footprint, 0 elsewhere."""
    n, k = st.size_px, st.footprint_px
    out = np.zeros((p.n, n, n), dtype=np.float32)
    scene, has = _source_arrays(p)
    r0, c0 = footprint_slices(p.source_row[has], p.source_col[has], k)
    rel = p.source_rel_emission[has].astype(np.float32)
    for dr in range(k):
        for dc in range(k):
            rr, cc = np.clip(r0 + dr, 0, n - 1), np.clip(c0 + dc, 0, n - 1)
            np.maximum.at(out, (scene, rr, cc), rel)
    return out


def emission_class(p: SceneParams) -> np.ndarray:
    """0 empty, 1 low (< 0.33), 2 mid, 3 high (> 0.66) by the scene's largest r."""
    rmax = np.nanmax(np.where(np.isnan(p.source_rel_emission), -1.0, p.source_rel_emission), axis=1)
    cls = np.where(rmax < CLASS_EDGES[0], 1, np.where(rmax > CLASS_EDGES[1], 3, 2))
    return np.where(p.n_sources == 0, 0, cls).astype(np.int8)


def simulate_batch(p: SceneParams, st: Settings, rng: np.random.Generator) -> dict:
    """Simulate a batch from explicit parameters; random fields (background, clouds, noise, stripes) come from rng.

    Returns arrays: ``no2`` (n, y, x) float32 mol m-2 with NaN under clouds, ``valid`` uint8, ``emission`` float32,
    ``cloud_fraction`` (realised) and ``emission_class``.
    """
    n, size = p.n, st.size_px
    col = plume_columns(p, st)
    col += fields.background(rng, p.background_mean, st.background_rel_std, size, st.background_coarse_px)
    cloud = fields.cloud_mask(rng, p.cloud_fraction, size, st.cloud_coarse_px)
    noise = rng.standard_normal((n, size, size), dtype=np.float32)
    noise *= p.noise_std.astype(np.float32)[:, None, None]
    col += noise
    stripes = rng.standard_normal((n, 1, size), dtype=np.float32) * p.stripe_std.astype(np.float32)[:, None, None]
    col += stripes  # one offset per across-track column, constant along track (rows)
    col[cloud] = np.nan
    return {
        "no2": col,
        "valid": (~cloud).astype(np.uint8),
        "emission": emission_map(p, st),
        "cloud_fraction": cloud.reshape(n, -1).mean(axis=1),
        "emission_class": emission_class(p),
    }
