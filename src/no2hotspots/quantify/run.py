"""The ``quantify`` stage: NOx and CO2 emission rates with 1-sigma uncertainties for every hotspot and site.

Per collection (``quantify.collections.<name>``; every other ``quantify.*`` key can be overridden there):

1. read the overpasses (:func:`.inputs.overpasses`) and the detect stage's hotspots (:func:`.inputs.read_hotspots`);
2. group hotspots of all overpasses into sites (:mod:`.period`);
3. per overpass: winds at the hotspots and sites (:mod:`no2hotspots.winds`), then each configured estimator
   (``methods``: csf, ime, divergence, and ddeq_csf where ddeq is installed and ``ddeq.enabled``) on the local scene,
   converted to t NOx/yr (:mod:`.chemistry`) and Mt CO2/yr (:mod:`.co2`);
4. per site and method: the combination of its overpass estimates (:func:`.period.combine`);
5. where an inventory (or the OSSE truth) is configured: the evaluation (:mod:`.evaluation`).

Outputs in ``<out_dir>/<collection>/`` (replaced as a whole, atomically) and ``<metrics_dir>/quantify_<name>.json``:
``hotspot_rates.csv`` (one row per hotspot, the key columns of every method), ``estimates_overpass.csv`` (one row
per hotspot and method, with every uncertainty component), ``estimates_site_overpass.csv`` (sites in every overpass
used for the period), ``estimates_period.csv`` (one row per site and method), ``quantify.json`` (settings, counts,
evaluation), ``scatter_overpass.png`` / ``scatter_period.png`` (estimates against the truth).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time as _time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from .. import units
from ..atomic import atomic_group, to_builtin, write_json
from ..config import PLAIN_NAME, bool_value, int_value
from ..errors import ConfigError, InputFileError
from ..winds import open_winds
from ..winds.field import expand_paths
from . import chemistry, csf, ddeq_ref, divergence, estimate, ime, inputs, spool
from .co2 import CO2Config, InventoryMatcher
from .estimate import COMPONENTS, Ramp
from .evaluation import evaluate_table, scatter_plot
from .overpass import Context, OverpassTask, estimate_rows, quantify_overpass, quantify_point  # noqa: F401 (API)
from .period import ALONG_WIND, SITE_SOURCES, PeriodConfig, combine, period_sites, sites_from_hotspots
from .plume import PlumeDirectionConfig
from .position import PositionConfig, site_spread_km
from .spool import SpooledRows
from .structure import StructureConfig

log = logging.getLogger(__name__)

ESTIMATORS = {"csf": csf, "ime": ime, "divergence": divergence}
METHODS = (*ESTIMATORS, ddeq_ref.METHOD)
DIRECTION_MODES = ("auto", "wind", "plume")
#: run statistics: returned and logged, never written to quantify.json (a DVC output: same inputs, same bytes)
RUN_STATS = ("units_computed", "units_reused")
SIGMA_COMPONENTS = (*COMPONENTS,)
#: the code an overpass unit's rows depend on (part of its hash)
UNIT_CODE = ("no2hotspots.quantify", "no2hotspots.winds", "no2hotspots.evaluate.geo", "no2hotspots.contracts.grid",
             "no2hotspots.readfile")  # fmt: skip
#: header of an estimates table without rows (no hotspot in the collection): still a readable CSV
EMPTY_COLUMNS = ("hotspot_id", "site_id", "time", "lat", "lon", "method", "nox_t_per_yr", "nox_sigma_t_per_yr",
                 "co2_mt_per_yr", "co2_sigma_mt_per_yr", "inventory_nox_t_per_yr", "quality_flags")  # fmt: skip

#: the columns of the estimate rows the stage reads back into memory (:mod:`.spool`): what the hotspot table, the
#: period table and the evaluation use; every other column goes from the spool into the CSVs without a stop
HOTSPOT_COLUMNS = ("hotspot_id", "method", "nox_t_per_yr", "nox_sigma_t_per_yr", "co2_mt_per_yr",
                   "co2_sigma_mt_per_yr", "quality_flags", "wind_speed_m_s", "wind_from_deg", "wind_from_spread_deg",
                   "wind_source", "direction_source", "upwind_sources", "inventory_nox_t_per_yr",
                   "inventory_co2_t_per_yr", "inventory_ids")  # fmt: skip
SITE_COLUMNS = ("site_id", "method", "detected", "nox_t_per_yr", "inventory_nox_t_per_yr", "direction_used_deg",
                "upwind_sources", *(f"nox_sigma_{c}_t_per_yr" for c in SIGMA_COMPONENTS))  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# configuration


def _dc(cls, c, key: str):
    """Build a frozen config dataclass from a config section, naming the key of a bad value."""
    if c is None:
        return cls()
    d = OmegaConf.to_container(c, resolve=True) if OmegaConf.is_config(c) else dict(c)
    fields = cls.__dataclass_fields__
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", f"unknown key (known: {', '.join(fields)})")
    out = {}
    for k, v in d.items():
        default = fields[k].default
        if isinstance(default, bool):
            out[k] = bool_value(f"{key}.{k}", v)
            continue
        if isinstance(default, int):
            out[k] = int_value(f"{key}.{k}", v, 0)  # 2.5 is refused, never truncated
            continue
        try:
            if isinstance(default, float) or (default is None and k.endswith("_km")):
                out[k] = None if v is None else float(v)
            elif isinstance(default, tuple):
                out[k] = tuple(float(x) for x in v)
            else:
                out[k] = v
        except (TypeError, ValueError):
            raise ConfigError(f"{key}.{k}", f"must be a number (got {v!r})") from None
        if isinstance(out[k], float) and out[k] < 0:
            raise ConfigError(f"{key}.{k}", f"must be >= 0 (got {v!r})")
    return cls(**out)


def _csf_config(c) -> csf.CSFConfig:
    cfg = _dc(csf.CSFConfig, c, "quantify.csf")
    band = cfg.inflow_km
    if band and not (len(band) == 2 and 0 < band[0] < band[1]):
        raise ConfigError("quantify.csf.inflow_km", f"must be [] or [near, far] km, 0 < near < far (got {band!r})")
    return cfg


def collection_config(cfg: DictConfig, name: str) -> DictConfig:
    """``quantify`` with ``quantify.collections.<name>`` merged on top (without the collections block)."""
    base = OmegaConf.to_container(cfg.quantify, resolve=True)
    cols = base.pop("collections", {}) or {}
    if name not in cols:
        raise ConfigError("quantify.collection", f"unknown collection {name!r}; known: {sorted(cols)}")
    return OmegaConf.merge(OmegaConf.create(base), OmegaConf.create(cols[name] or {}))


def settings(q: DictConfig, name: str) -> dict[str, Any]:
    key = f"quantify.collections.{name}"
    methods = list(q.get("methods") or [])
    bad = [m for m in methods if m not in METHODS]
    if not methods or bad:
        raise ConfigError("quantify.methods", f"must list some of {', '.join(METHODS)} (got {methods!r})")
    direction = str(q.get("direction", "auto"))
    if direction not in DIRECTION_MODES:
        raise ConfigError("quantify.direction", f"must be one of {', '.join(DIRECTION_MODES)} (got {direction!r})")
    chem = _chemistry(q.get("chemistry") or {})
    co2cfg = _co2_config(q.get("co2") or {})
    period = _period_config(q.get("period") or {})
    ev = q.get("evaluation") or {}
    dd = q.get("ddeq") or {}
    methods = _with_ddeq(methods, dd)
    return {
        "name": name,
        "methods": methods,
        "direction": direction,
        "min_wind_m_s": float(q.get("min_wind_m_s", 2.0)),
        "max_wind_speed_rel_sigma": _positive(q, "max_wind_speed_rel_sigma", 0.8),
        "scene_half_km": float(q.get("scene_half_km", 80.0)),
        "exclude_other_km": float(q.get("exclude_other_km", 8.0)),
        "exclude_plume_efolds": _in_range(q, "exclude_plume_efolds", 0.0, 0.0, np.inf),
        "exclude_plume_deg": _in_range(q, "exclude_plume_deg", 15.0, 0.0, 89.0),
        "exclude_sites": bool_value("quantify.exclude_sites", q.get("exclude_sites", False)),
        "disk_split_min_km": None
        if q.get("disk_split_min_km", 10.0) is None
        else _positive(q, "disk_split_min_km", 10.0),
        "chemistry": chem,
        "csf": _csf_config(q.get("csf")),
        "ime": _dc(ime.IMEConfig, q.get("ime"), "quantify.ime"),
        "divergence": _dc(divergence.DivergenceConfig, q.get("divergence"), "quantify.divergence"),
        "position": _dc(PositionConfig, q.get("position"), "quantify.position"),
        "structure": _structure_config(q.get("structure") or {}),
        "plume_direction": _dc(PlumeDirectionConfig, q.get("plume_direction"), "quantify.plume_direction"),
        "ddeq": _dc(
            ddeq_ref.DdeqConfig, {k: v for k, v in dd.items() if k not in ("enabled", "sites")}, "quantify.ddeq"
        ),
        "ddeq_sites": bool_value("quantify.ddeq.sites", dd.get("sites", False)),
        "co2": co2cfg,
        "period": period,
        "bins": [float(b) for b in (ev.get("bins_t_per_yr") or [2000, 5000, 10000])],
        "acceptance_min_truth": float((ev.get("acceptance") or {}).get("min_truth_t_per_yr", 5000)),
        "acceptance_min_overpasses": int_value(
            "quantify.evaluation.acceptance.min_overpasses", (ev.get("acceptance") or {}).get("min_overpasses", 3), 0
        ),
        "preferred_method": str(q.get("preferred_method", "csf")),
        "winds": q.get("winds"),
        "wind_travel": bool_value("quantify.wind_travel", q.get("wind_travel", False)),
        "wind_window_h": _window_limits(q.get("wind_window_h", [0.5, 3.0])),
        "inventory": q.get("inventory"),
        "ingest_dir": str(q.get("ingest_dir")),
        "detect_dir": str(q.get("detect_dir")),
        "units_dir": None if q.get("units_dir") in (None, "") else str(q.get("units_dir")),
        "out_dir": Path(str(q.get("out_dir"))) / name,
        "metrics_path": Path(str(q.get("metrics_dir"))) / f"quantify_{name}.json",
        "key": key,
    }


def _window_limits(v) -> tuple[float, float]:
    """``quantify.wind_window_h``: [shortest, longest] averaging window of the methods' travel-time winds [h]."""
    try:
        lo, hi = (float(x) for x in v)
    except (TypeError, ValueError):
        raise ConfigError("quantify.wind_window_h", f"must be [shortest, longest] in hours (got {v!r})") from None
    if not 0.0 <= lo <= hi <= 24.0:
        raise ConfigError("quantify.wind_window_h", f"must satisfy 0 <= shortest <= longest <= 24 (got {v!r})")
    return lo, hi


