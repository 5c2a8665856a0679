"""Exact area-weighted regridding of pixel footprints (quadrilaterals) onto a regular lat/lon grid.

Method (exact, vectorised): work in grid-cell units (u = (lon - west)/res, v = (lat - south)/res), where grid
lines are the integers. For a polygon P, the area of P inside the quadrant {u < X, v < Y} is, by Green's theorem,

    F(X, Y) = sum over edges of  integral over the edge part with v < Y  of  min(u, X) dv

(because d/du min(u, X) = 1[u < X]); each edge term has a closed form (clip the edge at v = Y, then the mean of
min(u, X) along a straight segment). The overlap of P with cell [i, i+1] x [j, j+1] is the second difference
F(i+1, j+1) - F(i, j+1) - F(i+1, j) + F(i, j). Pixels are grouped by how many cells they span (kx, ky); on each
pixel's node lattice the outer nodes are trivial (0, the 1-D partial areas, the total area), so a pixel
inside a 2 x 2 block of cells needs one 2-D and two 1-D evaluations. The result is exact for straight-edged
polygons in the lon/lat plane, up to float64 rounding (areas conserve to ~1e-12 relative); it does not use
spherical geometry: edges are straight in lon/lat and cell areas are taken as equal in deg^2 (the cos(lat) change
across one 0.05 deg cell is < 0.1 %, and it cancels in the weighted means).

Per overpass this gives, per cell, with w_i the overlap area of pixel i:
- mean column  sum(w_i c_i) / sum(w_i),
- its precision (independent errors)  sqrt(sum(w_i^2 s_i^2)) / sum(w_i) (a pixel whose s_i is NaN takes the
  weighted RMS of the cell's other pixels' s_i; NaN only when no pixel of the cell has one),
- coverage  sum(w_i) / cell area (clipped to 1: neighbouring footprints may overlap slightly).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Grid:
    """A regular lat/lon grid: south-west corner (west, south), cell size ``res`` degrees, nlat x nlon cells."""

    west: float
    south: float
    res: float
    nlon: int
    nlat: int

    @classmethod
    def from_bbox(cls, bbox, res: float) -> Grid:
        """Grid covering ``bbox = [west, south, east, north]``, snapped outward to multiples of ``res``."""
        w, s, e, n = (float(b) for b in bbox)
        west = np.floor(w / res + 1e-9) * res
        south = np.floor(s / res + 1e-9) * res
        east = np.ceil(e / res - 1e-9) * res
        north = np.ceil(n / res - 1e-9) * res
        nlon = max(1, int(round((east - west) / res)))
        nlat = max(1, int(round((north - south) / res)))
        return cls(round(west, 10), round(south, 10), float(res), nlon, nlat)

    @property
    def lon(self) -> np.ndarray:
        return self.west + (np.arange(self.nlon) + 0.5) * self.res

    @property
    def lat(self) -> np.ndarray:
        return self.south + (np.arange(self.nlat) + 0.5) * self.res

    @property
    def lon_bnds(self) -> np.ndarray:
        e = self.west + np.arange(self.nlon + 1) * self.res
        return np.stack([e[:-1], e[1:]], axis=1)

    @property
    def lat_bnds(self) -> np.ndarray:
        e = self.south + np.arange(self.nlat + 1) * self.res
        return np.stack([e[:-1], e[1:]], axis=1)

    @property
    def bbox(self) -> list[float]:
        return [self.west, self.south, self.west + self.nlon * self.res, self.south + self.nlat * self.res]

    @property
    def cell_area_deg2(self) -> float:
        return self.res * self.res


# ---------------------------------------------------------------------------------------------------------------
# closed-form pieces


def _posint_mean(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Mean of max(t, 0) for t running linearly from p to q."""
    d = q - p
    small = np.abs(d) < 1e-12
    safe = np.where(small, 1.0, d)
    pp, qp = np.maximum(p, 0.0), np.maximum(q, 0.0)
    return np.where(small, np.maximum(0.5 * (p + q), 0.0), (qp * qp - pp * pp) / (2.0 * safe))


