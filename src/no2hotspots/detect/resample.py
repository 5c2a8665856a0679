"""Detection on the model's own pixel (``detect.resample: model_pixel``, opt-in): the overpass grid is averaged onto
a lattice of the training pixel size, the model runs there, and its relative emission is interpolated back.

The model was trained on square pixels of ``pixel_size_m`` (5.5 km in the demo); a 0.05 deg grid at 40 N has cells of
5.6 x 4.3 km, a 0.0625 deg grid 7.0 x 5.3 km, and the model's maps move with the grid (README, "Detection depends
on the grid"). Here every grid is first brought to one lattice:

* the lattice steps ``pixel_size_m`` north-south and east-west (in degrees: ``pixel / M_PER_DEG`` and that over the
  cosine of the grid's mean latitude rounded to a whole degree, so nearby grids share it) and is anchored at
  multiples of its step from 0 N / 0 E, so grids that differ by a shift or a cell size land on the same cells;
* a lattice cell is the overlap-area mean of the valid grid cells under it, valid when they cover >= ``MIN_COVER``
  of it (area along each axis, separable: two small matrices per overpass);
* the lattice map goes back to the grid by bilinear interpolation between lattice centres, renormalised over the
  lattice cells that have a value; the grid's own invalid cells stay NaN, and hotspots are found on the grid.

``none`` (the default) runs the model on the grid as it is. Measured on the validation OSSE (README, benchmarks/
grid_invariance.py with ``--extra detect.resample=model_pixel``): better agreement between grids of other cell
sizes, fewer sources matched on the native 0.05 deg grid; hence opt-in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from .grid import M_PER_DEG, _edges

#: the values of ``detect.resample``
RESAMPLE = ("none", "model_pixel")
#: a lattice cell has a value when valid grid cells cover at least this share of it
MIN_COVER = 0.5


def lattice_axis(lo: float, hi: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) edges of the cells ``[k*step, (k+1)*step)`` that overlap ``[lo, hi]`` (by more than rounding)."""
    k0, k1 = int(np.floor(lo / step + 1e-9)), int(np.ceil(hi / step - 1e-9))
    k = np.arange(k0, max(k1, k0 + 1))
    return k * step, (k + 1) * step


def overlap_matrix(src_lo, src_hi, dst_lo, dst_hi) -> np.ndarray:
    """``W[d, s]``: the length of source cell s inside destination cell d (1-D)."""
    lo = np.maximum(np.asarray(dst_lo, float)[:, None], np.asarray(src_lo, float)[None, :])
    hi = np.minimum(np.asarray(dst_hi, float)[:, None], np.asarray(src_hi, float)[None, :])
    return np.clip(hi - lo, 0.0, None)


def linear_matrix(src_c, dst_c) -> np.ndarray:
    """``L[d, s]``: 1-D linear interpolation weights from points ``src_c`` (ascending) to ``dst_c``; beyond the
    first / last source point the nearest one."""
    src_c, dst_c = np.asarray(src_c, float), np.asarray(dst_c, float)
    out = np.zeros((dst_c.size, src_c.size))
    if src_c.size == 1:
        out[:, 0] = 1.0
        return out
    x = np.clip(dst_c, src_c[0], src_c[-1])
    i = np.clip(np.searchsorted(src_c, x, side="right") - 1, 0, src_c.size - 2)
    f = (x - src_c[i]) / (src_c[i + 1] - src_c[i])
    rows = np.arange(dst_c.size)
    out[rows, i] = 1.0 - f
    out[rows, i + 1] += f
    return out


@dataclass(frozen=True)
class ModelPixels:
    """The lattice of one grid and the matrices to it (``to_model``) and back (``to_grid``)."""

    lat: np.ndarray  # lattice cell centres, ascending
    lon: np.ndarray
    wy: np.ndarray  # (n_lat_model, n_lat_grid) overlap
    wx: np.ndarray  # (n_lon_model, n_lon_grid)
    ly: np.ndarray  # (n_lat_grid, n_lat_model) linear back-interpolation
    lx: np.ndarray  # (n_lon_grid, n_lon_model)

    @property
    def shape(self) -> tuple[int, int]:
        return self.lat.size, self.lon.size

    def to_model(self, field: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(field on the lattice, NaN where not valid; valid): overlap-area means of the valid grid cells."""
        v = np.asarray(valid, bool)
        f = np.where(v, np.asarray(field, np.float64), 0.0)
        num = self.wy @ f @ self.wx.T
        cover = self.wy @ v.astype(np.float64) @ self.wx.T
        area = np.outer(self.wy.sum(axis=1), self.wx.sum(axis=1))
        ok = (area > 0) & (cover >= MIN_COVER * area)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(ok, num / np.where(cover > 0, cover, 1.0), np.nan)
        return mean, ok

    def to_grid(self, rel: np.ndarray) -> np.ndarray:
        """A lattice map on the grid: bilinear between lattice centres over the cells with a value (NaN where none)."""
        r = np.asarray(rel, np.float64)
        finite = np.isfinite(r)
        num = self.ly @ np.where(finite, r, 0.0) @ self.lx.T
        den = self.ly @ finite.astype(np.float64) @ self.lx.T
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 1e-9, num / np.where(den > 0, den, 1.0), np.nan)


def model_pixels(lat, lon, pixel_size_m: float) -> ModelPixels:
    """The lattice of ``pixel_size_m`` cells over the grid with cell centres ``lat``/``lon`` (ascending)."""
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    step_lat = float(pixel_size_m) / M_PER_DEG
    step_lon = step_lat / float(np.cos(np.deg2rad(np.round(np.mean(lat)))))
    g_lat, g_lon = _edges(lat), _edges(lon)
    m_lat = lattice_axis(g_lat[0][0], g_lat[1][-1], step_lat)
    m_lon = lattice_axis(g_lon[0][0], g_lon[1][-1], step_lon)
    for name, edges in (("latitude", m_lat), ("longitude", m_lon)):
        if edges[0].size < 2:
            raise UserError(
                f"detect.resample: model_pixel needs a grid of at least 2 model pixels "
                f"({pixel_size_m / 1e3:.1f} km) along {name}; this grid spans {edges[0].size}"
            )
    c_lat, c_lon = 0.5 * (m_lat[0] + m_lat[1]), 0.5 * (m_lon[0] + m_lon[1])
    return ModelPixels(
        lat=c_lat,
        lon=c_lon,
        wy=overlap_matrix(*g_lat, *m_lat),
        wx=overlap_matrix(*g_lon, *m_lon),
        ly=linear_matrix(c_lat, lat),
        lx=linear_matrix(c_lon, lon),
    )
