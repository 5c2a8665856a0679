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

import logging
import time as _time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from ..atomic import atomic_group, to_builtin, write_json
from ..config import PLAIN_NAME, bool_value, int_value
from ..errors import ConfigError, InputFileError
from ..logs import progress_disabled
from ..winds import WindSample, open_winds
from . import chemistry, csf, ddeq_ref, divergence, ime, inputs
from .co2 import CO2Config, InventoryMatcher, co2_from_nox, nox_at
from .estimate import COMPONENTS, MODEL_UNCERTAINTY, Estimate, Wind
from .evaluation import evaluate_table, scatter_plot
from .period import PeriodConfig, combine, sites_from_hotspots
from .plume import PlumeDirectionConfig, plume_direction
from .scene import background_ring, fit_plane, local_scene, noise_model

log = logging.getLogger(__name__)

ESTIMATORS = {"csf": csf, "ime": ime, "divergence": divergence}
METHODS = (*ESTIMATORS, ddeq_ref.METHOD)
DIRECTION_MODES = ("auto", "wind", "plume")
SIGMA_COMPONENTS = (*COMPONENTS,)
#: header of an estimates table without rows (no hotspot in the collection): still a readable CSV
EMPTY_COLUMNS = ("hotspot_id", "site_id", "time", "lat", "lon", "method", "nox_t_per_yr", "nox_sigma_t_per_yr",
                 "co2_mt_per_yr", "co2_sigma_mt_per_yr", "inventory_nox_t_per_yr", "quality_flags")  # fmt: skip


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
        "scene_half_km": float(q.get("scene_half_km", 80.0)),
        "exclude_other_km": float(q.get("exclude_other_km", 8.0)),
        "chemistry": chem,
        "csf": _dc(csf.CSFConfig, q.get("csf"), "quantify.csf"),
        "ime": _dc(ime.IMEConfig, q.get("ime"), "quantify.ime"),
        "divergence": _dc(divergence.DivergenceConfig, q.get("divergence"), "quantify.divergence"),
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
        "inventory": q.get("inventory"),
        "ingest_dir": str(q.get("ingest_dir")),
        "detect_dir": str(q.get("detect_dir")),
        "out_dir": Path(str(q.get("out_dir"))) / name,
        "metrics_path": Path(str(q.get("metrics_dir"))) / f"quantify_{name}.json",
        "key": key,
    }


def _chemistry(ch) -> chemistry.Chemistry:
    """``quantify.chemistry``: the NOx/NO2 ratio and the NO2 lifetime, with their 1-sigma."""
    lt = ch.get("lifetime_h", 4.0)
    chem = chemistry.Chemistry(
        float(ch.get("nox_no2_ratio", 1.32)),
        float(ch.get("nox_no2_ratio_sigma", 0.13)),
        None if lt is None else float(lt),
        float(ch.get("lifetime_sigma_h", 1.5)),
    )
    if not chem.nox_no2_ratio >= 1.0:
        raise ConfigError(
            "quantify.chemistry.nox_no2_ratio", f"must be >= 1 (NOx includes NO2; got {chem.nox_no2_ratio})"
        )
    if chem.lifetime_h is not None and not chem.lifetime_h > 0:
        raise ConfigError("quantify.chemistry.lifetime_h", f"must be > 0 hours or null (got {chem.lifetime_h})")
    return chem


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
    corr.update({k: float(v) for k, v in (pc.get("correlation") or {}).items()})
    for k, v in corr.items():
        if not 0 <= v <= 1:
            raise ConfigError(f"quantify.period.correlation.{k}", f"must be in 0..1 (got {v})")
    min_overpasses = int_value("quantify.period.min_overpasses", pc.get("min_overpasses", 1), 1)
    return PeriodConfig(float(pc.get("merge_km", 10.0)), use, min_overpasses, corr)


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
# one point in one overpass


