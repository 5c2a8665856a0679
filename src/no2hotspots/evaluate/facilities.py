"""Units of one plant as one facility: inventory rows within ``km`` of each other (single linkage) become one row.

Inventories list generating units; CoCO2 gives the units of one plant coordinates that differ by tens to hundreds
of metres. Of its 12,311 sites (identical coordinates already merged by ``read_coco2``) 1,042 / 496 / 378 / 218 have
their nearest neighbour within 0-0.25 / 0.25-0.5 / 0.5-0.75 / 0.75-1 km, and 130-220 per 0.25 km from 1 to 5 km: the
excess below ~1 km is the units of one plant. A 5.5-km TROPOMI pixel cannot tell them apart, and a source-level
score that keeps them apart cannot credit both with one hotspot (the nearest rule credits one source per hotspot):
every period product would miss the second unit of a plant by construction.

:func:`group_units` sums NOx and CO2 of a group (NaN only when no unit has a value), places it at the NOx-weighted
mean position (CO2-weighted without NOx, plain mean without either) and keeps the other columns of its strongest
unit (its ``id`` included: a facility is named by its strongest unit; ``n_units`` is summed where present;
``unit_ids`` lists the group's ids, ``;``-separated, on every row). Rows with an injected change (OSSE truth: a
``change_date`` and a ``change_factor`` other than 1, :func:`no2hotspots.inventory.changes.injected_mask`) keep a row
of their own: the change is a per-unit truth the time-series test reads.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..inventory.changes import injected_mask
from .geo import single_linkage

#: the default grouping distance [km]: where the catalogue's excess of close neighbours ends, far below a pixel
FACILITY_KM = 1.0


def facility_labels(df: pd.DataFrame, km: float) -> np.ndarray:
    """Group number (0..n-1, by first row) of each row: single linkage within ``km`` among the rows without an
    injected change (``injected_mask``); those stay alone (and link no chain)."""
    alone = injected_mask(df)
    labels = np.empty(len(df), int)
    linked = ~alone
    labels[linked] = single_linkage(df["lat"].to_numpy(float)[linked], df["lon"].to_numpy(float)[linked], km)
    labels[alone] = int(linked.sum()) + np.arange(int(alone.sum()))
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inverse]


def _weights(g: pd.DataFrame) -> np.ndarray:
    for col in ("nox_t_per_yr", "co2_t_per_yr"):
        w = g[col].to_numpy(float) if col in g else np.full(len(g), np.nan)
        w = np.where(np.isfinite(w), w, 0.0)
        if w.sum() > 0:
            return w
    return np.ones(len(g))


def group_units(df: pd.DataFrame, km: float = FACILITY_KM) -> pd.DataFrame:
    """One row per facility (see the module); ``km`` <= 0 returns ``df`` as it is. The row order follows each
    facility's first unit."""
    if km <= 0:
        return df
    df = df.reset_index(drop=True)
    labels = facility_labels(df, km)
    ids = df["unit_ids"] if "unit_ids" in df else df["id"].astype(str)
    if len(df) == 0 or labels.max() == len(df) - 1:  # no two units within km
        return df.assign(unit_ids=ids)
    multi = np.bincount(labels)[labels] > 1
    rows = []
    for label, g in df[multi].groupby(labels[multi], sort=True):  # only the facilities of several units
        w = _weights(g)
        row = g.iloc[int(np.argmax(w))].to_dict()  # the strongest unit's columns
        row["lat"] = float(np.average(g["lat"].to_numpy(float), weights=w))
        row["lon"] = float(np.average(g["lon"].to_numpy(float), weights=w))
        for col in ("nox_t_per_yr", "co2_t_per_yr"):
            if col in g:
                row[col] = float(g[col].sum(min_count=1))
        if "n_units" in g:
            row["n_units"] = int(g["n_units"].sum())
        row["unit_ids"] = ";".join(ids[g.index])
        rows.append((label, row))
    merged = pd.DataFrame([r for _, r in rows], index=[k for k, _ in rows])
    alone = df[~multi].assign(unit_ids=ids[~multi]).set_axis(labels[~multi])
    return (
        pd.concat([alone, merged.astype(alone.dtypes.to_dict(), errors="ignore")]).sort_index().reset_index(drop=True)
    )
