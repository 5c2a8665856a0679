"""Scene parameters (sampled) and the pure batch simulator ``simulate_batch(params, settings, rng)``.

A scene is drawn in this order (docs/simulate.md): empty or not; its layout (random point sources, or a real
CoCO2 cluster window, :mod:`.clusters`); positions and rates; its wind (a constant one for a Gaussian-plume scene,
a turning, speed-varying series for a puff scene, :mod:`.puffs`); stability, lifetime, clouds, noise, background,
striping; its area sources (never marked, :mod:`.distractors`); its place in the TROPOMI swath (:mod:`.swath`);
and whether its cloud-gap edge is drawn through one of its sources. :func:`simulate_batch` then renders the plumes
of both transport models, adds background, observes through the swath pixels with noise and stripes, masks the
clouds, and measures per source what a scorer needs (nearest neighbour, cloud-edge distance, pixel width).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..osse.weather import SourceWinds
from . import fields
from .clusters import ClusterWindows, build_windows, sample_cluster_layouts
from .distractors import sample_distractors, subsources
from .physics import footprint_slices, no2_rate_mol_s, plume_pixels
from .puffs import puff_columns, sample_winds, series_times
from .settings import Settings
from .sources import CLASS_EDGES, EmissionPopulation, load_population, place_sources, sample_rates
from .swath import observe, pixel_width_at, position_range_km

#: ``transport`` codes
GAUSSIAN, PUFF = 0, 1
TRANSPORTS = ("gaussian_plume", "puff")
#: ``layout`` codes
RANDOM, CLUSTER, PAIR = 0, 1, 2
LAYOUTS = ("random", "coco2_cluster", "pair")


@dataclass(frozen=True)
class World:
    """What scenes are drawn from: the emission population and the CoCO2 cluster windows (None: no clusters)."""

    pop: EmissionPopulation
    windows: ClusterWindows | None = None


def load_world(st: Settings) -> World:
    pop = load_population(
        st.inventory_csv,
        st.min_nox_t_per_yr,
        st.class_weights,
        normalise_from=st.normalise_from,
        merge_within_km=st.merge_within_px * st.pixel_size_m / 1e3,
    )
    windows = None
    if st.clusters.fraction > 0:
        windows = build_windows(pop, st.clusters.radius_px * st.pixel_size_m / 1e3, st.clusters.min_sites)
    return World(pop, windows)


#: the population keys a paper_world override may set (an error of another names the training key)
_POPULATION_KEYS = ("sources.min_nox_t_per_yr", "sources.class_weights")


def load_paper_world(st: Settings, world: World) -> World | None:
    """The world of the ``paper_world`` split (None when off). Its population may start at another rate, but its
    normalisation must be the training world's (``emission_min``/``emission_max``), so that r means the same."""
    pw = st.paper_world.world
    if pw is None:
        return None
    try:
        paper = load_world(pw)
    except ConfigError as e:  # e.g. a floor that leaves a weighted class without sites
        sub = e.key.removeprefix("simulate.").split("[")[0]
        key = f"simulate.paper_world.overrides.{sub}" if sub in _POPULATION_KEYS else e.key
        raise ConfigError(key, f"{e.problem} (in the paper_world split)") from None
    mine, theirs = (world.pop.emission_min, world.pop.emission_max), (paper.pop.emission_min, paper.pop.emission_max)
    if mine != theirs:
        raise ConfigError(
            "simulate.paper_world.overrides.sources.min_nox_t_per_yr",
            f"gives the paper_world split another normalisation (r = 0..1 over {theirs[0]:.0f}..{theirs[1]:.0f} "
            f"t/yr, training {mine[0]:.0f}..{mine[1]:.0f}); keep the training floor or use normalise_from: zero",
        )
    return paper


