"""What the served model accepts and returns: NO2 on a lat/lon grid in physical units -> relative emission + hotspots.

The logged MLflow model (:mod:`.pyfunc_model`) is a thin wrapper around :func:`predict_frame`; this module is plain
library code (numpy, pandas, xarray, torch via the model), so the same function runs in process, in
``mlflow models serve`` and in tests.

Input: a table with one row per grid cell (``dataframe_split`` or ``dataframe_records`` in a JSON request):

- ``lat``, ``lon`` [degree]: cell centres on a regular grid (any extent; cells may be left out: missing cells are
  unobserved); the step is inferred from the spacing, or given as the param ``resolution_deg``;
- ``no2`` [mol m-2]: tropospheric NO2 column, the cell mean; null/NaN = no valid observation;
- ``coverage`` [1], optional: fraction of the cell covered by valid pixels (the ingest grid's ``coverage``);
  cells with coverage 0 (or below the param ``coverage_min``) are invalid; default 1 where ``no2`` is finite;
- ``overpass``, optional: a label; rows with different labels are separate overpasses, detected separately.

Params (all optional; defaults = the ``detect`` stage's, :data:`PARAM_DEFAULTS`): ``threshold``, ``tiling`` (``auto``
| ``blend`` | ``context``, with ``context_core`` and ``context_margin``: ``detect.context.*``; ``auto``: context for
a fully convolutional model, blend otherwise; the output's ``params`` name the one used), ``resample`` (``none`` |
``model_pixel``: ``detect.resample``), ``stride``, ``window_floor``, ``coverage_min``, ``min_cells``, ``edge_cells``,
``min_gap_cells_shifted``, ``gap_shift_min_mol_m2``, ``prominence`` and ``min_separation_px`` (``detect.peaks.*``:
when one region holds several peaks), ``mask_invalid``, ``batch_size``, ``resolution_deg``, ``max_resolution_ratio``,
``background_max_mol_m2``, ``background_sigma_km`` and ``background_mask_z`` (the regional background above the
training range taken off first: :mod:`no2hotspots.detect.background`). The detect settings among them are checked
and typed by the stage's own table (:data:`no2hotspots.detect.field.NUMBERS`).

Output (a JSON object): ``cells`` (column lists in input row order: ``overpass``, ``lat``, ``lon``,
``relative_emission`` (null where masked), ``hotspot`` (the cell's hotspot number within its overpass, 0 =
none)), ``hotspots`` (one object per hotspot: ``overpass``, ``overpass_hotspot``, ``peak_lat``, ``peak_lon``,
``peak_rel_emission``, ``sum_rel_emission``, ``nox_rate_estimate_t_per_yr``, ``area_km2``, ``n_cells``, ``gap_cells``,
``background_shift_mol_m2``), ``overpasses`` (per overpass: grid shape, step, valid cells, hotspots, the largest
background shift, tiles run), ``params`` (the values used), ``model``
(input scale, training emission range, pixel size, run id) and ``note`` (what the NOx estimate is).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..detect.field import NUMBERS, Number
from ..detect.resample import RESAMPLE
from ..detect.tiles import TILINGS, resolve_tiling
from ..errors import UserError

#: the request params and their defaults (the ``detect`` stage's defaults; a test keeps them equal to conf/detect/)
PARAM_DEFAULTS: dict[str, Any] = {
    "threshold": 0.2,
    "tiling": "auto",
    "resample": "none",
    "context_core": 128,
    "context_margin": 48,
    "stride": 32,
    "window_floor": 0.1,
    "coverage_min": 0.0,
    "min_cells": 1,
    "edge_cells": 0,
    "min_gap_cells_shifted": 2,
    "gap_shift_min_mol_m2": 3.0e-5,
    "prominence": 0.2,
    "min_separation_px": 2,
    "mask_invalid": True,
    "batch_size": 64,
    "resolution_deg": 0.0,
    "max_resolution_ratio": 2.5,
    "background_max_mol_m2": 5.0e-5,
    "background_sigma_km": 50.0,
    "background_mask_z": 0.0,
}
_CELLS = "must be an integer in 0..1024"
#: every numeric param: the detect stage's table (:data:`no2hotspots.detect.field.NUMBERS`) and the served model's
#: flattened ``detect.peaks.*`` / ``detect.context.*`` and grid keys, in the same form
SERVED_NUMBERS: dict[str, Number] = {
    **NUMBERS,
    "prominence": Number(float, lambda v: v > 0, "must be > 0 (>= 1: never split a region into several hotspots)"),
    "min_separation_px": Number(int, lambda v: v >= 1, "must be an integer >= 1"),
    "resolution_deg": Number(float, lambda v: 0 <= v <= 10, "must be in [0, 10] degrees (0 = inferred from lat/lon)"),
    "max_resolution_ratio": Number(float, lambda v: v >= 1, "must be >= 1"),
    "context_core": Number(int, lambda v: 0 <= v <= 1024, _CELLS),
    "context_margin": Number(int, lambda v: 0 <= v <= 1024, _CELLS),
}
REQUIRED_COLUMNS = ("lat", "lon", "no2")
OPTIONAL_COLUMNS = ("coverage", "overpass")
HOTSPOT_FIELDS = (
    "overpass",
    "overpass_hotspot",
    "peak_lat",
    "peak_lon",
    "peak_rel_emission",
    "sum_rel_emission",
    "nox_rate_estimate_t_per_yr",
    "area_km2",
    "n_cells",
    "gap_cells",
    "background_shift_mol_m2",
)
#: the model metadata returned with every answer
META_FIELDS = ("input_scale", "emission_min_t_per_yr", "emission_max_t_per_yr", "pixel_size_m", "tile_size", "run_id")
#: refuse grids larger than this many cells per overpass (a 20 x 20 degree region at 0.05 degree is 160,000)
MAX_CELLS = 16_000_000
DEFAULT_OVERPASS = "0"


class ServingInputError(UserError):
    """A request the served model cannot use; one line naming the column or param."""


def settings(params: dict | None) -> dict[str, Any]:
    """The request params merged over :data:`PARAM_DEFAULTS`, checked (one-line :class:`ServingInputError`)."""
    s = dict(PARAM_DEFAULTS)
    for k, v in (params or {}).items():
        if k not in PARAM_DEFAULTS:
            raise ServingInputError(f"params: unknown param {k!r} (known: {', '.join(PARAM_DEFAULTS)})")
        s[k] = v.item() if isinstance(v, np.generic) else v
    for k, spec in SERVED_NUMBERS.items():  # the detect stage's numeric settings, checked and typed as there
        v = spec.value(s[k], whole_floats=True)
        if v is None:
            raise ServingInputError(f"params.{k}: {spec.problem} (got {s[k]!r})")
        s[k] = v
    if s["tiling"] not in TILINGS:
        raise ServingInputError(f"params.tiling: must be {', '.join(TILINGS)} (got {s['tiling']!r})")
    if s["resample"] not in RESAMPLE:
        raise ServingInputError(f"params.resample: must be {' or '.join(RESAMPLE)} (got {s['resample']!r})")
    if not isinstance(s["mask_invalid"], bool):
        raise ServingInputError(f"params.mask_invalid: must be true or false (got {s['mask_invalid']!r})")
    return s


def _field_settings(s: dict) -> dict:
    """The request settings in the layout of the detect stage's (``detect.run.settings``)."""
    return {
        **s,
        "device": "cpu",
        "peaks": {"prominence": s["prominence"], "min_separation_px": s["min_separation_px"]},
        "context": {"core": s["context_core"], "margin": s["context_margin"]},
    }