def _positive(q, key: str, default: float) -> float:
    v = q.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        raise ConfigError(f"quantify.{key}", f"must be a number > 0 (got {v!r})")
    return float(v)


def _in_range(q, key: str, default: float, lo: float, hi: float) -> float:
    v = q.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise ConfigError(f"quantify.{key}", f"must be a number in [{lo:g}, {hi:g}] (got {v!r})")
    return float(v)


def _chemistry(ch) -> chemistry.Chemistry:
    """``quantify.chemistry``: the NOx/NO2 ratio, the NO2 lifetime and the near-source NO -> NO2 conversion, with
    their 1-sigma."""
    lt = ch.get("lifetime_h", 4.0)
    ramp = _dc(Ramp, ch.get("no2_ramp"), "quantify.chemistry.no2_ramp")
    for k in ("r_s", "f0"):
        if ramp.on and not getattr(ramp, k) > 0:
            raise ConfigError(f"quantify.chemistry.no2_ramp.{k}", f"must be > 0 where m > 0 (got {getattr(ramp, k)})")
    chem = chemistry.Chemistry(
        float(ch.get("nox_no2_ratio", 1.32)),
        float(ch.get("nox_no2_ratio_sigma", 0.13)),
        None if lt is None else float(lt),
        float(ch.get("lifetime_sigma_h", 1.5)),
        ramp,
    )
    if not chem.nox_no2_ratio >= 1.0:
        raise ConfigError(
            "quantify.chemistry.nox_no2_ratio", f"must be >= 1 (NOx includes NO2; got {chem.nox_no2_ratio})"
        )
    if chem.lifetime_h is not None and not chem.lifetime_h > 0:
        raise ConfigError("quantify.chemistry.lifetime_h", f"must be > 0 hours or null (got {chem.lifetime_h})")
    return chem


