"""The ``detect`` stage: the model over every overpass of each ingest collection -> relative emission and hotspots.

``python -m no2hotspots detect [detect.collection=NAME] [detect.model_uri=...]`` reads
``<ingest.out_dir>/<collection>/`` and writes ``<detect.out_dir>/<collection>/`` (no2hotspots.contracts.detections).
Each overpass is one unit (:mod:`.overpass`) on Dask (conf/parallel/), one torch thread per worker; a rerun skips
overpasses already done with the same model and settings. The model is, by default, the version this pipeline's
register stage registered (``detect.model_uri: registered``), so an experiment's detections come from the model
that experiment trained; any ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/ID/model`` or a local model
folder works too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from .. import units
from ..config import PLAIN_NAME, is_number, require, require_bool, require_int
from ..contracts import grid as grid_contract
from ..errors import ConfigError, InputFileError
from ..peaks import settings as peak_settings
from . import grid as gridmod
from .composite import POSITIONS, RECURRENCE_POSITIONS, RULES
from .field import NUMBERS, Number
from .outputs import ESTIMATE_NOTE
from .resample import RESAMPLE
from .tiles import TILINGS, resolve_tiling

log = logging.getLogger(__name__)


def settings(cfg: DictConfig) -> dict[str, Any]:
    """The checked ``detect.*`` settings (one-line ConfigError naming the key on a bad value)."""
    d = "detect."
    s = {
        "model_uri": require(cfg, d + "model_uri", lambda v: isinstance(v, str) and v, "must be a model URI"),
        "tiling": require(cfg, d + "tiling", lambda v: v in TILINGS, "must be " + ", ".join(TILINGS)),
        "resample": require(cfg, d + "resample", lambda v: v in RESAMPLE, "must be " + " or ".join(RESAMPLE)),
        "num_threads": require_int(cfg, d + "num_threads", 1),
        "context": {
            "core": require_int(cfg, d + "context.core", 8),
            "margin": require_int(cfg, d + "context.margin", 0),
        },
        **{k: _number(cfg, d + k, spec) for k, spec in NUMBERS.items()},
        "mask_invalid": require_bool(cfg, d + "mask_invalid"),
        "max_resolution_ratio": require(cfg, d + "max_resolution_ratio", lambda v: v >= 1, "must be >= 1"),
        "device": require(cfg, d + "device", lambda v: v in ("cpu", "cuda", "auto"), "must be cpu, cuda or auto"),
        "overlay_inventory": require_bool(cfg, d + "overlay_inventory"),
        "inventory_csv": str(OmegaConf.select(cfg, d + "inventory_csv", default="") or ""),
        "overlay_min_nox_t_per_yr": require(cfg, d + "overlay_min_nox_t_per_yr", lambda v: v >= 0, "must be >= 0"),
    }
    s["peaks"] = peak_settings(cfg, "detect.peaks")
    s["composite"] = composite_settings(cfg)
    r = s["composite"]["recurrence"]
    if r["downwind"]["alpha"] is not None and r["level"] is None:
        raise ConfigError(
            "detect.composite.recurrence.downwind.alpha", "needs recurrence.level (the maps' maxima it tests)"
        )
    return s


def _number(cfg: DictConfig, key: str, spec: Number) -> int | float:
    """A numeric setting of :data:`no2hotspots.detect.field.NUMBERS`, typed (one-line ConfigError naming the key)."""
    return spec.value(require(cfg, key, lambda v: spec.value(v) is not None, spec.problem))


def composite_settings(cfg: DictConfig) -> dict:
    c = "detect.composite."
    return {
        "enabled": require_bool(cfg, c + "enabled"),
        "min_valid": require_int(cfg, c + "min_valid", 1),
        "k_sigma": require(cfg, c + "k_sigma", lambda v: float(v) > 0, "must be > 0"),
        "min_value": require(cfg, c + "min_value", lambda v: 0 < float(v) < 1, "must be in (0, 1)"),
        "min_cells": require_int(cfg, c + "min_cells", 1),
        "position": require(cfg, c + "position", lambda v: v in POSITIONS, "must be " + " or ".join(POSITIONS)),
        "peaks": peak_settings(cfg, "detect.peaks"),
        "rule": require(cfg, c + "rule", lambda v: v in RULES, "must be " + " or ".join(RULES)),
        "recurrence": {
            "alpha": float(require(cfg, c + "recurrence.alpha", lambda v: 0 < float(v) < 1, "must be in (0, 1)")),
            "min_peaks": require_int(cfg, c + "recurrence.min_peaks", 1),
            "separation_cells": require_int(cfg, c + "recurrence.separation_cells", 1),
            "ring_cells": _ring_cells(cfg, c + "recurrence.ring_cells"),
            "position": require(
                cfg,
                c + "recurrence.position",
                lambda v: v in RECURRENCE_POSITIONS,
                "must be " + " or ".join(RECURRENCE_POSITIONS),
            ),
            "level": _optional_float(
                require(
                    cfg,
                    c + "recurrence.level",
                    _null_or_fraction,
                    "must be null (hotspot peaks) or in (0, 1)",
                )
            ),
            "downwind": _downwind_settings(cfg, c + "recurrence.downwind."),
        },
    }


def _downwind_settings(cfg: DictConfig, d: str) -> dict:
    """``detect.composite.recurrence.downwind.*`` (:mod:`.downwind`)."""
    return {
        "alpha": _optional_float(
            require(
                cfg,
                d + "alpha",
                _null_or_fraction,
                "must be null (no downwind test) or in (0, 1)",
            )
        ),
        "radius_km": float(require(cfg, d + "radius_km", lambda v: float(v) > 0, "must be > 0 km")),
        "half_angle_deg": float(
            require(cfg, d + "half_angle_deg", lambda v: 0 < float(v) < 180, "must be in (0, 180)")
        ),
    }


def _ring_cells(cfg: DictConfig, key: str) -> int:
    ring = require_int(cfg, key, 0)
    if ring == 1:
        raise ConfigError(key, "must be 0 (the map-wide rate) or >= 2 (got 1: the ring would be the 3x3 block)")
    return ring


def _null_or_fraction(v) -> bool:
    return v is None or (is_number(v) and 0 < v < 1)


def _optional_float(v) -> float | None:
    return None if v is None else float(v)


def collections(cfg: DictConfig) -> list[str]:
    one = OmegaConf.select(cfg, "detect.collection", default=None)
    names = [one] if one else list(OmegaConf.select(cfg, "detect.collections", default=None) or [])
    if not names:
        raise ConfigError("detect.collections", "empty; list the ingest collections to run detection on")
    for n in names:
        if not isinstance(n, str) or not PLAIN_NAME.match(n) or n in (".", ".."):
            raise ConfigError("detect.collection", f"must be a plain collection name (got {n!r})")
    return [str(n) for n in names]


def model_uri(cfg: DictConfig, s: dict) -> str:
    """``registered`` -> the version this pipeline's register stage registered (its model.json)."""
    if s["model_uri"] != "registered":
        return s["model_uri"]
    path = Path(str(cfg.detect.register_file))
    try:
        return str(json.loads(path.read_text())["registered_uri"])
    except FileNotFoundError:
        raise InputFileError(
            path, "not found; run the register stage, or set detect.model_uri=models:/<name>@champion (or a version)"
        ) from None
    except (ValueError, KeyError, UnicodeDecodeError) as e:
        raise InputFileError(path, f"no registered_uri in it ({type(e).__name__})") from None


