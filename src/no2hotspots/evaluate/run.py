"""The ``evaluate`` stage: score the hotspots of each collection against its inventory of point sources.

``python -m no2hotspots evaluate [evaluate.collection=NAME]`` reads ``outputs/ingest/<c>.nc`` and
``outputs/detect/<c>/`` and writes ``outputs/evaluate/<c>/`` (CSV tables, PNG maps), ``metrics/evaluate_<c>.json``
and ``plots/evaluate/<c>_table2.csv``; with ``evaluate.log_to_mlflow`` it adds the same metrics and files to the
MLflow run of the model that made the detections (``run_id`` in detect.json).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from ..atomic import atomic_path, write_csv, write_json
from ..config import require
from ..errors import ConfigError
from ..inventory.gridding import aggregate_obs_count, cell_index, grid_points, regular_edges
from . import inputs, overlap, precision

log = logging.getLogger(__name__)

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
    "min_detections",
    "co2_threshold_kt_per_month",
    "recall_emission_bins_t_per_yr",
    "recall_obs_bins",
    "regions",
    "maps",
)


def settings_for(cfg: DictConfig, name: str) -> DictConfig:
    """evaluate.* settings with evaluate.collections.<name>.* on top, checked (errors name the key)."""
    ev = OmegaConf.to_container(cfg.evaluate, resolve=True)  # resolved against the whole config (${inventory} ...)
    coll = (ev.get("collections") or {}).get(name) or {}
    over = {k: coll[k] for k in SETTINGS if k in coll}
    s = OmegaConf.create({**{k: ev.get(k) for k in SETTINGS}, **over, "inventory": coll.get("inventory")})

    def key(k):
        return f"evaluate.collections.{name}.{k}" if k in over else f"evaluate.{k}"

    def nonneg_sorted(v):
        v = list(v)
        return all(float(x) >= 0 for x in v) and v == sorted(v) and len(set(v)) == len(v)

    require(s, "grid_res_deg", lambda v: 0 < float(v) <= 10, "must be in (0, 10] degrees")
    require(s, "obs_method", lambda v: v in ("coverage", "max", "median"), "must be coverage, max or median")
    require(s, "coverage_min", lambda v: 0 <= float(v) < 1, "must be in [0, 1)")
    for k in ("nox_bins", "recall_emission_bins_t_per_yr", "recall_obs_bins"):
        if not (OmegaConf.is_list(s[k]) and len(s[k]) and nonneg_sorted(s[k])):
            raise ConfigError(key(k), f"must be a non-empty ascending list of distinct numbers >= 0 (got {s[k]!r})")
    for k in ("min_observations", "min_detections"):
        if not (isinstance(s[k], int) and s[k] >= (0 if k == "min_observations" else 1)):
            raise ConfigError(key(k), f"must be an integer >= {0 if k == 'min_observations' else 1} (got {s[k]!r})")
    if s.match_mode not in ("cell", "distance"):
        raise ConfigError(key("match_mode"), f"must be cell or distance (got {s.match_mode!r})")
    for k in ("match_distance_km", "merge_distance_km", "co2_threshold_kt_per_month"):
        try:
            ok = float(s[k]) >= 0
        except Exception:  # noqa: BLE001
            ok = False
        if not ok:
            raise ConfigError(key(k), f"must be a number >= 0 (got {s[k]!r})")
    if s.regions is not None and not OmegaConf.is_dict(s.regions):
        raise ConfigError(key("regions"), "must be a mapping name -> bbox")
    return s


def collections_to_run(cfg: DictConfig) -> list[str]:
    ev = cfg.evaluate
    known = list(ev.collections or {})
    chosen = OmegaConf.select(ev, "collection")
    if chosen:
        if chosen not in known:
            raise ConfigError("evaluate.collection", f"unknown collection {chosen!r} (configured: {', '.join(known)})")
        return [str(chosen)]
    out = [c for c in known if ingest_path(cfg, c).exists() and (detect_dir(cfg, c) / "hotspots.csv").exists()]
    for c in set(known) - set(out):
        log.warning("evaluate: skipping collection %s (no ingest grid or hotspots.csv yet)", c)
    if not out:
        raise ConfigError(
            "evaluate.collection", f"no collection has ingest and detect outputs yet (configured: {known})"
        )
    return out


def ingest_path(cfg, name) -> Path:
    return Path(str(cfg.paths.outputs)) / "ingest" / f"{name}.nc"


def detect_dir(cfg, name) -> Path:
    return Path(str(cfg.paths.outputs)) / "detect" / name


def grid_bbox(ingest) -> dict:
    """The ingest grid's outer box (from lat_bnds/lon_bnds, else centres +- half a cell)."""
    if "lat_bnds" in ingest and "lon_bnds" in ingest:
        lat, lon = ingest["lat_bnds"].values, ingest["lon_bnds"].values
    else:
        r = float(ingest.attrs.get("resolution_deg", abs(float(ingest["lat"][1] - ingest["lat"][0]))))
        lat = np.stack([ingest["lat"].values - r / 2, ingest["lat"].values + r / 2], axis=1)
        lon = np.stack([ingest["lon"].values - r / 2, ingest["lon"].values + r / 2], axis=1)
    return {
        "lat_min": float(lat.min()),
        "lat_max": float(lat.max()),
        "lon_min": float(lon.min()),
        "lon_max": float(lon.max()),
    }