class _Edges:
    """The 4 edges of n polygons (n, 4) in cell units, shifted so the pixel's lower-left cell is (0, 0)."""

    def __init__(self, u: np.ndarray, v: np.ndarray):
        self.x0, self.y0 = u, v
        self.x1, self.y1 = np.roll(u, -1, axis=1), np.roll(v, -1, axis=1)
        self.dy = self.y1 - self.y0
        nz = self.dy != 0
        self.slope = np.where(nz, (self.x1 - self.x0) / np.where(nz, self.dy, 1.0), 0.0)
        self.area = np.sum(self.dy * 0.5 * (self.x0 + self.x1), axis=1)  # signed (CCW > 0)

    def _clip_v(self, Y):
        yA = np.minimum(self.y0, Y)
        yB = np.minimum(self.y1, Y)
        xA = self.x0 + (yA - self.y0) * self.slope
        xB = self.x0 + (yB - self.y0) * self.slope
        return yB - yA, xA, xB

    def below(self, Y: float) -> np.ndarray:
        """Signed area with v < Y."""
        dv, xA, xB = self._clip_v(Y)
        return np.sum(dv * 0.5 * (xA + xB), axis=1)

    def left(self, X: float) -> np.ndarray:
        """Signed area with u < X."""
        return np.sum(self.dy * (0.5 * (self.x0 + self.x1) - _posint_mean(self.x0 - X, self.x1 - X)), axis=1)

    def quadrant(self, X: float, Y: float, clipped=None) -> np.ndarray:
        """Signed area with u < X and v < Y (``clipped`` = a cached ``_clip_v(Y)``)."""
        dv, xA, xB = clipped if clipped is not None else self._clip_v(Y)
        return np.sum(dv * (0.5 * (xA + xB) - _posint_mean(xA - X, xB - X)), axis=1)


#: pixels per block of the exact-overlap computation: its temporaries (~30 arrays of CHUNK doubles) stay in a core's
#: L2 cache; whole groups (up to ~60,000 pixels of a TROPOMI granule) spill to memory, and two workers on one box
#: then slow each other down
CHUNK = 4096
#: (pixel, cell) pairs gathered before they are summed into the grid (~2.4 MB): bounds the memory whatever the
#: granule's size, and keeps the number of sums over the grid small
FLUSH_PAIRS = 100_000


def _cell_overlaps(u, v, ix0, iy0, idx, cx: int, cy: int) -> np.ndarray:
    """Overlap areas (cx, cy, n) of the n pixels ``idx`` (all spanning cx x cy cells) with those cells."""
    ed = _Edges(u[idx] - ix0[idx, None], v[idx] - iy0[idx, None])
    G = np.zeros((cx + 1, cy + 1, idx.size))
    G[cx, cy] = ed.area
    for b in range(1, cy):
        G[cx, b] = ed.below(b)
    for a in range(1, cx):
        G[a, cy] = ed.left(a)
    for b in range(1, cy):
        clipped = ed._clip_v(b) if cx > 1 else None
        for a in range(1, cx):
            G[a, b] = ed.quadrant(a, b, clipped)
    return (G[1:, 1:] - G[:-1, 1:] - G[1:, :-1] + G[:-1, :-1]) * np.sign(ed.area)


def _overlap_chunks(grid: Grid, lon_bounds: np.ndarray, lat_bounds: np.ndarray, max_cells: int = 64):
    """The (pixel, cell, weight) triples of :func:`overlap_weights`, yielded per block of at most ``CHUNK`` pixels
    that span the same number of cells (a block's pixels are consecutive in the granule, so its cells are close)."""
    u = (np.asarray(lon_bounds, np.float64) - grid.west) / grid.res
    v = (np.asarray(lat_bounds, np.float64) - grid.south) / grid.res
    umin, umax = u.min(axis=1), u.max(axis=1)
    vmin, vmax = v.min(axis=1), v.max(axis=1)
    inside = (umax > 0) & (umin < grid.nlon) & (vmax > 0) & (vmin < grid.nlat)
    ix0 = np.floor(umin).astype(np.int64)
    iy0 = np.floor(vmin).astype(np.int64)
    kx = np.floor(umax).astype(np.int64) - ix0 + 1
    ky = np.floor(vmax).astype(np.int64) - iy0 + 1
    too_big = (kx > max_cells) | (ky > max_cells) | ((umax - umin) * grid.res > 180.0)
    if np.any(too_big & inside):
        log.warning(
            "skipped %d pixels spanning more than %d cells (or the antimeridian)",
            int((too_big & inside).sum()),
            max_cells,
        )
    keep = np.nonzero(inside & ~too_big)[0]
    if keep.size == 0:
        return
    key = kx[keep] * (max_cells + 1) + ky[keep]
    order = np.argsort(key, kind="stable")
    keep, key = keep[order], key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], key.size]
    for s, e in zip(starts, ends):
        cx, cy = int(kx[keep[s]]), int(ky[keep[s]])
        # per pixel the same arithmetic in any chunking: chunks keep the temporaries in the core's cache
        for k in range(s, e, CHUNK):
            idx = keep[k : min(k + CHUNK, e)]
            W = _cell_overlaps(u, v, ix0, iy0, idx, cx, cy)
            ii = ix0[idx][None, None, :] + np.arange(cx)[:, None, None]
            jj = iy0[idx][None, None, :] + np.arange(cy)[None, :, None]
            ok = (W > 0) & (ii >= 0) & (ii < grid.nlon) & (jj >= 0) & (jj < grid.nlat)
            yield np.broadcast_to(idx[None, None, :], W.shape)[ok], (jj * grid.nlon + ii)[ok], W[ok]


