"""Data-quality suite for gridded TROPOMI NO2 (docs/contracts.md, "Gridded TROPOMI"; the ingest stage's output).

:func:`grid_tables` reduces a gridded dataset to a per-time table and a one-row whole-grid table;
:func:`validate_grid` runs the expectations of the grid suite (``validate/suites/grid.yaml`` or
``validate.grid.expectations``) on them and writes the report.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd

from ..errors import InputFileError

REQUIRED_VARS = ("no2", "no2_precision", "coverage", "obs_count", "no2_mean")


def _strictly_ascending(v: np.ndarray) -> bool:
    v = np.asarray(v, dtype=float)
    return bool(v.size <= 1 or (np.all(np.isfinite(v)) and np.all(np.diff(v) > 0)))


def grid_tables(ds) -> dict[str, pd.DataFrame]:
    """``{"times": one row per time step, "grid": one row}`` summarising ``ds`` (an xarray Dataset)."""
    missing = [v for v in REQUIRED_VARS if v not in ds.variables]
    missing += [c for c in ("lat", "lon") if c not in ds.coords and c not in ds.variables]
    if missing:
        where = ds.encoding.get("source") or ds.attrs.get("collection") or "gridded dataset"
        raise InputFileError(where, f"missing variable(s) {', '.join(missing)} (see docs/contracts.md)")
    no2 = ds["no2"].transpose("time", "lat", "lon").values.astype(np.float64)
    prec = ds["no2_precision"].transpose("time", "lat", "lon").values.astype(np.float64)
    cov = ds["coverage"].transpose("time", "lat", "lon").values.astype(np.float64)
    axes = (1, 2)
    covered = np.isfinite(cov) & (cov > 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN (uncovered) time steps
        good = np.where(covered & np.isfinite(no2), no2, np.nan)
        good_prec = np.where(covered & np.isfinite(prec), prec, np.nan)
        times = pd.DataFrame(
            {
                "coverage_min": np.nanmin(np.where(np.isfinite(cov), cov, np.nan), axis=axes),
                "coverage_max": np.nanmax(np.where(np.isfinite(cov), cov, np.nan), axis=axes),
                "n_coverage_nonfinite": (~np.isfinite(cov)).sum(axis=axes),
                "n_covered": covered.sum(axis=axes),
                "n_no2_nonfinite_covered": (covered & ~np.isfinite(no2)).sum(axis=axes),
                "no2_min": np.nanmin(good, axis=axes),
                "no2_max": np.nanmax(good, axis=axes),
                "no2_precision_min": np.nanmin(good_prec, axis=axes),
            }
        )
    if "time" in ds.coords:
        times.index = [str(t) for t in ds["time"].values]
    grid = grid_row(
        n_time=no2.shape[0],
        lat=ds["lat"].values,
        lon=ds["lon"].values,
        obs_count=ds["obs_count"].values,
        no2_mean=ds["no2_mean"].values,
    )
    return {"times": times, "grid": grid}


def validate_grid(ds, report_path: str | os.PathLike | None, cfg_validate, *, raise_on_failure: bool = True):
    """Validate a gridded TROPOMI dataset held in memory (tests, small grids): :func:`grid_tables` then
    :func:`validate_tables`."""
    tables = grid_tables(ds)
    extra = {"collection": ds.attrs.get("collection"), "source_files": ds.attrs.get("source_files")}
    return validate_tables(
        tables,
        report_path,
        cfg_validate,
        name=str(ds.attrs.get("collection", "grid")),
        extra=extra,
        raise_on_failure=raise_on_failure,
    )


def validate_tables(
    tables: dict[str, pd.DataFrame],
    report_path: str | os.PathLike | None,
    cfg_validate,
    *,
    name: str,
    extra: dict | None = None,
    raise_on_failure: bool = True,
):
    """Run the grid suite on ``{"times": one row per overpass, "grid": one row}``; write ``report_path`` (.json)
    and the .md beside it. ``cfg_validate`` is the ``validate`` config group (a whole config also works).
    Returns a :class:`~no2hotspots.validate.suite.SuiteResult`; raises ValidationFailed (after writing the report)
    if an expectation fails and ``raise_on_failure``."""
    from .suite import load_expectations, run_suite

    if "grid" not in cfg_validate and "validate" in cfg_validate:
        cfg_validate = cfg_validate["validate"]
    exps = load_expectations("grid", cfg_validate["grid"])
    return run_suite(
        tables,
        {k: exps[k] for k in exps},
        name=f"grid-{name}",
        report_path=report_path,
        config_key="validate.grid.expectations",
        raise_on_failure=raise_on_failure,
        extra={**(extra or {}), **{k: v for k, v in tables["grid"].iloc[0].items()}},
    )


def grid_row(*, n_time: int, lat, lon, obs_count, no2_mean) -> pd.DataFrame:
    """The one-row whole-grid table from the period products (streamed ingest: no per-time cube needed)."""
    obs_f = np.asarray(obs_count, dtype=np.float64)
    integer = bool(np.issubdtype(np.asarray(obs_count).dtype, np.integer)) or bool(
        np.all(np.isfinite(obs_f)) and np.all(obs_f == np.round(obs_f))
    )
    counted = np.isfinite(obs_f) & (obs_f > 0)
    lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
    return pd.DataFrame(
        [
            {
                "n_time": n_time,
                "n_lat": lat.size,
                "n_lon": lon.size,
                "obs_count_min": float(np.nanmin(obs_f)) if obs_f.size else 0.0,
                "obs_count_max": float(np.nanmax(obs_f)) if obs_f.size else 0.0,
                "obs_count_integer": integer,
                "n_no2_mean_nonfinite_counted": int((counted & ~np.isfinite(no2_mean)).sum()),
                "lat_min": float(np.nanmin(lat)) if lat.size else np.nan,
                "lat_max": float(np.nanmax(lat)) if lat.size else np.nan,
                "lon_min": float(np.nanmin(lon)) if lon.size else np.nan,
                "lon_max": float(np.nanmax(lon)) if lon.size else np.nan,
                "lat_ascending": _strictly_ascending(lat),
                "lon_ascending": _strictly_ascending(lon),
            }
        ],
        index=["grid"],
    )