@dataclass
class SceneParams:
    """Everything that defines a batch of scenes except the random fields. Per-source arrays are (n, max_sources),
    NaN-padded (or -1) beyond ``n_sources``; per-distractor arrays (n, max_distractors[, n_sub])."""

    wind_speed: np.ndarray  # (n,) m s-1 at overpass
    wind_from_direction: np.ndarray  # (n,) degree at overpass
    stability_class: np.ndarray  # (n,) int8 0..5
    no2_lifetime_h: np.ndarray  # (n,) h
    no2_ramp: np.ndarray  # (n, 3) m, r [s], f0 of the near-source NO -> NO2 conversion (m 0: none)
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
    transport: np.ndarray  # (n,) int8 GAUSSIAN / PUFF
    layout: np.ndarray  # (n,) int8 RANDOM / CLUSTER / PAIR
    wind_series_speed: np.ndarray  # (n, T) m s-1 on puffs.series_times (constant for Gaussian scenes)
    wind_series_direction: np.ndarray  # (n, T) degree
    diffusivity: np.ndarray  # (n,) m2 s-1 (puff scenes)
    source_in_cluster: np.ndarray  # (n, m) int8 1/0, -1 no source
    source_site: np.ndarray  # (n, m) int64 population index of a cluster source's CoCO2 site, -1 otherwise
    n_distractors: np.ndarray  # (n,) int8
    distractor_row: np.ndarray  # (n, d)
    distractor_col: np.ndarray
    distractor_nox_rate: np.ndarray  # t yr-1
    distractor_radius_px: np.ndarray
    distractor_sub_row: np.ndarray  # (n, d, n_sub)
    distractor_sub_col: np.ndarray
    swath_centre_km: np.ndarray  # (n,) across-track distance of the scene centre from nadir, NaN: not observed so
    cloud_edge_source: np.ndarray  # (n,) int8 index of the source the cloud edge is drawn through, -1 none
    cloud_edge_angle: np.ndarray  # (n,) radians
    cloud_edge_offset_px: np.ndarray  # (n,) px, > 0: the source in the clear
    pair_separation_px: np.ndarray  # (n,) NaN outside the pairs split

    @property
    def n(self) -> int:
        return int(self.wind_speed.size)

    def subset(self, idx) -> SceneParams:
        return SceneParams(**{k: v[idx] for k, v in self.__dict__.items()})


def _f32(x):
    """Round positions to float32 (what the shard stores), so the target drawn from them matches the file."""
    return np.asarray(x, np.float64).astype(np.float32).astype(np.float64)


def _as_world(world) -> World:
    return world if isinstance(world, World) else World(world)


def sample_scenes(rng: np.random.Generator, n: int, st: Settings, world) -> SceneParams:
    """Draw the parameters of ``n`` scenes from ``world`` (a :class:`World`, or an EmissionPopulation: no clusters)."""
    world = _as_world(world)
    pop, m = world.pop, st.max_sources
    empty = rng.random(n) < st.empty_fraction
    use_clusters = world.windows is not None and world.windows.n > 0 and st.clusters.fraction > 0
    cluster = ~empty & (rng.random(n) < st.clusters.fraction) if use_clusters else np.zeros(n, bool)
    n_random = np.where(empty | cluster, 0, rng.integers(1, m + 1, n))
    rows, cols = place_sources(
        rng,
        n_random,
        m,
        st.size_px,
        st.edge_margin_px,
        st.min_separation_px,
        neighbour_fraction=st.neighbour_fraction,
        neighbour_max_px=st.neighbour_max_px,
    )
    nox = np.full(rows.shape, np.nan)
    has = ~np.isnan(rows)
    nox[has] = sample_rates(rng, int(has.sum()), pop, st.class_weights, st.jitter_sigma)
    site = np.full(rows.shape, -1, np.int64)
    if cluster.any():
        ci = np.flatnonzero(cluster)
        cr, cc, cs, cq = sample_cluster_layouts(
            rng,
            ci.size,
            world.windows,
            pop,
            max_sources=m,
            size_px=st.size_px,
            margin=st.edge_margin_px,
            separation=st.min_separation_px,
            pixel_km=st.pixel_size_m / 1e3,
            rotate=st.clusters.rotate,
        )
        rows[ci], cols[ci], site[ci], nox[ci] = cr, cc, cs, cq
    layout = np.where(cluster, CLUSTER, RANDOM).astype(np.int8)
    return _finish(rng, n, st, pop, rows, cols, nox, site, layout)