def overlap_weights(grid: Grid, lon_bounds: np.ndarray, lat_bounds: np.ndarray, max_cells: int = 64):
    """Exact overlap areas of pixel footprints with grid cells.

    Returns ``(pixel, cell, weight)``: pixel index, flat cell index (lat-major, ``j * nlon + i``) and overlap area
    in units of one cell area, for every (pixel, cell) pair with a positive overlap inside the grid. Pixels that
    span more than ``max_cells`` cells along an axis, cross the antimeridian, or have zero area are skipped.
    """
    parts = list(_overlap_chunks(grid, lon_bounds, lat_bounds, max_cells))
    if not parts:
        e = np.empty(0, np.int64)
        return e, e, np.empty(0, np.float64)
    return tuple(np.concatenate(x) for x in zip(*parts))


@dataclass
class Gridded:
    """One overpass on the grid: arrays of shape (nlat, nlon)."""

    no2: np.ndarray
    no2_precision: np.ndarray
    coverage: np.ndarray
    covered_area: np.ndarray  # sum of overlap areas in cell units (unclipped)


def grid_overpass(grid: Grid, lon_bounds, lat_bounds, no2, precision, max_cells: int = 64) -> Gridded:
    """Area-weighted mean, propagated precision and coverage of one overpass's valid pixels on ``grid``.

    The sums are accumulated block by block of pixels (:func:`_overlap_chunks`) over the cells the block touches, so
    the memory beyond the grid's own arrays is one block's, whatever the granule's size (collecting every
    (pixel, cell) pair of a china_year granule first took ~80 MB more at the peak than a small granule's)."""
    ncell = grid.nlat * grid.nlon
    no2 = np.asarray(no2, np.float64)
    prec = np.asarray(precision, np.float64)
    known = np.isfinite(prec)
    prec = np.where(known, prec, 0.0)
    sw, swc, sws = np.zeros(ncell), np.zeros(ncell), np.zeros(ncell)
    sw2, sw2_known = np.zeros(ncell), np.zeros(ncell)
    buf: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def flush():
        p, c, w = (np.concatenate(x) for x in zip(*buf))
        buf.clear()
        c0 = int(c.min())
        cl, n = c - c0, int(c.max()) - c0 + 1
        sw[c0 : c0 + n] += np.bincount(cl, weights=w, minlength=n)
        swc[c0 : c0 + n] += np.bincount(cl, weights=w * no2[p], minlength=n)
        sws[c0 : c0 + n] += np.bincount(cl, weights=(w * prec[p]) ** 2, minlength=n)
        sw2[c0 : c0 + n] += np.bincount(cl, weights=w**2, minlength=n)
        sw2_known[c0 : c0 + n] += np.bincount(cl, weights=w**2 * known[p], minlength=n)

    held = 0
    for part in _overlap_chunks(grid, lon_bounds, lat_bounds, max_cells):
        buf.append(part)
        held += part[0].size
        if held >= FLUSH_PAIRS:
            flush()
            held = 0
    if buf:
        flush()
    with np.errstate(invalid="ignore", divide="ignore"):
        has = sw > 0
        mean = np.where(has, swc / np.where(has, sw, 1.0), np.nan)
        # pixels without a precision (NaN) are given the weighted RMS precision of the cell's others; a cell none of
        # whose pixels has one gets NaN (before, one such pixel made the whole cell's precision NaN)
        scale = np.where(sw2_known > 0, sw2 / np.where(sw2_known > 0, sw2_known, 1.0), np.nan)
        sigma = np.where(has, np.sqrt(sws * scale) / np.where(has, sw, 1.0), np.nan)
    shape = (grid.nlat, grid.nlon)
    return Gridded(mean.reshape(shape), sigma.reshape(shape), np.minimum(sw, 1.0).reshape(shape), sw.reshape(shape))


def centre_binning(grid: Grid, lon, lat, no2) -> np.ndarray:
    """Baseline: plain mean of the pixel centres falling in each cell (np.bincount), NaN where none."""
    i = np.floor((np.asarray(lon) - grid.west) / grid.res).astype(np.int64)
    j = np.floor((np.asarray(lat) - grid.south) / grid.res).astype(np.int64)
    ok = (i >= 0) & (i < grid.nlon) & (j >= 0) & (j < grid.nlat)
    c = j[ok] * grid.nlon + i[ok]
    ncell = grid.nlat * grid.nlon
    n = np.bincount(c, minlength=ncell)
    s = np.bincount(c, weights=np.asarray(no2)[ok], minlength=ncell)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / n, np.nan).reshape(grid.nlat, grid.nlon)