def quantify_point(
    ov,
    time,
    lat0: float,
    lon0: float,
    wind: dict,
    s: dict,
    others: list[tuple[float, float]] = (),
    model_uncertainty: Callable | None = None,
    context: dict | None = None,
) -> tuple[list[Estimate], dict]:
    """Estimates (in t NOx/yr) of every configured method for a source at (lat0, lon0) in one overpass grid.

    ``wind``: a :meth:`WindSample.row` dict. Returns the estimates and a dict describing the wind/direction used.
    """
    chem: chemistry.Chemistry = s["chemistry"]
    life = chem.lifetime
    scene = local_scene(
        ov["lat"].values,
        ov["lon"].values,
        ov["no2"].values,
        ov["no2_precision"].values,
        lat0,
        lon0,
        s["scene_half_km"],
        others,
        s["exclude_other_km"],
    )
    info = {"direction_source": "none", "plume_from_deg": np.nan, "plume_snr": np.nan}
    if scene is None or not scene.valid.any():
        return [Estimate.failed(m, "not_observed") for m in s["methods"]], info
    w_dir, w_sig = wind["wind_from_deg"], wind["wind_from_sigma_deg"]
    p_dir = p_sig = np.nan
    if s["direction"] == "plume" or not np.isfinite(w_dir):
        p_dir, p_sig, snr = plume_direction(scene, s["plume_direction"])
        info.update(plume_from_deg=p_dir, plume_snr=snr)
    if s["direction"] == "plume" and np.isfinite(p_dir):
        d, ds, info["direction_source"] = p_dir, p_sig, "plume"
    elif np.isfinite(w_dir):
        d, ds, info["direction_source"] = w_dir, w_sig, "wind"
    elif np.isfinite(p_dir):
        d, ds, info["direction_source"] = p_dir, p_sig, "plume"
    else:
        d, ds = np.nan, np.nan
    w = Wind(float(wind["wind_speed_m_s"]), float(wind["wind_speed_sigma_m_s"]), float(d), float(ds))
    info.update(direction_used_deg=d, direction_sigma_deg=ds)
    out = []
    for m in s["methods"]:
        if w.speed < s["min_wind_m_s"]:
            e = Estimate.failed(m, "low_wind")
        elif m == ddeq_ref.METHOD:
            plane = fit_plane(scene, background_ring(scene, 40.0, 60.0))
            nm = noise_model(scene, plane)
            noise_level = float(np.median(scene.sigma) * nm.chi)
            e = ddeq_ref.estimate(ov, time, lat0, lon0, w, life, noise_level, s["ddeq"])
        else:
            e = ESTIMATORS[m].estimate(scene, w, life, s[m])
        if e.ok:
            hook = model_uncertainty or MODEL_UNCERTAINTY
            e.sigma["model"] = abs(e.q) * float(hook(context or {}, e)) if hook else 0.0
        out.append(chemistry.to_nox(e, chem))
    return out, info


# ---------------------------------------------------------------------------------------------------------------
# rows


def estimate_rows(ests: list[Estimate], base: dict, ratio) -> list[dict]:
    rows = []
    for e in ests:
        co2, co2s = co2_from_nox(e.q, e.sigma, ratio)
        r = {
            **base,
            "method": e.method,
            "nox_t_per_yr": e.q,
            "nox_sigma_t_per_yr": e.sigma_total,
            **{f"nox_sigma_{c}_t_per_yr": e.sigma.get(c, 0.0 if e.ok else np.nan) for c in SIGMA_COMPONENTS},
            "co2_mt_per_yr": co2,
            "co2_sigma_mt_per_yr": float(np.sqrt(np.nansum(np.square(list(co2s.values()))))) if e.ok else np.nan,
            "co2_nox_ratio": ratio.ratio,
            "co2_nox_ratio_rel_sigma": ratio.rel_sigma,
            "co2_basis": ratio.basis,
            "quality_flags": " ".join(e.flags),
        }
        for k in ("n_transects", "noise_chi", "noise_k", "detected_pixels", "decay_time_h"):
            if k in e.diag:
                r[k] = e.diag[k]
        rows.append(r)
    return rows


