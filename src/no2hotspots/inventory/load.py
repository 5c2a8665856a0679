"""Dispatch on ``inventory.kind``: point-source catalogues -> DataFrame, gridded inventories -> xarray.

``conf/inventory/<name>.yaml`` chooses the reader:

- ``kind: coco2`` — CoCO2 power-plant catalogue (:func:`no2hotspots.inventory.coco2.read_coco2`).
- ``kind: csv`` — any point-source CSV (:func:`no2hotspots.inventory.points_csv.read_points_csv`), with
  ``columns`` and ``units`` naming the file's columns and emission units.
- ``kind: edgar`` — gridded NetCDF in the EDGAR layout (:func:`no2hotspots.inventory.gridded.read_gridded_netcdf`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .points_csv import POINT_COLUMNS

POINT_KINDS = ("coco2", "csv")
GRIDDED_KINDS = ("edgar",)


def _get(cfg: Any, key: str, default=None):
    try:
        return cfg.get(key, default)
    except AttributeError:
        return getattr(cfg, key, default)


def _plain(v):
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(v):
            return OmegaConf.to_container(v, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return v


def load_points(inv_cfg, key: str = "inventory") -> pd.DataFrame:
    """Point sources as one DataFrame with columns ``id, name, iso3, fuel, lat, lon, nox_t_per_yr, co2_t_per_yr,
    n_units`` (emissions in t/yr, NOx as NO2 mass; NaN where the inventory lacks a species)."""
    kind = _get(inv_cfg, "kind")
    path = _get(inv_cfg, "path")
    if not path:
        raise ConfigError(f"{key}.path", "missing (path of the inventory file)")
    if kind == "coco2":
        from .coco2 import read_coco2

        df = read_coco2(path)
        df = df.assign(name=None)
    elif kind == "csv":
        from .points_csv import read_points_csv

        df = read_points_csv(
            path,
            _plain(_get(inv_cfg, "columns")) or {},
            _plain(_get(inv_cfg, "units")) or {},
            aggregate_sites=bool(_get(inv_cfg, "aggregate_sites", True)),
            key=key,
            sep=_get(inv_cfg, "sep", ","),
        )
    elif kind in GRIDDED_KINDS:
        raise ConfigError(
            f"{key}.kind", f"{kind!r} is a gridded inventory; point sources need one of {', '.join(POINT_KINDS)}"
        )
    else:
        raise ConfigError(
            f"{key}.kind", f"unknown inventory kind {kind!r} (known: {', '.join(POINT_KINDS + GRIDDED_KINDS)})"
        )
    return df[list(POINT_COLUMNS)].reset_index(drop=True)


def load_gridded(inv_cfg, key: str = "inventory"):
    """Gridded emissions as an xarray Dataset ``<species>_t_per_yr(lat, lon)`` [t yr-1 per cell] + ``cell_area``."""
    kind = _get(inv_cfg, "kind")
    path = _get(inv_cfg, "path")
    if not path:
        raise ConfigError(f"{key}.path", "missing (path of the inventory file)")
    if kind == "edgar":
        from .gridded import read_gridded_netcdf

        return read_gridded_netcdf(
            path, _plain(_get(inv_cfg, "variables")) or {}, bbox=_plain(_get(inv_cfg, "bbox")), key=key
        )
    if kind in POINT_KINDS:
        raise ConfigError(f"{key}.kind", f"{kind!r} is a point-source inventory; use load_points")
    raise ConfigError(
        f"{key}.kind", f"unknown inventory kind {kind!r} (known: {', '.join(POINT_KINDS + GRIDDED_KINDS)})"
    )


def check_bbox(bbox, key: str) -> tuple[float, float, float, float]:
    """Validate ``[lon_min, lat_min, lon_max, lat_max]``; return it as floats or raise ConfigError naming ``key``."""
    try:
        lon0, lat0, lon1, lat1 = (float(b) for b in bbox)
    except Exception:  # noqa: BLE001
        raise ConfigError(key, f"must be [lon_min, lat_min, lon_max, lat_max] (got {bbox!r})") from None
    if not (-180 <= lon0 < lon1 <= 180):
        raise ConfigError(key, f"longitudes must satisfy -180 <= lon_min < lon_max <= 180 (got {lon0}, {lon1})")
    if not (-90 <= lat0 < lat1 <= 90):
        raise ConfigError(key, f"latitudes must satisfy -90 <= lat_min < lat_max <= 90 (got {lat0}, {lat1})")
    return lon0, lat0, lon1, lat1


def points_in_bbox(df: pd.DataFrame, bbox, margin_deg: float = 0.0) -> pd.DataFrame:
    """Rows of ``df`` inside ``bbox`` = [lon_min, lat_min, lon_max, lat_max] grown by ``margin_deg``."""
    lon0, lat0, lon1, lat1 = (float(b) for b in bbox)
    m = float(margin_deg)
    sel = df["lon"].between(lon0 - m, lon1 + m) & df["lat"].between(lat0 - m, lat1 + m)
    return df.loc[np.asarray(sel)].reset_index(drop=True)