def _structure_config(sc) -> StructureConfig:
    """``quantify.structure``: per method the relative 1-sigma and the bias of the method-structure term."""
    sc = OmegaConf.to_container(sc, resolve=True) if OmegaConf.is_config(sc) else dict(sc)
    keys = ("rel_sigma", "bias", "bias_slope", "bias_turning")
    unknown = sorted(set(sc) - set(keys))
    if unknown:
        raise ConfigError(f"quantify.structure.{unknown[0]}", f"unknown key (known: {', '.join(keys)})")
    out = {}
    for key, low in (("rel_sigma", 0.0), ("bias", None), ("bias_slope", 0.0), ("bias_turning", 0.0)):
        d = sc.get(key) or {}
        if not isinstance(d, dict):
            raise ConfigError(f"quantify.structure.{key}", f"must map methods to numbers (got {d!r})")
        vals = {}
        for m, v in d.items():
            k = f"quantify.structure.{key}.{m}"
            if m not in METHODS:
                raise ConfigError(k, f"unknown method (known: {', '.join(METHODS)})")
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v >= 0 if low == 0.0 else v > 0):
                raise ConfigError(k, f"must be a number {'>= 0' if low == 0.0 else '> 0'} (got {v!r})")
            vals[m] = float(v)
        out[key] = vals
    return StructureConfig(out["rel_sigma"], out["bias"], out["bias_slope"], out["bias_turning"])


def _co2_config(co2c) -> CO2Config:
    """``quantify.co2``: inventory matching distances and the CO2/NOx ratios."""
    dr = OmegaConf.to_container(co2c.get("default_ratio"), resolve=True) if co2c.get("default_ratio") else None
    return CO2Config(
        float(co2c.get("match_km", 10.0)),
        float(co2c.get("fuel_search_km", 30.0)),
        float(co2c.get("matched_ratio_rel_sigma", 0.25)),
        {k: (float(v[0]), float(v[1])) for k, v in dr.items()} if dr else CO2Config().default_ratio,
    )