def _finish(rng, n, st: Settings, pop, rows, cols, nox, site, layout, *, distractors=True, clouds=True):
    """Everything after the source layout (shared by training scenes and the pairs split)."""
    rows, cols = _f32(rows), _f32(cols)
    has = ~np.isnan(rows)
    n_src = has.sum(axis=1).astype(np.int8)
    w = np.asarray(st.stability_weights)
    clear = rng.random(n) < st.cloud_clear_probability
    cf = np.where(clear, 0.0, rng.uniform(st.cloud_fraction_min, st.cloud_fraction_max, n))
    if not clouds:
        cf = np.zeros(n)
    striped = rng.random(n) < st.striping_probability
    mean_speed = rng.uniform(st.wind_speed_min, st.wind_speed_max, n)
    direction0 = rng.uniform(0.0, 360.0, n)
    puff = rng.random(n) < st.puffs.fraction
    t = series_times(st)
    spd_s = np.repeat(mean_speed[:, None], t.size, axis=1)  # steady for Gaussian-plume scenes
    dir_s = np.repeat(direction0[:, None], t.size, axis=1)
    if puff.any():
        spd_s[puff], dir_s[puff] = sample_winds(rng, int(puff.sum()), st, mean_speed[puff], direction0[puff])
    t_ov = st.puffs.release_hours * 3600.0
    spd_ov, dir_ov = SourceWinds(t, spd_s, dir_s).series(t_ov)
    dis = sample_distractors(rng, n, st, probability=None if distractors else 0.0)
    swath = rng.random(n) < st.swath.fraction
    lo, hi = position_range_km(st)
    centre = np.where(swath, rng.uniform(lo, hi, n), np.nan)
    edge = (cf > 0) & (n_src > 0) & (rng.random(n) < st.cloud_edge_probability)
    edge_src = np.where(edge, np.floor(rng.random(n) * np.maximum(n_src, 1)), -1).astype(np.int8)
    edge_angle = rng.uniform(0.0, 2 * np.pi, n)
    edge_off = rng.uniform(-st.cloud_edge_offset_px, st.cloud_edge_offset_px, n)
    ramp = np.zeros((n, 3))
    if st.no2_ramp_on:  # drawn only when on: the scenes without it stay byte for byte what they were
        ramp = np.stack([rng.uniform(*rg, n) for rg in (st.no2_ramp_m, st.no2_ramp_r_s, st.no2_ramp_f0)], axis=1)
    return SceneParams(
        wind_speed=spd_ov,
        wind_from_direction=dir_ov,
        stability_class=rng.choice(6, size=n, p=w / w.sum()).astype(np.int8),
        no2_lifetime_h=rng.uniform(st.lifetime_h_min, st.lifetime_h_max, n),
        no2_ramp=ramp,
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
        transport=np.where(puff, PUFF, GAUSSIAN).astype(np.int8),
        layout=np.asarray(layout, np.int8),
        wind_series_speed=spd_s,
        wind_series_direction=dir_s,
        diffusivity=rng.uniform(st.puffs.diffusivity_min, st.puffs.diffusivity_max, n),
        source_in_cluster=np.where(has, (site >= 0).astype(np.int8), -1).astype(np.int8),
        source_site=site,
        n_distractors=dis["n_distractors"],
        distractor_row=dis["distractor_row"],
        distractor_col=dis["distractor_col"],
        distractor_nox_rate=dis["distractor_nox_rate"],
        distractor_radius_px=dis["distractor_radius_px"],
        distractor_sub_row=dis["distractor_sub_row"],
        distractor_sub_col=dis["distractor_sub_col"],
        swath_centre_km=centre,
        cloud_edge_source=edge_src,
        cloud_edge_angle=edge_angle,
        cloud_edge_offset_px=edge_off,
        pair_separation_px=np.full(n, np.nan),
    )


