"""Reader for the CoCO2 global power-plant catalogue (Guevara et al. 2023, v1.1, year 2018).

The catalogue lists generating *units*; several units share one site (e.g. Matimba has 6 rows at one location).
:func:`read_coco2` aggregates units at the same coordinates into one point source per site, summing emissions.
Emissions in the file are tonnes per year (``*_emis_ty``); NOx is expressed as NO2 mass, as usual for inventories.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputFileError
from ..readfile import read_csv

REQUIRED = ("ID", "ISO3", "fuel", "longitude", "latitude", "co2_emis_ty", "nox_emis_ty")


def read_coco2(path: str | Path) -> pd.DataFrame:
    """Return one row per site: ``id, iso3, fuel, lat, lon, nox_t_per_yr, co2_t_per_yr, n_units``.

    Raises :class:`InputFileError` naming the file and the missing column / bad value.
    """
    path = Path(path)
    df = read_csv(path)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise InputFileError(path, f"missing column(s) {', '.join(missing)} (not a CoCO2 catalogue?)")
    for col in ("latitude", "longitude", "co2_emis_ty", "nox_emis_ty"):
        vals = pd.to_numeric(df[col], errors="coerce")
        if vals.isna().any():
            raise InputFileError(
                path, f"column {col} has non-numeric or empty values, e.g. {df[col][vals.isna()].iloc[0]!r}"
            )
        df[col] = vals.astype(float)
    for col, lo, hi in (("latitude", -90, 90), ("longitude", -180, 180)):
        bad = ~df[col].between(lo, hi)
        if bad.any():
            raise InputFileError(path, f"column {col} has values outside {lo}..{hi}, e.g. {df.loc[bad, col].iloc[0]!r}")
    for col in ("co2_emis_ty", "nox_emis_ty"):
        if (df[col] < 0).any() or not np.isfinite(df[col]).all():
            raise InputFileError(path, f"column {col} has negative or non-finite emissions")
    from .points_csv import check_no_repeats

    check_no_repeats(df, path)
    key = ["latitude", "longitude"]
    sites = (
        df.groupby(key, sort=False)
        .agg(
            id=("ID", "first"),
            iso3=("ISO3", "first"),
            nox_t_per_yr=("nox_emis_ty", "sum"),
            co2_t_per_yr=("co2_emis_ty", "sum"),
            n_units=("ID", "size"),
        )
        .reset_index()
    )
    sites["fuel"] = site_mode(df, key, "fuel", sites)
    sites = sites.rename(columns={"latitude": "lat", "longitude": "lon"})
    return sites[["id", "iso3", "fuel", "lat", "lon", "nox_t_per_yr", "co2_t_per_yr", "n_units"]]


def site_mode(df: pd.DataFrame, key: list[str], col: str, sites: pd.DataFrame) -> np.ndarray:
    """Most common ``col`` per site (ties: the smallest value, as ``Series.mode().iloc[0]``), aligned to ``sites``.

    Vectorised: a per-row ``Series.mode`` lambda takes ~25 s on the 12k-row catalogue.
    """
    counts = df.groupby(key + [col], sort=False).size().rename("_n").reset_index()
    counts = counts.sort_values(["_n", col], ascending=[False, True], kind="stable").drop_duplicates(key)
    return sites[key].merge(counts[key + [col]], on=key, how="left")[col].to_numpy()