def _period_config(pc) -> PeriodConfig:
    """``quantify.period``: how overpass estimates of a site are combined."""
    use = str(pc.get("use", "observed"))
    if use not in ("observed", "detected"):
        raise ConfigError("quantify.period.use", f"must be observed or detected (got {use!r})")
    corr = dict(PeriodConfig().correlation)
    for k, v in (pc.get("correlation") or {}).items():
        if k == "position" and v == ALONG_WIND:
            corr[k] = v
        elif isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            also = f" or {ALONG_WIND}" if k == "position" else ""
            raise ConfigError(f"quantify.period.correlation.{k}", f"must be in 0..1{also} (got {v!r})")
        else:
            corr[k] = float(v)
    min_overpasses = int_value("quantify.period.min_overpasses", pc.get("min_overpasses", 1), 1)
    sites = pc.get("sites", "composite")
    if sites not in SITE_SOURCES:
        raise ConfigError("quantify.period.sites", f"must be one of {', '.join(SITE_SOURCES)} (got {sites!r})")
    min_detections = int_value("quantify.period.min_detections", pc.get("min_detections", 1), 1)
    return PeriodConfig(float(pc.get("merge_km", 10.0)), use, min_overpasses, corr, str(sites), min_detections)


def _with_ddeq(methods: list[str], dd) -> list[str]:
    """``methods`` without the ddeq reference where ``quantify.ddeq.enabled`` or the installation rule it out."""
    enabled = str(dd.get("enabled", "auto")).lower()
    if enabled not in ("auto", "true", "false"):
        raise ConfigError("quantify.ddeq.enabled", f"must be auto, true or false (got {enabled!r})")
    if ddeq_ref.METHOD in methods and enabled == "false":
        methods.remove(ddeq_ref.METHOD)
    if enabled == "true" and not ddeq_ref.available():
        raise ConfigError("quantify.ddeq.enabled", "true but ddeq is not installed (pip install ddeq==1.1)")
    use_ddeq = enabled != "false" and ddeq_ref.available() and ddeq_ref.METHOD in methods
    if ddeq_ref.METHOD in methods and not use_ddeq:
        methods.remove(ddeq_ref.METHOD)
        log.info("ddeq is not installed: the ddeq_csf reference is skipped (quantify.ddeq.enabled=auto)")
    return methods


def collections(cfg: DictConfig) -> list[str]:
    """The collections to quantify (``quantify.collection``, else every key of ``quantify.collections``): plain
    names only, since each becomes a folder (``<out_dir>/<name>``) and a file name (``quantify_<name>.json``)."""
    one = OmegaConf.select(cfg, "quantify.collection", default=None)
    known = list((OmegaConf.select(cfg, "quantify.collections", default=None) or {}).keys())
    named = [(f"quantify.collections.{k}", k) for k in known]
    if one is not None:
        named.insert(0, ("quantify.collection", one))
    for key, n in named:
        if not isinstance(n, str) or not PLAIN_NAME.match(n) or n in (".", ".."):
            raise ConfigError(key, f"must be a plain collection name (letters, digits, _ . -; no / or ..; got {n!r})")
    if one:
        if one not in known:
            raise ConfigError("quantify.collection", f"unknown collection {one!r}; known: {sorted(known)}")
        return [str(one)]
    if not known:
        raise ConfigError("quantify.collections", "empty; configure the collections to quantify")
    return known


# ---------------------------------------------------------------------------------------------------------------
# the collection: each overpass a unit (quantify/overpass.py)


def _warn_ramp_mismatch(s: dict) -> None:
    """An OSSE's truth folder holds its resolved config (``config.json`` beside ``sources.csv``): say so when its
    world rendered a NO -> NO2 conversion (``osse.transport.no2_ramp.m`` > 0) and the estimators' is off, or the
    other way round (a real inventory has no such file and is not checked)."""
    spec = s["inventory"]
    conf = Path(spec).parent / "config.json" if isinstance(spec, str) and spec.endswith(".csv") else None
    if conf is None or not conf.is_file():
        return
    try:
        m = json.loads(conf.read_text())["osse"]["transport"].get("no2_ramp", {}).get("m", 0.0)
        world = bool(np.max(np.asarray(m, float)) > 0)
    except (ValueError, KeyError, TypeError, AttributeError):
        return  # not an OSSE's truth folder
    if world != s["chemistry"].ramp.on:
        log.warning("%s: the OSSE behind %s renders %s NO -> NO2 conversion but quantify.chemistry.no2_ramp is %s "
                    "for it: its estimates will read %s", s["key"], spec, "a" if world else "no",
                    "off" if world else "on", "low" if world else "high")  # fmt: skip


