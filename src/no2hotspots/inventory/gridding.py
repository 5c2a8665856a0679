"""Put point sources and observation counts on a regular lat/lon evaluation grid (default 0.25 deg, MEIC's).

Conventions used everywhere in the evaluation:

* A bbox is either a mapping ``{lat_min, lat_max, lon_min, lon_max}`` or a 4-sequence in GeoJSON order
  ``(lon_min, lat_min, lon_max, lat_max)``.
* Grid edges are ascending; a point belongs to cell ``i`` when ``edges[i] <= x < edges[i+1]`` (the last edge is
  inclusive, so a point exactly on the outer boundary is kept).
* The number of valid observations of a coarse cell follows the paper (its Fig. 8): the number of overpasses whose
  valid pixels cover more than ``coverage_min`` (75 %) of the coarse cell. The coarse coverage of one overpass is the
  area-weighted sum of the fine-cell ``coverage`` of the ingest grid over the fine cells whose centres fall in the
  coarse cell, divided by the coarse cell's full area (fine cells outside the ingest domain count as uncovered).
  :class:`ObsCounter` accumulates it one overpass file at a time (memory: one evaluation grid).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import ConfigError

#: decimals the edges are rounded to (kills 0.1+0.2-style float noise so edges compare exactly)
_EDGE_DECIMALS = 9


def bbox_tuple(bbox, key: str = "bbox") -> tuple[float, float, float, float]:
    """Return ``(lat_min, lat_max, lon_min, lon_max)`` from a mapping or a GeoJSON-order 4-sequence."""
    try:
        if isinstance(bbox, Mapping) or hasattr(bbox, "keys"):
            lat0, lat1, lon0, lon1 = (float(bbox[k]) for k in ("lat_min", "lat_max", "lon_min", "lon_max"))
        else:
            lon0, lat0, lon1, lat1 = (float(v) for v in bbox)
    except Exception:  # noqa: BLE001
        raise ConfigError(
            key,
            "bbox must be {lat_min, lat_max, lon_min, lon_max} or [lon_min, lat_min, lon_max, lat_max] "
            f"(got {bbox!r})",
        ) from None
    if not (-90 <= lat0 < lat1 <= 90 and -180 <= lon0 < lon1 <= 180):
        raise ConfigError(key, f"bbox out of range or empty: lat {lat0}..{lat1}, lon {lon0}..{lon1}")
    return lat0, lat1, lon0, lon1


def regular_edges(bbox, res: float, *, key: str = "bbox") -> tuple[np.ndarray, np.ndarray]:
    """Cell edges ``(lat_edges, lon_edges)`` of a regular ``res``-degree grid covering ``bbox``.

    The box is widened outwards to multiples of ``res`` (so 0.25 deg cells line up with MEIC's grid and with a
    0.05 deg ingest grid) and clipped to -90..90 / -180..180.
    """
    if not (res > 0):
        raise ConfigError(key, f"grid resolution must be > 0 (got {res!r})")
    lat0, lat1, lon0, lon1 = bbox_tuple(bbox, key)

    def edges(lo, hi, lim):
        eps = 1e-9
        a = np.floor(lo / res + eps) * res
        b = np.ceil(hi / res - eps) * res
        n = max(int(round((b - a) / res)), 1)
        e = np.round(a + res * np.arange(n + 1), _EDGE_DECIMALS)
        return np.clip(e, -lim, lim)

    return edges(lat0, lat1, 90.0), edges(lon0, lon1, 180.0)


def cell_index(values, edges) -> np.ndarray:
    """Index of the cell holding each value (-1 outside). Left-closed cells, the last edge inclusive."""
    values = np.asarray(values, dtype=float)
    edges = np.asarray(edges, dtype=float)
    idx = np.searchsorted(edges, values, side="right") - 1
    idx = np.where(values == edges[-1], len(edges) - 2, idx)
    bad = (idx < 0) | (idx > len(edges) - 2) | ~np.isfinite(values)
    return np.where(bad, -1, idx)


def _grid_coords(lat_edges, lon_edges) -> dict:
    lat_edges = np.asarray(lat_edges, float)
    lon_edges = np.asarray(lon_edges, float)
    lat = 0.5 * (lat_edges[:-1] + lat_edges[1:])
    lon = 0.5 * (lon_edges[:-1] + lon_edges[1:])
    return {
        "lat": (
            "lat",
            lat,
            {
                "units": "degrees_north",
                "standard_name": "latitude",
                "long_name": "cell centre latitude",
                "bounds": "lat_bnds",
            },
        ),
        "lon": (
            "lon",
            lon,
            {
                "units": "degrees_east",
                "standard_name": "longitude",
                "long_name": "cell centre longitude",
                "bounds": "lon_bnds",
            },
        ),
    }


def _bnds(lat_edges, lon_edges) -> dict:
    lat_edges = np.asarray(lat_edges, float)
    lon_edges = np.asarray(lon_edges, float)
    return {
        "lat_bnds": (("lat", "bnds"), np.stack([lat_edges[:-1], lat_edges[1:]], axis=1)),
        "lon_bnds": (("lon", "bnds"), np.stack([lon_edges[:-1], lon_edges[1:]], axis=1)),
    }


def _cell_var_name(col: str) -> str:
    if col.endswith("_t_per_yr"):
        return col[: -len("_t_per_yr")] + "_t_per_cell_yr"
    return col + "_per_cell"


def grid_points(
    points_df: pd.DataFrame,
    lat_edges,
    lon_edges,
    value_cols: Sequence[str] = ("nox_t_per_yr", "co2_t_per_yr"),
) -> xr.Dataset:
    """Sum point-source emissions per grid cell: tonnes per cell per year.

    Each ``value_col`` named ``X_t_per_yr`` becomes ``X_t_per_cell_yr(lat, lon)``; ``n_sources(lat, lon)`` counts
    the sources per cell. Points outside the grid are dropped; their number is in the attribute
    ``n_points_outside``.
    """
    lat_edges = np.asarray(lat_edges, float)
    lon_edges = np.asarray(lon_edges, float)
    ny, nx = len(lat_edges) - 1, len(lon_edges) - 1
    iy = cell_index(points_df["lat"].to_numpy(float), lat_edges)
    ix = cell_index(points_df["lon"].to_numpy(float), lon_edges)
    inside = (iy >= 0) & (ix >= 0)
    flat = iy[inside] * nx + ix[inside]
    data_vars = {}
    for col in value_cols:
        vals = np.nan_to_num(points_df[col].to_numpy(float)[inside], nan=0.0)  # NaN = species not in the inventory
        grid = np.bincount(flat, weights=vals, minlength=ny * nx).reshape(ny, nx)
        short = col.split("_")[0].upper()
        data_vars[_cell_var_name(col)] = (
            ("lat", "lon"),
            grid,
            {
                "units": "t yr-1",
                "long_name": f"{short} emission of the point sources in the cell",
                "cell_methods": "area: sum",
            },
        )
    counts = np.bincount(flat, minlength=ny * nx).reshape(ny, nx).astype("int32")
    data_vars["n_sources"] = (
        ("lat", "lon"),
        counts,
        {"units": "1", "long_name": "number of point sources in the cell"},
    )
    data_vars.update(_bnds(lat_edges, lon_edges))
    ds = xr.Dataset(data_vars, coords=_grid_coords(lat_edges, lon_edges))
    ds.attrs.update(
        Conventions="CF-1.10",
        resolution_deg=float(np.round(lat_edges[1] - lat_edges[0], _EDGE_DECIMALS)) if ny else float("nan"),
        n_points_outside=int((~inside).sum()),
    )
    return ds


class ObsCounter:
    """The paper's observation count per evaluation cell (its Fig. 8), accumulated one overpass at a time.

    Built once from the collection's fine grid (cell centres ``lat``, ``lon`` and their bounds) and the evaluation
    grid's edges; :meth:`add` takes one overpass's fine ``coverage`` on its part of the collection grid (rows from
    ``i0``, columns from ``j0``), adds 1 to every evaluation cell whose area is covered by valid pixels to more than
    ``coverage_min`` and returns that cell mask. Memory is one evaluation grid, whatever the number of overpasses.
    """

    def __init__(self, lat, lon, lat_edges, lon_edges, *, coverage_min: float = 0.75, lat_bnds=None, lon_bnds=None):
        lat = np.asarray(lat, float)
        lon = np.asarray(lon, float)
        self.lat_edges = np.asarray(lat_edges, float)
        self.lon_edges = np.asarray(lon_edges, float)
        self.shape = (len(self.lat_edges) - 1, len(self.lon_edges) - 1)
        self.coverage_min = float(coverage_min)
        self.iy = cell_index(lat, self.lat_edges)
        self.ix = cell_index(lon, self.lon_edges)
        dlat = _steps(lat, lat_bnds)
        dlon = _steps(lon, lon_bnds)
        # fine-cell areas (deg^2 * cos lat) as a row factor x a column factor
        self.row_area = dlat * np.cos(np.deg2rad(lat))
        self.col_area = dlon
        lat_c = 0.5 * (self.lat_edges[:-1] + self.lat_edges[1:])
        self.coarse_area = np.outer(np.diff(self.lat_edges) * np.cos(np.deg2rad(lat_c)), np.diff(self.lon_edges))
        self.counts = np.zeros(self.shape, dtype=np.int32)
        self.n_overpasses = 0

    def coarse_coverage(self, coverage, i0: int = 0, j0: int = 0) -> np.ndarray:
        """Share of each evaluation cell's area covered by valid pixels in one overpass, ``(n_lat, n_lon)``."""
        cov = np.nan_to_num(np.asarray(coverage, float), nan=0.0)
        ny, nx = cov.shape
        iy = self.iy[i0 : i0 + ny]
        ix = self.ix[j0 : j0 + nx]
        rows = iy >= 0
        cols = ix >= 0
        if not rows.any() or not cols.any():
            return np.zeros(self.shape)
        w = cov[np.ix_(rows, cols)] * np.outer(self.row_area[i0 : i0 + ny][rows], self.col_area[j0 : j0 + nx][cols])
        flat = (iy[rows][:, None] * self.shape[1] + ix[cols][None, :]).ravel()
        covered = np.bincount(flat, weights=w.ravel(), minlength=self.shape[0] * self.shape[1])
        return covered.reshape(self.shape) / self.coarse_area

    def add(self, coverage, i0: int = 0, j0: int = 0) -> np.ndarray:
        """Count one overpass; returns the boolean mask of the evaluation cells it observed."""
        observed = self.coarse_coverage(coverage, i0, j0) > self.coverage_min
        self.counts += observed
        self.n_overpasses += 1
        return observed


