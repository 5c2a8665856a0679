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
    obs = ds["obs_count"].values
    obs_f = np.asarray(obs, dtype=np.float64)
    integer = bool(np.issubdtype(obs.dtype, np.integer)) or bool(
        np.all(np.isfinite(obs_f)) and np.all(obs_f == np.round(obs_f))
    )
    counted = np.isfinite(obs_f) & (obs_f > 0)
    lat = np.asarray(ds["lat"].values, dtype=float)
    lon = np.asarray(ds["lon"].values, dtype=float)
    grid = pd.DataFrame(
        [
            {
                "n_time": no2.shape[0],
                "n_lat": lat.size,
                "n_lon": lon.size,
                "obs_count_min": float(np.nanmin(obs_f)) if obs_f.size else 0.0,
                "obs_count_max": float(np.nanmax(obs_f)) if obs_f.size else 0.0,
                "obs_count_integer": integer,
                "n_no2_mean_nonfinite_counted": int((counted & ~np.isfinite(ds["no2_mean"].values)).sum()),
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
    return {"times": times, "grid": grid}


def validate_grid(ds, report_path: str | os.PathLike | None, cfg_validate, *, raise_on_failure: bool = True):
    """Validate a gridded TROPOMI dataset; write ``report_path`` (.json) and the .md beside it.

    ``cfg_validate`` is the ``validate`` config group (``cfg.validate``; a whole composed config also works).
    Returns a :class:`~no2hotspots.validate.suite.SuiteResult`; raises ValidationFailed (after writing the report)
    if an expectation fails and ``raise_on_failure``.
    """
    from .suite import load_expectations, run_suite

    if "grid" not in cfg_validate and "validate" in cfg_validate:
        cfg_validate = cfg_validate["validate"]
    tables = grid_tables(ds)
    exps = load_expectations("grid", cfg_validate["grid"])
    extra = {
        "collection": ds.attrs.get("collection"),
        "source_files": ds.attrs.get("source_files"),
        **{k: v for k, v in tables["grid"].iloc[0].items()},
    }
    return run_suite(
        tables,
        {name: exps[name] for name in exps},
        name=f"grid-{ds.attrs.get('collection', 'grid')}",
        report_path=report_path,
        config_key="validate.grid.expectations",
        raise_on_failure=raise_on_failure,
        extra=extra,
    )
