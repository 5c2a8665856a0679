"""Checks of the ``osse`` config: the first invalid value is a one-line ConfigError naming its key."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from ..config import require, require_int
from ..errors import ConfigError
from ..inventory.load import check_bbox

log = logging.getLogger(__name__)

#: the most days one run may cover (ten years)
MAX_DAYS = 3660
CHANGE_KEYS = ("source", "from", "factor")


def _pair(cfg, key: str, positive: bool = True) -> tuple[float, float]:
    v = require(
        cfg,
        key,
        lambda x: len(x) == 2 and float(x[0]) <= float(x[1]) and (not positive or float(x[0]) > 0),
        "must be [low, high] with low <= high" + (" and low > 0" if positive else ""),
    )
    return float(v[0]), float(v[1])


def ramp_range(value) -> tuple[float, float]:
    """One ``osse.transport.no2_ramp`` parameter as (low, high): a value is both; a list must be [low, high] with
    low <= high (ValueError otherwise)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), float(value)
    low, high = (float(x) for x in value)
    if not low <= high:
        raise ValueError(value)
    return low, high


def _date(value) -> np.datetime64 | None:
    """A YYYY-MM-DD date, or None when ``value`` is not one."""
    try:
        text = str(value)
        day = np.datetime64(text, "D")
    except (TypeError, ValueError):
        return None
    return day if len(text) == 10 and str(day) == text else None


def date_range(o) -> tuple[np.datetime64, int]:
    """First day and number of days: ``dates.end`` (inclusive) when set, else ``dates.days``."""
    start = np.datetime64(str(o.dates.start), "D")
    end = o.dates.get("end")
    if end is None:
        return start, int(o.dates.days)
    return start, int((np.datetime64(str(end), "D") - start) / np.timedelta64(1, "D")) + 1


def check_config(cfg) -> None:
    """Raise a one-line ConfigError for the first invalid osse.* value."""
    check_bbox(
        require(cfg, "osse.region.bbox", lambda v: len(v) == 4, "must be [lon_min, lat_min, lon_max, lat_max]"),
        "osse.region.bbox",
    )
    require(cfg, "osse.region.margin_deg", lambda v: 0 <= float(v) <= 5, "must be in 0..5")
    require(cfg, "osse.out_dir", lambda v: isinstance(v, str) and v.strip(), "must be a folder path")
    require(cfg, "osse.units_dir", lambda v: isinstance(v, str) and v.strip(), "must be a folder path")
    _check_folders(str(cfg.osse.out_dir), str(cfg.osse.units_dir))
    require_int(cfg, "osse.seed", 0)
    _check_dates(cfg)
    _check_physics(cfg)
    _check_observation(cfg)
    require(cfg, "osse.truth.winds_resolution_deg", lambda v: 0 < float(v) <= 5, "must be in (0, 5] degrees")
    require(cfg, "osse.truth.winds_step_min", lambda v: 0 < float(v) <= 360, "must be in (0, 360] minutes")
    require(cfg, "osse.changes", lambda v: v is None or OmegaConf.is_list(v), "must be a list (or null)")


def _check_folders(out_dir: str, units_dir: str) -> None:
    """The unit folder and the output folder must not hold each other (the output is replaced as a whole)."""
    out, cache = Path(out_dir).resolve(), Path(units_dir).resolve()
    if out == cache or out in cache.parents or cache in out.parents:
        raise ConfigError("osse.units_dir", f"must lie outside osse.out_dir and not contain it (got {units_dir})")


def _check_dates(cfg) -> None:
    start = require(cfg, "osse.dates.start", lambda v: _date(v) is not None, "must be a date YYYY-MM-DD")
    end = require(cfg, "osse.dates.end", lambda v: v is None or _date(v) is not None, "must be null or YYYY-MM-DD")
    if end is None:
        require_int(cfg, "osse.dates.days", 1, MAX_DAYS)
    elif not 1 <= int((_date(end) - _date(start)) / np.timedelta64(1, "D")) + 1 <= MAX_DAYS:
        raise ConfigError("osse.dates.end", f"must be on or after osse.dates.start ({start}), within {MAX_DAYS} days")


