"""The ``ingest`` stage: granules of a collection -> ``<ingest.out_dir>/<collection>/`` (no2hotspots.contracts.grid).

Each granule is one unit (:func:`grid_granule`, mapped over Dask by :mod:`no2hotspots.parallel`): its valid pixels
(QA and finite NO2) are gridded by exact area weighting onto the part of the 0.05 deg grid they cover and written as
one overpass file; granules without a valid pixel on the grid contribute no overpass. The period products
(``obs_count``: overpasses covering more than ``coverage_min`` of a cell; ``no2_mean`` over those overpasses) are
accumulated one overpass at a time, the gridded data is validated, and only then is the collection folder replaced
(overpass files hard-linked from the unit folder, so nothing is copied and a failure keeps the previous output).
Memory is one granule per worker, whatever the number of granules.
"""

from __future__ import annotations

import glob
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from .. import units
from ..config import PLAIN_NAME, require, require_bool, require_int, require_name
from ..contracts import grid as contract
from ..errors import ConfigError, InputFileError, UserError
from .gridding import Grid, grid_overpass
from .readers import open_pixels, valid_pixels

log = logging.getLogger(__name__)

#: an overpass file's summary for the data-quality suite (one row per overpass)
STATS = (
    "coverage_min",
    "coverage_max",
    "n_coverage_nonfinite",
    "n_covered",
    "n_no2_nonfinite_covered",
    "no2_min",
    "no2_max",
    "no2_precision_min",
)


OUTSIDE_BBOX = "no valid pixel in the bbox"


@dataclass(frozen=True)
class GranuleTask:
    """One granule to grid (everything a worker needs; small and picklable)."""

    path: str
    key: str
    units_dir: str
    bbox: tuple | None
    res: float
    qa_threshold: float
    max_cells_per_pixel: int
    unit_hash: str
    no2_plausible: tuple = (-1.0e-3, 1.0e-2)
    max_implausible_fraction: float = 0.5


def check_bbox(bbox, key: str):
    if bbox is None:
        return None
    try:
        w, s, e, n = (float(b) for b in bbox)
    except (TypeError, ValueError):
        raise ConfigError(key, f"must be [west, south, east, north] in degrees or null (got {bbox!r})") from None
    if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
        raise ConfigError(
            key,
            f"must be [west, south, east, north] within -180..180 / -90..90, west < east (got "
            f"{[w, s, e, n]}); a region across the antimeridian needs two collections",
        )
    return (w, s, e, n)


def _extent(px, bbox) -> tuple | None:
    lo, la = px["lon_bounds"].values, px["lat_bounds"].values
    if lo.size == 0:
        return None
    ext = (float(lo.min()), float(la.min()), float(lo.max()), float(la.max()))
    if bbox is not None:
        ext = (max(ext[0], bbox[0]), max(ext[1], bbox[1]), min(ext[2], bbox[2]), min(ext[3], bbox[3]))
        if ext[0] >= ext[2] or ext[1] >= ext[3]:
            return None
    return ext


def _antimeridian(px, path, bbox):
    """Pixels whose footprint crosses +-180 deg: refused without a bbox (the extent would span the globe); with a
    bbox they are left out (one side of the line is gridded, see overlap_weights)."""
    lo = px["lon_bounds"].values
    crosses = (lo.max(axis=1) - lo.min(axis=1)) > 180.0
    if crosses.any() and bbox is None:
        raise InputFileError(
            path,
            f"{int(crosses.sum())} pixel(s) cross the antimeridian; set "
            "ingest.collections.<name>.bbox to a region on one side of it",
        )
    return crosses


