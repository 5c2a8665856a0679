"""Injected emission changes of a truth table (the OSSE's ``sources.csv``): which rows carry one.

A row carries an injected change when its ``change_date`` parses as a date and its ``change_factor`` is a finite
number other than 1 (the OSSE writes both for the units of ``osse.changes`` and leaves them empty elsewhere). One
definition for every reader: evaluate keeps such a unit out of its facility (:mod:`no2hotspots.evaluate.facilities`)
and tests its time series for the step (:mod:`no2hotspots.evaluate.timeseries`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def change_dates(df: pd.DataFrame) -> pd.Series:
    """``change_date`` parsed (UTC; NaT where empty, missing or not a date), on ``df``'s index."""
    if "change_date" not in df:
        return pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns, UTC]")
    return pd.to_datetime(df["change_date"], errors="coerce", utc=True)


def change_factors(df: pd.DataFrame) -> pd.Series:
    """``change_factor`` as a number (NaN where empty, missing or not a number), on ``df``'s index."""
    if "change_factor" not in df:
        return pd.Series(np.nan, index=df.index, dtype=float)
    return pd.to_numeric(df["change_factor"], errors="coerce")


def injected_mask(df: pd.DataFrame) -> np.ndarray:
    """True for each row with an injected change: a date that parses and a finite factor other than 1."""
    factor = change_factors(df)
    return (change_dates(df).notna() & np.isfinite(factor) & (factor != 1.0)).to_numpy(bool)