def quantify_collection(cfg: DictConfig, name: str, model_uncertainty: Callable | None = None) -> dict:
    t0 = _time.perf_counter()
    q = collection_config(cfg, name)
    s = settings(q, name)
    hot = inputs.read_hotspots(name, s["detect_dir"])
    sites, site_of = sites_from_hotspots(hot, s["period"].merge_km)
    hot = hot.assign(site_id=site_of)
    winds = open_winds(s["winds"], key=f"{s['key']}.winds")
    inv = inputs.load_sites(s["inventory"], f"{s['key']}.inventory")
    matcher = InventoryMatcher(inv, s["co2"])
    log.info(
        "%s: %d hotspot(s) at %d site(s); winds: %s; methods: %s",
        name,
        len(hot),
        len(sites),
        winds.describe(),
        s["methods"],
    )
    site_ratio = {int(r.site_id): matcher.ratio(r.lat, r.lon) for r in sites.itertuples()}
    ctx = _Context(s, sites, site_ratio, matcher, inv, model_uncertainty)

    rows_h, rows_s = [], []
    n_ov = 0
    for t, ov in tqdm(inputs.overpasses(name, s["ingest_dir"]), desc=f"quantify {name}", unit="overpass",
                      disable=progress_disabled()):  # fmt: skip
        n_ov += 1
        h = inputs.hotspots_of(hot, t, ov.attrs.get("overpass"))
        pts_lat = list(h["peak_lat"]) + list(sites["lat"])
        pts_lon = list(h["peak_lon"]) + list(sites["lon"])
        ws: WindSample = winds.at(pts_lat, pts_lon, t) if pts_lat else None
        rows_h += _hotspot_rows(ctx, ov, t, h, ws)
        rows_s += _site_rows(ctx, ov, t, h, ws)

    est_h = pd.DataFrame(rows_h, columns=None if rows_h else list(EMPTY_COLUMNS))
    est_s = pd.DataFrame(rows_s, columns=None if rows_s else list(EMPTY_COLUMNS))
    period = period_table(est_s, sites, site_ratio, s)
    wide = hotspot_wide(hot, est_h, s)
    summary = write_outputs(name, s, est_h, est_s, period, wide, winds.describe(), n_ov, inv is not None, t0)
    return summary


@dataclass(frozen=True)
class _Context:
    """What every overpass of a collection is quantified with."""

    s: dict
    sites: pd.DataFrame
    site_ratio: dict
    matcher: InventoryMatcher
    inv: pd.DataFrame | None
    model_uncertainty: Callable | None


def _hotspot_rows(ctx: _Context, ov, t, h: pd.DataFrame, ws) -> list[dict]:
    """Estimate rows of the overpass's hotspots (points 0..len(h)-1 of the wind sample ``ws``)."""
    s = ctx.s
    pos = list(zip(h["peak_lat"], h["peak_lon"]))
    rows = []
    for i, r in enumerate(h.itertuples()):
        others = [p for j, p in enumerate(pos) if j != i]
        wrow = ws.row(i)
        ests, info = quantify_point(ov, t, r.peak_lat, r.peak_lon, wrow, s, others, ctx.model_uncertainty, r._asdict())
        ratio = ctx.matcher.ratio(r.peak_lat, r.peak_lon)
        base = {
            "hotspot_id": int(r.hotspot_id),
            "site_id": int(r.site_id),
            "time": str(pd.Timestamp(t))[:19],
            "lat": float(r.peak_lat),
            "lon": float(r.peak_lon),
            **wrow,
            **info,
            "lifetime_h": s["chemistry"].lifetime_h,
            "inventory_nox_t_per_yr": nox_at(ctx.inv, ratio.matched_ids, t),
            "inventory_co2_t_per_yr": ratio.co2_t_per_yr,
            "inventory_ids": " ".join(ratio.matched_ids),
        }
        rows += estimate_rows(ests, base, ratio)
    return rows


def _site_rows(ctx: _Context, ov, t, h: pd.DataFrame, ws) -> list[dict]:
    """Estimate rows of the collection's sites in this overpass (points after the hotspots in ``ws``); sites not
    observed are left out, and with ``period.use: detected`` so are sites without a hotspot in this overpass."""
    s = ctx.s
    pos = list(zip(h["peak_lat"], h["peak_lon"]))
    detected_sites = set(h["site_id"].astype(int))
    rows = []
    for k, site in enumerate(ctx.sites.itertuples()):
        sid = int(site.site_id)
        detected = sid in detected_sites
        if s["period"].use == "detected" and not detected:
            continue
        others = [p for p in pos if _km(p, (site.lat, site.lon)) > s["period"].merge_km]
        wrow = ws.row(len(h) + k)
        ss = s if s["ddeq_sites"] else {**s, "methods": [m for m in s["methods"] if m != ddeq_ref.METHOD]}
        ests, info = quantify_point(
            ov, t, site.lat, site.lon, wrow, ss, others, ctx.model_uncertainty, {"site_id": sid}
        )
        if all(e.flags == ["not_observed"] or "disk_not_observed" in e.flags for e in ests):
            continue
        ratio = ctx.site_ratio[sid]
        base = {
            "site_id": sid,
            "time": str(pd.Timestamp(t))[:19],
            "lat": float(site.lat),
            "lon": float(site.lon),
            "detected": detected,
            **wrow,
            **info,
            "inventory_nox_t_per_yr": nox_at(ctx.inv, ratio.matched_ids, t),
        }
        rows += estimate_rows(ests, base, ratio)
    return rows