def plausible(px, ok: np.ndarray, task: GranuleTask) -> np.ndarray:
    """Valid pixels whose coordinates and NO2 are physically possible. Coordinates off the globe refuse the file;
    NO2 outside ``ingest.no2_plausible`` is masked with a warning, and refuses the file when most valid pixels are
    (a unit or scaling mistake, e.g. molecules cm-2 read as mol m-2)."""
    lat, lon = px["lat_bounds"].values, px["lon_bounds"].values
    if np.any(np.abs(lat) > 90) or np.any((lon < -180) | (lon > 360)):
        bad = lat[np.abs(lat) > 90] if np.any(np.abs(lat) > 90) else lon[(lon < -180) | (lon > 360)]
        raise InputFileError(task.path, f"pixel coordinates off the globe (e.g. {float(bad.ravel()[0]):g} deg)")
    no2 = px["no2"].values
    lo, hi = task.no2_plausible
    odd = ok & ((no2 < lo) | (no2 > hi))
    if odd.any():
        share = odd.sum() / max(ok.sum(), 1)
        if share > task.max_implausible_fraction:
            raise InputFileError(
                task.path,
                f"{share:.0%} of the valid NO2 values lie outside {lo:g}..{hi:g} mol m-2 "
                f"(median {float(np.median(no2[ok])):.3g}): wrong units or scaling?",
            )
        log.warning("%s: %d NO2 value(s) outside %g..%g mol m-2 masked", Path(task.path).name, int(odd.sum()), lo, hi)
    return ok & ~odd


def _stats(no2, prec, cov) -> dict:
    covered = np.isfinite(cov) & (cov > 0)
    good = no2[covered & np.isfinite(no2)]
    good_p = prec[covered & np.isfinite(prec)]
    return {
        "coverage_min": float(np.nanmin(cov)) if np.isfinite(cov).any() else float("nan"),
        "coverage_max": float(np.nanmax(cov)) if np.isfinite(cov).any() else float("nan"),
        "n_coverage_nonfinite": int((~np.isfinite(cov)).sum()),
        "n_covered": int(covered.sum()),
        "n_no2_nonfinite_covered": int((covered & ~np.isfinite(no2)).sum()),
        "no2_min": float(good.min()) if good.size else float("nan"),
        "no2_max": float(good.max()) if good.size else float("nan"),
        "no2_precision_min": float(good_p.min()) if good_p.size else float("nan"),
    }


def grid_granule(task: GranuleTask) -> dict:
    """Grid one granule into ``<units_dir>/<key>.nc`` (skipped when already done with the same hash); return its
    summary (time, position on the global 0.05 deg lattice, size, stats) or ``{"empty": reason}``."""
    done = units.load_done(task.units_dir, task.key, task.unit_hash)
    if done is not None:
        return {**done, "reused": True}
    px = open_pixels(task.path)
    ok = plausible(px, valid_pixels(px, task.qa_threshold), task)
    crosses = _antimeridian(px, task.path, task.bbox)
    sub = px.isel(pixel=np.flatnonzero(ok & ~crosses))
    del px  # a copy of the kept pixels is all the gridding needs: not two granules in memory
    ext = _extent(sub, task.bbox) if ok.any() else None
    if ext is None:
        reason = (
            f"no pixel passes QA >= {task.qa_threshold:.2f} with a finite NO2"
            if not ok.any()
            else "no valid pixel in the bbox"
        )
        result = {"key": task.key, "source_file": Path(task.path).name, "empty": reason}
    else:
        result = _grid_and_write(task, sub, Grid.from_bbox(ext, task.res))
    units.mark_done(
        task.units_dir, task.key, task.unit_hash, [f"{task.key}.nc"] if "empty" not in result else [], result
    )
    return {**result, "reused": False}


def _overpass_time(sub, grid: Grid, crop: tuple) -> np.datetime64:
    """The overpass time: the mean observation time of the pixels whose footprint reaches the written crop (rows
    r0:r1, columns c0:c1 of ``grid``), not of the whole granule: a full-orbit L2 granule spans ~100 min, and the
    time the region was seen (what winds are matched to) is that of its own pixels. Pixels without a time (NaT: a
    scanline whose ``delta_time`` is the fill value) are left out."""
    r0, r1, c0, c1 = crop
    south, north = grid.south + r0 * grid.res, grid.south + r1 * grid.res
    west, east = grid.west + c0 * grid.res, grid.west + c1 * grid.res
    lo, la = sub.lon_bounds.values, sub.lat_bounds.values
    seen = (lo.max(axis=1) > west) & (lo.min(axis=1) < east) & (la.max(axis=1) > south) & (la.min(axis=1) < north)
    t = sub.time.values.astype("datetime64[ns]")
    timed = ~np.isnat(t)
    if (seen & timed).any():  # (always, when a timed pixel covers a cell of the crop)
        t = t[seen & timed]
    else:
        t = t[timed]
    return t.min() + (t - t.min()).mean()