def model_hash(loaded) -> str:
    """What identifies a model for the unit hashes: its weights and the metadata detection uses."""
    h = hashlib.sha256()
    for k, v in sorted(loaded.net.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().numpy().tobytes())
    keep = ("input_scale", "emission_min_t_per_yr", "emission_max_t_per_yr", "tile_size", "pixel_size_m")
    h.update(json.dumps({k: loaded.meta.get(k) for k in keep}, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def load_inventory(s: dict) -> pd.DataFrame | None:
    """Inventory sites drawn on the map (CoCO2 layout), or None."""
    if not s["overlay_inventory"]:
        return None
    if not s["inventory_csv"]:
        raise ConfigError("detect.inventory_csv", "empty while detect.overlay_inventory is true")
    from ..inventory.coco2 import read_coco2

    sites = read_coco2(s["inventory_csv"])
    return sites[sites["nox_t_per_yr"] >= float(s["overlay_min_nox_t_per_yr"])].reset_index(drop=True)


def run(cfg: DictConfig) -> dict[str, dict]:
    s = settings(cfg)
    names = collections(cfg)
    grids = {n: Path(str(cfg.detect.ingest_dir)) / n for n in names}
    for folder in grids.values():  # fail fast, before the (slow) model load
        if not (folder / grid_contract.GRID_FILE).exists():
            raise InputFileError(
                folder / grid_contract.GRID_FILE, "not found; run the ingest stage first (python -m no2hotspots ingest)"
            )
    inventory = load_inventory(s)
    from .. import tracking
    from ..registry.load import load_model

    uri = model_uri(cfg, s)
    tracking.setup(cfg)
    loaded = load_model(uri, tracking=cfg)
    log.info(
        "model %s (%s v%s, run %s)", uri, loaded.meta.get("name"), loaded.meta.get("version"), loaded.meta.get("run_id")
    )
    return {n: detect_collection(cfg, n, folder, loaded, s, uri, inventory) for n, folder in grids.items()}


def detect_collection(
    cfg: DictConfig, name: str, ingest_folder: Path, loaded, s: dict, uri: str, inventory: pd.DataFrame | None = None
) -> dict:
    """Detect hotspots in every overpass of one collection (units on Dask) and publish the collection's folder."""
    from ..parallel import map_units
    from .overpass import OverpassTask, detect_overpass
    from .period import publish

    t0 = time.perf_counter()
    grid = grid_contract.open_grid(ingest_folder)
    check_resolution(grid, float(loaded.meta["pixel_size_m"]), s, ingest_folder)
    s = {**s, "tiling": resolve_tiling(s["tiling"], loaded.net)}  # auto -> what this model runs (units, detect.json)
    units_dir = Path(str(cfg.detect.units_dir)) / name
    units_dir.mkdir(parents=True, exist_ok=True)
    fixed = units.digest(
        {
            "model": model_hash(loaded),
            # the unit's code and all it imports (peaks, labelstats, model.inputs, ...), and the network's own code
            # (the weights are in "model")
            "code": units.code_digest("no2hotspots.detect.overpass", "no2hotspots.model"),
            **{k: s[k] for k, spec in NUMBERS.items() if spec.keys_units},
            "mask_invalid": s["mask_invalid"],
            **({"tiling": "context", "context": s["context"]} if s["tiling"] == "context" else {}),
            **({"resample": s["resample"]} if s["resample"] != "none" else {}),
            **(
                {k: s[k] for k in ("background_max_mol_m2", "background_sigma_km", "background_mask_z") if s[k] > 0}
                if s["background_max_mol_m2"] > 0
                else {}
            ),
            "peaks": s["peaks"],
        }
    )
    tasks = []
    for key in grid_contract.overpass_index(grid)["key"]:
        src = grid_contract.overpass_path(ingest_folder, key)
        tasks.append(OverpassTask(key, str(src), str(units_dir), units.digest([fixed, units.file_identity(src)])))
    results = map_units(detect_overpass, tasks, cfg, desc=f"detect {name}", shared={"loaded": loaded, "s": s})
    units.prune(units_dir, [t.key for t in tasks])
    reused = sum(bool(r["reused"]) for r in results)
    model_info = {
        "model_uri": uri,
        "model_name": loaded.meta.get("name"),
        "run_id": loaded.meta.get("run_id"),
        "model_version": None if loaded.meta.get("version") is None else str(loaded.meta["version"]),
    }
    summary = _summary(name, ingest_folder, grid, s, results, model_info)
    out_dir = Path(str(cfg.detect.out_dir)) / name
    table = publish(
        name, out_dir, units_dir, grid, results, summary, model_info, inventory, s["composite"], winds(cfg, name, s)
    )
    log.info(
        "%s: %d hotspot(s) in %d overpasses (%d computed, %d reused) in %.1f s",
        name,
        len(table),
        len(tasks),
        len(tasks) - reused,
        reused,
        time.perf_counter() - t0,
    )
    return {**summary, "n_hotspots": int(len(table)), "units_computed": len(tasks) - reused, "units_reused": reused}


def winds(cfg: DictConfig, name: str, s: dict):
    """The collection's winds for the recurrence rule's downwind test (``detect.wind_paths.<name>`` read with the
    ``detect.winds`` settings), or None when the test is off or the collection has no wind files (then untested)."""
    c = s["composite"]
    if not c["enabled"] or c["rule"] != "recurrence" or c["recurrence"]["downwind"]["alpha"] is None:
        return None
    from ..winds import open_winds

    wp = OmegaConf.select(cfg, f"detect.wind_paths.{name}", default=None)
    paths = OmegaConf.to_container(wp, resolve=True) if OmegaConf.is_config(wp) else ([wp] if wp else [])
    if not paths:
        log.warning("%s: no detect.wind_paths.%s; the composite's downwind test is skipped", name, name)
        return None
    return open_winds(cfg.detect.winds, paths, key="detect.winds")


def _summary(name: str, ingest_folder: Path, grid, s: dict, results: list[dict], model_info: dict) -> dict:
    """detect.json: the model, the settings and what was detected (no run statistics: the same inputs give the
    same file, whether units were computed now or reused)."""
    dy, dx = gridmod.cell_size_m(grid)
    return {
        **model_info,
        "collection": name,
        "input": str(ingest_folder),
        "n_overpasses": len(results),
        "threshold": float(s["threshold"]),
        "overlay_min_nox_t_per_yr": float(s["overlay_min_nox_t_per_yr"]),
        "grid_shape": [int(grid.sizes["lat"]), int(grid.sizes["lon"])],
        "cell_size_km": [round(dy / 1e3, 3), round(dx / 1e3, 3)],
        "tiles_run": sum(r.get("tiles_run", 0) for r in results),
        "note": ESTIMATE_NOTE,
        # resample only when on (absent = none: detect.json of the default settings predates the option)
        "params": {k: v for k, v in s.items() if k != "inventory_csv" and not (k == "resample" and v == "none")},
        "orientation": "tiles fed in grid order: row 0 = southernmost latitude, column 0 = westernmost",
    }


def check_resolution(grid, pixel_m: float, s: dict, where: Path) -> None:
    """Refuse grids whose cells differ too much from the model pixel; with ``resample: model_pixel`` only those too
    coarse (finer cells are averaged onto the pixel)."""
    resampled = s.get("resample", "none") == "model_pixel"
    why = gridmod.resolution_refusal(grid, pixel_m, float(s["max_resolution_ratio"]), resampled=resampled, key="detect")
    if why:
        raise InputFileError(where / grid_contract.GRID_FILE, why)