def sample_pairs(rng: np.random.Generator, n: int, st: Settings, world, first: int = 0) -> SceneParams:
    """Scenes of two point sources ``pairs.separations_px`` apart (scene ``first + i`` takes separation
    ``i % len``), at a random direction about a random point of the scene, each with a log-uniform rate in
    ``pairs.nox_t_per_yr``; clouds and area sources only if ``pairs.clouds`` / ``pairs.distractors``."""
    world = _as_world(world)
    pr = st.pairs
    seps = np.asarray(pr.separations_px)[(first + np.arange(n)) % len(pr.separations_px)]
    phi = rng.uniform(0.0, 2 * np.pi, n)
    lo, hi = st.edge_margin_px, st.size_px - 1 - st.edge_margin_px
    half_r, half_c = 0.5 * seps * np.sin(phi), 0.5 * seps * np.cos(phi)
    r0 = rng.uniform(lo + np.abs(half_r), hi - np.abs(half_r))
    c0 = rng.uniform(lo + np.abs(half_c), hi - np.abs(half_c))
    m = st.max_sources
    rows = np.full((n, m), np.nan)
    cols = np.full((n, m), np.nan)
    rows[:, 0], cols[:, 0] = r0 - half_r, c0 - half_c
    rows[:, 1], cols[:, 1] = r0 + half_r, c0 + half_c
    nox = np.full((n, m), np.nan)
    nox[:, :2] = np.exp(rng.uniform(np.log(pr.nox_min), np.log(pr.nox_max), (n, 2)))
    site = np.full((n, m), -1, np.int64)
    layout = np.full(n, PAIR, np.int8)
    p = _finish(rng, n, st, world.pop, rows, cols, nox, site, layout, distractors=pr.distractors, clouds=pr.clouds)
    p.pair_separation_px = seps.astype(np.float64)
    return p


def _source_arrays(p: SceneParams):
    has = ~np.isnan(p.source_row)
    scene, _ = np.nonzero(has)
    return scene, has


def plume_columns(p: SceneParams, st: Settings) -> np.ndarray:
    """Noise-free plume columns (n, size, size) float32 [mol m-2] of all sources of the batch (the physics core):
    point sources and area sub-sources, by each scene's transport model."""
    scene, has = _source_arrays(p)
    d_scene, d_row, d_col, d_q, d_sig0 = subsources(p, st, lambda q: no2_rate_mol_s(q, st.no2_nox_ratio))
    gauss = p.transport[scene] == GAUSSIAN
    d_gauss = p.transport[d_scene] == GAUSSIAN
    common = dict(n_scenes=p.n, size_px=st.size_px, pixel_size_m=st.pixel_size_m, truncate_sigma=st.truncate_sigma)

    def gaussian(sc, row, col, q, sig0, radius):
        return plume_pixels(
            sc,
            row,
            col,
            q,
            p.wind_speed[sc],
            p.wind_from_direction[sc],
            p.no2_lifetime_h[sc] * 3600.0,
            p.stability_class[sc],
            sigma0_m=sig0,
            subpixel_factor=st.subpixel_factor,
            subpixel_radius_px=radius,
            no2_ramp=tuple(p.no2_ramp[sc].T) if st.no2_ramp_on else None,
            **common,
        )

    out = gaussian(
        scene[gauss],
        p.source_row[has][gauss],
        p.source_col[has][gauss],
        p.source_no2_rate[has][gauss],
        st.sigma0_m,
        st.subpixel_radius_px,
    )
    if d_gauss.any():
        out += gaussian(d_scene[d_gauss], d_row[d_gauss], d_col[d_gauss], d_q[d_gauss], d_sig0[d_gauss], -1)
    if (p.transport == PUFF).any():
        pt, dp = ~gauss, ~d_gauss
        out += puff_columns(
            np.concatenate([scene[pt], d_scene[dp]]),
            np.concatenate([p.source_row[has][pt], d_row[dp]]),
            np.concatenate([p.source_col[has][pt], d_col[dp]]),
            np.concatenate([p.source_no2_rate[has][pt], d_q[dp]]),
            np.concatenate([np.full(int(pt.sum()), st.puffs.sigma0_m), np.maximum(d_sig0[dp], st.puffs.sigma0_m)]),
            p.wind_series_speed,
            p.wind_series_direction,
            p.no2_lifetime_h,
            p.diffusivity,
            n_scenes=p.n,
            st=st,
            no2_ramp=p.no2_ramp if st.no2_ramp_on else None,
        )
    return out