def _grid_and_write(task: GranuleTask, sub, grid: Grid) -> dict:
    g = grid_overpass(
        grid,
        sub.lon_bounds.values,
        sub.lat_bounds.values,
        sub.no2.values,
        sub.no2_precision.values,
        task.max_cells_per_pixel,
    )
    rows = np.flatnonzero((g.covered_area > 0).any(axis=1))
    cols = np.flatnonzero((g.covered_area > 0).any(axis=0))
    if rows.size == 0:
        return {"key": task.key, "source_file": Path(task.path).name, "empty": "no valid pixel overlaps the grid"}
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    no2, prec, cov = (a[r0:r1, c0:c1] for a in (g.no2, g.no2_precision, g.coverage))
    time = _overpass_time(sub, grid, (r0, r1, c0, c1))
    lat, lon = grid.lat[r0:r1], grid.lon[c0:c1]
    contract.write_overpass(
        Path(task.units_dir) / f"{task.key}.nc",
        lat=lat,
        lon=lon,
        res=task.res,
        no2=no2,
        no2_precision=prec,
        coverage=cov,
        time=time,
        source_file=Path(task.path).name,
    )
    return {
        "key": task.key,
        "time": str(np.datetime64(time, "s")),
        "source_file": Path(task.path).name,
        "south_index": int(round(float(lat[0]) / task.res - 0.5)),
        "west_index": int(round(float(lon[0]) / task.res - 0.5)),
        "ny": int(r1 - r0),
        "nx": int(c1 - c0),
        **_stats(no2.astype(np.float64), prec.astype(np.float64), cov.astype(np.float64)),
    }


def settings(cfg: DictConfig) -> dict:
    require(cfg, "ingest.qa_threshold", lambda v: 0 <= float(v) <= 1, "must be in [0, 1]")
    require(cfg, "ingest.resolution_deg", lambda v: 0 < float(v) <= 10, "must be in (0, 10] degrees")
    require(cfg, "ingest.coverage_min", lambda v: 0 <= float(v) < 1, "must be in [0, 1)")
    require_int(cfg, "ingest.max_cells_per_pixel", 1)
    require_int(cfg, "ingest.max_grid_cells", 1)
    require_bool(cfg, "ingest.allow_empty")
    require(cfg, "ingest.no2_plausible", lambda v: len(v) == 2 and float(v[0]) < float(v[1]), "must be [low, high]")
    require(cfg, "ingest.max_implausible_fraction", lambda v: 0 <= float(v) <= 1, "must be in [0, 1]")
    if str(cfg.ingest.get("method", "exact")) != "exact":
        raise ConfigError("ingest.method", f"only 'exact' is implemented (got {cfg.ingest.method!r})")
    i = cfg.ingest
    return {
        "qa_threshold": float(i.qa_threshold),
        "res": float(i.resolution_deg),
        "coverage_min": float(i.coverage_min),
        "max_cells_per_pixel": int(i.max_cells_per_pixel),
        "max_grid_cells": int(i.max_grid_cells),
        "allow_empty": bool(i.allow_empty),
        "no2_plausible": tuple(float(v) for v in i.no2_plausible),
        "max_implausible_fraction": float(i.max_implausible_fraction),
    }


def collection_names(cfg: DictConfig) -> list[str]:
    collections = cfg.ingest.collections
    for name in collections:
        if PLAIN_NAME.match(str(name)) is None:
            raise ConfigError(f"ingest.collections.{name}", "must be a plain name (letters, digits, _ . -)")
    wanted = cfg.ingest.get("collection")
    if wanted is None:
        return [n for n in collections if glob.glob(str(collections[n].inputs))]
    require_name(cfg, "ingest.collection")
    if wanted not in collections:
        raise ConfigError("ingest.collection", f"unknown collection {wanted!r}; known: {sorted(collections)}")
    return [str(wanted)]


