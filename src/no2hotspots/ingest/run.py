"""The ``ingest`` stage: granules of each collection -> ``outputs/ingest/<collection>.nc`` (docs/contracts.md).

Each granule with at least one valid pixel on the grid is one time step (overpass). Per overpass: area-weighted
mean column, propagated precision and cell coverage; over the period: ``obs_count`` (overpasses covering more than
``coverage_min`` of the cell) and ``no2_mean`` (mean over those overpasses).
"""

from __future__ import annotations

import glob
import logging
from pathlib import Path

import numpy as np
import xarray as xr
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from ..atomic import write_netcdf
from ..config import require
from ..errors import ConfigError, UserError
from ..logs import progress_disabled
from .gridding import Grid, grid_overpass
from .readers import open_pixels, valid_pixels

log = logging.getLogger(__name__)


def _check_bbox(bbox, key: str):
    if bbox is None:
        return None
    try:
        w, s, e, n = (float(b) for b in bbox)
    except (TypeError, ValueError):
        raise ConfigError(key, f"must be [west, south, east, north] in degrees or null (got {bbox!r})") from None
    if not (-180 <= w < e <= 360 and -90 <= s < n <= 90):
        raise ConfigError(
            key, f"must be [west, south, east, north] with west < east, south < north (got {[w, s, e, n]})"
        )
    return [w, s, e, n]


def _extent(px: xr.Dataset, mask=None):
    lo, la = px["lon_bounds"].values, px["lat_bounds"].values
    if mask is not None:
        lo, la = lo[mask], la[mask]
    if lo.size == 0:
        return None
    return [float(lo.min()), float(la.min()), float(lo.max()), float(la.max())]


