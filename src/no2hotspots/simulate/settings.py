"""Validated simulator settings: ``simulate.*`` config checked up front, each problem a one-line ConfigError.

The flat :class:`Settings` holds the paper's world (steady Gaussian plumes of scattered point sources); the nested
ones the parts that make training scenes closer to the real world (docs/simulate.md): real CoCO2 cluster windows
(:class:`ClusterSettings`), unmarked area sources (:class:`DistractorSettings`), the OSSE's puff transport
(:class:`PuffSettings`), TROPOMI's across-track pixel sizes (:class:`SwathSettings`), cloud-gap edges through
sources (in :class:`Settings`) and the pairs test split (:class:`PairSettings`). Each is off at 0.

:class:`PaperWorldSettings` is the extra held-out split ``paper_world``: the training settings with the few keys of
``simulate.paper_world.overrides`` changed (the paper's and the pre-4d90541 demo's world: steady Gaussian plumes of
1-4 scattered sources at least 6 px apart), keeping the keys that set the model's input and target scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from omegaconf import DictConfig, ListConfig, OmegaConf

from ..config import is_number, require
from ..errors import ConfigError
from .physics import STABILITY_CLASSES

SPLITS = ("train", "val", "test")
#: the extra split of source pairs (simulate.pairs), scored apart (pair recall by separation)
PAIRS_SPLIT = "pairs"
#: the extra split of scenes in the paper's world (simulate.paper_world), scored like test, never used for a choice
PAPER_WORLD_SPLIT = "paper_world"
#: simulate.* keys that ``paper_world.overrides`` may not change: the model's input and target scale (pixel, input
#: scaling, NO2/NOx ratio, emission normalisation, footprint, noise) and the run's own layout
PAPER_WORLD_FIXED = (
    "n_scenes",
    "units_dir",
    "splits",
    "shard_size",
    "workers",
    "seed",
    "grid",
    "input_scale",
    "no2_nox_ratio",
    "sources.inventory_csv",
    "sources.normalise_from",
    "sources.merge_within_px",
    "sources.footprint_px",
    "noise",
    "output",
    "pairs",
    "paper_world",
)
NORMALISATIONS = ("zero", "population_min")


@dataclass(frozen=True)
class ClusterSettings:
    fraction: float  # share of non-empty scenes laid out as a real CoCO2 cluster window
    radius_px: float  # window: sites within this distance of the centre site
    min_sites: int  # a window needs at least this many sites within radius_px
    rotate: bool  # rotate each window by a random angle (relative positions kept)


@dataclass(frozen=True)
class DistractorSettings:
    probability: float  # share of scenes with area sources (never marked in the target)
    max_per_scene: int
    nox_min: float  # t/yr, log-uniform
    nox_max: float
    radius_min_px: float  # Gaussian radius of the emitting area, uniform
    radius_max_px: float
    n_sub: int  # sub-sources an area is made of


@dataclass(frozen=True)
class PuffSettings:
    fraction: float  # share of scenes whose plumes are OSSE puffs in a turning wind (the rest: Gaussian plumes)
    release_hours: float
    release_interval_min: float
    substeps: int
    sigma0_m: float
    diffusivity_min: float  # m2 s-1, uniform per scene
    diffusivity_max: float
    turn_deg: float
    speed_variability: float
    timescale_h: float
    speed_min_m_s: float
    cutoff_sigma: float


@dataclass(frozen=True)
class SwathSettings:
    fraction: float  # share of scenes observed through TROPOMI-like pixels regridded to the scene pixel
    n_ground_pixels: int
    max_view_angle_deg: float
    altitude_km: float


@dataclass(frozen=True)
class PairSettings:
    n_per_separation: int  # 0 = no pairs split
    separations_px: tuple
    nox_min: float  # t/yr, log-uniform per source
    nox_max: float
    clouds: bool
    distractors: bool

    @property
    def n_scenes(self) -> int:
        return self.n_per_separation * len(self.separations_px)


@dataclass(frozen=True)
class Settings:
    n_scenes: int
    split_fractions: tuple  # (train, val, test)
    shard_size: int
    workers: int
    seed: int
    size_px: int
    pixel_size_m: float
    input_scale: float
    no2_nox_ratio: float
    inventory_csv: str
    min_nox_t_per_yr: float
    normalise_from: str  # "zero": r = Q / Qmax; "population_min": r = (Q - Qmin) / (Qmax - Qmin)
    merge_within_px: float  # CoCO2 sites closer than this are one source (rates summed); 0 = off
    empty_fraction: float
    max_sources: int
    min_separation_px: float
    neighbour_fraction: float  # share of sources after the first placed 1..neighbour_max_px from an earlier one
    neighbour_max_px: float
    edge_margin_px: float
    footprint_px: int
    class_weights: tuple
    jitter_sigma: float
    wind_speed_min: float
    wind_speed_max: float
    stability_weights: tuple  # one weight per class A..F
    lifetime_h_min: float
    lifetime_h_max: float
    sigma0_m: float
    truncate_sigma: float
    subpixel_factor: int
    subpixel_radius_px: int
    background_mean_min: float
    background_mean_max: float
    background_rel_std: float
    background_coarse_px: int
    static_probability: float  # share of scenes with 1..static_max static urban columns (not marked)
    static_max: int
    static_radius_px: tuple  # (min, max), uniform
    static_amplitude: tuple  # (min, max) mol m-2, uniform
    noise_std_min: float
    noise_std_max: float
    striping_probability: float
    striping_std: float
    cloud_clear_probability: float
    cloud_fraction_min: float
    cloud_fraction_max: float
    cloud_coarse_px: int
    cloud_edge_probability: float  # share of cloudy scenes with sources whose gap edge is drawn through a source
    cloud_edge_offset_px: float  # ... at most this far from it (either side)
    cloud_edge_scale_px: float  # the edge's sharpness (distance over which the cloud field changes by 1)
    cloud_edge_wiggle: float  # amplitude of the smooth field that bends the edge
    compression_level: int
    clusters: ClusterSettings
    distractors: DistractorSettings
    puffs: PuffSettings
    swath: SwathSettings
    pairs: PairSettings
    paper_world: PaperWorldSettings
    # near-source NO -> NO2 conversion, per scene uniform in each range (Meier et al. 2024: NOx/NO2 = m exp(-t/r) + f0;
    # no2hotspots.nox.no2_ramp_factor); m (0, 0) = off: the configured NO2 share from the stack on
    no2_ramp_m: tuple = (0.0, 0.0)
    no2_ramp_r_s: tuple = (486.0, 1638.0)
    no2_ramp_f0: tuple = (1.31, 1.9)

    @property
    def no2_ramp_on(self) -> bool:
        return self.no2_ramp_m[1] > 0


@dataclass(frozen=True)
class PaperWorldSettings:
    n_scenes: int  # 0 = no paper_world split
    world: Settings | None  # the training settings with simulate.paper_world.overrides applied (None when off)


def _int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def max_sources_that_fit(size_px: int, margin: float, separation: float) -> int:
    """Sources that random placement can reliably fit: half the points of a square lattice with the separation."""
    side = size_px - 1 - 2 * margin
    if side < 0:
        return 0
    per_side = int(math.floor(side / separation)) + 1 if separation > 0 else 10**6
    return max(1, (per_side * per_side) // 2)


def _range(cfg, key: str, positive: bool = True) -> tuple[float, float]:
    ok = lambda x: is_number(x) and (x > 0 if positive else x >= 0)  # noqa: E731
    v = require(
        cfg,
        key,
        lambda x: isinstance(x, (list, tuple, ListConfig)) and len(x) == 2 and ok(x[0]) and ok(x[1]) and x[0] <= x[1],
        "must be [low, high] with low <= high" + (" and low > 0" if positive else " and low >= 0"),
    )
    return float(v[0]), float(v[1])


def from_config(cfg: DictConfig) -> Settings:
    """Check every ``simulate.*`` key and return :class:`Settings`; raise ConfigError naming the first bad key."""
    k = "simulate."
    r = lambda key, check, problem: require(cfg, k + key, check, problem)  # noqa: E731
    pos = lambda x: is_number(x) and x > 0  # noqa: E731
    nonneg = lambda x: is_number(x) and x >= 0  # noqa: E731
    prob = lambda x: is_number(x) and 0 <= x <= 1  # noqa: E731
    boolean = lambda x: isinstance(x, bool)  # noqa: E731

    n_scenes = r("n_scenes", lambda x: _int(x) and x >= 3, "must be an integer >= 3")
    fr = r("splits", lambda x: set(x.keys()) == set(SPLITS), "must have exactly the keys train, val, test")
    for s in SPLITS:
        r(f"splits.{s}", lambda x: is_number(x) and 0 < x < 1, "must be a fraction in (0, 1)")
    if abs(sum(float(fr[s]) for s in SPLITS) - 1.0) > 1e-6:
        raise ConfigError(k + "splits", f"fractions must sum to 1 (got {sum(float(fr[s]) for s in SPLITS):g})")
    size = r("grid.size_px", lambda x: _int(x) and x >= 8, "must be an integer >= 8")
    margin = r("sources.edge_margin_px", nonneg, "must be >= 0")
    sep = r("sources.min_separation_px", pos, "must be > 0 px")
    fp = r("sources.footprint_px", lambda x: _int(x) and x >= 1, "must be an integer >= 1")
    if margin < fp / 2:
        raise ConfigError(k + "sources.edge_margin_px", f"must be >= footprint_px / 2 = {fp / 2:g} (got {margin!r})")
    mx = r("sources.max_per_scene", lambda x: _int(x) and 1 <= x <= 127, "must be an integer in 1..127")
    fit = max_sources_that_fit(size, margin, sep)
    if mx > fit:
        raise ConfigError(
            k + "sources.max_per_scene",
            f"{mx} sources do not fit in a {size}x{size} scene with edge_margin_px={margin} and "
            f"min_separation_px={sep} (at most {fit}); lower it or the separation/margin",
        )
    cw = r(
        "sources.class_weights",
        lambda x: len(x) == 3 and all(nonneg(v) for v in x) and sum(x) > 0,
        "must be 3 non-negative weights (low, mid, high) with a positive sum",
    )
    norm = r("sources.normalise_from", lambda x: x in NORMALISATIONS, f"must be one of {', '.join(NORMALISATIONS)}")
    merge = r("sources.merge_within_px", nonneg, "must be >= 0 px (0 = off)")
    nmax = r("sources.neighbour_max_px", lambda x: is_number(x) and x >= sep, "must be >= sources.min_separation_px")
    sw = r(
        "stability.weights", lambda x: isinstance(x, DictConfig) and len(x) > 0, "must map class letters A-F to weights"
    )
    for letter in sw:
        if letter not in STABILITY_CLASSES:
            raise ConfigError(
                k + f"stability.weights.{letter}", f"unknown stability class (use {', '.join(STABILITY_CLASSES)})"
            )
        r(f"stability.weights.{letter}", nonneg, "must be a weight >= 0")
    if sum(float(v) for v in sw.values()) <= 0:
        raise ConfigError(k + "stability.weights", "weights must have a positive sum")
    vmin = r("wind.speed_min", pos, "must be > 0 m s-1 (a Gaussian plume needs wind)")
    r("wind.speed_max", lambda x: is_number(x) and x >= vmin, "must be >= wind.speed_min")
    tmin = r("lifetime_h.min", pos, "must be > 0 hours")
    r("lifetime_h.max", lambda x: is_number(x) and x >= tmin, "must be >= lifetime_h.min")
    bmin = r("background.mean_min", nonneg, "must be >= 0 mol m-2")
    r("background.mean_max", lambda x: is_number(x) and x >= bmin, "must be >= background.mean_min")
    nmin = r("noise.std_min", nonneg, "must be >= 0 mol m-2")
    r("noise.std_max", lambda x: is_number(x) and x >= nmin, "must be >= noise.std_min")
    cmin = r("clouds.fraction_min", lambda x: is_number(x) and 0 <= x < 1, "must be in [0, 1)")
    r("clouds.fraction_max", lambda x: is_number(x) and cmin <= x < 1, "must be in [clouds.fraction_min, 1)")

    clusters = ClusterSettings(
        fraction=float(r("clusters.fraction", prob, "must be in [0, 1]")),
        radius_px=float(r("clusters.radius_px", pos, "must be > 0 px")),
        min_sites=r("clusters.min_sites", lambda x: _int(x) and x >= 1, "must be an integer >= 1"),
        rotate=r("clusters.rotate", boolean, "must be true or false"),
    )
    dn = _range(cfg, k + "distractors.nox_t_per_yr")
    drad = _range(cfg, k + "distractors.radius_px")
    distractors = DistractorSettings(
        probability=float(r("distractors.probability", prob, "must be in [0, 1]")),
        max_per_scene=r("distractors.max_per_scene", lambda x: _int(x) and 1 <= x <= 32, "must be an integer 1..32"),
        nox_min=dn[0],
        nox_max=dn[1],
        radius_min_px=drad[0],
        radius_max_px=drad[1],
        n_sub=r("distractors.n_sub", lambda x: _int(x) and 1 <= x <= 64, "must be an integer 1..64"),
    )
    kd = _range(cfg, k + "transport.diffusivity_m2_s", positive=False)
    rel_h = r("transport.release_hours", pos, "must be > 0 hours")
    interval = r("transport.release_interval_min", lambda x: is_number(x) and 0 < x <= 120, "must be in (0, 120] min")
    if rel_h * 60.0 / interval < 2:
        raise ConfigError(k + "transport.release_hours", "must hold at least two release intervals")
    puffs = PuffSettings(
        fraction=float(r("transport.puff_fraction", prob, "must be in [0, 1]")),
        release_hours=float(rel_h),
        release_interval_min=float(interval),
        substeps=r("transport.substeps", lambda x: _int(x) and x >= 1, "must be an integer >= 1"),
        sigma0_m=float(r("transport.sigma0_m", pos, "must be > 0 m")),
        diffusivity_min=kd[0],
        diffusivity_max=kd[1],
        turn_deg=float(r("transport.turn_deg", nonneg, "must be >= 0 degree")),
        speed_variability=float(r("transport.speed_variability", nonneg, "must be >= 0")),
        timescale_h=float(r("transport.timescale_h", pos, "must be > 0 hours")),
        speed_min_m_s=float(r("transport.speed_min_m_s", pos, "must be > 0 m s-1")),
        cutoff_sigma=float(r("transport.cutoff_sigma", lambda x: is_number(x) and x >= 3, "must be >= 3")),
    )
    swath = SwathSettings(
        fraction=float(r("swath.fraction", prob, "must be in [0, 1]")),
        n_ground_pixels=r("swath.n_ground_pixels", lambda x: _int(x) and x >= 2, "must be an integer >= 2"),
        max_view_angle_deg=float(
            r("swath.max_view_angle_deg", lambda x: is_number(x) and 0 < x < 70, "must be in (0, 70)")
        ),
        altitude_km=float(r("swath.altitude_km", pos, "must be > 0 km")),
    )
    pn = _range(cfg, k + "pairs.nox_t_per_yr")
    seps = r(
        "pairs.separations_px",
        lambda x: len(x) >= 1 and all(pos(v) for v in x) and len(set(float(v) for v in x)) == len(x),
        "must be a list of distinct separations > 0 px",
    )
    pairs = PairSettings(
        n_per_separation=r("pairs.n_per_separation", lambda x: _int(x) and x >= 0, "must be an integer >= 0"),
        separations_px=tuple(float(v) for v in seps),
        nox_min=pn[0],
        nox_max=pn[1],
        clouds=r("pairs.clouds", boolean, "must be true or false"),
        distractors=r("pairs.distractors", boolean, "must be true or false"),
    )
    span = size - 1 - 2 * margin
    if pairs.n_per_separation and max(pairs.separations_px) > span:
        raise ConfigError(k + "pairs.separations_px", f"must fit in the scene: at most {span:g} px apart")
    if mx < 2 and pairs.n_per_separation:
        raise ConfigError(k + "sources.max_per_scene", "must be >= 2 for the pairs split (or pairs.n_per_separation=0)")
    sd = SPLITS
    stab = tuple(float(sw.get(c, 0.0)) for c in STABILITY_CLASSES)
    return Settings(
        n_scenes=n_scenes,
        split_fractions=tuple(float(fr[s]) for s in sd),
        shard_size=r("shard_size", lambda x: _int(x) and x >= 1, "must be an integer >= 1"),
        workers=r("workers", lambda x: _int(x) and x >= 1, "must be an integer >= 1"),
        seed=r("seed", lambda x: _int(x) and x >= 0, "must be an integer >= 0"),
        size_px=size,
        pixel_size_m=float(r("grid.pixel_size_m", pos, "must be > 0 m")),
        input_scale=float(r("input_scale", pos, "must be > 0")),
        no2_nox_ratio=float(r("no2_nox_ratio", lambda x: is_number(x) and 0 < x <= 1, "must be in (0, 1]")),
        inventory_csv=str(r("sources.inventory_csv", lambda x: isinstance(x, str) and x, "must be a path")),
        min_nox_t_per_yr=float(r("sources.min_nox_t_per_yr", nonneg, "must be >= 0 t/yr")),
        normalise_from=str(norm),
        merge_within_px=float(merge),
        empty_fraction=float(r("sources.empty_fraction", prob, "must be in [0, 1]")),
        max_sources=mx,
        min_separation_px=float(sep),
        neighbour_fraction=float(r("sources.neighbour_fraction", prob, "must be in [0, 1]")),
        neighbour_max_px=float(nmax),
        edge_margin_px=float(margin),
        footprint_px=fp,
        class_weights=tuple(float(v) for v in cw),
        jitter_sigma=float(r("sources.jitter_sigma", nonneg, "must be >= 0")),
        wind_speed_min=float(vmin),
        wind_speed_max=float(cfg.simulate.wind.speed_max),
        stability_weights=stab,
        lifetime_h_min=float(tmin),
        lifetime_h_max=float(cfg.simulate.lifetime_h.max),
        no2_ramp_m=_range(cfg, k + "no2_ramp.m", positive=False),
        no2_ramp_r_s=_range(cfg, k + "no2_ramp.r_s"),
        no2_ramp_f0=_range(cfg, k + "no2_ramp.f0"),
        sigma0_m=float(r("plume.sigma0_m", pos, "must be > 0 m (the initial plume width keeps the column finite)")),
        truncate_sigma=float(r("plume.truncate_sigma", lambda x: is_number(x) and x >= 2, "must be >= 2")),
        subpixel_factor=r("subpixel.factor", lambda x: _int(x) and x >= 1, "must be an integer >= 1"),
        subpixel_radius_px=r(
            "subpixel.radius_px", lambda x: _int(x) and x >= -1, "must be an integer >= -1 (-1 = off)"
        ),
        background_mean_min=float(bmin),
        background_mean_max=float(cfg.simulate.background.mean_max),
        background_rel_std=float(r("background.rel_std", nonneg, "must be >= 0")),
        background_coarse_px=r("background.coarse_px", lambda x: _int(x) and x >= 2, "must be an integer >= 2"),
        static_probability=float(r("background.static.probability", prob, "must be in [0, 1]")),
        static_max=r("background.static.max_per_scene", lambda x: _int(x) and x >= 1, "must be an integer >= 1"),
        static_radius_px=_range(cfg, k + "background.static.radius_px"),
        static_amplitude=_range(cfg, k + "background.static.amplitude_mol_m2", positive=False),
        noise_std_min=float(nmin),
        noise_std_max=float(cfg.simulate.noise.std_max),
        striping_probability=float(r("striping.probability", prob, "must be in [0, 1]")),
        striping_std=float(r("striping.std", nonneg, "must be >= 0 mol m-2")),
        cloud_clear_probability=float(r("clouds.clear_probability", prob, "must be in [0, 1]")),
        cloud_fraction_min=float(cmin),
        cloud_fraction_max=float(cfg.simulate.clouds.fraction_max),
        cloud_coarse_px=r("clouds.coarse_px", lambda x: _int(x) and x >= 2, "must be an integer >= 2"),
        cloud_edge_probability=float(r("clouds.edge_probability", prob, "must be in [0, 1]")),
        cloud_edge_offset_px=float(r("clouds.edge_offset_px", nonneg, "must be >= 0 px")),
        cloud_edge_scale_px=float(r("clouds.edge_scale_px", pos, "must be > 0 px")),
        cloud_edge_wiggle=float(r("clouds.edge_wiggle", nonneg, "must be >= 0")),
        compression_level=r(
            "output.compression_level", lambda x: _int(x) and 0 <= x <= 9, "must be an integer 0..9 (0 = none)"
        ),
        clusters=clusters,
        distractors=distractors,
        puffs=puffs,
        swath=swath,
        pairs=pairs,
        paper_world=paper_world_settings(cfg),
    )


def _leaves(d: dict, prefix: str = "") -> list[str]:
    out = []
    for key, v in d.items():
        path = f"{prefix}{key}"
        out.extend(_leaves(v, path + ".") if isinstance(v, dict) and v else [path])
    return out


def _select(d: dict, path: str):
    node = d
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _ABSENT
        node = node[part]
    return node


_ABSENT = object()


def paper_world_settings(cfg: DictConfig) -> PaperWorldSettings:
    """``simulate.paper_world``: its size and the training settings with its ``overrides`` (every override must be
    an existing ``simulate.*`` key outside :data:`PAPER_WORLD_FIXED`; the result is checked like the training
    settings, a problem named by its override key). No block, or ``n_scenes: 0``: no split."""
    k = "simulate.paper_world"
    if OmegaConf.select(cfg, k, default=None) is None:
        return PaperWorldSettings(0, None)
    n = require(cfg, k + ".n_scenes", lambda x: _int(x) and x >= 0, "must be an integer >= 0 (0 = no paper_world)")
    ov = require(
        cfg,
        k + ".overrides",
        lambda x: x is None or isinstance(x, DictConfig),
        "must be a mapping of simulate.* keys to their paper_world values",
    )
    overrides = {} if ov is None else OmegaConf.to_container(ov, resolve=True)
    base = OmegaConf.to_container(cfg.simulate, resolve=True)
    paths = _leaves(overrides)
    for path in paths:
        key = f"{k}.overrides.{path}"
        fixed = [f for f in PAPER_WORLD_FIXED if path == f or path.startswith(f + ".")]
        if fixed:
            raise ConfigError(key, f"simulate.{fixed[0]} stays the training world's in paper_world (the model's scale)")
        have = _select(base, path)
        if have is _ABSENT:
            raise ConfigError(key, "is not a simulate.* key")
        if isinstance(have, dict) and not isinstance(_select(overrides, path), dict):
            raise ConfigError(key, f"must be a mapping like simulate.{path}")
    merged = OmegaConf.merge(OmegaConf.create(base), OmegaConf.create(overrides))
    merged.pairs.n_per_separation = 0
    merged.paper_world = None
    try:
        world = from_config(OmegaConf.create({"simulate": merged}))
    except ConfigError as e:
        sub = e.key.removeprefix("simulate.")
        named = [p for p in paths if p == sub or p.startswith(sub + ".") or sub.startswith(p + ".")]
        key = f"{k}.overrides.{named[0]}" if named else e.key
        raise ConfigError(key, f"{e.problem} (in the paper_world split)") from None
    return PaperWorldSettings(int(n), world if n else None)


def as_dict(s: Settings) -> dict:
    from dataclasses import asdict

    return asdict(s)


__all__ = [
    "Settings",
    "PaperWorldSettings",
    "from_config",
    "paper_world_settings",
    "SPLITS",
    "PAIRS_SPLIT",
    "PAPER_WORLD_SPLIT",
    "max_sources_that_fit",
    "OmegaConf",
]
