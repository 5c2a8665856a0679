"""The checked ``evaluate.*`` settings of one collection: ``evaluate.<key>`` with ``evaluate.collections.<name>.<key>``
on top; every bad value is a one-line :class:`~no2hotspots.errors.ConfigError` naming the key at fault."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..config import PLAIN_NAME, bool_value
from ..errors import ConfigError

#: keys that may be set at evaluate.* and overridden per collection in evaluate.collections.<name>.*
SETTINGS = (
    "grid_res_deg",
    "obs_method",
    "coverage_min",
    "nox_bins",
    "min_observations",
    "match_mode",
    "match_distance_km",
    "merge_distance_km",
    "facility_km",
    "min_detections",
    "co2_threshold_kt_per_month",
    "chance_neighbourhood",
    "source_rule",
    "point_valid_coverage",
    "point_radius_km",
    "recall_emission_bins_t_per_yr",
    "recall_obs_bins",
    "recall_neighbour_bins_km",
    "cloud_edge",
    "timeseries",
    "fig9b_min_rel_emission",
    "maps",
    "coastline_resolution",
    "regions",
)
#: per-source rules (docs/evaluate.md); the first two are grid-based, the last two distance-based
SOURCE_RULES = ("cell", "strict", "distance", "nearest")
TABLE_KINDS = ("overpass", "composite")
LOG_TO = ("model_run", "new_run", "none")


def plain_name(name, key: str) -> str:
    if not isinstance(name, str) or not PLAIN_NAME.match(name) or name in (".", ".."):
        raise ConfigError(key, f"must be a plain name (letters, digits, _ . -; no / or ..) (got {name!r})")
    return name


def settings_for(cfg: DictConfig, name: str) -> DictConfig:
    """evaluate.* settings with evaluate.collections.<name>.* on top, checked (errors name the key)."""
    ev = OmegaConf.to_container(cfg.evaluate, resolve=True)  # resolved against the whole config (${inventory} ...)
    coll = (ev.get("collections") or {}).get(name) or {}
    over = {k: coll[k] for k in SETTINGS if k in coll}
    merged = {k: ev.get(k) for k in SETTINGS}
    for k, v in over.items():  # nested groups (cloud_edge, timeseries) merge key by key
        merged[k] = {**(merged.get(k) or {}), **v} if isinstance(v, dict) and k != "regions" else v
    s = OmegaConf.create(
        {**merged, "inventory": coll.get("inventory"), "truth_fields": coll.get("truth_fields"), "collection": name}
    )

    def key(k):
        top = k.split(".")[0]
        return f"evaluate.collections.{name}.{k}" if top in over else f"evaluate.{k}"

    number = lambda k, *a, **kw: _number(s, key(k), k, *a, **kw)  # noqa: E731
    number("grid_res_deg", 0, 10, lo_open=True)
    _one_of(s, key, "obs_method", ("coverage", "max", "median"))
    number("coverage_min", 0, 1, hi_open=True)
    for k in ("nox_bins", "recall_emission_bins_t_per_yr", "recall_obs_bins", "recall_neighbour_bins_km"):
        _ascending(s, key(k), k)
    if float(s.nox_bins[0]) <= 0:  # the lowest bin is "< first edge": an edge of 0 makes an empty bin of its own
        raise ConfigError(key("nox_bins"), f"edges must be > 0: the lowest bin is below the first ({list(s.nox_bins)})")
    # >= 1: a cell never observed is unobserved, never a miss (0 would count every cell of the grid as observed)
    number("min_observations", 1, integer=True)
    number("min_detections", 1, integer=True)
    _one_of(s, key, "match_mode", ("cell", "distance"))
    _one_of(s, key, "source_rule", SOURCE_RULES)
    for k in ("match_distance_km", "merge_distance_km", "co2_threshold_kt_per_month", "point_radius_km"):
        number(k, 0)
    number("facility_km", 0, 50)
    _one_of(s, key, "chance_neighbourhood", (4, 8))
    number("point_valid_coverage", 0, 1, lo_open=True)
    number("fig9b_min_rel_emission", 0, 1)
    number("cloud_edge.cloud_fraction", 0, 1, lo_open=True)
    _ascending(s, key("cloud_edge.bins_km"), "cloud_edge.bins_km")
    _period(s.timeseries.period, key("timeseries.period"))
    number("timeseries.alpha", 0, 1, lo_open=True, hi_open=True)
    number("timeseries.min_valid", 1, integer=True)
    number("timeseries.tolerance_periods", 0, integer=True)
    number("timeseries.max_lines", 1, integer=True)
    bool_value(key("maps"), s.maps)
    _one_of(s, key, "coastline_resolution", ("c", "l", "i"))
    _regions(s.regions, key)
    return s


#: how a bad choice is worded, per key checked by _one_of
_CHOICES = {
    "obs_method": "coverage, max or median",
    "match_mode": "cell or distance",
    "source_rule": "one of " + ", ".join(SOURCE_RULES),
    "chance_neighbourhood": "4 or 8",
    "coastline_resolution": "c, l or i",
}


def _one_of(s: DictConfig, key, k: str, allowed) -> None:
    v = s[k]
    if v not in allowed:
        raise ConfigError(key(k), f"must be {_CHOICES[k]} (got {v!r})")


def _number(s: DictConfig, where: str, k, lo=None, hi=None, lo_open=False, hi_open=False, integer=False):
    """``s.<k>`` if it is a number (an integer with ``integer``) in the given range, else a ConfigError at ``where``."""
    v = OmegaConf.select(s, k)
    try:
        ok = not isinstance(v, bool) and (isinstance(v, int) if integer else isinstance(v, (int, float)))
        if ok and lo is not None:
            ok = v > lo if lo_open else v >= lo
        if ok and hi is not None:
            ok = v < hi if hi_open else v <= hi
    except TypeError:
        ok = False
    if not ok:
        what = "an integer" if integer else "a number"
        rng = ""
        if lo is not None:
            rng += f" {'>' if lo_open else '>='} {lo}"
        if hi is not None:
            rng += f"{' and' if rng else ''} {'<' if hi_open else '<='} {hi}"
        raise ConfigError(where, f"must be {what}{rng} (got {v!r})")
    return v


def _ascending(s: DictConfig, where: str, k: str) -> None:
    v = OmegaConf.select(s, k)
    ok = OmegaConf.is_list(v) and len(v) > 0
    if ok:
        try:
            vals = [float(x) for x in v]
            ok = all(x >= 0 for x in vals) and vals == sorted(vals) and len(set(vals)) == len(vals)
        except (TypeError, ValueError):
            ok = False
    if not ok:
        raise ConfigError(where, f"must be a non-empty ascending list of distinct numbers >= 0 (got {v!r})")


def _regions(regions, key) -> None:
    """``regions``: null, or a mapping of plain names to boxes."""
    if regions is None:
        return
    if not OmegaConf.is_dict(regions):
        raise ConfigError(key("regions"), "must be a mapping name -> {lat_min, lat_max, lon_min, lon_max}")
    from ..inventory.gridding import bbox_tuple

    for r, box in regions.items():
        plain_name(r, key(f"regions.{r}"))
        bbox_tuple(box, key(f"regions.{r}"))


def _period(value, key: str) -> None:
    import pandas as pd

    try:
        pd.Period("2019-01-01", freq=str(value))
    except Exception:  # noqa: BLE001 - any pandas refusal
        raise ConfigError(key, f"must be a pandas period alias such as M or W (got {value!r})") from None


def log_to(cfg: DictConfig) -> str:
    v = OmegaConf.select(cfg, "evaluate.log_to", default="model_run")
    if v not in LOG_TO:
        raise ConfigError("evaluate.log_to", f"must be one of {', '.join(LOG_TO)} (got {v!r})")
    return str(v)


def differs_from_pipeline(cfg: DictConfig, params: Path = Path("params.yaml")) -> bool:
    """True when the ``evaluate`` settings (and what they interpolate) differ from those of the workspace's
    ``params.yaml`` (what the DVC stage runs): a by-hand run with overrides. False without a readable params.yaml."""
    if not params.exists():
        return False
    try:
        pipeline = OmegaConf.load(params)
        mine = OmegaConf.to_container(cfg.evaluate, resolve=True)
        theirs = OmegaConf.to_container(pipeline.evaluate, resolve=True)
    except Exception:  # noqa: BLE001 - a broken params.yaml is not this stage's business
        return False
    for d in (mine, theirs):
        d.pop("collection", None)
        d.pop("log_to", None)
    return mine != theirs


def tables_for(cfg: DictConfig, name: str) -> list[dict]:
    """The configured hotspot tables of a collection: ``[{name, path, kind, required}]`` (paths formatted)."""
    tabs = OmegaConf.select(cfg, "evaluate.tables")
    if not tabs or not OmegaConf.is_dict(tabs):
        raise ConfigError("evaluate.tables", "must map table names to {path, kind, required}")
    out = []
    for t, spec in OmegaConf.to_container(tabs, resolve=True).items():
        plain_name(t, f"evaluate.tables.{t}")
        if not isinstance(spec, dict) or not spec.get("path"):
            raise ConfigError(f"evaluate.tables.{t}.path", "missing (path of the hotspot table)")
        kind = spec.get("kind", "overpass")
        if kind not in TABLE_KINDS:
            raise ConfigError(f"evaluate.tables.{t}.kind", f"must be overpass or composite (got {kind!r})")
        path = str(spec["path"]).replace("{collection}", name)
        out.append({"name": t, "path": Path(path), "kind": kind, "required": bool(spec.get("required", False))})
    if not any(t["required"] for t in out):
        raise ConfigError("evaluate.tables", "no table is required: mark the model's table required: true")
    return out


def collections_to_run(cfg: DictConfig) -> list[str]:
    """The collections to evaluate: ``evaluate.collection``, or every configured one whose ingest grid and
    required tables exist."""
    ev = cfg.evaluate
    if OmegaConf.select(ev, "collections") is None:
        raise ConfigError("evaluate.collections", "missing (conf/evaluate/default.yaml defines them)")
    known = list(ev.collections or {})
    for c in known:
        plain_name(c, f"evaluate.collections.{c}")
    chosen = OmegaConf.select(ev, "collection")
    if chosen:
        plain_name(chosen, "evaluate.collection")
        if chosen not in known:
            raise ConfigError("evaluate.collection", f"unknown collection {chosen!r} (configured: {', '.join(known)})")
        return [str(chosen)]
    from ..contracts.grid import GRID_FILE

    out = []
    for c in known:
        ready = (ingest_dir(cfg, c) / GRID_FILE).exists() and all(
            t["path"].exists() for t in tables_for(cfg, c) if t["required"]
        )
        if ready:
            out.append(c)
    if not out:
        raise ConfigError(
            "evaluate.collection", f"no collection has ingest and detect outputs yet (configured: {known})"
        )
    return out


def ingest_dir(cfg: DictConfig, name: str) -> Path:
    return Path(str(cfg.evaluate.ingest_dir)) / name


def detect_dir(cfg: DictConfig, name: str) -> Path:
    return Path(str(cfg.evaluate.detect_dir)) / name


def out_dir(cfg: DictConfig, name: str) -> Path:
    return Path(str(cfg.evaluate.out_dir)) / name
