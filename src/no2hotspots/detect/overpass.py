"""One overpass through the model: the unit of the detect stage (runs in a Dask worker or in process).

Reads the ingest overpass file, cuts its valid cells into overlapping 64x64 tiles, runs the model with one torch
thread, blends the tiles back (float32), extracts the hotspot regions and writes the overpass's detection file
into the unit folder; returns the hotspot rows. A unit whose marker matches its hash is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import units
from ..contracts import detections
from ..contracts import grid as grid_contract
from . import grid as gridmod
from .hotspots import find_hotspots
from .tiles import model_predictor, stitch


@dataclass(frozen=True)
class OverpassTask:
    key: str
    source: str  # the ingest overpass file
    units_dir: str
    unit_hash: str


def detect_overpass(task: OverpassTask, *, loaded, s: dict) -> dict:
    """Detect hotspots in one overpass; ``loaded`` is the model (a LoadedModel), ``s`` the checked settings."""
    done = units.load_done(task.units_dir, task.key, task.unit_hash)
    if done is not None:
        return {**done, "reused": True}
    import torch

    torch.set_num_threads(int(s["num_threads"]))
    ds = grid_contract.open_overpass(task.source)
    meta = loaded.meta
    valid = gridmod.valid_mask(ds, float(s["coverage_min"]))
    no2 = np.where(valid, ds["no2"].values, np.nan).astype(np.float32)
    predict = model_predictor(loaded.net, float(meta["input_scale"]), device=str(s["device"]))
    rel, counts = stitch(
        no2,
        valid,
        predict,
        tile=int(meta.get("tile_size", 64)),
        stride=int(s["stride"]),
        batch_size=int(s["batch_size"]),
        window_floor=float(s["window_floor"]),
        desc=task.key,
    )
    if s["mask_invalid"]:
        rel = np.where(valid, rel, np.nan).astype(np.float32)
    lat, lon = ds["lat"].values, ds["lon"].values
    rows, ids = find_hotspots(
        rel,
        lat,
        lon,
        cell_area_km2=gridmod.cell_area_km2(ds),
        emission_min=float(meta["emission_min_t_per_yr"]),
        emission_max=float(meta["emission_max_t_per_yr"]),
        threshold=float(s["threshold"]),
        min_cells=int(s["min_cells"]),
        prominence=float(s["peaks"]["prominence"]),
        min_separation_px=int(s["peaks"]["min_separation_px"]),
    )
    time = ds["time"].values
    detections.write_overpass(
        Path(task.units_dir) / f"{task.key}.nc",
        lat=lat,
        lon=lon,
        res=float(ds.attrs["resolution_deg"]),
        rel=rel,
        ids=ids,
        time=time,
        attrs={"source_file": ds.attrs.get("source_file", "")},
    )
    t = str(np.datetime_as_string(np.datetime64(time, "s"), unit="s"))
    result = {
        "key": task.key,
        "time": t,
        "hotspots": [{"overpass": task.key, "time": t, **r} for r in rows],
        "valid_cells": int(valid.sum()),
        **counts,
    }
    units.mark_done(task.units_dir, task.key, task.unit_hash, [f"{task.key}.nc"], result)
    return {**result, "reused": False}