def _bin_flags(values, edges_cfg, observed, found):
    full, keys, names = overlap.bin_edges_and_labels(edges_cfg)
    flags = pd.DataFrame({"b": overlap.assign_bins(values, full), "observed": observed, "found": found})
    return overlap.rate_table(flags, "b", keys, names, full)


def evaluate_collection(cfg: DictConfig, name: str) -> dict:
    """Run the evaluation of one collection, write its outputs and return its flat metrics."""
    s = settings_for(cfg, name)
    ingest = inputs.read_ingest(ingest_path(cfg, name), need_coverage=s.obs_method == "coverage")
    ddir = detect_dir(cfg, name)
    hotspots = inputs.read_hotspots(ddir / "hotspots.csv")
    detect_meta = inputs.read_detect_json(ddir / "detect.json")
    inv = inputs.load_inventory(s.inventory, f"evaluate.collections.{name}.inventory")

    lat_edges, lon_edges = regular_edges(grid_bbox(ingest), float(s.grid_res_deg), key="evaluate.grid_res_deg")
    gridded = grid_points(inv, lat_edges, lon_edges, ("nox_t_per_yr", "co2_t_per_yr"))
    obs = aggregate_obs_count(ingest, lat_edges, lon_edges, method=s.obs_method, coverage_min=float(s.coverage_min))
    K, mode, dkm = int(s.min_observations), str(s.match_mode), float(s.match_distance_km)

    # --- Table 2: inventory cells by NOx bin
    cells = overlap.inventory_cells(gridded, obs.values)
    cells["n_detections"] = overlap.match_cells(cells, hotspots, lat_edges, lon_edges, mode=mode, distance_km=dkm)
    cells["observed"] = cells["obs_count"] >= K
    cells["found"] = cells["observed"] & (cells["n_detections"] >= int(s.min_detections))
    t2 = overlap.table2(cells, list(s.nox_bins), K)

    # --- point sources inside the evaluation grid
    iy = cell_index(inv["lat"], lat_edges)
    ix = cell_index(inv["lon"], lon_edges)
    inside = (iy >= 0) & (ix >= 0)
    src = inv[inside].copy().reset_index(drop=True)
    src["obs_count"] = obs.values[iy[inside], ix[inside]]
    src["observed"] = src["obs_count"] >= K
    src["n_detections"] = overlap.match_points(src, hotspots, lat_edges, lon_edges, mode=mode, distance_km=dkm)
    src["matched"] = src["observed"] & (src["n_detections"] >= int(s.min_detections))
    src["region"] = overlap.region_names(src, s.regions, "evaluate.regions")

    # --- Fig. 10: strong CO2 sources
    thr_t_per_yr = float(s.co2_threshold_kt_per_month) * 1000.0 * 12.0
    strong = src[src["co2_t_per_yr"] >= thr_t_per_yr].reset_index(drop=True)
    co2_regions = overlap.co2_overlap_by_region(strong, s.regions, "evaluate.regions")

    # --- precision and localisation (nearest source from the whole inventory, also outside the grid)
    det, sites = precision.match_hotspots(
        hotspots, inv, match_distance_km=dkm, merge_distance_km=float(s.merge_distance_km)
    )
    prec = precision.precision_table(det, sites)
    loc = precision.localisation_table(det)

    # --- recall curves over point sources
    rec_em = _bin_flags(src["nox_t_per_yr"], list(s.recall_emission_bins_t_per_yr), src["observed"], src["matched"])
    rec_obs = _bin_flags(
        src["obs_count"], list(s.recall_obs_bins), np.ones(len(src), bool), src["n_detections"] >= int(s.min_detections)
    )

    metrics = _metrics(name, t2, co2_regions, prec, loc, cells, src, det, sites, hotspots, detect_meta, s)

    out_dir = Path(str(cfg.paths.outputs)) / "evaluate" / name
    with atomic_path(out_dir, is_dir=True) as tmp:
        write_csv(t2, tmp / "table2.csv")
        write_csv(cells, tmp / "cells.csv")
        write_csv(strong, tmp / "co2_overlap.csv")
        write_csv(co2_regions, tmp / "co2_overlap_by_region.csv")
        write_csv(src, tmp / "sources.csv")
        write_csv(prec, tmp / "precision.csv")
        write_csv(det.assign(time=det["time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")), tmp / "hotspots_matched.csv")
        write_csv(sites, tmp / "hotspot_sites.csv")
        write_csv(loc, tmp / "localisation.csv")
        write_csv(rec_em, tmp / "recall_by_emission.csv")
        write_csv(rec_obs, tmp / "recall_by_obs.csv")
        write_json(
            tmp / "evaluate.json",
            {"settings": OmegaConf.to_container(s, resolve=True), "metrics": metrics, "detect": detect_meta},
        )
        if s.maps:
            from . import maps

            title = f"{name}: {len(hotspots)} hotspots, {len(src)} inventory sources"
            maps.no2_map(ingest, src, lat_edges, lon_edges, tmp / "map_no2_mean.png", f"{name}: mean NO2")
            maps.obs_map(ingest, obs, lat_edges, lon_edges, K, tmp / "map_obs_count.png", f"{name}: observations")
            maps.hotspot_map(src, det, lat_edges, lon_edges, tmp / "map_hotspots.png", title)
    write_json(Path(str(cfg.paths.metrics)) / f"evaluate_{name}.json", metrics)
    write_csv(
        t2[["bin", "range", "n_total", "n_observed", "n_found", "rate"]],
        Path(str(cfg.paths.plots)) / "evaluate" / f"{name}_table2.csv",
    )
    log.info(
        "evaluate %s: %s",
        name,
        ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in metrics.items()
            if k.startswith(("table2_rate", "co2_overlap_pct", "hotspot_precision"))
        ),
    )

    if bool(OmegaConf.select(cfg, "evaluate.log_to_mlflow", default=False)):
        from .mlflow_log import log_to_run

        log_to_run(cfg, name, detect_meta.get("run_id"), metrics, out_dir)
    return metrics


