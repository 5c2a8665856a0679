"""Validated simulator settings: ``simulate.*`` config checked up front, each problem a one-line ConfigError."""

from __future__ import annotations

import math
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from ..config import require
from ..errors import ConfigError
from .physics import STABILITY_CLASSES

SPLITS = ("train", "val", "test")


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
    empty_fraction: float
    max_sources: int
    min_separation_px: float
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
    noise_std_min: float
    noise_std_max: float
    striping_probability: float
    striping_std: float
    cloud_clear_probability: float
    cloud_fraction_min: float
    cloud_fraction_max: float
    cloud_coarse_px: int
    compression_level: int


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def max_sources_that_fit(size_px: int, margin: float, separation: float) -> int:
    """Sources that random placement can reliably fit: half the points of a square lattice with the separation."""
    side = size_px - 1 - 2 * margin
    if side < 0:
        return 0
    per_side = int(math.floor(side / separation)) + 1 if separation > 0 else 10**6
    return max(1, (per_side * per_side) // 2)


def from_config(cfg: DictConfig) -> Settings:
    """Check every ``simulate.*`` key and return :class:`Settings`; raise ConfigError naming the first bad key."""
    k = "simulate."
    r = lambda key, check, problem: require(cfg, k + key, check, problem)  # noqa: E731
    pos = lambda x: _num(x) and x > 0  # noqa: E731
    nonneg = lambda x: _num(x) and x >= 0  # noqa: E731
    prob = lambda x: _num(x) and 0 <= x <= 1  # noqa: E731

    n_scenes = r("n_scenes", lambda x: _int(x) and x >= 3, "must be an integer >= 3")
    fr = r("splits", lambda x: set(x.keys()) == set(SPLITS), "must have exactly the keys train, val, test")
    for s in SPLITS:
        r(f"splits.{s}", lambda x: _num(x) and 0 < x < 1, "must be a fraction in (0, 1)")
    if abs(sum(float(fr[s]) for s in SPLITS) - 1.0) > 1e-6:
        raise ConfigError(k + "splits", f"fractions must sum to 1 (got {sum(float(fr[s]) for s in SPLITS):g})")
    size = r("grid.size_px", lambda x: _int(x) and x >= 8, "must be an integer >= 8")
    margin = r("sources.edge_margin_px", nonneg, "must be >= 0")
    sep = r("sources.min_separation_px", nonneg, "must be >= 0")
    fp = r("sources.footprint_px", lambda x: _int(x) and x >= 1, "must be an integer >= 1")
    if margin < fp / 2:
        raise ConfigError(k + "sources.edge_margin_px", f"must be >= footprint_px / 2 = {fp / 2:g} (got {margin!r})")
    if sep < fp:
        raise ConfigError(
            k + "sources.min_separation_px",
            f"must be >= footprint_px = {fp} so footprints do not overlap (got {sep!r})",
        )
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
    r("wind.speed_max", lambda x: _num(x) and x >= vmin, "must be >= wind.speed_min")
    tmin = r("lifetime_h.min", pos, "must be > 0 hours")
    r("lifetime_h.max", lambda x: _num(x) and x >= tmin, "must be >= lifetime_h.min")
    bmin = r("background.mean_min", nonneg, "must be >= 0 mol m-2")
    r("background.mean_max", lambda x: _num(x) and x >= bmin, "must be >= background.mean_min")
    nmin = r("noise.std_min", nonneg, "must be >= 0 mol m-2")
    r("noise.std_max", lambda x: _num(x) and x >= nmin, "must be >= noise.std_min")
    cmin = r("clouds.fraction_min", lambda x: _num(x) and 0 <= x < 1, "must be in [0, 1)")
    r("clouds.fraction_max", lambda x: _num(x) and cmin <= x < 1, "must be in [clouds.fraction_min, 1)")
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
        no2_nox_ratio=float(r("no2_nox_ratio", lambda x: _num(x) and 0 < x <= 1, "must be in (0, 1]")),
        inventory_csv=str(r("sources.inventory_csv", lambda x: isinstance(x, str) and x, "must be a path")),
        min_nox_t_per_yr=float(r("sources.min_nox_t_per_yr", nonneg, "must be >= 0 t/yr")),
        empty_fraction=float(r("sources.empty_fraction", prob, "must be in [0, 1]")),
        max_sources=mx,
        min_separation_px=float(sep),
        edge_margin_px=float(margin),
        footprint_px=fp,
        class_weights=tuple(float(v) for v in cw),
        jitter_sigma=float(r("sources.jitter_sigma", nonneg, "must be >= 0")),
        wind_speed_min=float(vmin),
        wind_speed_max=float(cfg.simulate.wind.speed_max),
        stability_weights=stab,
        lifetime_h_min=float(tmin),
        lifetime_h_max=float(cfg.simulate.lifetime_h.max),
        sigma0_m=float(r("plume.sigma0_m", pos, "must be > 0 m (the initial plume width keeps the column finite)")),
        truncate_sigma=float(r("plume.truncate_sigma", lambda x: _num(x) and x >= 2, "must be >= 2")),
        subpixel_factor=r("subpixel.factor", lambda x: _int(x) and x >= 1, "must be an integer >= 1"),
        subpixel_radius_px=r(
            "subpixel.radius_px", lambda x: _int(x) and x >= -1, "must be an integer >= -1 (-1 = off)"
        ),
        background_mean_min=float(bmin),
        background_mean_max=float(cfg.simulate.background.mean_max),
        background_rel_std=float(r("background.rel_std", nonneg, "must be >= 0")),
        background_coarse_px=r("background.coarse_px", lambda x: _int(x) and x >= 2, "must be an integer >= 2"),
        noise_std_min=float(nmin),
        noise_std_max=float(cfg.simulate.noise.std_max),
        striping_probability=float(r("striping.probability", prob, "must be in [0, 1]")),
        striping_std=float(r("striping.std", nonneg, "must be >= 0 mol m-2")),
        cloud_clear_probability=float(r("clouds.clear_probability", prob, "must be in [0, 1]")),
        cloud_fraction_min=float(cmin),
        cloud_fraction_max=float(cfg.simulate.clouds.fraction_max),
        cloud_coarse_px=r("clouds.coarse_px", lambda x: _int(x) and x >= 2, "must be an integer >= 2"),
        compression_level=r(
            "output.compression_level", lambda x: _int(x) and 0 <= x <= 9, "must be an integer 0..9 (0 = none)"
        ),
    )


def as_dict(s: Settings) -> dict:
    from dataclasses import asdict

    return asdict(s)


__all__ = ["Settings", "from_config", "SPLITS", "max_sources_that_fit", "OmegaConf"]