def quantify_collection(cfg: DictConfig, name: str, model_uncertainty: Callable | None = None) -> dict:
    t0 = _time.perf_counter()
    q = collection_config(cfg, name)
    s = settings(q, name)
    hot, sites, site_source = hotspots_and_sites(s, name)
    inv = inputs.load_sites(s["inventory"], f"{s['key']}.inventory")
    _warn_ramp_mismatch(s)
    matcher = InventoryMatcher(inv, s["co2"])
    site_ratio = {int(r.site_id): matcher.ratio(r.lat, r.lon) for r in sites.itertuples()}
    hook = model_uncertainty or estimate.MODEL_UNCERTAINTY  # resolved here: worker processes do not share globals
    ctx = Context(s, sites, site_ratio, matcher, inv, hook)
    ovs = inputs.overpass_list(name, s["ingest_dir"])
    wind_files = expand_paths((s["winds"] or {}).get("paths"))
    log.info("%s: %d overpass(es), %d hotspot(s), %d period site(s) (%s); %d wind file(s); methods: %s", name,
             len(ovs), len(hot), len(sites), site_source, len(wind_files), s["methods"])  # fmt: skip
    from ..parallel import map_units

    with tempfile.TemporaryDirectory(prefix=f"quantify-{name}-") as spool_dir:  # used where nothing is kept
        tasks = overpass_tasks(s, name, ovs, hot, ctx, wind_files, spool_dir)
        results = map_units(quantify_overpass, tasks, cfg, desc=f"quantify {name}", shared={"ctx": ctx})
        if tasks and tasks[0].unit_hash:
            units.prune(tasks[0].units_dir, [t.overpass.key for t in tasks])
            for old in Path(tasks[0].units_dir).glob("*.rows.pkl"):  # the layout before the spool: no marker lists them
                old.unlink(missing_ok=True)
        rows = {k: SpooledRows(r["files"][k] for r in results if r["n_rows"][k]) for k in spool.KINDS}
        est_h = rows["hotspots"].narrow(HOTSPOT_COLUMNS)
        est_s = rows["sites"].narrow(SITE_COLUMNS)
        period = period_table(est_s, sites, site_ratio, s)
        wide = hotspot_wide(hot, est_h, s)
        kinds = sorted(set().union(*(r["wind_kinds"] for r in results))) if results else []
        run_info = {
            "period_sites": site_source,
            "units_computed": sum(not r["reused"] for r in results),
            "units_reused": sum(bool(r["reused"]) for r in results),
        }
        return write_outputs(name, s, rows, est_h, period, wide, winds_description(s, len(wind_files), kinds),
                             len(ovs), inv is not None, t0, run_info)  # fmt: skip