def plan(cfg: DictConfig, name: str, s: dict) -> tuple[list[GranuleTask], tuple | None, Path]:
    """The units of one collection: one task per input granule."""
    c = cfg.ingest.collections[name]
    bbox = check_bbox(
        OmegaConf.to_container(c.bbox) if c.get("bbox") is not None else None, f"ingest.collections.{name}.bbox"
    )
    files = sorted(glob.glob(str(c.inputs)))
    if not files:
        raise UserError(f"{c.inputs}: no files match (ingest.collections.{name}.inputs)")
    units_dir = Path(str(cfg.ingest.units_dir)) / name
    units_dir.mkdir(parents=True, exist_ok=True)
    keys = ("qa_threshold", "res", "max_cells_per_pixel", "no2_plausible", "max_implausible_fraction")
    settings_hash = units.digest(
        {
            "bbox": bbox,
            **{k: s[k] for k in keys},
            "code": units.code_digest("no2hotspots.ingest", "no2hotspots.contracts.grid"),
        }
    )
    tasks, seen = [], {}
    for f in files:
        key = contract.overpass_key(f)
        if key in seen:
            raise InputFileError(f, f"has the same name as {seen[key]}: one granule per file name in a collection")
        seen[key] = f
        h = units.digest([settings_hash, units.file_identity(f)])
        tasks.append(
            GranuleTask(
                f,
                key,
                str(units_dir),
                bbox,
                s["res"],
                s["qa_threshold"],
                s["max_cells_per_pixel"],
                h,
                s["no2_plausible"],
                s["max_implausible_fraction"],
            )
        )
    return tasks, bbox, units_dir


def run(cfg: DictConfig) -> dict:
    s = settings(cfg)
    out = {}
    names = collection_names(cfg)
    if not names:
        raise UserError("ingest: no collection has input files (ingest.collections.<name>.inputs)")
    for name in names:
        out[name] = ingest_collection(cfg, name, s)
    return out


def ingest_collection(cfg: DictConfig, name: str, s: dict) -> dict:
    """Grid every granule of one collection (units on Dask), validate, publish; return the summary."""
    from ..parallel import map_units
    from .period import publish

    tasks, bbox, units_dir = plan(cfg, name, s)
    results = map_units(grid_granule, tasks, cfg, desc=f"ingest {name}")
    units.prune(units_dir, [t.key for t in tasks])
    done = [r for r in results if "empty" not in r]
    for r in results:
        if "empty" in r:
            log.warning("%s: %s; the granule contributes no overpass", r["source_file"], r["empty"])
    if not done and bbox is not None and all(r["empty"] == OUTSIDE_BBOX for r in results):
        raise ConfigError(
            f"ingest.collections.{name}.bbox", f"bbox {list(bbox)} lies outside the data of all {len(tasks)} granule(s)"
        )
    if not done:
        first = next(t for t in tasks if t.key == results[0]["key"])
        msg = (
            f"{results[0]['empty']}, and none of the collection's {len(tasks)} granule(s) has a valid pixel on the grid"
        )
        if not s["allow_empty"]:
            raise InputFileError(first.path, msg + " (nothing to ingest; ingest.allow_empty=true writes it empty)")
        log.warning("%s: %s", first.path, msg)
    summary = publish(cfg, name, s, bbox, units_dir, done)
    reused = sum(bool(r.get("reused")) for r in results)
    log.info(
        "%s: %d overpasses from %d granules (%d computed, %d reused) on a %dx%d grid -> %s",
        name,
        len(done),
        len(tasks),
        len(tasks) - reused,
        reused,
        summary["n_lat"],
        summary["n_lon"],
        summary["folder"],
    )
    return {**summary, "n_granules": len(tasks), "n_computed": len(tasks) - reused, "n_reused": reused}