def _check_physics(cfg) -> None:
    require(cfg, "osse.sources.min_nox_t_per_yr", lambda v: float(v) >= 0, "must be >= 0")
    require(cfg, "osse.sources.no2_nox_ratio", lambda v: 0 < float(v) <= 1, "must be in (0, 1]")
    require(cfg, "osse.transport.release_hours", lambda v: 0 < float(v) <= 48, "must be in (0, 48]")
    require(cfg, "osse.transport.release_interval_min", lambda v: 0 < float(v) <= 120, "must be in (0, 120]")
    require_int(cfg, "osse.transport.substeps", 1)
    require(cfg, "osse.transport.sigma0_m", lambda v: float(v) > 0, "must be > 0")
    require(cfg, "osse.transport.horizontal_diffusivity_m2_s", lambda v: float(v) >= 0, "must be >= 0")
    require_int(cfg, "osse.transport.chunk", 1)
    _pair(cfg, "osse.transport.lifetime_h")
    ramp_limits = (("m", 0.0, ">= 0 (0 = off)"), ("r_s", None, "> 0 s"), ("f0", None, "> 0"))  # None: > 0
    for name, low, problem in ramp_limits:
        require(
            cfg,
            f"osse.transport.no2_ramp.{name}",
            lambda v, low=low: all(x >= low if low is not None else x > 0 for x in ramp_range(v)),
            f"must be a value or [low, high] with low <= high, each {problem}",
        )
    _pair(cfg, "osse.wind.speed_m_s")
    require(cfg, "osse.wind.speed_min_m_s", lambda v: float(v) >= 0, "must be >= 0")
    require(cfg, "osse.wind.timescale_h", lambda v: float(v) > 0, "must be > 0")
    require(cfg, "osse.wind.spatial_wavelength_km", lambda v: float(v) > 0, "must be > 0")
    require(cfg, "osse.wind.spatial_amplitude", lambda v: 0 <= float(v) <= 1, "must be in 0..1")
    _pair(cfg, "osse.clouds.mean_cover", positive=False)
    require(cfg, "osse.clouds.mean_cover", lambda v: float(v[0]) >= 0 and float(v[1]) <= 1, "must lie in 0..1")
    _pair(cfg, "osse.background.mean_mol_m2", positive=False)
    require_int(cfg, "osse.background.urban.n_blobs", 0)


def _check_observation(cfg) -> None:
    require(cfg, "osse.swath.max_view_angle_deg", lambda v: 0 < float(v) < 70, "must be in (0, 70)")
    require_int(cfg, "osse.swath.n_ground_pixels", 2)
    require(cfg, "osse.swath.along_track_km", lambda v: float(v) > 0, "must be > 0")
    require(cfg, "osse.swath.scanline_ms", lambda v: float(v) > 0, "must be > 0")
    require(cfg, "osse.swath.min_region_overlap", lambda v: 0 <= float(v) <= 1, "must be in 0..1")
    require(cfg, "osse.noise.precision_mol_m2", lambda v: float(v) >= 0, "must be >= 0")
    require(cfg, "osse.noise.reference_area_km2", lambda v: float(v) > 0, "must be > 0")
    require(
        cfg,
        "osse.clouds.qa_levels",
        lambda v: (
            len(v) >= 1
            and all(len(x) == 2 and 0 <= float(x[1]) <= 1 for x in v)
            and list(map(float, [x[0] for x in v])) == sorted(float(x[0]) for x in v)
        ),
        "must be a list of [cloud_fraction_below, qa] with ascending cloud fractions and qa in 0..1",
    )


def _change_source(key: str, want, src: pd.DataFrame) -> int:
    """Row of ``src`` whose id (or, failing that, name) is ``want``."""
    want = str(want)
    hits = np.flatnonzero(src["id"].astype(str).to_numpy() == want)
    if hits.size == 0 and "name" in src:
        hits = np.flatnonzero(src["name"].astype(object).map(lambda n: n is not None and str(n) == want).to_numpy())
    if hits.size == 1:
        return int(hits[0])
    if hits.size > 1:
        raise ConfigError(key, f"{want!r} names {hits.size} OSSE sources; give the source's id")
    raise ConfigError(
        key,
        f"no OSSE source has the id or name {want!r} (the sources are the inventory's in osse.region.bbox + "
        f"margin with NOx >= osse.sources.min_nox_t_per_yr; truth/sources.csv lists them)",
    )


def _one_change(key: str, c, src: pd.DataFrame) -> tuple[int, np.datetime64, float]:
    if not OmegaConf.is_dict(c):
        raise ConfigError(key, f"must be a mapping {{source: <id or name>, from: YYYY-MM-DD, factor: >= 0}}, got {c!r}")
    extra = sorted(set(c) - set(CHANGE_KEYS))
    missing = [k for k in CHANGE_KEYS if c.get(k) is None]
    if extra or missing:
        raise ConfigError(key, f"needs the keys {', '.join(CHANGE_KEYS)} (unknown: {extra}, missing: {missing})")
    row = _change_source(f"{key}.source", c["source"], src)
    since = _date(c["from"])
    if since is None:
        raise ConfigError(f"{key}.from", f"must be a date YYYY-MM-DD (got {c['from']!r})")
    try:
        factor = float(c["factor"])
    except (TypeError, ValueError):
        factor = math.nan
    if not (math.isfinite(factor) and factor >= 0):
        raise ConfigError(f"{key}.factor", f"must be a number >= 0 (got {c['factor']!r})")
    return row, since, factor


def check_changes(o, src: pd.DataFrame, start: np.datetime64, n_days: int) -> list[tuple[int, str, float]]:
    """``osse.changes`` as (source row, first day, factor); one change per source."""
    out, seen = [], {}
    for n, c in enumerate(o.get("changes") or []):
        key = f"osse.changes[{n}]"
        row, since, factor = _one_change(key, c, src)
        if row in seen:
            raise ConfigError(f"{key}.source", f"source {c['source']!r} already changes in osse.changes[{seen[row]}]")
        seen[row] = n
        if since > start + np.timedelta64(n_days - 1, "D"):
            log.warning("%s: %s is after the last simulated day; the change has no effect", key, since)
        out.append((row, str(since), factor))
    return out