def hotspots_and_sites(s: dict, name: str) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The hotspot table with ``site_id`` (hotspot sites) and ``period_site_id`` (0 = none), the period sites (with
    ``position_spread_km``, :func:`.position.site_spread_km`) and what they are (:func:`.period.period_sites`)."""
    hot = inputs.read_hotspots(name, s["detect_dir"])
    hsites, site_of = sites_from_hotspots(hot, s["period"].merge_km)
    hot = hot.assign(site_id=site_of)
    composite = inputs.read_composite(name, s["detect_dir"]) if s["period"].sites == "composite" else None
    sites, period_of, what = period_sites(s["period"], hot, hsites, composite)
    pos = s.get("position", PositionConfig())
    sites = sites.assign(position_spread_km=site_spread_km(sites, hot, period_of, pos.min_hotspots))
    if what != s["period"].sites:
        log.info("%s: the composite lists no site; period estimates at the %d hotspot site(s)", name, len(sites))
    return hot.assign(period_site_id=period_of), sites, what


def overpass_tasks(
    s: dict, name: str, ovs: list, hot: pd.DataFrame, ctx: Context, wind_files: list, spool_dir: str | None = None
) -> list:
    """One :class:`.overpass.OverpassTask` per overpass: its hotspots, the wind files around its time and (without
    a model-uncertainty hook, whose effect cannot be hashed) its unit hash, its rows going to the resume cache
    (``units_dir``); without one to ``spool_dir`` (None: the rows come back in the results)."""
    units_dir = Path(s["units_dir"]) / name if s["units_dir"] and ctx.model_uncertainty is None else None
    if units_dir:
        units_dir.mkdir(parents=True, exist_ok=True)
    rows_dir = str(units_dir) if units_dir else spool_dir
    near = _wind_files_near(s, ovs, wind_files)
    fixed = _fixed_digest(s, ctx) if units_dir else ""
    records = hot.to_dict("records")
    tasks = []
    for o, h, files in zip(ovs, inputs.hotspots_by_overpass(hot, ovs), near):
        rows = tuple({"Index": i, **records[hot.index.get_loc(i)]} for i in h.index)
        paths = tuple(str(wind_files[k]) for k in files)
        uh = ""
        if units_dir:
            identity = [fixed, o.key, units.file_identity(o.path), [units.file_identity(p) for p in paths]]
            uh = units.digest([*identity, hashlib.sha256(repr(rows).encode()).hexdigest()])
        tasks.append(OverpassTask(o, rows, paths, rows_dir, uh))
    return tasks


def _wind_files_near(s: dict, ovs: list, files: list) -> list[np.ndarray]:
    """Per overpass, the positions in ``files`` of the wind files whose times reach within the averaging window +
    3 h of it (the wind field takes files within 2 h), with those whose times could not be read; where none does,
    the nearest, so that the overpass gets the same 'time not covered' fallback as with every file."""
    if not files:
        return [np.zeros(0, int) for _ in ovs]
    longest = float((s["winds"] or {}).get("time_window_h", 1.0))
    if s.get("wind_travel", False):
        longest = max(longest, s["wind_window_h"][1])
    window = np.timedelta64(int((longest + 3.0) * 3600), "s")
    spans = inputs.wind_file_spans(files)
    nat = np.datetime64("NaT", "ns")
    t0 = np.array([sp[0] if sp else nat for sp in spans], dtype="datetime64[ns]")
    t1 = np.array([sp[1] if sp else nat for sp in spans], dtype="datetime64[ns]")
    unknown = np.isnat(t0)
    out = []
    for o in ovs:
        hit = unknown | ((t1 >= o.time - window) & (t0 <= o.time + window))
        if not hit.any():
            gap = np.minimum(np.abs(t0 - o.time), np.abs(t1 - o.time))
            hit[int(np.argmin(gap))] = True
        out.append(np.flatnonzero(hit))
    return out


def _fixed_digest(s: dict, ctx: Context) -> str:
    """What every unit of the collection depends on besides its own inputs: code, settings, sites, inventory."""
    skip = {"out_dir", "metrics_path", "bins", "acceptance_min_truth", "acceptance_min_overpasses",
            "preferred_method", "units_dir", "inventory"}  # fmt: skip
    inv = ctx.inv
    return units.digest(
        {
            "code": units.code_digest(*UNIT_CODE),
            "settings": repr({k: v for k, v in sorted(s.items()) if k not in skip}),
            "sites": ctx.sites.astype(str).to_dict("list"),
            "inventory": None if inv is None else str(pd.util.hash_pandas_object(inv.astype(str)).sum()),
        }
    )


def winds_description(s: dict, n_files: int, kinds: list[str]) -> str:
    """What :meth:`WindField.describe` says for all the collection's wind files (``kinds``: the layouts the
    overpasses opened)."""
    spec = open_winds(s["winds"], paths=[], key=f"{s['key']}.winds")
    if not n_files:
        return spec.describe()
    level = "as given (simple layout)" if "simple" in kinds else spec.spec.describe()
    return f"{n_files} wind file(s) ({', '.join(kinds)}), level {level}"


def period_table(est_s: pd.DataFrame, sites: pd.DataFrame, site_ratio: dict, s: dict) -> pd.DataFrame:
    rows = []
    if est_s.empty:
        return pd.DataFrame(columns=["site_id", "lat", "lon", "method", "n_overpasses", "nox_t_per_yr",
                                     "nox_sigma_t_per_yr", "co2_mt_per_yr", "co2_sigma_mt_per_yr"])  # fmt: skip
    corr = s["period"].correlation
    for (sid, m), g in est_s.groupby(["site_id", "method"], sort=True):
        comps = {c: g[f"nox_sigma_{c}_t_per_yr"].to_numpy(float) for c in SIGMA_COMPONENTS}
        dirs = g["direction_used_deg"].to_numpy(float) if "direction_used_deg" in g else None
        # used overpass estimates with a known source upwind (their plumes read as this site's own)
        upwind = g["upwind_sources"].to_numpy(float) if "upwind_sources" in g else np.full(len(g), np.nan)
        res = combine(g["nox_t_per_yr"].to_numpy(float), comps, corr, dirs)
        ratio = site_ratio[int(sid)]
        used = np.isfinite(g["nox_t_per_yr"].to_numpy(float))
        # used estimates with a component that could not be computed (flagged per overpass; combine takes the
        # largest relative value of that component among the site's others, or 0 where none has it: a lower bound)
        unknown = np.zeros(len(g), bool)
        for v in comps.values():
            unknown |= ~np.isfinite(v)
        truth = g["inventory_nox_t_per_yr"].to_numpy(float)[used]
        # the truth over the overpasses used (injected OSSE changes make it vary); none where the inventory sources
        # matched within co2.match_km all lie nearer to another site (disk_split_min_km), the matched sum where no
        # estimate was used
        truth = float(np.nanmean(truth)) if np.isfinite(truth).any() else np.nan if used.any() else ratio.nox_t_per_yr
        ok = res["n_overpasses"] >= s["period"].min_overpasses
        val = res["value"] if ok else np.nan
        sig = res["sigma"] if ok else np.nan
        site = sites[sites["site_id"] == sid].iloc[0]
        parts = res.get("parts", {})
        co2 = val * ratio.ratio / 1e6
        co2s = np.sqrt((sig * ratio.ratio / 1e6) ** 2 + (co2 * ratio.rel_sigma) ** 2) if ok else np.nan
        rows.append(
            {
                "site_id": int(sid),
                "lat": float(site["lat"]),
                "lon": float(site["lon"]),
                "n_detections": int(site["n_detections"]),
                "method": m,
                "n_overpasses": res["n_overpasses"],
                "n_detected_overpasses": int(g.loc[np.isfinite(g["nox_t_per_yr"]), "detected"].sum()),
                "n_overpasses_unknown_sigma": int((used & unknown).sum()),
                "n_overpasses_upwind_sources": int((used & (upwind > 0)).sum()),
                "nox_sigma_lower_bound": bool(res["n_unknown_left"] > 0),
                "nox_t_per_yr": val,
                "nox_sigma_t_per_yr": sig,
                "nox_sigma_random_t_per_yr": res["random"],
                "nox_sigma_spread_t_per_yr": res["spread"],
                "nox_sigma_systematic_t_per_yr": res["systematic"],
                **{f"nox_sigma_{c}_t_per_yr": parts.get(c, np.nan) for c in SIGMA_COMPONENTS},
                "co2_mt_per_yr": co2,
                "co2_sigma_mt_per_yr": co2s,
                "co2_nox_ratio": ratio.ratio,
                "co2_basis": ratio.basis,
                "inventory_nox_t_per_yr": truth,
                "inventory_co2_t_per_yr": ratio.co2_t_per_yr,
                "inventory_ids": " ".join(ratio.matched_ids),
            }
        )
    return pd.DataFrame(rows)


def hotspot_wide(hot: pd.DataFrame, est_h: pd.DataFrame, s: dict) -> pd.DataFrame:
    """One row per hotspot: position, inventory match, and for each method NOx/CO2 with 1-sigma."""
    out = hot[["hotspot_id", "time", "peak_lat", "peak_lon", "site_id", "period_site_id"]].copy()
    out["time"] = out["time"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    out["period_site_id"] = out["period_site_id"].astype("Int64").where(out["period_site_id"] > 0)
    if est_h.empty:
        return out
    # the point's columns from the preferred method's row (its wind: each method has its own, wind_travel)
    pref = est_h[est_h["method"] == s["preferred_method"]]
    first = pd.concat([pref, est_h]).drop_duplicates("hotspot_id").set_index("hotspot_id")
    for col in (
        "wind_speed_m_s",
        "wind_from_deg",
        "wind_from_spread_deg",
        "wind_source",
        "direction_source",
        "upwind_sources",
        "inventory_nox_t_per_yr",
        "inventory_co2_t_per_yr",
        "inventory_ids",
    ):
        out[col] = out["hotspot_id"].map(first[col])
    for m in s["methods"]:
        e = est_h[est_h["method"] == m].set_index("hotspot_id")
        for src, dst in (
            ("nox_t_per_yr", f"nox_{m}_t_per_yr"),
            ("nox_sigma_t_per_yr", f"nox_{m}_sigma_t_per_yr"),
            ("co2_mt_per_yr", f"co2_{m}_mt_per_yr"),
            ("co2_sigma_mt_per_yr", f"co2_{m}_sigma_mt_per_yr"),
            ("quality_flags", f"{m}_quality_flags"),
        ):
            out[dst] = out["hotspot_id"].map(e[src])
    return out


def evaluation_against_truth(s: dict, est_h: pd.DataFrame, period: pd.DataFrame) -> dict:
    """quantify.json's ``evaluation``: the overpass and period estimates against the inventory (or the OSSE's
    truth), and the period estimates that pass the acceptance filter."""
    evaluation = {}
    bins = s["bins"]
    if not est_h.empty:
        evaluation["overpass"] = evaluate_table(
            est_h, value="nox_t_per_yr", sigma="nox_sigma_t_per_yr", truth="inventory_nox_t_per_yr", bins=bins
        )
        # subsets, named for what they leave out: the hotspots with no known source upwind (a neighbour's plume
        # passing through reads as the hotspot's own: benchmarks/quantify_passthrough.py) and those with one
        up = est_h["upwind_sources"].to_numpy(float)
        for key, keep in (("overpass_clear_upwind_only", up == 0), ("overpass_known_source_upwind_only", up > 0)):
            evaluation[key] = evaluate_table(
                est_h[keep], value="nox_t_per_yr", sigma="nox_sigma_t_per_yr", truth="inventory_nox_t_per_yr",
                bins=bins,
            )  # fmt: skip
    if not period.empty:
        evaluation["period"] = evaluate_table(
            period, value="nox_t_per_yr", sigma="nox_sigma_t_per_yr", truth="inventory_nox_t_per_yr", bins=bins
        )
        acc = (period["inventory_nox_t_per_yr"] > s["acceptance_min_truth"]) & (
            period["n_overpasses"] >= s["acceptance_min_overpasses"]
        )
        evaluation["period_acceptance"] = {
            "filter": f"inventory NOx > {s['acceptance_min_truth']:g} t/yr and >= "
            f"{s['acceptance_min_overpasses']} overpass estimates",
            **evaluate_table(
                period, value="nox_t_per_yr", sigma="nox_sigma_t_per_yr", truth="inventory_nox_t_per_yr",
                bins=bins, extra_filter=acc,
            ),
        }  # fmt: skip
    return evaluation


def write_outputs(name, s, rows, est_h, period, wide, wind_desc, n_overpasses, has_truth, t0, run_info=None) -> dict:
    """The stage's files (``rows``: the spooled estimate rows per kind, ``est_h``: the hotspot rows' columns
    :data:`HOTSPOT_COLUMNS`) and its summary with the run statistics."""
    evaluation = evaluation_against_truth(s, est_h, period) if has_truth else {}
    ok = lambda d: int(np.isfinite(d["nox_t_per_yr"]).sum()) if not d.empty else 0  # noqa: E731
    counts = {
        "n_overpasses": n_overpasses,
        "n_hotspots": int(wide["hotspot_id"].nunique()) if len(wide) else 0,
        "n_sites": int(period["site_id"].nunique()) if not period.empty else 0,
        "n_estimates_overpass": ok(est_h),
        "n_estimates_period": ok(period),
        "estimates_per_method": {
            m: int(np.isfinite(est_h.loc[est_h["method"] == m, "nox_t_per_yr"]).sum()) for m in s["methods"]
        }
        if not est_h.empty
        else {},
    }
    chem = s["chemistry"]
    summary = {
        "collection": name,
        **counts,
        "methods": s["methods"],
        "preferred_method": s["preferred_method"],
        "winds": wind_desc,
        "direction": s["direction"],
        "chemistry": {
            "nox_no2_ratio": chem.nox_no2_ratio,
            "nox_no2_ratio_sigma": chem.nox_no2_ratio_sigma,
            "lifetime_h": chem.lifetime_h,
            "lifetime_sigma_h": chem.lifetime_sigma_h,
        },
        "period_use": s["period"].use,
        **{k: v for k, v in (run_info or {}).items() if k not in RUN_STATS},
        "units": {"nox": "t NOx/yr (as NO2 mass)", "co2": "Mt CO2/yr", "sigma": "1-sigma"},
        "evaluation": evaluation,
    }
    with atomic_group() as out:  # the folder and the metrics file are replaced together (no2hotspots.atomic)
        tmp = out.folder(s["out_dir"])
        wide.to_csv(tmp / "hotspot_rates.csv", index=False)
        rows["hotspots"].write_csv(tmp / "estimates_overpass.csv", EMPTY_COLUMNS, {"period_site_id": "Int64"})
        rows["sites"].write_csv(tmp / "estimates_site_overpass.csv", EMPTY_COLUMNS)
        period.to_csv(tmp / "estimates_period.csv", index=False)
        write_json(tmp / "quantify.json", _clean(summary))
        if has_truth and not est_h.empty:
            scatter_plot(est_h, tmp / "scatter_overpass.png", value="nox_t_per_yr", sigma="nox_sigma_t_per_yr",
                         truth="inventory_nox_t_per_yr", title=f"{name}: overpass estimates vs inventory")  # fmt: skip
        if has_truth and not period.empty:
            scatter_plot(period, tmp / "scatter_period.png", value="nox_t_per_yr", sigma="nox_sigma_t_per_yr",
                         truth="inventory_nox_t_per_yr", title=f"{name}: period estimates vs inventory")  # fmt: skip
        out.write_json(s["metrics_path"], _clean({**counts, "evaluation": evaluation}))
    # run statistics go to the caller and the log, not into quantify.json: the same inputs give the same file
    stats = {
        **{k: v for k, v in (run_info or {}).items() if k in RUN_STATS},
        "seconds": round(_time.perf_counter() - t0, 2),
    }
    log.info(
        "%s: %d overpass estimate(s), %d site estimate(s) -> %s (units: %s computed, %s reused; %.1f s)",
        name,
        counts["n_estimates_overpass"],
        counts["n_estimates_period"],
        s["out_dir"],
        stats.get("units_computed", "-"),
        stats.get("units_reused", "-"),
        stats["seconds"],
    )
    return {**summary, **stats}


def _clean(o):
    """JSON-safe: NaN/inf -> None, numpy -> builtin."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    o = to_builtin(o)
    if isinstance(o, float) and not np.isfinite(o):
        return None
    return o


def run(cfg: DictConfig) -> dict[str, dict]:
    names = collections(cfg)
    explicit = OmegaConf.select(cfg, "quantify.collection", default=None) is not None
    out = {}
    for name in names:
        q = collection_config(cfg, name)
        grid = inputs.ingest_source(name, str(q.get("ingest_dir")))
        table = Path(str(q.get("detect_dir"))) / name / "hotspots.csv"
        if not explicit and (not grid.exists() or not table.exists()):
            log.warning("collection %s: no ingest grid or hotspot table yet (%s, %s); skipped", name, grid, table)
            continue
        if not grid.exists():
            raise InputFileError(grid, "not found; run the ingest stage for this collection first")
        out[name] = quantify_collection(cfg, name)
    return out
