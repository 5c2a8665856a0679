"""``python -m no2hotspots hybrid [hybrid.collection=NAME]``: the model's period sites that the flux divergence
confirms (:mod:`.confirm`).

The candidate sites (``hybrid.candidates``): ``recurrence``, the sites of detect's recurrence rule recomputed from its
``period.nc`` with the settings detect recorded in ``detect.json`` but WITHOUT the downwind test (the flux divergence
takes its place: the far part of a plume has none), or ``composite``, detect's ``composite.csv`` as it is. Read too:
the baseline stage's ``period.nc`` (``mean_emission``,
``n_valid``) and ``baseline.json`` (its ``min_valid``, so both read the same map), and writes
``<hybrid.out_dir>/<c>/composite.csv`` (the confirmed sites, in detect's composite layout with their
``divergence_z``, ``origin`` and ``origin_site_id``, and with ``hybrid.baseline_sites`` the baseline's sites that
no confirmed site lies near; the evaluation scores it as the ``hybrid`` table), ``sites.csv`` (every candidate site
with its z and whether it was confirmed) and ``hybrid.json``. Inputs are checked before anything is written.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from ..atomic import atomic_path, write_json
from ..config import PLAIN_NAME, require, require_bool, require_odd_int
from ..contracts import detections
from ..errors import ConfigError, InputFileError
from ..readfile import open_netcdf
from .confirm import point_contrast, site_z, snap_to_peak, with_baseline_sites, z_map

log = logging.getLogger(__name__)

#: where the candidate sites come from (``hybrid.candidates``)
CANDIDATES = ("recurrence", "composite")


def settings(cfg: DictConfig) -> dict:
    h = "hybrid."
    return {
        "k_sigma": float(require(cfg, h + "k_sigma", lambda v: float(v) >= 0, "must be >= 0")),
        "smooth_cells": require_odd_int(cfg, h + "smooth_cells"),
        "window_cells": require_odd_int(cfg, h + "window_cells"),
        "snap_cells": require_odd_int(cfg, h + "snap_cells"),
        "candidates": str(require(cfg, h + "candidates", lambda v: v in CANDIDATES, f"must be one of {CANDIDATES}")),
        "baseline_sites": require_bool(cfg, h + "baseline_sites"),
        "merge_km": float(require(cfg, h + "merge_km", lambda v: float(v) > 0, "must be > 0 km")),
        "point_contrast_min": float(
            require(cfg, h + "point_contrast_min", lambda v: 0 <= float(v) <= 1, "must be in 0..1 (0: no point test)")
        ),
        "point_ring_km": [
            float(v)
            for v in require(
                cfg,
                h + "point_ring_km",
                lambda v: len(v) == 2 and 0 <= float(v[0]) < float(v[1]),
                "must be [inner, outer] km with 0 <= inner < outer",
            )
        ],
    }


def collections(cfg: DictConfig) -> list[str]:
    one = OmegaConf.select(cfg, "hybrid.collection", default=None)
    names = [one] if one else list(cfg.hybrid.collections or [])
    for n in names:
        if not isinstance(n, str) or not PLAIN_NAME.match(n) or n not in cfg.hybrid.collections:
            raise ConfigError("hybrid.collection", f"must name a configured collection (got {n!r})")
    return names


def run(cfg: DictConfig) -> dict:
    s = settings(cfg)
    return {name: hybrid_collection(cfg, name, s) for name in collections(cfg)}


def read_composite(path: Path) -> pd.DataFrame:
    return detections.read_composite(path, not_found="not found (run the detect stage first)")


def recurrence_candidates(folder: Path) -> pd.DataFrame:
    """The recurrence rule's sites from detect's ``period.nc`` and the composite settings in its ``detect.json``,
    without the downwind test."""
    from ..contracts.detections import PERIOD_COUNTS, PERIOD_FILE, open_period
    from ..detect.composite import recurrence_hotspots

    info_path = folder / "detect.json"
    if not info_path.exists():
        raise InputFileError(info_path, "not found (run the detect stage first)")
    try:
        c = json.loads(info_path.read_text())["params"]["composite"]
        r, min_valid = c["recurrence"], int(c["min_valid"])
    except (ValueError, KeyError, TypeError) as e:
        raise InputFileError(info_path, f"no params.composite.recurrence ({type(e).__name__}: {e})") from None
    if c.get("rule") != "recurrence" or r.get("level") is None:
        raise InputFileError(
            info_path,
            "the composite was not made by the recurrence rule with a level (use hybrid.candidates=composite)",
        )
    ds = open_period(folder)
    for v in PERIOD_COUNTS:  # every count, the recurrence rule's included
        if v not in ds:
            raise InputFileError(folder / PERIOD_FILE, f"missing variable {v} (not made by the recurrence rule?)")
    period = {v: ds[v].values for v in PERIOD_COUNTS}
    return recurrence_hotspots(period, ds["lat"].values, ds["lon"].values, r, min_valid=min_valid)


def read_period(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, int]:
    """The baseline's period map, its regular grid's cell size and the ``min_valid`` it was made with."""
    info_path = folder / "baseline.json"
    if not info_path.exists():
        raise InputFileError(info_path, "not found (run the baseline stage first)")
    try:
        min_valid = int(json.loads(info_path.read_text())["settings"]["min_valid"])
    except (ValueError, KeyError, TypeError) as e:
        raise InputFileError(info_path, f"no settings.min_valid ({type(e).__name__}: {e})") from None
    path = folder / "period.nc"
    ds = open_netcdf(path, load=True, what="baseline period map", not_found="not found (run the baseline stage first)")
    for v in ("mean_emission", "n_valid"):
        if v not in ds:
            raise InputFileError(path, f"missing variable {v} (not a baseline period map?)")
    lat, lon = ds["lat"].values.astype(np.float64), ds["lon"].values.astype(np.float64)
    steps = np.r_[np.diff(lat), np.diff(lon)]
    if len(lat) < 2 or len(lon) < 2 or not np.allclose(steps, steps[0], rtol=1e-4) or steps[0] <= 0:
        raise InputFileError(path, "lat/lon are not a regular ascending grid of >= 2 x 2 cells")
    return ds["mean_emission"].values, ds["n_valid"].values, lat, lon, float(steps[0]), min_valid


def hybrid_collection(cfg: DictConfig, name: str, s: dict) -> dict:
    detect_dir = Path(str(cfg.hybrid.detect_dir)) / name
    if s["candidates"] == "recurrence":
        sites = recurrence_candidates(detect_dir)
    else:
        sites = read_composite(detect_dir / "composite.csv")
    baseline_dir = Path(str(cfg.hybrid.baseline_dir)) / name
    mean, n_valid, lat, lon, res, min_valid = read_period(baseline_dir)
    base = read_composite(baseline_dir / "composite.csv") if s["baseline_sites"] else sites.iloc[:0]
    z = z_map(mean, n_valid, min_valid=min_valid, smooth_cells=s["smooth_cells"])
    sites["divergence_z"] = site_z(z, sites["peak_lat"], sites["peak_lon"], lat, lon, res, s["window_cells"])
    sites["confirmed"] = np.isfinite(sites["divergence_z"]) & (sites["divergence_z"] >= s["k_sigma"])
    n_not_point = 0
    if s["point_contrast_min"] > 0:
        ring = tuple(s["point_ring_km"])
        sites["point_contrast"] = point_contrast(z, sites["peak_lat"], sites["peak_lon"], lat, lon, res, ring)
        sites["confirmed"] &= ~(sites["point_contrast"] < s["point_contrast_min"])  # NaN: cannot be tested, stays
        area = point_contrast(z, base["peak_lat"], base["peak_lon"], lat, lon, res, ring) < s["point_contrast_min"]
        base, n_not_point = base[~area], int(area.sum())
    confirmed = sites[sites["confirmed"]].drop(columns="confirmed")
    n_merged = 0
    if s["snap_cells"] > 1:
        raw = z_map(mean, n_valid, min_valid=min_valid, smooth_cells=1)
        snap = snap_to_peak(raw, confirmed["peak_lat"], confirmed["peak_lon"], lat, lon, res, s["snap_cells"])
        confirmed = confirmed.assign(peak_lat=snap[0], peak_lon=snap[1])
        sites["snap_lat"], sites["snap_lon"] = confirmed["peak_lat"], confirmed["peak_lon"]  # NaN: not confirmed
        n_before = len(confirmed)
        confirmed = confirmed.drop_duplicates(subset=["peak_lat", "peak_lon"], keep="first")
        n_merged = n_before - len(confirmed)
    kept = with_baseline_sites(confirmed, base, s["merge_km"])
    kept["divergence_z"] = site_z(z, kept["peak_lat"], kept["peak_lon"], lat, lon, res, s["window_cells"])
    if s["point_contrast_min"] > 0:
        kept["point_contrast"] = point_contrast(z, kept["peak_lat"], kept["peak_lon"], lat, lon, res, ring)
    n_added = int((kept["origin"] == "baseline").sum())
    summary = {
        "collection": name,
        "n_candidates": int(len(sites)),
        "n_confirmed": int(len(kept)) - n_added,
        "n_baseline_sites_added": n_added,
        "n_merged_by_snapping": n_merged,
        "n_baseline_sites_not_point": n_not_point,
        "settings": {**s, "min_valid": min_valid},
        "rule": "candidate site kept when the baseline's smoothed period flux divergence at its cell is >= k_sigma "
        "robust standard deviations above the map's median; with baseline_sites, the baseline's sites farther than "
        "merge_km from every kept site added; with snap_cells > 1 each kept candidate first moved to the highest "
        "unsmoothed divergence of the snap_cells x snap_cells block around its cell (candidates landing in one cell "
        "merged); with point_contrast_min > 0 a candidate or baseline site is dropped when 1 - (median z over the "
        "ring point_ring_km around it) / (its z) is below it (an area, not a point source)",
        "inputs": {"detect": str(detect_dir), "baseline": str(baseline_dir)},
    }
    with atomic_path(Path(str(cfg.hybrid.out_dir)) / name, is_dir=True) as tmp:
        kept.to_csv(tmp / "composite.csv", index=False)
        sites.to_csv(tmp / "sites.csv", index=False)
        write_json(tmp / "hybrid.json", summary)
    log.info(
        "hybrid %s: %d of %d candidate site(s) confirmed by the flux divergence, %d baseline site(s) added",
        name,
        summary["n_confirmed"],
        len(sites),
        n_added,
    )
    return summary