def emission_map(p: SceneParams, st: Settings) -> np.ndarray:
    """Target (n, size, size) float32: r over each point source's k x k footprint (the larger r where footprints
    overlap), 0 elsewhere; area sources are never marked."""
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


def clouds(p: SceneParams, st: Settings, rng: np.random.Generator) -> np.ndarray:
    """Cloud masks (n, size, size): a thresholded smooth field, or for cloud-edge scenes an edge drawn near one
    of the scene's sources (:func:`fields.edge_cloud_mask`)."""
    size = st.size_px
    cloud = fields.cloud_mask(rng, p.cloud_fraction, size, st.cloud_coarse_px)
    edge = np.flatnonzero(p.cloud_edge_source >= 0)
    if edge.size:
        k = p.cloud_edge_source[edge].astype(np.int64)
        cloud[edge] = fields.edge_cloud_mask(
            rng,
            p.source_row[edge, k],
            p.source_col[edge, k],
            p.cloud_edge_angle[edge],
            p.cloud_edge_offset_px[edge],
            size,
            st.cloud_edge_scale_px,
            st.cloud_edge_wiggle,
            st.cloud_coarse_px,
        )
    return cloud


def source_diagnostics(p: SceneParams, cloud: np.ndarray, st: Settings) -> dict:
    """Per source: nearest other source and nearest area source [px], signed distance to the nearest pixel centre
    of the other kind, cloud or observed [px] (> 0 its pixel observed, < 0 under cloud, NaN when the scene is all
    clear or all cloud), instrument pixel width [km]; per scene: the pixel width at the scene centre and the
    wind's direction range over the release period [degree]."""
    n, m = p.source_row.shape
    size = st.size_px
    dr = p.source_row[:, :, None] - p.source_row[:, None, :]
    dc = p.source_col[:, :, None] - p.source_col[:, None, :]
    d = np.hypot(dr, dc)
    d[:, np.arange(m), np.arange(m)] = np.nan
    nn = np.min(np.where(np.isnan(d), np.inf, d), axis=2)
    dd = np.hypot(
        p.source_row[:, :, None] - p.distractor_row[:, None, :], p.source_col[:, :, None] - p.distractor_col[:, None, :]
    )
    nd = np.min(np.where(np.isnan(dd), np.inf, dd), axis=2)
    nn = np.where(np.isfinite(nn), nn, np.nan)
    nd = np.where(np.isfinite(nd), nd, np.nan)
    # signed distance from the source to the nearest pixel centre of the other kind (cloud vs observed)
    edge = np.full((n, m), np.nan)
    scene, k = np.nonzero(~np.isnan(p.source_row))
    mixed = cloud.any(axis=(1, 2)) & ~cloud.all(axis=(1, 2))
    sel = mixed[scene]
    scene, k = scene[sel], k[sel]
    if scene.size:
        yy, xx = (v.astype(np.float32) for v in np.divmod(np.arange(size * size), size))
        flat = cloud.reshape(n, -1)
        for lo in range(0, scene.size, 256):
            s, kk = scene[lo : lo + 256], k[lo : lo + 256]
            r, c = p.source_row[s, kk], p.source_col[s, kk]
            ri = np.clip(np.floor(r + 0.5).astype(np.int64), 0, size - 1)
            ci = np.clip(np.floor(c + 0.5).astype(np.int64), 0, size - 1)
            own = cloud[s, ri, ci]
            d2 = (yy[None, :] - r[:, None].astype(np.float32)) ** 2 + (xx[None, :] - c[:, None].astype(np.float32)) ** 2
            best = np.sqrt(np.min(np.where(flat[s] != own[:, None], d2, np.float32(np.inf)), axis=1))
            edge[s, kk] = np.where(own, -best, best)
    cell_km = st.pixel_size_m / 1e3
    sw = ~np.isnan(p.swath_centre_km)
    width = np.full((n, m), cell_km)
    scene_width = np.full(n, cell_km)
    if sw.any():
        width[sw] = pixel_width_at(p.swath_centre_km[sw], p.source_col[sw], st)
        scene_width[sw] = pixel_width_at(p.swath_centre_km[sw], np.full(int(sw.sum()), (size - 1) / 2), st)
    width = np.where(np.isnan(p.source_row), np.nan, width)
    # direction range over the release period (0 for a constant Gaussian-plume wind)
    rad = np.unwrap(np.radians(p.wind_series_direction), axis=1)
    turn = np.degrees(rad.max(axis=1) - rad.min(axis=1))
    return {
        "source_nn_distance_px": nn,
        "source_distractor_distance_px": nd,
        "source_cloud_edge_px": edge,
        "source_pixel_width_km": width,
        "pixel_width_km": scene_width,
        "wind_direction_range": turn,
    }


