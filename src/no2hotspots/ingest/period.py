"""The period products of a collection, accumulated one overpass at a time, then validation and publication.

``obs_count(lat, lon)``: overpasses whose valid pixels cover more than ``ingest.coverage_min`` of the cell (the
paper's Fig. 8); ``no2_mean(lat, lon)``: the mean column over those overpasses. Accumulators are float64 grids of
the collection's size; each overpass file is read, added and dropped.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from .. import units
from ..atomic import atomic_path
from ..contracts import grid as contract
from ..errors import ConfigError
from .gridding import Grid

log = logging.getLogger(__name__)


def collection_grid(done: list[dict], bbox, res: float, max_cells: int, key: str) -> Grid:
    """The bbox's grid, or the union of the overpasses' parts (all on the same lattice of multiples of ``res``)."""
    if bbox is not None:
        grid = Grid.from_bbox(bbox, res)
    elif done:
        s = min(r["south_index"] for r in done)
        w = min(r["west_index"] for r in done)
        n = max(r["south_index"] + r["ny"] for r in done)
        e = max(r["west_index"] + r["nx"] for r in done)
        grid = Grid(round(w * res, 10), round(s * res, 10), float(res), e - w, n - s)
    else:
        grid = Grid(0.0, 0.0, float(res), 0, 0)
    if grid.nlat * grid.nlon > max_cells:
        raise ConfigError(
            key,
            f"the grid would have {grid.nlat}x{grid.nlon} cells (> ingest.max_grid_cells = "
            f"{max_cells}); set a smaller bbox",
        )
    return grid


def overpass_index(done: list[dict], grid: Grid) -> pd.DataFrame:
    """key, time, source_file and each overpass's place (i0, j0) and size (ny, nx) in the collection grid."""
    s0 = int(round(grid.south / grid.res))
    w0 = int(round(grid.west / grid.res))
    rows = [
        {
            "key": r["key"],
            "time": pd.Timestamp(r["time"]),
            "source_file": r["source_file"],
            "i0": r["south_index"] - s0,
            "j0": r["west_index"] - w0,
            "ny": r["ny"],
            "nx": r["nx"],
        }
        for r in done
    ]
    cols = ["key", "time", "source_file", "i0", "j0", "ny", "nx"]
    return pd.DataFrame(rows, columns=cols).sort_values(["time", "key"], kind="stable").reset_index(drop=True)


def accumulate(index: pd.DataFrame, grid: Grid, units_dir: Path, coverage_min: float):
    """obs_count and no2_mean over the overpasses, streaming their files."""
    counts = np.zeros((grid.nlat, grid.nlon), np.int32)
    sums = np.zeros((grid.nlat, grid.nlon), np.float64)
    for r in index.itertuples():
        ds = contract.open_overpass(units_dir / f"{r.key}.nc")
        cov = np.nan_to_num(ds["coverage"].values.astype(np.float64), nan=0.0)
        counted = cov > coverage_min
        window = (slice(r.i0, r.i0 + r.ny), slice(r.j0, r.j0 + r.nx))
        counts[window] += counted
        sums[window] += np.where(counted, np.nan_to_num(ds["no2"].values.astype(np.float64)), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return counts, mean


def validate(cfg: DictConfig, name: str, done: list[dict], grid: Grid, counts, mean, report_path: Path) -> None:
    """The grid suite on one row per overpass (the units' stats) and one for the grid; raises ValidationFailed
    naming the failed expectations (the report is written first, into the folder being assembled)."""
    from ..validate.grid import grid_row, validate_tables
    from .run import STATS

    times = pd.DataFrame(
        [{k: r[k] for k in STATS} for r in done],
        columns=list(STATS),
        index=[f"{r['source_file']} {r['time']}" for r in done],
    )
    tables = {
        "times": times,
        "grid": grid_row(n_time=len(done), lat=grid.lat, lon=grid.lon, obs_count=counts, no2_mean=mean),
    }
    validate_tables(tables, report_path, cfg.validate, name=name, extra={"collection": name, "n_overpasses": len(done)})


def publish(cfg: DictConfig, name: str, s: dict, bbox, units_dir: Path, done: list[dict]) -> dict:
    """Assemble ``<ingest.out_dir>/<name>/`` (overpass files linked from the units, grid.nc, the validation
    report) in a temporary folder and swap it in; nothing is replaced when validation fails."""
    grid = collection_grid(done, bbox, s["res"], s["max_grid_cells"], f"ingest.collections.{name}.bbox")
    index = overpass_index(done, grid)
    counts, mean = accumulate(index, grid, units_dir, s["coverage_min"])
    folder = Path(str(cfg.ingest.out_dir)) / name
    with atomic_path(folder, is_dir=True) as tmp:
        validate(cfg, name, done, grid, counts, mean, tmp / "validation.json")
        for key in index["key"]:
            units.link_into(units_dir / f"{key}.nc", contract.overpass_path(tmp, key))
        attrs = {
            "collection": name,
            "qa_threshold": s["qa_threshold"],
            "coverage_min": s["coverage_min"],
            "gridding_method": "exact area-weighted polygon overlap (lon/lat plane)",
            "bbox": [float(b) for b in grid.bbox],
            "title": f"Gridded TROPOMI tropospheric NO2, collection {name}",
        }
        contract.write_grid(
            tmp, lat=grid.lat, lon=grid.lon, res=s["res"], obs_count=counts, no2_mean=mean, index=index, attrs=attrs
        )
    return {
        "folder": str(folder),
        "n_overpasses": len(index),
        "n_lat": grid.nlat,
        "n_lon": grid.nlon,
        "max_obs_count": int(counts.max()) if counts.size else 0,
    }
