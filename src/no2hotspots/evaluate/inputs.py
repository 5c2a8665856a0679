"""Read and check the evaluation inputs: hotspot tables (per-overpass and composite), detect.json and the inventory
of point sources. The ingest and detect files themselves are read through :mod:`no2hotspots.contracts`.

Every problem a user can fix is raised as a one-line :class:`~no2hotspots.errors.InputFileError` / ConfigError that
names the file (or config key) and the column or value at fault.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError, InputFileError
from ..readfile import coordinates_in_range, read_csv, show_value

log = logging.getLogger(__name__)

#: columns of a point-source inventory (the contract of no2hotspots.inventory readers)
INVENTORY_COLUMNS = ("id", "lat", "lon", "nox_t_per_yr", "co2_t_per_yr")
#: the columns every evaluated hotspot table has after :func:`read_table`
TABLE_COLUMNS = (
    "hotspot_id",
    "overpass",
    "time",
    "peak_lat",
    "peak_lon",
    "peak_rel_emission",
    "nox_rate_estimate_t_per_yr",
)
COMPOSITE_KEY = "composite"
#: more than any single point source on Earth emits (largest plants: ~0.1 Mt NOx, ~40 Mt CO2 per year); values above
#: these mean the file is in other units (kg, g) or not point sources at all
PLAUSIBLE_MAX_T_PER_YR = {"nox_t_per_yr": 1.0e6, "co2_t_per_yr": 2.0e8}


def read_detect_json(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        log.warning("%s not found: cannot tie this evaluation to a model run", path)
        return {}
    try:
        return json.loads(path.read_text())
    except Exception as e:  # noqa: BLE001
        raise InputFileError(path, f"not valid JSON ({type(e).__name__})") from None


def check_points(df: pd.DataFrame, source: str, *, allow_nan: bool = False) -> pd.DataFrame:
    """Check a point-source table (id, lat, lon, nox_t_per_yr, co2_t_per_yr); ``source`` names it in errors.

    ``allow_nan``: an empty emission means "species not in this inventory" (the inventory readers' convention); such
    sources add nothing to that species' cell sums and never pass the CO2 threshold."""
    missing = [c for c in INVENTORY_COLUMNS if c not in df.columns]
    for col in missing:
        species = col.split("_")[0]
        other = [c for c in df.columns if re.fullmatch(rf"{species}_.+", str(c), flags=re.IGNORECASE)]
        if col.endswith("_t_per_yr") and other:
            raise InputFileError(
                source, f"column {other[0]} is in other units; expected {col} (tonnes per year) - convert it first"
            )
    if missing:
        raise InputFileError(source, f"missing column(s) {', '.join(missing)} (need {', '.join(INVENTORY_COLUMNS)})")
    df = df.copy()
    coordinates_in_range(df, source, "lat", "lon")
    for col, vmax in PLAUSIBLE_MAX_T_PER_YR.items():
        vals = pd.to_numeric(df[col], errors="coerce")
        nonnum = vals.isna() & (df[col].notna() | (not allow_nan))
        badmask = nonnum | np.isinf(vals) | (vals < 0)
        if badmask.any():
            bad = df.loc[badmask, col].iloc[0]
            raise InputFileError(source, f"column {col} has a negative or non-numeric value, e.g. {show_value(bad)}")
        if (vals > vmax).any():
            raise InputFileError(
                source,
                f"column {col} has {vals.max():.3g}, more than any point source emits ({vmax:.0e} t/yr): wrong units? "
                "expected tonnes per year",
            )
        df[col] = vals.astype(float)
    df["id"] = df["id"].astype(str)
    return df.reset_index(drop=True)


def read_points_csv(path: str | Path) -> pd.DataFrame:
    """A plain point-source CSV (one row per source, e.g. the OSSE's ``truth/sources.csv``), checked like the
    inventory readers: a repeated row, id or position would count one source twice (Table 2, CO2 overlap)."""
    from ..inventory.points_csv import check_no_repeats

    raw = read_csv(path)
    check_no_repeats(raw, path)
    df = check_points(raw, str(path))
    _check_one_row_per_source(df, path)
    return df


def _check_one_row_per_source(df: pd.DataFrame, path) -> None:
    """One-line error naming the file, the first repeated id or position and both CSV lines (header = line 1)."""
    for cols, what in ((["id"], "id"), (["lat", "lon"], "position")):
        rep = df.duplicated(cols, keep="first").to_numpy()
        if rep.any():
            i = int(np.flatnonzero(rep)[0])
            first = int(np.flatnonzero((df.loc[: i - 1, cols] == df.loc[i, cols]).all(axis=1).to_numpy())[0])
            value = df.loc[i, "id"] if what == "id" else f"({df.loc[i, 'lat']:g}, {df.loc[i, 'lon']:g})"
            raise InputFileError(
                path,
                f"line {i + 2} repeats the {what} {value} of line {first + 2} ({int(rep.sum())} repeated); one row per "
                "source (sum the units of one site into one row)",
            )


def load_inventory(spec, key: str) -> pd.DataFrame:
    """Point sources for one collection.

    ``spec`` is a path to a CSV with the inventory columns (``id, lat, lon, nox_t_per_yr, co2_t_per_yr``), or an
    inventory config (``{kind: coco2|csv, path: ..., ...}``) read by ``no2hotspots.inventory.load_points``.
    """
    if spec is None:
        raise ConfigError(key, "no inventory configured for this collection")
    if isinstance(spec, (str, Path)):
        return read_points_csv(spec)
    if isinstance(spec, DictConfig):
        spec_d = OmegaConf.to_container(spec, resolve=True)
    else:
        spec_d = dict(spec)
    kind = spec_d.get("kind")
    path = spec_d.get("path")
    from .. import inventory

    loader = getattr(inventory, "load_points", None)
    if loader is not None:
        df = loader(spec if isinstance(spec, DictConfig) else OmegaConf.create(spec_d), key=key)
        return check_points(df, str(path or key), allow_nan=True)
    if kind == "coco2" and path:
        from ..inventory.coco2 import read_coco2

        return check_points(read_coco2(path), str(path))
    raise ConfigError(key, f"unknown inventory kind {kind!r} (use a CSV path, or kind: coco2 with path)")


def read_table(path: str | Path, kind: str, index: pd.DataFrame) -> pd.DataFrame:
    """A hotspot table with :data:`TABLE_COLUMNS`.

    ``kind="overpass"``: detect's hotspots.csv layout (no2hotspots.contracts.detections.read_hotspots); a table
    without an ``overpass`` column gets it from the ingest overpass index by time. ``kind="composite"``: one row per
    period hotspot (``site_id, peak_lat, peak_lon, peak_value``); every row gets ``overpass = "composite"`` and no
    time, so it counts as one detection.
    """
    path = Path(path)
    if kind == "overpass":
        from ..contracts.detections import read_hotspots

        df = read_hotspots(path)
        if "overpass" not in df.columns:
            by_time = dict(zip(pd.to_datetime(index["time"], utc=True), index["key"].astype(str)))
            df["overpass"] = [by_time.get(t) for t in df["time"]]
            if df["overpass"].isna().any():
                t = df.loc[df["overpass"].isna(), "time"].iloc[0]
                raise InputFileError(path, f"has no overpass column and time {t} is no overpass of the ingest grid")
        df["overpass"] = df["overpass"].astype(str)
    else:
        from ..contracts.detections import read_composite

        df = read_composite(path).rename(columns={"site_id": "hotspot_id"})
        if "peak_rel_emission" not in df.columns:
            df["peak_rel_emission"] = pd.to_numeric(df["peak_value"], errors="coerce") if "peak_value" in df else 1.0
        df["overpass"] = COMPOSITE_KEY
        df["time"] = pd.NaT
    if "nox_rate_estimate_t_per_yr" not in df.columns:
        df["nox_rate_estimate_t_per_yr"] = np.nan
    df["peak_rel_emission"] = pd.to_numeric(df["peak_rel_emission"], errors="coerce").fillna(1.0)
    return df[list(TABLE_COLUMNS) + [c for c in df.columns if c not in TABLE_COLUMNS]].reset_index(drop=True)
