"""The NO2 field around one source, on local metric coordinates, and the linear algebra every estimator shares.

A :class:`Scene` is the overpass grid cropped to a box around the source, with each cell's centre in km east/north
of the source, its area on the sphere, its column [mol m-2] and precision. Every estimator here is *linear in the
columns* once the geometry and wind are fixed: Q = sum_i g_i (c_i - b_i), where the background b is a plane fitted
(least squares, iterative 3-sigma clipping) to background cells, itself linear in their columns. So each estimate
carries exact weights on every cell it used, and its noise follows from them:

    var(Q) = k * chi^2 * sum_i w_i^2 sigma_i^2          (w: the weights on signal and background cells)

with sigma_i the retrieval precision of the cell (ingest: area-weighted, independent pixel errors), chi the ratio of
the robust spread of the background residuals to the stated precision (>= 1: real scenes scatter more than the
precision says, e.g. small-scale background structure, and the Matimba sample file's precision is ~10x too small),
and k the variance factor of sums of spatially correlated residuals, (1+rho_x)/(1-rho_x) * (1+rho_y)/(1-rho_y) with
rho the lag-1 correlation of neighbouring background residuals (a TROPOMI pixel spans several 0.05 deg cells).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace

import numpy as np

from ..robust import MAD_TO_SIGMA

EARTH_RADIUS_M = 6_371_008.8


def read_only(*values) -> None:
    """Mark the arrays among ``values`` read-only: they are shared by the scenes cut from one grid box."""
    for v in values:
        if isinstance(v, np.ndarray):
            v.setflags(write=False)


@dataclass
class Scene:
    """Cells around a source: 2-D arrays (ny, nx); ``x``/``y`` km east/north of the source."""

    lat0: float
    lon0: float
    lat: np.ndarray  # (ny,)
    lon: np.ndarray  # (nx,)
    x: np.ndarray
    y: np.ndarray
    area: np.ndarray  # m2
    c: np.ndarray  # mol m-2, NaN where not observed
    sigma: np.ndarray  # mol m-2 (precision; NaN filled with the scene median)
    exclude: np.ndarray = field(default=None)  # cells near other sources: never used as background
    sharing: np.ndarray = field(default=None)  # (k, 2): km east/north of the sources that share the disk (neighbours)
    #: what the estimators derive from the scene's columns and exclusions (valid cells, observed disks, background
    #: planes), kept because the three methods and their direction re-runs ask for the same things: change no array
    #: of a scene after an estimator (or ``valid``) has used it
    memo: dict = field(default_factory=dict, repr=False, compare=False)
    #: what derives from the cells' positions and areas alone (distances, cell sizes, sub-samples, disks): shared by
    #: the scenes cut from one box of one grid (:func:`local_scene`: a period site's scene in every overpass) and by
    #: :meth:`excluding`
    geometry: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        if self.exclude is None:
            self.exclude = np.zeros(self.c.shape, dtype=bool)
        if self.sharing is None:
            self.sharing = np.zeros((0, 2))

    def cached(self, key, make):
        """``make()`` once per scene and ``key``."""
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]

    def cached_geometry(self, key, make):
        """``make()`` once per grid box and ``key``: for what depends on ``x``, ``y``, ``lat``, ``lon`` and ``area``
        alone. Its arrays are made read-only (other scenes share them)."""
        if key not in self.geometry:
            value = make()
            read_only(*(value if isinstance(value, tuple) else (value,)))
            self.geometry[key] = value
        return self.geometry[key]

    @property
    def valid(self) -> np.ndarray:
        return self.cached("valid", lambda: np.isfinite(self.c))

    @property
    def cell_km(self) -> float:
        return self.cached_geometry("cell_km", lambda: _cell_km(self.area))

    @property
    def axes(self) -> GridAxes:
        return self.cached_geometry("axes", lambda: grid_axes(self.x, self.y))

    def rotate(self, direction_from_deg: float) -> tuple[np.ndarray, np.ndarray]:
        """(s, t) km: s downwind of the source, t across the wind (positive to the left looking downwind)."""
        return wind_frame(self.x, self.y, direction_from_deg)

    def excluding(self, mask: np.ndarray) -> Scene:
        """The same scene with the cells of ``mask`` also kept out of the background (a new scene: nothing derived
        from the old exclusion is reused; the cells' geometry is)."""
        return replace(self, exclude=self.exclude | mask, memo={})

    def plumes_of(self, others: list[tuple[float, float]], direction_from_deg: float, length_km: float,
                  half_width_km: float, widen_deg: float) -> np.ndarray:  # fmt: skip
        """Cells in the downwind plumes of the sources ``others`` (lat, lon): from each, along the wind up to
        ``length_km``, within ``half_width_km`` + distance x tan(``widen_deg``) of its axis."""
        out = np.zeros(self.c.shape, dtype=bool)
        if not others or not np.isfinite(direction_from_deg) or length_km <= 0:
            return out
        phi = np.radians(direction_from_deg)
        ex, ey = -np.sin(phi), -np.cos(phi)
        tan_w = np.tan(np.radians(widen_deg))
        # a cone lies inside the circle about its midline's middle through its far corners: only the cells near
        # that circle are tested, and sources whose circle misses every cell of the scene are skipped
        half_len, far = 0.5 * length_km, half_width_km + length_km * tan_w
        o = within(others, self.lat0, self.lon0, 2.0 * half_len + far + float(self.r.max()))
        k, rr, cc = box_cells(self.x, self.y, o[:, 0] + half_len * ex, o[:, 1] + half_len * ey,
                              float(np.hypot(half_len, far)), self.axes)  # fmt: skip
        dx, dy = self.x[rr, cc] - o[k, 0], self.y[rr, cc] - o[k, 1]
        s, t = dx * ex + dy * ey, -dx * ey + dy * ex
        hit = (s >= 0.0) & (s <= length_km) & (np.abs(t) <= half_width_km + s * tan_w)
        out[rr[hit], cc[hit]] = True
        return out

    @property
    def r(self) -> np.ndarray:
        return self.cached_geometry("r", lambda: np.hypot(self.x, self.y))


def local_scene(
    lat: np.ndarray,
    lon: np.ndarray,
    no2: np.ndarray,
    precision: np.ndarray | None,
    lat0: float,
    lon0: float,
    half_km: float,
    others: list[tuple[float, float]] = (),
    exclude_km: float = 0.0,
    sharing: list[tuple[float, float]] = (),
) -> Scene | None:
    """Crop a (lat, lon) grid to +-``half_km`` around (lat0, lon0); None if the box misses the grid.

    ``others``: (lat, lon) of other sources; cells within ``exclude_km`` of them are flagged ``exclude``.
    ``sharing``: (lat, lon) of the sources that take their side of the IME and divergence disks (:mod:`.neighbours`).
    """
    lat = np.asarray(lat, float)
    lon = np.asarray(lon, float)
    geo = _crop(lat, lon, float(lat0), float(lon0), float(half_km))
    if geo is None:
        return None
    sl, x, y, area, r_max, geometry = geo
    la, lo = lat[sl[0]], lon[sl[1]]
    c = np.asarray(no2, float)[sl]
    if precision is None:
        sig = np.full(c.shape, np.nan)
    else:
        sig = np.asarray(precision, float)[sl].copy()
    finite = np.isfinite(sig)
    fill = median(sig[finite]) if finite.any() else 1e-5
    sig = np.where(finite & (sig > 0), sig, fill)
    excl = np.zeros(c.shape, dtype=bool)
    if len(others):
        # sources farther than this from the centre have no cell of the scene within exclude_km
        o = within(others, lat0, lon0, r_max + exclude_km + 1e-6)
        k, rr, cc = box_cells(x, y, o[:, 0], o[:, 1], exclude_km, geometry["axes"])
        near = np.hypot(x[rr, cc] - o[k, 0], y[rr, cc] - o[k, 1]) <= exclude_km
        excl[rr[near], cc[near]] = True
    share = within(sharing, lat0, lon0, r_max) if len(sharing) else None
    return Scene(float(lat0), float(lon0), la, lo, x, y, area, c, sig, excl, share, geometry=geometry)


@dataclass(frozen=True)
class GridAxes:
    """What :func:`box_cells` needs of a scene grid (``x``/``y`` as a :class:`Scene`'s), derived once per grid:
    whether y increases along the rows and x along every row, the rows' y, and each column's largest and smallest x."""

    ordered: bool
    y: np.ndarray  # (ny,)
    x_max: np.ndarray  # (nx,)
    x_min: np.ndarray  # (nx,)


def grid_axes(x: np.ndarray, y: np.ndarray) -> GridAxes:
    """The :class:`GridAxes` of a scene grid; its arrays read-only (the scenes of a box share them)."""
    yc = y[:, 0]
    ordered = bool(np.all(np.diff(yc) > 0) and np.all(np.diff(x, axis=1) > 0))
    axes = GridAxes(ordered, yc, x.max(axis=0), x.min(axis=0))
    read_only(axes.y, axes.x_max, axes.x_min)
    return axes


def box_cells(
    x: np.ndarray, y: np.ndarray, cx: np.ndarray, cy: np.ndarray, radius: float, axes: GridAxes | None = None
):
    """(k, rows, cols): the cells of a box around each point k at (cx[k], cy[k]) [km] that holds every cell of the
    scene grid (``x``/``y`` as a :class:`Scene`'s) within ``radius`` of it: the rows whose y, and the columns whose x
    in some row, lie within ``radius`` (so the caller tests a few cells per point, not all; same test, same result).
    A grid whose y or x does not increase along its axes gives every cell to every point. ``axes``: the grid's
    :func:`grid_axes`, where the caller has them (computed here otherwise)."""
    ny, nx = x.shape
    cx, cy = np.asarray(cx, float).ravel(), np.asarray(cy, float).ravel()
    a = axes if axes is not None else grid_axes(x, y)
    if not a.ordered:
        k, rr, cc = np.meshgrid(np.arange(cx.size), np.arange(ny), np.arange(nx), indexing="ij")
        return k.ravel(), rr.ravel(), cc.ravel()
    pad = radius * (1 + 1e-9) + 1e-9  # the box is a superset: never lose a cell at the edge to rounding
    r0, r1 = np.searchsorted(a.y, cy - pad, "left"), np.searchsorted(a.y, cy + pad, "right")
    c0, c1 = np.searchsorted(a.x_max, cx - pad, "left"), np.searchsorted(a.x_min, cx + pad, "right")
    h, w = int(max((r1 - r0).max(initial=0), 0)), int(max((c1 - c0).max(initial=0), 0))
    inside = (np.arange(h)[None, :, None] < (r1 - r0)[:, None, None]) & (
        np.arange(w)[None, None, :] < (c1 - c0)[:, None, None]
    )
    k, i, j = np.nonzero(inside)  # C order: point by point, row by row, as the boxes' cells
    return k, r0[k] + i, c0[k] + j


#: the crop geometry of recent scenes, per process (:func:`_crop`): a collection's overpasses share one grid, so a
#: period site's box, offsets and areas are computed once, not once per overpass
_CROPS: OrderedDict = OrderedDict()
_CROPS_MAX = 512


def _crop(lat: np.ndarray, lon: np.ndarray, lat0: float, lon0: float, half_km: float):
    """(slices, x, y, area, farthest cell distance, geometry memo) of the +-``half_km`` box around (lat0, lon0) on
    the grid, or None if the box holds fewer than 3 rows or columns; the arrays are read-only and the memo
    (:attr:`Scene.geometry`, holding the box's :func:`grid_axes` from the start) is shared between its scenes."""
    key = (lat.tobytes(), lon.tobytes(), lat0, lon0, half_km)
    if key in _CROPS:
        _CROPS.move_to_end(key)
        return _CROPS[key]
    dlat = np.degrees(half_km * 1e3 / EARTH_RADIUS_M)
    dlon = dlat / max(np.cos(np.radians(lat0)), 1e-6)
    iy = np.flatnonzero((lat >= lat0 - dlat) & (lat <= lat0 + dlat))
    ix = np.flatnonzero((lon >= lon0 - dlon) & (lon <= lon0 + dlon))
    out = None
    if iy.size >= 3 and ix.size >= 3:
        sl = (slice(iy[0], iy[-1] + 1), slice(ix[0], ix[-1] + 1))
        la, lo = lat[sl[0]], lon[sl[1]]
        LA, LO = la[:, None], lo[None, :]
        x = EARTH_RADIUS_M * np.radians(LO - lon0) * np.cos(np.radians(LA)) / 1e3
        y = np.broadcast_to(EARTH_RADIUS_M * np.radians(LA - lat0) / 1e3, x.shape).copy()
        area = cell_areas(la, lo)
        read_only(x, y, area)
        out = sl, x, y, area, float(np.sqrt(np.max(x * x + y * y))), {"axes": grid_axes(x, y)}
    _CROPS[key] = out
    while len(_CROPS) > _CROPS_MAX:
        _CROPS.popitem(last=False)
    return out


def wind_frame(x, y, direction_from_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (x, y) km east/north in the wind's frame: s downwind, t across (positive to the left looking
    downwind), for a wind blowing from ``direction_from_deg``."""
    phi = np.radians(direction_from_deg)
    ex, ey = -np.sin(phi), -np.cos(phi)  # unit vector the wind blows towards
    return x * ex + y * ey, -x * ey + y * ex


def local_xy(lat: float, lon: float, lat0: float, lon0: float) -> tuple[float, float]:
    """(km east, km north) of (lat, lon) from (lat0, lon0), as the scene's cell coordinates are taken."""
    return (EARTH_RADIUS_M * np.radians(lon - lon0) * np.cos(np.radians(lat)) / 1e3,
            EARTH_RADIUS_M * np.radians(lat - lat0) / 1e3)  # fmt: skip


def within(points, lat0: float, lon0: float, km: float) -> np.ndarray:
    """(n, 2): (x, y) [km] from (lat0, lon0) (:func:`local_xy`) of the (lat, lon) ``points`` no farther than ``km``."""
    p = np.asarray(points, float).reshape(-1, 2)
    xy = np.column_stack(local_xy(p[:, 0], p[:, 1], lat0, lon0))
    return xy[np.hypot(xy[:, 0], xy[:, 1]) <= km]


def _cell_km(area: np.ndarray) -> float:
    """The grid's typical cell size [km]: the square root of its median cell area."""
    return float(np.sqrt(np.nanmedian(area)) / 1e3)


def cell_areas(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Cell areas [m2] of a regular grid given by its (ascending) centres."""

    def edges(c):
        if c.size == 1:
            return np.array([c[0] - 0.025, c[0] + 0.025])
        mid = 0.5 * (c[1:] + c[:-1])
        return np.concatenate([[2 * c[0] - mid[0]], mid, [2 * c[-1] - mid[-1]]])

    le, oe = edges(lat), edges(lon)
    band = np.sin(np.radians(le[1:])) - np.sin(np.radians(le[:-1]))
    return EARTH_RADIUS_M**2 * np.outer(band, np.radians(np.diff(oe)))


@dataclass
class Plane:
    """Background plane b0 + bx x + by y fitted to the cells ``mask``; ``P`` maps their columns to the coefficients."""

    coef: np.ndarray
    mask: np.ndarray
    P: np.ndarray  # (3, n_used)
    resid: np.ndarray  # residuals of the used cells
    memo: dict = field(default_factory=dict, repr=False, compare=False)

    def at(self, x, y) -> np.ndarray:
        return self.coef[0] + self.coef[1] * x + self.coef[2] * y

    def weights_for(self, gx: float, gy: float, g0: float) -> np.ndarray:
        """Weights on the plane's cells of the linear functional -(g0 b0 + gx bx + gy by)."""
        return -(g0 * self.P[0] + gx * self.P[1] + gy * self.P[2])


def median(a: np.ndarray) -> float:
    """``np.median`` of a finite 1-D array, the same value without its overhead (thousands of calls per overpass)."""
    n = a.size
    if n == 0:
        return float("nan")
    k = n // 2
    if n % 2:
        return np.partition(a, k)[k]
    part = np.partition(a, (k - 1, k))
    return (part[k - 1] + part[k]) / 2


#: a background plane needs cells spread at least this far [km, 1-sigma] across its narrowest direction: cells on
#: (nearly) one line leave the plane's slope across it undetermined (weights, and so noise sigmas, blow up)
MIN_PLANE_SPREAD_KM = 1.0


def fit_plane(scene: Scene, mask: np.ndarray, clip: float = 3.0, iters: int = 3, min_cells: int = 8) -> Plane | None:
    """Least-squares plane through the valid, non-excluded cells of ``mask`` with iterative sigma clipping; None
    with fewer than ``min_cells`` cells or cells on (nearly) one line. Computed once per scene and mask."""
    key = ("plane", mask.tobytes(), clip, iters, min_cells)
    return scene.cached(key, lambda: _fit_plane(scene, mask, clip, iters, min_cells))


def _plane_matrix(x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """The least-squares operator P (3, n) of cells at (x, y): coefficients (b0, bx, by) = P c. None if the cells
    do not span a plane (fewer than 3, or spread less than MIN_PLANE_SPREAD_KM across their narrowest direction).
    Solved on coordinates centred on the cells' mean, where the normal equations are a 2 x 2 system."""
    n = x.size
    if n < 3:
        return None
    mx, my = x.sum() / n, y.sum() / n
    u, v = x - mx, y - my
    suu, svv, suv = float(u @ u), float(v @ v), float(u @ v)
    narrowest = 0.5 * (suu + svv) - np.hypot(0.5 * (suu - svv), suv)  # n x the smaller eigenvalue of the covariance
    if not np.sqrt(max(narrowest / n, 0.0)) >= MIN_PLANE_SPREAD_KM:
        return None
    det = suu * svv - suv * suv
    P = np.empty((3, n))
    np.multiply(svv / det, u, out=P[1])
    P[1] -= (suv / det) * v
    np.multiply(suu / det, v, out=P[2])
    P[2] -= (suv / det) * u
    P[0] = 1.0 / n - mx * P[1] - my * P[2]
    return P


def _fit_plane(scene: Scene, mask: np.ndarray, clip: float, iters: int, min_cells: int) -> Plane | None:
    use = mask & scene.cached("usable", lambda: scene.valid & ~scene.exclude)
    idx = np.flatnonzero(use)
    xa, ya, ca = scene.x.ravel(), scene.y.ravel(), scene.c.ravel()
    floor = float(median(scene.sigma.ravel()[idx])) if idx.size else 0.0  # never clip below the stated precision
    for _ in range(iters + 1):
        if idx.size < min_cells:
            return None
        x, y, c = xa[idx], ya[idx], ca[idx]
        P = _plane_matrix(x, y)
        if P is None:
            return None
        coef = P @ c
        res = c - (coef[0] + coef[1] * x + coef[2] * y)
        dev = np.abs(res - median(res))
        keep = dev <= clip * max(MAD_TO_SIGMA * median(dev), floor, 1e-30)
        if keep.all():
            return Plane(coef, _mask(use.shape, idx), P, res)
        idx = idx[keep]
    x, y, c = xa[idx], ya[idx], ca[idx]
    P = _plane_matrix(x, y)
    if P is None:
        return None
    coef = P @ c
    return Plane(coef, _mask(use.shape, idx), P, c - (coef[0] + coef[1] * x + coef[2] * y))


def _mask(shape: tuple, idx: np.ndarray) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m.flat[idx] = True
    return m


@dataclass
class NoiseModel:
    """Scale of the stated precision (chi) and variance factor of correlated sums (k), measured on background cells."""

    chi: float = 1.0
    k: float = 1.0

    @property
    def factor(self) -> float:
        return self.chi**2 * self.k


def noise_model(scene: Scene, plane: Plane | None, max_rho: float = 0.8) -> NoiseModel:
    if plane is None or plane.mask.sum() < 8:
        return NoiseModel()
    if ("noise", max_rho) not in plane.memo:
        plane.memo[("noise", max_rho)] = _noise_model(scene, plane, max_rho)
    return plane.memo[("noise", max_rho)]


def _noise_model(scene: Scene, plane: Plane, max_rho: float) -> NoiseModel:
    r = np.full(scene.c.shape, np.nan)
    r[plane.mask] = plane.resid
    sd = MAD_TO_SIGMA * median(np.abs(plane.resid - median(plane.resid)))
    chi = max(1.0, float(sd / median(scene.sigma[plane.mask])))

    def lag1(a, b):
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() < 8:
            return 0.0
        a, b = a[ok], b[ok]
        a, b = a - a.sum() / a.size, b - b.sum() / b.size
        d = np.sqrt((a * a).sum() * (b * b).sum())
        return float(np.clip((a * b).sum() / d, 0.0, max_rho)) if d > 0 else 0.0

    rx, ry = lag1(r[:, :-1], r[:, 1:]), lag1(r[:-1, :], r[1:, :])
    k = (1 + rx) / (1 - rx) * (1 + ry) / (1 - ry)
    return NoiseModel(chi, float(k))


def functional_sigma(scene: Scene, g: np.ndarray, plane: Plane, noise: NoiseModel) -> float:
    """1-sigma of Q = sum g (c - plane) from the precision: signal weights g (2-D, 0 off the signal cells)."""
    gx = float(np.sum(g * scene.x))
    gy = float(np.sum(g * scene.y))
    g0 = float(np.sum(g))
    hb = plane.weights_for(gx, gy, g0)
    var = float(np.sum(g**2 * scene.sigma**2) + np.sum(hb**2 * scene.sigma[plane.mask] ** 2))
    return float(np.sqrt(var * noise.factor))


def _cell_steps(scene: Scene) -> tuple[np.ndarray, float]:
    """Cell sizes [km]: east-west per row (ny,), north-south."""
    dlon = np.radians(np.median(np.diff(scene.lon))) if scene.lon.size > 1 else np.radians(0.05)
    dlat = np.radians(np.median(np.diff(scene.lat))) if scene.lat.size > 1 else np.radians(0.05)
    return EARTH_RADIUS_M * np.cos(np.radians(scene.lat)) * dlon / 1e3, EARTH_RADIUS_M * dlat / 1e3


def sub_offsets(scene: Scene, cells: np.ndarray, sub: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Sub-sample offsets (km east, km north) within the cells ``cells`` (flat indices): arrays (sub*sub, n), or
    (sub*sub, ny, nx) when ``cells`` are all the scene's cells."""
    dx_row, dy = scene.cached_geometry("steps", lambda: _cell_steps(scene))
    dx = dx_row[np.asarray(cells) // scene.c.shape[1]]
    off = (np.arange(sub) + 0.5) / sub - 0.5
    ox, oy = np.meshgrid(off, off, indexing="ij")
    ox, oy = ox.ravel()[:, None] * dx[None], oy.ravel()[:, None] * dy * np.ones_like(dx)[None]
    if np.asarray(cells).size == scene.c.size:
        return ox.reshape(-1, *scene.c.shape), oy.reshape(-1, *scene.c.shape)
    return ox, oy


def cell_reach(scene: Scene, sub: int = 5) -> float:
    """The largest distance [km] of a sub-sample from its cell's centre."""

    def make():
        dx_row, dy = scene.cached_geometry("steps", lambda: _cell_steps(scene))
        half = 0.5 - 0.5 / sub
        return float(np.hypot(np.max(np.abs(dx_row)) * half, abs(dy) * half)) * (1 + 1e-9) + 1e-9

    return scene.cached_geometry(("reach", sub), make)


def beyond_scene(scene: Scene, x_km, y_km) -> np.ndarray:
    """Whether points (km east and north of the source, as :func:`local_xy` takes them) lie beyond the scene's outer
    cell edges. A scene is +-scene_half_km around its source, beyond every estimator's reach, unless the collection
    grid ends first: then what lies beyond was never observed, and is not in the scene to count as a gap."""
    y = np.asarray(y_km, float)
    lat = scene.lat0 + np.degrees(y * 1e3 / EARTH_RADIUS_M)
    lon = scene.lon0 + np.degrees(np.asarray(x_km, float) * 1e3 / (EARTH_RADIUS_M * np.cos(np.radians(lat))))
    half_lat = 0.5 * float(np.median(np.diff(scene.lat)))
    half_lon = 0.5 * float(np.median(np.diff(scene.lon)))
    return (
        (lat < scene.lat[0] - half_lat)
        | (lat > scene.lat[-1] + half_lat)
        | (lon < scene.lon[0] - half_lon)
        | (lon > scene.lon[-1] + half_lon)
    )


def disk_fraction(scene: Scene, radius_km: float, sub: int = 5) -> np.ndarray:
    """Fraction of each cell's area within ``radius_km`` of the source (sub-sampled ``sub`` x ``sub``).

    Counting whole cells by their centre makes the integration length of a narrow plume jump by up to half a cell
    (+-14 % for a 20 km disk of 5.5 km cells) with the wind angle; fractional cells remove most of that. Only cells
    on the disk's edge are sub-sampled (the others are wholly inside or outside).
    """

    def make():
        r, reach = scene.r, cell_reach(scene, sub)
        frac = np.where(r + reach < radius_km, 1.0, 0.0)
        edge = np.flatnonzero((r + reach >= radius_km) & (r - reach <= radius_km))
        ox, oy = sub_offsets(scene, edge, sub)
        x, y = scene.x.ravel()[edge], scene.y.ravel()[edge]
        frac.flat[edge] = (np.hypot(x[None] + ox, y[None] + oy) <= radius_km).mean(axis=0)
        return frac

    return scene.cached_geometry(("disk", radius_km, sub), make)


def background_ring(scene: Scene, r_in: float, r_out: float, s=None, half_angle_deg: float | None = None) -> np.ndarray:
    """Cells with r_in <= r <= r_out, outside the downwind sector (|angle| <= half_angle around s > 0) if given."""
    r = scene.r
    m = (r >= r_in) & (r <= r_out)
    if s is not None and half_angle_deg is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            cosang = np.where(r > 0, s / np.maximum(r, 1e-9), 1.0)
        m &= cosang < np.cos(np.radians(half_angle_deg))
    return m