def _km(a, b) -> float:
    from ..evaluate.geo import haversine_km

    return float(haversine_km(a[0], a[1], b[0], b[1]))


def period_table(est_s: pd.DataFrame, sites: pd.DataFrame, site_ratio: dict, s: dict) -> pd.DataFrame:
    rows = []
    if est_s.empty:
        return pd.DataFrame(columns=["site_id", "lat", "lon", "method", "n_overpasses", "nox_t_per_yr",
                                     "nox_sigma_t_per_yr", "co2_mt_per_yr", "co2_sigma_mt_per_yr"])  # fmt: skip
    corr = s["period"].correlation
    for (sid, m), g in est_s.groupby(["site_id", "method"], sort=True):
        comps = {c: g[f"nox_sigma_{c}_t_per_yr"].to_numpy(float) for c in SIGMA_COMPONENTS}
        res = combine(g["nox_t_per_yr"].to_numpy(float), comps, corr)
        ratio = site_ratio[int(sid)]
        used = np.isfinite(g["nox_t_per_yr"].to_numpy(float))
        truth = g["inventory_nox_t_per_yr"].to_numpy(float)[used]
        truth = truth[np.isfinite(truth)]
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
                # the truth over the overpasses used (injected OSSE changes make it vary)
                "inventory_nox_t_per_yr": float(truth.mean()) if truth.size else ratio.nox_t_per_yr,
                "inventory_co2_t_per_yr": ratio.co2_t_per_yr,
                "inventory_ids": " ".join(ratio.matched_ids),
            }
        )
    return pd.DataFrame(rows)


def hotspot_wide(hot: pd.DataFrame, est_h: pd.DataFrame, s: dict) -> pd.DataFrame:
    """One row per hotspot: position, inventory match, and for each method NOx/CO2 with 1-sigma."""
    out = hot[["hotspot_id", "time", "peak_lat", "peak_lon", "site_id"]].copy()
    out["time"] = out["time"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    if est_h.empty:
        return out
    first = est_h.drop_duplicates("hotspot_id").set_index("hotspot_id")
    for col in (
        "wind_speed_m_s",
        "wind_from_deg",
        "wind_source",
        "direction_source",
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


def write_outputs(name, s, est_h, est_s, period, wide, wind_desc, n_overpasses, has_truth, t0) -> dict:
    evaluation = {}
    if has_truth:
        bins = s["bins"]
        if not est_h.empty:
            evaluation["overpass"] = evaluate_table(
                est_h, value="nox_t_per_yr", sigma="nox_sigma_t_per_yr", truth="inventory_nox_t_per_yr", bins=bins
            )
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
        "units": {"nox": "t NOx/yr (as NO2 mass)", "co2": "Mt CO2/yr", "sigma": "1-sigma"},
        "evaluation": evaluation,
        "seconds": round(_time.perf_counter() - t0, 2),
    }
    with atomic_group() as out:  # the folder and the metrics file are replaced together (no2hotspots.atomic)
        tmp = out.folder(s["out_dir"])
        wide.to_csv(tmp / "hotspot_rates.csv", index=False)
        est_h.to_csv(tmp / "estimates_overpass.csv", index=False)
        est_s.to_csv(tmp / "estimates_site_overpass.csv", index=False)
        period.to_csv(tmp / "estimates_period.csv", index=False)
        write_json(tmp / "quantify.json", _clean(summary))
        if has_truth and not est_h.empty:
            scatter_plot(est_h, tmp / "scatter_overpass.png", value="nox_t_per_yr", sigma="nox_sigma_t_per_yr",
                         truth="inventory_nox_t_per_yr", title=f"{name}: overpass estimates vs inventory")  # fmt: skip
        if has_truth and not period.empty:
            scatter_plot(period, tmp / "scatter_period.png", value="nox_t_per_yr", sigma="nox_sigma_t_per_yr",
                         truth="inventory_nox_t_per_yr", title=f"{name}: period estimates vs inventory")  # fmt: skip
        out.write_json(s["metrics_path"], _clean({**counts, "evaluation": evaluation}))
    log.info(
        "%s: %d overpass estimate(s), %d site estimate(s) -> %s",
        name,
        counts["n_estimates_overpass"],
        counts["n_estimates_period"],
        s["out_dir"],
    )
    return summary


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