def _steps(centres: np.ndarray, bnds) -> np.ndarray:
    """Cell sizes along one axis, from the bounds when given, else from the centre spacing."""
    if bnds is not None:
        return np.abs(np.diff(np.asarray(bnds, float), axis=1))[:, 0]
    if len(centres) > 1:
        step = np.abs(np.diff(centres))
        return np.append(step, step[-1])
    return np.full(len(centres), np.nan)


def obs_count_array(counts, lat_edges, lon_edges, desc: str, method: str) -> xr.DataArray:
    """``obs_count(lat, lon)`` int32 on the evaluation grid, with CF coordinates and what was counted."""
    return xr.DataArray(
        np.asarray(counts).astype("int32"),
        dims=("lat", "lon"),
        coords={k: (v[0], v[1], v[2]) for k, v in _grid_coords(lat_edges, lon_edges).items()},
        name="obs_count",
        attrs={"units": "1", "long_name": f"number of valid observations: {desc}", "obs_method": method},
    )


def coverage_description(coverage_min: float) -> str:
    return f"overpasses whose valid pixels cover > {coverage_min:g} of the cell"


def fine_obs_count(fine_obs, lat, lon, lat_edges, lon_edges, method: str) -> xr.DataArray:
    """``max`` / ``median`` over the cell's sub-cells (inside the ingest domain) of the ingest grid's ``obs_count``
    (rounded down): cheap alternatives to the paper's per-overpass coverage rule."""
    if method not in ("max", "median"):
        raise ConfigError("evaluate.obs_method", f"must be coverage, max or median (got {method!r})")
    lat_edges = np.asarray(lat_edges, float)
    lon_edges = np.asarray(lon_edges, float)
    ny, nx = len(lat_edges) - 1, len(lon_edges) - 1
    fy, fx = np.meshgrid(cell_index(lat, lat_edges), cell_index(lon, lon_edges), indexing="ij")
    inside = (fy >= 0) & (fx >= 0)
    flat = np.where(inside, fy * nx + fx, 0)
    fine = np.asarray(fine_obs, float)
    out = np.zeros((ny, nx), dtype="int32")
    s = pd.Series(fine[inside]).groupby(flat[inside])
    agg = s.max() if method == "max" else s.median()
    out.ravel()[agg.index.to_numpy()] = np.floor(agg.to_numpy()).astype("int32")
    return obs_count_array(
        out, lat_edges, lon_edges, f"{method} over the cell's sub-cells of the ingest obs_count", method
    )