def _num(v):
    """JSON-safe number: NaN -> None (DVC and json.loads read it as null)."""
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v


def _metrics(name, t2, co2_regions, prec, loc, cells, src, det, sites, hotspots, detect_meta, s) -> dict:
    m: dict = {}
    for _, r in t2.iterrows():
        b = r["bin"]
        m[f"table2_rate_{b}"] = _num(r["rate"])
        m[f"table2_found_{b}"] = int(r["n_found"])
        m[f"table2_total_{b}"] = int(r["n_observed"])
        m[f"table2_unobserved_{b}"] = int(r["n_unobserved"])
    for _, r in co2_regions.iterrows():
        suffix = "" if r["region"] == "all" else f"_{r['region']}"
        m[f"co2_overlap_pct{suffix}"] = _num(r["pct_matched"])
        m[f"co2_overlap_n{suffix}"] = int(r["n_matched"])
        m[f"co2_overlap_total{suffix}"] = int(r["n_observed"])
        m[f"co2_overlap_unobserved{suffix}"] = int(r["n_unobserved"])
    p = prec.set_index("level")
    m["hotspot_precision"] = _num(p.loc["detection", "precision"])
    m["site_precision"] = _num(p.loc["site", "precision"])
    lo = loc.set_index("subset")
    m["loc_error_km_median"] = _num(lo.loc["all", "p50_km"])
    m["loc_error_km_p90"] = _num(lo.loc["all", "p90_km"])
    m["loc_error_km_median_matched"] = _num(lo.loc["matched", "p50_km"])
    m["n_hotspots"] = int(len(hotspots))
    m["n_hotspot_sites"] = int(len(sites))
    m["n_overpasses_with_hotspots"] = int(hotspots["time"].nunique())
    m["n_cells_inventory"] = int(len(cells))
    m["n_cells_observed"] = int(cells["observed"].sum())
    m["n_sources"] = int(len(src))
    m["n_sources_observed"] = int(src["observed"].sum())
    m["source_recall"] = _num(src.loc[src["observed"], "matched"].mean()) if src["observed"].any() else None
    m["min_observations"] = int(s.min_observations)
    m["match_distance_km"] = float(s.match_distance_km)
    return m


def run(cfg: DictConfig) -> dict:
    """Evaluate every selected collection; returns {collection: metrics}."""
    if OmegaConf.select(cfg, "evaluate.collections") is None:
        raise ConfigError("evaluate.collections", "missing (conf/evaluate/default.yaml defines them)")
    results = {}
    for name in collections_to_run(cfg):
        results[name] = evaluate_collection(cfg, name)
    return results
