"""The ``detect`` stage: the registered model over each ingest grid -> relative-emission maps and hotspots.

``python -m no2hotspots detect [detect.collection=NAME] [detect.model_uri=models:/NAME@ALIAS] ...``
reads ``outputs/ingest/<collection>.nc`` and writes ``outputs/detect/<collection>/`` (see docs/contracts.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from ..atomic import atomic_path
from ..config import require
from ..errors import ConfigError, InputFileError
from . import grid as gridmod
from .hotspots import COLUMN_DOCS, find_hotspots
from .outputs import ESTIMATE_NOTE, emission_dataset, write_map, write_summary, write_tables
from .tiles import model_predictor, stitch

log = logging.getLogger(__name__)


def settings(cfg: DictConfig) -> dict[str, Any]:
    """The checked ``detect.*`` settings (one-line ConfigError naming the key on a bad value)."""
    num = (int, float)
    s = {
        "model_uri": require(cfg, "detect.model_uri", lambda v: isinstance(v, str) and v, "must be a model URI"),
        "stride": require(cfg, "detect.stride", lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
        "batch_size": require(cfg, "detect.batch_size", lambda v: isinstance(v, int) and v >= 1, "must be >= 1"),
        "window_floor": require(cfg, "detect.window_floor", lambda v: 0 < v <= 1, "must be in (0, 1]"),
        "threshold": require(
            cfg, "detect.threshold", lambda v: isinstance(v, num) and 0 <= v <= 1, "must be in [0, 1]"
        ),
        "min_cells": require(
            cfg, "detect.min_cells", lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"
        ),
        "coverage_min": require(cfg, "detect.coverage_min", lambda v: 0 <= v <= 1, "must be in [0, 1]"),
        "mask_invalid": require(cfg, "detect.mask_invalid", lambda v: isinstance(v, bool), "must be true or false"),
        "max_resolution_ratio": require(cfg, "detect.max_resolution_ratio", lambda v: v >= 1, "must be >= 1"),
        "device": require(cfg, "detect.device", lambda v: isinstance(v, str) and v, "must be cpu, cuda or auto"),
        "overlay_inventory": require(cfg, "detect.overlay_inventory", lambda v: isinstance(v, bool), "must be a bool"),
        "inventory_csv": str(OmegaConf.select(cfg, "detect.inventory_csv", default="") or ""),
        "overlay_min_nox_t_per_yr": require(cfg, "detect.overlay_min_nox_t_per_yr", lambda v: v >= 0, "must be >= 0"),
        "ingest_dir": require(cfg, "detect.ingest_dir", lambda v: isinstance(v, str) and v, "must be a folder"),
        "out_dir": require(cfg, "detect.out_dir", lambda v: isinstance(v, str) and v, "must be a folder"),
    }
    if s["stride"] > 64:
        raise ConfigError("detect.stride", f"must be <= the tile size 64 or cells are skipped (got {s['stride']})")
    return s


def collections(cfg: DictConfig) -> list[str]:
    one = OmegaConf.select(cfg, "detect.collection", default=None)
    if one:
        return [str(one)]
    names = OmegaConf.select(cfg, "detect.collections", default=None)
    if not names:
        raise ConfigError("detect.collections", "empty; list the ingest collections to run detection on")
    return [str(n) for n in names]


def run(cfg: DictConfig) -> dict[str, dict]:
    s = settings(cfg)
    names = collections(cfg)
    grids = {n: Path(s["ingest_dir"]) / f"{n}.nc" for n in names}
    for path in grids.values():  # fail fast, before the (slow) model load
        if not path.exists():
            raise InputFileError(path, "not found; run the ingest stage first (python -m no2hotspots ingest)")
    inventory = load_inventory(s)

    from .. import tracking
    from ..registry.load import load_model

    tracking.setup(cfg)
    loaded = load_model(s["model_uri"], tracking=cfg)
    log.info(
        "model %s (%s v%s, run %s)",
        s["model_uri"],
        loaded.meta.get("name"),
        loaded.meta.get("version"),
        loaded.meta.get("run_id"),
    )
    out = {}
    for name, path in grids.items():
        out[name] = detect_collection(path, Path(s["out_dir"]) / name, loaded, s, collection=name, inventory=inventory)
    return out


def load_inventory(s: Mapping[str, Any]) -> pd.DataFrame | None:
    if not s["overlay_inventory"]:
        return None
    if not s["inventory_csv"]:
        raise ConfigError("detect.inventory_csv", "empty while detect.overlay_inventory is true")
    from ..inventory.coco2 import read_coco2

    sites = read_coco2(s["inventory_csv"])
    return sites[sites["nox_t_per_yr"] >= float(s["overlay_min_nox_t_per_yr"])].reset_index(drop=True)


def detect_collection(
    grid_path: str | Path,
    out_dir: str | Path,
    loaded,
    s: Mapping[str, Any],
    *,
    collection: str,
    inventory: pd.DataFrame | None = None,
) -> dict:
    """Detect hotspots in one ingest grid with a loaded model; write ``out_dir`` atomically; return the summary.

    ``loaded`` is a :class:`no2hotspots.registry.load.LoadedModel` (``.net``, ``.meta``); ``s`` the checked
    settings (:func:`settings`).
    """
    t0 = time.perf_counter()
    grid_path, out_dir = Path(grid_path), Path(out_dir)
    meta = dict(loaded.meta)
    tile = int(meta.get("tile_size", 64) or 64)
    pixel_m = float(meta["pixel_size_m"])
    ds = gridmod.open_grid(grid_path)
    ratio = gridmod.resolution_ratio(ds, pixel_m)
    if ratio > float(s["max_resolution_ratio"]):
        dy, dx = gridmod.cell_size_m(ds)
        raise InputFileError(
            grid_path,
            f"grid cells {dy / 1e3:.1f} km x {dx / 1e3:.1f} km differ {ratio:.1f}x from the model pixel "
            f"{pixel_m / 1e3:.1f} km (limit detect.max_resolution_ratio={s['max_resolution_ratio']}); "
            f"grid it at ~{pixel_m / gridmod.M_PER_DEG:.2f} deg",
        )
    if s["stride"] > tile:
        raise ConfigError("detect.stride", f"must be <= the model tile size {tile} (got {s['stride']})")
    valid = gridmod.valid_mask(ds, float(s["coverage_min"]))
    no2 = np.where(valid, ds["no2"].values, np.nan).astype(np.float32)

    predict = model_predictor(loaded.net, float(meta["input_scale"]), device=str(s["device"]))
    rel, counts = stitch(
        no2,
        valid,
        predict,
        tile=tile,
        stride=int(s["stride"]),
        batch_size=int(s["batch_size"]),
        window_floor=float(s["window_floor"]),
        desc=f"detect {collection}",
    )
    if s["mask_invalid"]:
        rel = np.where(valid, rel, np.nan).astype(np.float32)

    lat, lon = ds["lat"].values, ds["lon"].values
    counts_obs = gridmod.obs_count(ds, valid)
    df, ids = find_hotspots(
        rel,
        lat,
        lon,
        ds["time"].values,
        cell_area_km2=gridmod.cell_area_km2(ds),
        obs_count=counts_obs,
        emission_min=float(meta["emission_min_t_per_yr"]),
        emission_max=float(meta["emission_max_t_per_yr"]),
        threshold=float(s["threshold"]),
        min_cells=int(s["min_cells"]),
    )

    model_info = {
        "model_uri": s["model_uri"],
        "model_name": meta.get("name"),
        "model_version": None if meta.get("version") is None else str(meta.get("version")),
        "run_id": meta.get("run_id"),
    }
    params = {
        "threshold": float(s["threshold"]),
        "min_cells": int(s["min_cells"]),
        "stride": int(s["stride"]),
        "tile_size": tile,
        "window_floor": float(s["window_floor"]),
        "coverage_min": float(s["coverage_min"]),
        "mask_invalid": bool(s["mask_invalid"]),
        "emission_min_t_per_yr": float(meta["emission_min_t_per_yr"]),
        "emission_max_t_per_yr": float(meta["emission_max_t_per_yr"]),
        "input_scale": float(meta["input_scale"]),
        "pixel_size_m": pixel_m,
    }
    dy, dx = gridmod.cell_size_m(ds)
    with np.errstate(invalid="ignore"):
        rmax = float(np.nanmax(rel)) if np.isfinite(rel).any() else None
    summary = {
        **model_info,
        "n_hotspots": int(len(df)),
        "threshold": float(s["threshold"]),
        "collection": collection,
        "input": str(grid_path),
        "n_time": int(ds.sizes["time"]),
        "grid_shape": [int(ds.sizes["lat"]), int(ds.sizes["lon"])],
        "cell_size_km": [round(dy / 1e3, 3), round(dx / 1e3, 3)],
        "resolution_ratio": round(float(ratio), 3),
        "valid_fraction": float(valid.mean()) if valid.size else 0.0,
        "max_relative_emission": rmax,
        "hotspots_per_time": {str(k): int(v) for k, v in df.groupby("time").size().items()},
        **counts,
        "params": params,
        "note": ESTIMATE_NOTE,
        "columns": COLUMN_DOCS,
        "orientation": "tiles fed in grid order: row 0 = southernmost latitude, column 0 = westernmost longitude",
        "seconds": None,
    }
    sources = None
    if inventory is not None and len(inventory):
        dlat, dlon = (lat[-1] - lat[0]) / max(len(lat) - 1, 1), (lon[-1] - lon[0]) / max(len(lon) - 1, 1)
        inside = inventory["lat"].between(lat[0] - dlat / 2, lat[-1] + dlat / 2) & inventory["lon"].between(
            lon[0] - dlon / 2, lon[-1] + dlon / 2
        )
        sources = inventory[inside]
        summary["inventory_sources_in_bbox"] = int(len(sources))

    ds_out = emission_dataset(
        ds,
        rel,
        ids,
        {
            **model_info,
            **params,
            "collection": collection,
            "source": grid_path.name,
            "nox_estimate_note": ESTIMATE_NOTE,
        },
    )
    title = (
        f"{collection}: {len(df)} hotspot(s) (r >= {s['threshold']:g}) over {ds.sizes['time']} overpass(es)\n"
        f"model {model_info['model_name'] or s['model_uri']} v{model_info['model_version'] or '?'}"
    )
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    with atomic_path(out_dir, is_dir=True) as tmp:
        ds_out.to_netcdf(tmp / "emission.nc", engine="netcdf4")
        write_tables(df, tmp, {**model_info, "threshold": float(s["threshold"]), "collection": collection})
        write_map(
            tmp,
            lat,
            lon,
            gridmod.mean_no2(ds, valid),
            df,
            title=title,
            sources=sources,
            source_label=f"CoCO2 site, NOx >= {s['overlay_min_nox_t_per_yr']:g} t/yr",
        )
        write_summary(tmp, summary)
    log.info("%s: %d hotspot(s), %d tile(s) -> %s", collection, len(df), counts["tiles_run"], out_dir)
    return summary