def _intersects(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def ingest_collection(name: str, inputs: str, bbox, icfg, progress: bool = True) -> xr.Dataset:
    """Read and grid every granule matching ``inputs``; return the gridded dataset (not written)."""
    files = sorted(glob.glob(inputs))
    if not files:
        raise UserError(f"{inputs}: no files match (ingest.collections.{name}.inputs)")
    res = float(icfg.resolution_deg)
    qa_thr = float(icfg.qa_threshold)
    bbox_key = f"ingest.collections.{name}.bbox"

    granules = []  # (path, valid pixel subset)
    extents = []
    for f in tqdm(files, desc=f"read {name}", unit="granule", disable=progress_disabled() or not progress):
        px = open_pixels(f)
        ext = _extent(px)
        if ext is not None:
            extents.append(ext)
        ok = valid_pixels(px, qa_thr)
        if not ok.any():
            log.warning(
                "%s: no pixel passes QA >= %.2f (or has a valid NO2 value); the granule contributes no overpass",
                Path(f).name,
                qa_thr,
            )
            continue
        sub = px.isel(pixel=np.flatnonzero(ok))
        if bbox is not None:
            e = sub
            inb = (
                (e.lon_bounds.max("corner") > bbox[0])
                & (e.lon_bounds.min("corner") < bbox[2])
                & (e.lat_bounds.max("corner") > bbox[1])
                & (e.lat_bounds.min("corner") < bbox[3])
            ).values
            sub = sub.isel(pixel=np.flatnonzero(inb))
            if sub.sizes["pixel"] == 0:
                log.debug("%s: no valid pixel inside bbox %s", Path(f).name, bbox)
                continue
        granules.append((f, sub))

    if bbox is not None:
        if not any(_intersects(e, bbox) for e in extents):
            data = (
                [
                    min(e[0] for e in extents),
                    min(e[1] for e in extents),
                    max(e[2] for e in extents),
                    max(e[3] for e in extents),
                ]
                if extents
                else None
            )
            raise ConfigError(
                bbox_key,
                f"bbox {bbox} lies outside the data (extent [W, S, E, N] = "
                f"{[round(x, 3) for x in data] if data else 'empty'} of {len(files)} files)",
            )
        grid = Grid.from_bbox(bbox, res)
    else:
        ext = [_extent(s) for _, s in granules] or extents
        grid = Grid.from_bbox(
            [min(e[0] for e in ext), min(e[1] for e in ext), max(e[2] for e in ext), max(e[3] for e in ext)], res
        )
    if grid.nlat * grid.nlon > int(icfg.max_grid_cells):
        raise ConfigError(
            bbox_key,
            f"the grid would have {grid.nlat}x{grid.nlon} cells (> ingest.max_grid_cells "
            f"= {icfg.max_grid_cells}); set a smaller bbox",
        )

    times, no2, prec, cov, names = [], [], [], [], []
    for f, sub in tqdm(granules, desc=f"grid {name}", unit="granule", disable=progress_disabled() or not progress):
        g = grid_overpass(
            grid,
            sub.lon_bounds.values,
            sub.lat_bounds.values,
            sub.no2.values,
            sub.no2_precision.values,
            int(icfg.max_cells_per_pixel),
        )
        if not np.any(g.covered_area > 0):
            log.info("%s: no valid pixel on the grid; no overpass", Path(f).name)
            continue
        t = sub.time.values.astype("datetime64[ns]")
        times.append(t.min() + (t - t.min()).mean())
        no2.append(g.no2.astype(np.float32))
        prec.append(g.no2_precision.astype(np.float32))
        cov.append(g.coverage.astype(np.float32))
        names.append(Path(f).name)
    return build_dataset(name, grid, times, no2, prec, cov, names, icfg)


def build_dataset(name, grid: Grid, times, no2, prec, cov, names, icfg) -> xr.Dataset:
    nt = len(times)
    shape = (nt, grid.nlat, grid.nlon)
    order = np.argsort(np.array(times, dtype="datetime64[ns]"), kind="stable") if nt else np.array([], int)
    stack = lambda arrs: np.stack([arrs[i] for i in order]) if nt else np.empty(shape, np.float32)  # noqa: E731
    no2_a, prec_a, cov_a = stack(no2), stack(prec), stack(cov)
    counted = cov_a > float(icfg.coverage_min)
    obs = counted.sum(axis=0).astype(np.int32)
    with np.errstate(invalid="ignore"):
        s = np.where(counted, no2_a, 0.0).sum(axis=0)
        mean = np.where(obs > 0, s / np.maximum(obs, 1), np.nan).astype(np.float32)
    tcoord = np.array([times[i] for i in order], dtype="datetime64[ns]")
    mol = "mol m-2"
    ds = xr.Dataset(
        {
            "no2": (
                ("time", "lat", "lon"),
                no2_a,
                {
                    "units": mol,
                    "standard_name": "troposphere_mole_content_of_nitrogen_dioxide",
                    "long_name": "area-weighted mean tropospheric NO2 column (NaN where not covered)",
                },
            ),
            "no2_precision": (
                ("time", "lat", "lon"),
                prec_a,
                {"units": mol, "long_name": "precision of the cell mean, sqrt(sum w^2 s^2)/sum w (independent errors)"},
            ),
            "coverage": (
                ("time", "lat", "lon"),
                cov_a,
                {"units": "1", "long_name": "fraction of the cell covered by valid pixels"},
            ),
            "obs_count": (
                ("lat", "lon"),
                obs,
                {"units": "1", "long_name": f"number of overpasses covering more than {icfg.coverage_min} of the cell"},
            ),
            "no2_mean": (
                ("lat", "lon"),
                mean,
                {
                    "units": mol,
                    "standard_name": "troposphere_mole_content_of_nitrogen_dioxide",
                    "long_name": "mean tropospheric NO2 column over the counted overpasses",
                },
            ),
            "lat_bnds": (("lat", "bnds"), grid.lat_bnds, {"units": "degree_north"}),
            "lon_bnds": (("lon", "bnds"), grid.lon_bnds, {"units": "degree_east"}),
        },
        coords={
            "time": ("time", tcoord, {"standard_name": "time", "long_name": "overpass time (mean of the pixels used)"}),
            "lat": ("lat", grid.lat, {"units": "degree_north", "standard_name": "latitude", "bounds": "lat_bnds"}),
            "lon": ("lon", grid.lon, {"units": "degree_east", "standard_name": "longitude", "bounds": "lon_bnds"}),
        },
        attrs={
            "Conventions": "CF-1.10",
            "title": f"Gridded TROPOMI tropospheric NO2, collection {name}",
            "collection": name,
            "resolution_deg": float(grid.res),
            "qa_threshold": float(icfg.qa_threshold),
            "coverage_min": float(icfg.coverage_min),
            "gridding_method": "exact area-weighted polygon overlap (lon/lat plane)",
            "source_files": " ".join(names[i] for i in order),
            "bbox": [float(b) for b in grid.bbox],
        },
    )
    ds["time"].encoding.update({"units": "seconds since 2010-01-01 00:00:00", "dtype": "float64"})
    return ds


def _validate(ds: xr.Dataset, report_path: Path, cfg: DictConfig) -> None:
    try:
        from ..validate.grid import validate_grid
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("no2hotspots.validate"):
            log.warning("no2hotspots.validate.grid is not available; gridded output not validated")
            return
        raise
    validate_grid(ds, report_path, cfg.validate)


def run(cfg: DictConfig) -> None:
    icfg = cfg.ingest
    require(cfg, "ingest.qa_threshold", lambda v: 0 <= float(v) <= 1, "must be in [0, 1]")
    require(cfg, "ingest.resolution_deg", lambda v: 0 < float(v) <= 10, "must be in (0, 10] degrees")
    require(cfg, "ingest.coverage_min", lambda v: 0 <= float(v) < 1, "must be in [0, 1)")
    require(cfg, "ingest.max_cells_per_pixel", lambda v: int(v) >= 1, "must be >= 1")
    if str(icfg.get("method", "exact")) != "exact":
        raise ConfigError("ingest.method", f"only 'exact' is implemented (got {icfg.method!r})")
    collections = icfg.collections
    wanted = icfg.get("collection")
    if wanted is not None:
        if wanted not in collections:
            raise ConfigError("ingest.collection", f"unknown collection {wanted!r}; known: {sorted(collections)}")
        names = [wanted]
    else:
        names = list(collections)
    out_dir = Path(icfg.get("out_dir") or Path(cfg.paths.outputs) / "ingest")
    for name in names:
        c = collections[name]
        bbox = _check_bbox(
            OmegaConf.to_container(c.bbox) if c.get("bbox") is not None else None, f"ingest.collections.{name}.bbox"
        )
        if wanted is None and not glob.glob(str(c.inputs)):
            log.warning("collection %s: no files match %s; skipped", name, c.inputs)
            continue
        ds = ingest_collection(name, str(c.inputs), bbox, icfg)
        out = out_dir / f"{name}.nc"
        _validate(ds, out_dir / f"{name}_validation.json", cfg)
        enc = {v: {"zlib": True, "complevel": 4} for v in ("no2", "no2_precision", "coverage", "no2_mean")}
        write_netcdf(ds, out, encoding=enc)
        log.info(
            "%s: %d overpasses on a %dx%d grid (%.3g deg); max obs_count %d -> %s",
            name,
            ds.sizes["time"],
            ds.sizes["lat"],
            ds.sizes["lon"],
            ds.attrs["resolution_deg"],
            int(ds.obs_count.max()) if ds.obs_count.size else 0,
            out,
        )