def _numeric(df: pd.DataFrame, col: str) -> np.ndarray:
    try:
        return pd.to_numeric(df[col], errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (ValueError, TypeError):
        raise ServingInputError(f"column {col!r}: not numeric") from None


def _axis(values: np.ndarray, res: float, name: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Cell index of each value on a regular axis, the axis (cell centres, ascending) and its step."""
    u = np.unique(values)
    if res <= 0:
        if u.size < 2:
            raise ServingInputError(
                f"column {name!r}: one distinct value, the grid step cannot be inferred; pass params.resolution_deg"
            )
        res = float(np.round(np.diff(u).min(), 10))
    pos = (values - u[0]) / res
    idx = np.rint(pos).astype(np.int64)
    if np.abs(pos - idx).max() > 0.01:
        raise ServingInputError(f"column {name!r}: values are not on a regular grid of step {res:g} degree")
    n = int(idx.max()) + 1
    axis = np.round(u[0] + res * np.arange(n), 10)
    axis[idx] = values  # the values as given where given (so a posted ingest grid keeps its exact coordinates)
    return idx, axis, res


def frame_to_grids(df: pd.DataFrame, s: dict) -> list[dict]:
    """Split the request table into overpasses and place each on its regular grid.

    Returns per overpass ``key``, ``rows`` (positions in ``df``), ``i``/``j`` (cell indices of those rows) and
    ``ds`` (an xarray Dataset with ``no2``, ``coverage`` (lat, lon) and CF coordinates with bounds: the layout of an
    ingest overpass file, no2hotspots.contracts.grid).
    """
    from ..contracts.grid import coords

    if not isinstance(df, pd.DataFrame):
        raise ServingInputError(f"input must be a table with columns {', '.join(REQUIRED_COLUMNS)} (got {type(df)})")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ServingInputError(f"input has no column {missing[0]!r} (columns: {', '.join(map(str, df.columns))})")
    unknown = [c for c in df.columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        known = ", ".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
        raise ServingInputError(f"input column {unknown[0]!r} is not used by the model (columns: {known})")
    if len(df) == 0:
        raise ServingInputError("input has no rows")
    lat, lon, no2 = _numeric(df, "lat"), _numeric(df, "lon"), _numeric(df, "no2")
    for name, v, lim in (("lat", lat, 90.0), ("lon", lon, 180.0)):
        if not np.isfinite(v).all() or np.abs(v).max() > lim:
            raise ServingInputError(f"column {name!r}: values must be finite and within -{lim:g}..{lim:g}")
    if "coverage" in df.columns:
        cov = _numeric(df, "coverage")
        if ((cov < 0) | (cov > 1)).any():
            raise ServingInputError("column 'coverage': values must be in [0, 1] (or null)")
        cov = np.where(np.isfinite(cov), cov, 0.0)
    else:
        cov = np.isfinite(no2).astype(np.float64)
    keys = (
        df["overpass"].astype(str).to_numpy()
        if "overpass" in df.columns
        else np.full(len(df), DEFAULT_OVERPASS, dtype=object)
    )
    grids = []
    for key in dict.fromkeys(keys):  # first-appearance order
        rows = np.flatnonzero(keys == key)
        i, lat_axis, dlat = _axis(lat[rows], s["resolution_deg"], "lat")
        j, lon_axis, dlon = _axis(lon[rows], s["resolution_deg"], "lon")
        if abs(dlat - dlon) > 1e-6 * max(dlat, dlon):
            raise ServingInputError(
                f"overpass {key!r}: lat step {dlat:g} and lon step {dlon:g} differ; pass params.resolution_deg "
                "or post a grid with square cells (in degrees)"
            )
        if lat_axis.size * lon_axis.size > MAX_CELLS:
            raise ServingInputError(
                f"overpass {key!r}: the grid spans {lat_axis.size} x {lon_axis.size} cells (> {MAX_CELLS}); "
                "post a smaller region"
            )
        flat = i * lon_axis.size + j
        if np.unique(flat).size != flat.size:
            raise ServingInputError(f"overpass {key!r}: a cell (lat, lon) appears more than once")
        grid_no2 = np.full((lat_axis.size, lon_axis.size), np.nan, np.float32)
        grid_cov = np.zeros((lat_axis.size, lon_axis.size), np.float32)
        grid_no2[i, j] = no2[rows]
        grid_cov[i, j] = cov[rows]
        import xarray as xr

        ds = xr.Dataset(
            {
                "no2": (("lat", "lon"), grid_no2, {"units": "mol m-2"}),
                "coverage": (("lat", "lon"), grid_cov, {"units": "1"}),
            },
            coords=coords(lat_axis, lon_axis, dlat),
            attrs={"resolution_deg": dlat},
        )
        grids.append({"key": str(key), "rows": rows, "i": i, "j": j, "ds": ds})
    return grids


def _clean(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def predict_frame(loaded, df: pd.DataFrame, params: dict | None = None) -> dict[str, Any]:
    """Relative emission and hotspots for the cells of ``df`` (see the module docstring) with ``loaded`` (a
    LoadedModel); the same computation as the ``detect`` stage (:func:`no2hotspots.detect.field.detect_field`)."""
    from ..detect import grid as gridmod
    from ..detect.field import detect_field
    from ..detect.outputs import ESTIMATE_NOTE

    s = settings(params)
    s["tiling"] = resolve_tiling(s["tiling"], loaded.net)  # auto -> the tiling this model runs (echoed in params)
    grids = frame_to_grids(df, s)
    n = len(df)
    rel_out = np.full(n, np.nan, np.float64)
    hot_out = np.zeros(n, np.int64)
    key_out = np.empty(n, dtype=object)
    hotspots, overpasses = [], []
    pixel_m = float(loaded.meta["pixel_size_m"])
    resampled = s["resample"] == "model_pixel"  # finer cells are averaged onto the model pixel
    for g in grids:
        why = gridmod.resolution_refusal(g["ds"], pixel_m, s["max_resolution_ratio"], resampled=resampled, key="params")
        if why:
            raise ServingInputError(f"overpass {g['key']!r}: {why}")
        r = detect_field(g["ds"], loaded, _field_settings(s), desc=f"overpass {g['key']}")
        rel_out[g["rows"]] = r["relative_emission"][g["i"], g["j"]]
        hot_out[g["rows"]] = r["hotspot_id"][g["i"], g["j"]]
        key_out[g["rows"]] = g["key"]
        hotspots += [{"overpass": g["key"], **{k: h[k] for k in HOTSPOT_FIELDS[1:]}} for h in r["hotspots"]]
        ds = g["ds"]
        overpasses.append(
            {
                "overpass": g["key"],
                "n_lat": int(ds.sizes["lat"]),
                "n_lon": int(ds.sizes["lon"]),
                "resolution_deg": float(ds.attrs["resolution_deg"]),
                "bbox": [float(ds["lon_bnds"].min()), float(ds["lat_bnds"].min())]
                + [float(ds["lon_bnds"].max()), float(ds["lat_bnds"].max())],
                "valid_cells": int(r["valid"].sum()),
                "n_hotspots": len(r["hotspots"]),
                "background_shift_max_mol_m2": r["background_shift_max"],
                **{k: int(v) for k, v in r["counts"].items()},
            }
        )
    lat, lon = _numeric(df, "lat"), _numeric(df, "lon")
    return {
        "cells": {
            "overpass": [str(k) for k in key_out],
            "lat": lat.tolist(),
            "lon": lon.tolist(),
            "relative_emission": [_clean(v) for v in rel_out.tolist()],
            "hotspot": hot_out.tolist(),
        },
        "hotspots": hotspots,
        "overpasses": overpasses,
        "params": s,
        "model": {k: loaded.meta.get(k) for k in META_FIELDS},
        "note": ESTIMATE_NOTE,
    }


def grid_frame(ds, overpass: str | None = None, *, only_valid: bool = False) -> pd.DataFrame:
    """The request table of one gridded overpass ``ds`` (an ingest overpass file, no2hotspots.contracts.grid):
    one row per cell with ``lat``, ``lon``, ``no2`` (NaN where unobserved), ``coverage`` [, ``overpass``]."""
    lat2, lon2 = np.meshgrid(ds["lat"].values.astype(np.float64), ds["lon"].values.astype(np.float64), indexing="ij")
    no2 = ds["no2"].values.astype(np.float64)
    cov = ds["coverage"].values.astype(np.float64) if "coverage" in ds else np.isfinite(no2).astype(np.float64)
    df = pd.DataFrame(
        {"lat": lat2.ravel(), "lon": lon2.ravel(), "no2": no2.ravel(), "coverage": np.nan_to_num(cov.ravel())}
    )
    if only_valid:
        df = df[np.isfinite(df["no2"]) & (df["coverage"] > 0)].reset_index(drop=True)
    if overpass is not None:
        df["overpass"] = str(overpass)
    return df


def example_frame(no2: np.ndarray, valid: np.ndarray, *, res: float = 0.05, lat0: float = 0.0, lon0: float = 0.0):
    """A request table from one (ny, nx) field [mol m-2] and its validity mask, placed on a ``res`` grid whose
    south-west cell centre is (lat0 + res/2, lon0 + res/2) (for input examples: the location is arbitrary).

    Only the valid cells are listed (unlisted cells are unobserved), so the table holds no NaN (which plain JSON
    cannot carry); a field without a valid cell lists every cell with ``coverage`` 0."""
    no2 = np.asarray(no2, dtype=np.float64)
    ok = np.asarray(valid, dtype=bool) & np.isfinite(no2)
    ny, nx = no2.shape
    lat = np.round(lat0 + res * (np.arange(ny) + 0.5), 10)
    lon = np.round(lon0 + res * (np.arange(nx) + 0.5), 10)
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    keep = ok.ravel() if ok.any() else np.ones(ok.size, dtype=bool)
    return pd.DataFrame(
        {
            "lat": lat2.ravel()[keep],
            "lon": lon2.ravel()[keep],
            "no2": np.where(ok, no2, 0.0).ravel()[keep],
            "coverage": ok.astype(np.float64).ravel()[keep],
        }
    )


def request_body(df: pd.DataFrame, params: dict | None = None) -> dict:
    """The JSON body of a ``POST /invocations`` for the request table ``df``: MLflow's ``dataframe_split`` with
    NaN sent as null (plain JSON has no NaN) and numbers as Python floats (shortest exact text)."""
    data = [[None if isinstance(v, float) and not math.isfinite(v) else v for v in row] for row in df.itertuples(False)]
    data = [[v.item() if isinstance(v, np.generic) else v for v in row] for row in data]
    body: dict[str, Any] = {"dataframe_split": {"columns": [str(c) for c in df.columns], "data": data}}
    if params:
        body["params"] = dict(params)
    return body