def simulate_batch(p: SceneParams, st: Settings, rng: np.random.Generator) -> dict:
    """Simulate a batch from explicit parameters; random fields (background, clouds, noise, stripes) come from rng.

    Returns arrays: ``no2`` (n, y, x) float32 mol m-2 with NaN under clouds, ``valid`` uint8, ``emission`` float32,
    ``cloud_fraction`` (realised), ``emission_class`` and the diagnostics of :func:`source_diagnostics`.
    """
    n, size = p.n, st.size_px
    col = plume_columns(p, st)
    col += fields.background(rng, p.background_mean, st.background_rel_std, size, st.background_coarse_px)
    static = {}
    if st.static_probability > 0:  # off: nothing drawn or written, the default shards stay as they were
        columns, static["n_static_columns"] = fields.static_columns(
            rng, n, size, st.static_probability, st.static_max, st.static_radius_px, st.static_amplitude
        )
        col += columns
    cloud = clouds(p, st, rng)
    sw = ~np.isnan(p.swath_centre_km)
    direct = np.flatnonzero(~sw)
    if direct.size == n:  # every scene observed at the scene pixel (the paper's setting)
        noise = rng.standard_normal((n, size, size), dtype=np.float32)
        noise *= p.noise_std.astype(np.float32)[:, None, None]
        col += noise
        stripes = rng.standard_normal((n, 1, size), dtype=np.float32) * p.stripe_std.astype(np.float32)[:, None, None]
        col += stripes  # one offset per across-track column, constant along track (rows)
    else:
        if direct.size:
            m = direct.size
            noise = rng.standard_normal((m, size, size), dtype=np.float32)
            noise *= p.noise_std[direct].astype(np.float32)[:, None, None]
            noise += (
                rng.standard_normal((m, 1, size), dtype=np.float32)
                * p.stripe_std[direct].astype(np.float32)[:, None, None]
            )
            col[direct] += noise
        idx = np.flatnonzero(sw)
        col[idx] = observe(col[idx], p.noise_std[idx], p.stripe_std[idx], st, p.swath_centre_km[idx], rng)
    col[cloud] = np.nan
    return {
        "no2": col,
        "valid": (~cloud).astype(np.uint8),
        "emission": emission_map(p, st),
        "cloud_fraction": cloud.reshape(n, -1).mean(axis=1),
        "emission_class": emission_class(p),
        **static,
        **source_diagnostics(p, cloud, st),
    }
