"""Generic point-source CSV reader: column names and emission units come from config.

Returns the project's point-source schema (see :data:`POINT_COLUMNS`): ``id, name, iso3, fuel, lat, lon,
nox_t_per_yr, co2_t_per_yr, n_units``. NOx is NOx expressed as NO2 mass (the inventory convention). A species
whose column is not configured is NaN (e.g. the JRC power-plant database has CO2 but no NOx). Rows with empty
coordinates are skipped with a warning; non-numeric/out-of-range coordinates or negative emissions are an error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, InputFileError
from ..readfile import read_csv
from .coco2 import site_mode
from .units import KNOWN_RATE_UNITS, rate_factor

log = logging.getLogger(__name__)

POINT_COLUMNS = ("id", "name", "iso3", "fuel", "lat", "lon", "nox_t_per_yr", "co2_t_per_yr", "n_units")


#: a point-source inventory whose median positive rate [t/yr] lies outside these is in other units than configured
PLAUSIBLE_MEDIAN_T_PER_YR = {"nox": (1.0, 1.0e5), "co2": (100.0, 5.0e7)}


def read_points_csv(
    path: str | Path,
    columns: Mapping[str, str | None],
    units: Mapping[str, str] | None = None,
    *,
    aggregate_sites: bool = True,
    key: str = "inventory",
    sep: str = ",",
) -> pd.DataFrame:
    """Read point sources from a CSV whose column names are given in ``columns``.

    ``columns`` maps schema names to file columns: ``lat``, ``lon`` required; ``nox``, ``co2``, ``id``, ``name``,
    ``iso3``, ``fuel`` optional (None/absent = not in the file). ``units`` gives the unit of ``nox`` and ``co2``
    (e.g. ``"kt/yr"``, ``"kg/s"``; default ``t/yr``); rates are converted to t/yr. With ``aggregate_sites`` rows at
    identical coordinates (units of one plant) are summed into one site. ``key`` is the config prefix used in
    error messages (``inventory.columns.lat`` ...). Repeated rows, non-numeric values and rates whose median is
    implausible for point sources (a wrong unit) are one-line errors naming the file and column.
    """
    path = Path(path)
    columns = {k: v for k, v in dict(columns).items() if v not in (None, "")}
    factors = _factors(columns, dict(units or {}), key)
    df = read_csv(path, sep=sep)
    missing = [f"{v} (for {k})" for k, v in columns.items() if v not in df.columns]
    if missing:
        raise InputFileError(path, f"missing column(s) {', '.join(missing)}; set {key}.columns to the file's names")
    check_no_repeats(df, path)
    empty = df[columns["lat"]].isna() | df[columns["lon"]].isna()
    if empty.any():
        log.warning("%s: %d row(s) without coordinates skipped", path, int(empty.sum()))
        df = df.loc[~empty].reset_index(drop=True)
    out = pd.DataFrame(index=df.index)
    for name in ("lat", "lon"):
        out[name] = _coordinate(df[columns[name]], name, path)
    for sp in ("nox", "co2"):
        out[f"{sp}_t_per_yr"] = _rates(df, columns, sp, factors, path, units) if sp in columns else np.nan
    for name in ("id", "name", "iso3", "fuel"):
        out[name] = df[columns[name]].astype(str).to_numpy() if name in columns else None
    if "id" not in columns:
        out["id"] = [f"{path.stem}_{i:05d}" for i in range(len(df))]
    out["n_units"] = 1
    if aggregate_sites and len(out):
        out = _sites(out, "fuel" in columns)
    return out[list(POINT_COLUMNS)].reset_index(drop=True)


def _factors(columns: dict, units: dict, key: str) -> dict[str, float]:
    for req in ("lat", "lon"):
        if req not in columns:
            raise ConfigError(f"{key}.columns.{req}", "required (name of the CSV column)")
    if "nox" not in columns and "co2" not in columns:
        raise ConfigError(f"{key}.columns", "give at least one of nox, co2")
    factors = {}
    for sp in ("nox", "co2"):
        if sp in columns:
            unit = units.get(sp, "t/yr")
            f = rate_factor(unit)
            if f is None:
                raise ConfigError(f"{key}.units.{sp}", f"unknown emission unit {unit!r} (known: {KNOWN_RATE_UNITS})")
            factors[sp] = f
    return factors


def check_no_repeats(df: pd.DataFrame, path) -> None:
    """A row repeated exactly would count a source twice: one-line error naming both lines of the CSV file
    (header = line 1). Rows that share an id or coordinates are units of one plant, summed into one site."""
    rep = df.duplicated(keep="first").to_numpy()
    if rep.any():
        i = int(np.flatnonzero(rep)[0])
        first = int(np.flatnonzero((df.iloc[:i] == df.iloc[i]).all(axis=1).to_numpy())[0])
        raise InputFileError(
            path, f"line {i + 2} repeats line {first + 2} ({int(rep.sum())} repeated row(s)); remove the duplicates"
        )


def _coordinate(values: pd.Series, name: str, path) -> pd.Series:
    vals = pd.to_numeric(values, errors="coerce")
    if vals.isna().any():
        raise InputFileError(path, f"column {values.name} has non-numeric values, e.g. {values[vals.isna()].iloc[0]!r}")
    lo, hi = (-90, 90) if name == "lat" else (-180, 180)
    bad = ~vals.between(lo, hi)
    if bad.any():
        raise InputFileError(
            path, f"column {values.name} has values outside {lo}..{hi}, e.g. {float(vals[bad].iloc[0])}"
        )
    return vals.astype(float)


def _rates(df: pd.DataFrame, columns: dict, sp: str, factors: dict, path, units) -> pd.Series:
    """One species in t/yr: empty cells stay NaN (not in the inventory), text is an error, and so is a median
    that no point-source inventory has (a unit mistake: mg/s read as t/yr, t/yr as kg/yr ...)."""
    col = columns[sp]
    raw = df[col]
    vals = pd.to_numeric(raw, errors="coerce")
    text = vals.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if text.any():
        raise InputFileError(path, f"column {col} has non-numeric values, e.g. {raw[text].iloc[0]!r}")
    if (vals < 0).any() or np.isinf(vals).any():
        raise InputFileError(path, f"column {col} has negative or infinite emissions")
    if vals.isna().all():
        raise InputFileError(path, f"column {col} has no numeric emission values")
    out = vals.astype(float) * factors[sp]
    positive = out[out > 0]
    lo, hi = PLAUSIBLE_MEDIAN_T_PER_YR[sp]
    if len(positive) and not lo <= float(positive.median()) <= hi:
        unit = dict(units or {}).get(sp, "t/yr")
        raise InputFileError(
            path,
            f"column {col}: median {float(positive.median()):.3g} t/yr after converting from "
            f"{unit!r} is implausible for point sources ({lo:g}..{hi:g}); wrong unit?",
        )
    return out


def _sites(out: pd.DataFrame, has_fuel: bool) -> pd.DataFrame:
    """Rows at identical coordinates (units of one plant) summed into one site."""
    key = ["lat", "lon"]
    sites = (
        out.groupby(key, sort=False)
        .agg(
            id=("id", "first"),
            name=("name", "first"),
            iso3=("iso3", "first"),
            nox_t_per_yr=("nox_t_per_yr", "sum"),
            co2_t_per_yr=("co2_t_per_yr", "sum"),
            n_units=("n_units", "sum"),
        )
        .reset_index()
    )
    for sp in ("nox", "co2"):  # a site without any value stays NaN (sum would give 0)
        has = out[f"{sp}_t_per_yr"].notna().groupby([out[k] for k in key], sort=False).any().to_numpy()
        sites.loc[~has, f"{sp}_t_per_yr"] = np.nan
    sites["fuel"] = site_mode(out, key, "fuel", sites) if has_fuel else None
    return sites
