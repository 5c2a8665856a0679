"""One overpass through the model: the unit of the detect stage (runs in a Dask worker or in process).

Reads the ingest overpass file, runs :func:`no2hotspots.detect.field.detect_field` on it with one torch thread
(valid cells, overlapping 64x64 tiles blended back in float32, hotspot regions) and writes the overpass's detection file
into the unit folder; returns the hotspot rows as columns (:func:`columns`). A unit whose marker matches its hash
is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import units
from ..contracts import detections
from ..contracts import grid as grid_contract
from .field import detect_field


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
        return {**done, "hotspots": columns(done["hotspots"]), "reused": True}
    import torch

    torch.set_num_threads(int(s["num_threads"]))
    ds = grid_contract.open_overpass(task.source)
    r = detect_field(ds, loaded, s, desc=task.key)
    valid, rel, ids, rows, counts = r["valid"], r["relative_emission"], r["hotspot_id"], r["hotspots"], r["counts"]
    lat, lon = ds["lat"].values, ds["lon"].values
    time = ds["time"].values
    detections.write_overpass(
        Path(task.units_dir) / f"{task.key}.nc",
        lat=lat,
        lon=lon,
        res=float(ds.attrs["resolution_deg"]),
        rel=rel,
        ids=ids,
        time=time,
        attrs={
            "source_file": ds.attrs.get("source_file", ""),
            "background_shift_max_mol_m2": r["background_shift_max"],
        },
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
    return {**result, "hotspots": columns(result["hotspots"]), "reused": False}


def columns(rows: list[dict]) -> dict[str, np.ndarray]:
    """Hotspot rows as one array per column: what the stage process keeps of each overpass until the period is
    published: 916 overpasses of ~97 rows (a china_year-sized collection) take ~39 MB there as dicts, ~10 MB as
    arrays."""
    names = [c for c in detections.COLUMNS if c not in ("hotspot_id", "obs_count")]
    out = {}
    for c in names:
        values = [r[c] for r in rows]
        out[c] = np.asarray(values, dtype=object) if c in ("overpass", "time") else np.asarray(values)
    return out