def aggregate_obs_count(
    ingest: xr.Dataset,
    lat_edges,
    lon_edges,
    *,
    method: str = "coverage",
    coverage_min: float = 0.75,
) -> xr.DataArray:
    """Number of valid observations of each coarse cell, ``obs_count(lat, lon)`` int32, from an in-memory Dataset.

    A convenience for small stacked grids (tests, notebooks); the evaluate stage streams the overpass files
    through :class:`ObsCounter` instead. ``method``:

      * ``coverage`` (default, the paper's Fig. 8 definition): overpasses whose valid pixels cover more than
        ``coverage_min`` of the coarse cell (needs ``coverage(time, lat, lon)``);
      * ``max`` / ``median``: see :func:`fine_obs_count`.
    """
    if method in ("max", "median"):
        return fine_obs_count(
            ingest["obs_count"].transpose("lat", "lon").values,
            ingest["lat"].values,
            ingest["lon"].values,
            lat_edges,
            lon_edges,
            method,
        )
    if method != "coverage":
        raise ConfigError("evaluate.obs_method", f"must be coverage, max or median (got {method!r})")
    if "coverage" not in ingest:
        raise ConfigError("evaluate.obs_method", "'coverage' needs the ingest variable coverage(time, lat, lon)")
    counter = ObsCounter(
        ingest["lat"].values,
        ingest["lon"].values,
        lat_edges,
        lon_edges,
        coverage_min=coverage_min,
        lat_bnds=ingest["lat_bnds"].values if "lat_bnds" in ingest else None,
        lon_bnds=ingest["lon_bnds"].values if "lon_bnds" in ingest else None,
    )
    cov = ingest["coverage"].transpose("time", "lat", "lon")
    for t in range(cov.sizes["time"]):
        counter.add(cov.values[t])
    return obs_count_array(counter.counts, lat_edges, lon_edges, coverage_description(coverage_min), method)
