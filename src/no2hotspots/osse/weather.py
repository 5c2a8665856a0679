"""Synthetic weather of one day: a turning, speed-varying wind (smooth random time series + spatial
perturbation), cloud-fraction fields and the NO2 background (smooth field + urban blobs).

Fields are functions of longitude/latitude through the region's km coordinates (:class:`FieldFrame`), so every
granule of a day sees the same weather. :class:`SourceWinds` (one wind series per source) and
:func:`wind_series` serve the training simulator's puff scenes with the same turning-wind model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d, map_coordinates
from scipy.special import ndtr, ndtri

from .geometry import EARTH_R_KM


class FieldFrame:
    """Region km coordinates (X east, Y north) about the region centre, for smooth random fields."""

    def __init__(self, lat_c: float, lon_c: float):
        self.lat_c = float(lat_c)
        self.lon_c = float(lon_c)
        self._coslat = np.cos(np.radians(lat_c))

    def xy(self, lat, lon):
        dlon = (np.asarray(lon, float) - self.lon_c + 180.0) % 360.0 - 180.0
        return (
            EARTH_R_KM * np.radians(dlon) * self._coslat,
            EARTH_R_KM * np.radians(np.asarray(lat, float) - self.lat_c),
        )


@dataclass
class FourierField:
    """Unit-variance smooth random field: sum of cosines with random directions and wavelengths around a scale."""

    kx: np.ndarray
    ky: np.ndarray
    phase: np.ndarray

    @classmethod
    def random(cls, rng: np.random.Generator, wavelength_km: float, n_modes: int = 24) -> FourierField:
        ang = rng.uniform(0, 2 * np.pi, n_modes)
        lam = wavelength_km * np.exp(rng.normal(0.0, 0.35, n_modes))
        k = 2 * np.pi / lam
        return cls(k * np.cos(ang), k * np.sin(ang), rng.uniform(0, 2 * np.pi, n_modes))

    def __call__(self, x, y, t_s: float = 0.0, drift_km_s=(0.0, 0.0)):
        x = np.asarray(x, float)[..., None] - drift_km_s[0] * t_s
        y = np.asarray(y, float)[..., None] - drift_km_s[1] * t_s
        return np.sqrt(2.0 / self.kx.size) * np.cos(self.kx * x + self.ky * y + self.phase).sum(-1)


def smooth_series(rng: np.random.Generator, n: int, step_s: float, timescale_h: float, rows: int | None = None):
    """A smooth random series of unit standard deviation (Gaussian-filtered white noise); with ``rows``, that
    many independent series, shape (rows, n) (``rows=1`` draws the same numbers as ``rows=None``)."""
    sigma = max(timescale_h * 3600.0 / step_s / 2.0, 0.5)
    pad = int(4 * sigma) + 1
    shape = (n + 2 * pad,) if rows is None else (int(rows), n + 2 * pad)
    z = gaussian_filter1d(rng.standard_normal(shape), sigma, axis=-1, mode="nearest")[..., pad : pad + n]
    mean = z.mean(axis=-1, keepdims=True)
    sd = z.std(axis=-1, keepdims=True)
    out = np.where(sd > 0, (z - mean) / np.where(sd > 0, sd, 1.0), 0.0)
    return out


def wind_series(g_dir, g_spd, mean_speed, direction0, *, turn_deg, speed_variability, speed_min_m_s):
    """Speed [m s-1] and direction-from [degree] series from unit smooth series (``g_dir``, ``g_spd``): the
    direction wanders ``turn_deg`` (std) about ``direction0``, the speed is log-normal about ``mean_speed``,
    floored at ``speed_min_m_s``. Arrays broadcast (one row per series)."""
    direction = (np.asarray(direction0, float) + float(turn_deg) * g_dir) % 360.0
    speed = np.clip(np.asarray(mean_speed, float) * np.exp(float(speed_variability) * g_spd), speed_min_m_s, None)
    return speed, direction


@dataclass
class DayWind:
    """Wind of one day: a region-wide time series (speed, direction-from) plus an optional spatial perturbation.

    ``t_s`` are seconds since the day's 00:00 UTC; between samples the series is interpolated linearly.
    """

    t_s: np.ndarray
    speed: np.ndarray  # m s-1
    direction_from: np.ndarray  # degree, meteorological (where the wind blows from)
    frame: FieldFrame | None = None
    spatial_amplitude: float = 0.0  # relative to the speed
    spatial_u: FourierField | None = None
    spatial_v: FourierField | None = None
    table_half_km: float = 2500.0  # the perturbation is tabulated over +-this about the region centre
    _table: tuple | None = field(default=None, repr=False)

    @classmethod
    def constant(cls, speed: float, direction_from: float) -> DayWind:
        return cls(np.array([-1e7, 1e7]), np.array([speed, speed], float), np.array([direction_from] * 2, float))

    def series(self, t_s) -> tuple[np.ndarray, np.ndarray]:
        """Region-mean speed and direction-from at times ``t_s``."""
        spd = np.interp(t_s, self.t_s, self.speed)
        dirn = np.interp(t_s, self.t_s, np.unwrap(np.radians(self.direction_from)))
        return spd, np.degrees(dirn) % 360.0

    def uv(self, lat, lon, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Eastward and northward wind [m s-1] at the points at time ``t_s``."""
        spd, dirn = self.series(t_s)
        rad = np.radians(dirn)
        u = -spd * np.sin(rad) + np.zeros(np.shape(lat))
        v = -spd * np.cos(rad) + np.zeros(np.shape(lat))
        if self.spatial_amplitude and self.frame is not None:
            x, y = self.frame.xy(lat, lon)
            du, dv = self._perturbation(x, y)
            u = u + self.spatial_amplitude * spd * du
            v = v + self.spatial_amplitude * spd * dv
        return u, v

    def max_speed(self, t0_s: float, t1_s: float) -> float:
        """An upper bound of the wind speed [m s-1] anywhere between times ``t0_s`` and ``t1_s``."""
        inside = self.t_s[(self.t_s > t0_s) & (self.t_s < t1_s)]
        spd, _ = self.series(np.concatenate([[t0_s, t1_s], inside]))
        factor = 1.0
        if self.spatial_amplitude and self.frame is not None:
            self._perturbation(np.zeros(1), np.zeros(1))  # builds the table
            _, _, tu, tv = self._table
            factor += abs(self.spatial_amplitude) * float(np.hypot(np.abs(tu).max(), np.abs(tv).max()))
        return float(np.max(spd)) * factor

    def _perturbation(self, x, y):
        """Spatial modes, tabulated once on a km grid and interpolated bilinearly (the modes are static)."""
        if self._table is None:
            lam = (
                2
                * np.pi
                / max(
                    np.abs(np.hypot(self.spatial_u.kx, self.spatial_u.ky)).max(),
                    np.abs(np.hypot(self.spatial_v.kx, self.spatial_v.ky)).max(),
                )
            )
            step = lam / 40.0
            n = int(np.ceil(2 * self.table_half_km / step)) + 1
            ax = np.linspace(-self.table_half_km, self.table_half_km, n)
            gx, gy = np.meshgrid(ax, ax, indexing="ij")
            self._table = (ax[0], ax[1] - ax[0], self.spatial_u(gx, gy), self.spatial_v(gx, gy))
        x0, dx, tu, tv = self._table
        coords = np.stack([(np.ravel(x) - x0) / dx, (np.ravel(y) - x0) / dx])
        du = map_coordinates(tu, coords, order=1, mode="nearest").reshape(np.shape(x))
        dv = map_coordinates(tv, coords, order=1, mode="nearest").reshape(np.shape(x))
        return du, dv


@dataclass
class SourceWinds:
    """One wind time series per source (no spatial variation): what the training simulator's puff scenes use,
    each scene its own turning, speed-varying wind. ``speed`` and ``direction_from`` are (n_sources, n_times) on
    the common times ``t_s``, interpolated linearly like :meth:`DayWind.series`; :meth:`uv` takes arrays whose
    first axis is the source (as :func:`~no2hotspots.osse.transport.release_puffs` passes them)."""

    t_s: np.ndarray
    speed: np.ndarray  # (S, T) m s-1
    direction_from: np.ndarray  # (S, T) degree

    def __post_init__(self):
        self.t_s = np.asarray(self.t_s, float)
        self.speed = np.atleast_2d(np.asarray(self.speed, float))
        self.direction_from = np.atleast_2d(np.asarray(self.direction_from, float))
        self._dir_rad = np.unwrap(np.radians(self.direction_from), axis=1)

    def take(self, rows) -> SourceWinds:
        return SourceWinds(self.t_s, self.speed[rows], self.direction_from[rows])

    def _at(self, t_s) -> tuple[np.ndarray, np.ndarray]:
        """Speed and unwrapped direction-from [rad] of every source at ``t_s``: one time for all sources, or one per
        source (an array of shape (S,)), shape (S,)."""
        if np.ndim(t_s) == 0:
            t = float(np.clip(t_s, self.t_s[0], self.t_s[-1]))
            rows, i = slice(None), int(np.clip(np.searchsorted(self.t_s, t, side="right") - 1, 0, self.t_s.size - 2))
        else:
            t = np.clip(np.asarray(t_s, float), self.t_s[0], self.t_s[-1])
            rows, i = np.arange(t.size), np.clip(np.searchsorted(self.t_s, t, side="right") - 1, 0, self.t_s.size - 2)
        w = (t - self.t_s[i]) / (self.t_s[i + 1] - self.t_s[i])
        spd = self.speed[rows, i] * (1.0 - w) + self.speed[rows, i + 1] * w
        rad = self._dir_rad[rows, i] * (1.0 - w) + self._dir_rad[rows, i + 1] * w
        return spd, rad

    def series(self, t_s) -> tuple[np.ndarray, np.ndarray]:
        """Speed and direction-from of every source at time ``t_s`` (or source k at ``t_s[k]``), shape (S,)."""
        spd, rad = self._at(t_s)
        return spd, np.degrees(rad) % 360.0

    def uv(self, lat, lon, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        spd, rad = self._at(t_s)
        extra = (1,) * (np.ndim(lat) - 1)
        u = (-spd * np.sin(rad)).reshape(-1, *extra) + np.zeros(np.shape(lat))
        v = (-spd * np.cos(rad)).reshape(-1, *extra) + np.zeros(np.shape(lat))
        return u, v

    def max_speed(self, t0_s: float, t1_s: float) -> float:
        inside = (self.t_s > t0_s) & (self.t_s < t1_s)
        vals = [self.speed[:, inside].max(initial=0.0)] if inside.any() else []
        for t in (t0_s, t1_s):
            vals.append(float(self.series(t)[0].max(initial=0.0)))
        return float(max(vals))


def random_day_wind(
    rng: np.random.Generator,
    wind_cfg,
    t_start_s: float,
    t_end_s: float,
    frame: FieldFrame,
    table_half_km: float = 2500.0,
) -> DayWind:
    """Draw one day's wind: mean speed/direction, then smooth turning and speed changes, then spatial modes."""
    step = 900.0
    t = np.arange(t_start_s - step, t_end_s + 2 * step, step)
    lo, hi = (float(v) for v in wind_cfg.speed_m_s)
    s_mean = rng.uniform(lo, hi)
    d0 = rng.uniform(0, 360)
    g_dir = smooth_series(rng, t.size, step, float(wind_cfg.timescale_h))
    g_spd = smooth_series(rng, t.size, step, float(wind_cfg.timescale_h))
    speed, direction = wind_series(
        g_dir,
        g_spd,
        s_mean,
        d0,
        turn_deg=float(wind_cfg.turn_deg),
        speed_variability=float(wind_cfg.speed_variability),
        speed_min_m_s=float(wind_cfg.speed_min_m_s),
    )
    wl = float(wind_cfg.spatial_wavelength_km)
    return DayWind(
        t,
        speed,
        direction,
        frame,
        float(wind_cfg.spatial_amplitude),
        FourierField.random(rng, wl, 8),
        FourierField.random(rng, wl, 8),
        float(table_half_km),
    )


def cloud_fraction(rng: np.random.Generator, clouds_cfg, frame: FieldFrame, half_extent_km: float, grad_dir: float):
    """Draw one day's cloud field; return (mean_cover, function (lat, lon) -> cloud fraction in [0, 1])."""
    lo, hi = (float(v) for v in clouds_cfg.mean_cover)
    mean_cover = rng.uniform(lo, hi)
    fld = FourierField.random(rng, float(clouds_cfg.wavelength_km))
    sharp = float(clouds_cfg.sharpness)
    grad = float(clouds_cfg.gradient)
    thr = ndtri(1.0 - np.clip(mean_cover, 1e-3, 1 - 1e-3))

    def cf(lat, lon):
        x, y = frame.xy(lat, lon)
        along = (x * np.cos(grad_dir) + y * np.sin(grad_dir)) / max(half_extent_km, 1.0)
        return ndtr(sharp * (fld(x, y) + grad * along - thr))

    return mean_cover, cf


@dataclass
class Background:
    """NO2 background [mol m-2]: daily mean + smooth field + regional gradient + persistent urban blobs."""

    frame: FieldFrame
    smooth: FourierField
    smooth_amplitude: float
    gradient_per_km: np.ndarray  # (2,) mol m-2 per km along X, Y
    blob_xy: np.ndarray  # (n, 2) km
    blob_radius_km: np.ndarray
    blob_amplitude: np.ndarray
    day_mean: float = 0.0
    day_blob_factor: np.ndarray = field(default_factory=lambda: np.ones(0))

    def __call__(self, lat, lon) -> np.ndarray:
        x, y = self.frame.xy(lat, lon)
        out = (
            self.day_mean
            + self.smooth_amplitude * self.smooth(x, y)
            + self.gradient_per_km[0] * x
            + self.gradient_per_km[1] * y
        )
        for (bx, by), r, a, f in zip(self.blob_xy, self.blob_radius_km, self.blob_amplitude, self.day_blob_factor):
            out = out + a * f * np.exp(-((x - bx) ** 2 + (y - by) ** 2) / (2 * r * r))
        return np.clip(out, 0.0, None)


def make_background(
    rng: np.random.Generator, bg_cfg, frame: FieldFrame, half_x_km: float, half_y_km: float
) -> Background:
    """The persistent part of the background (blobs, gradient) drawn once per run."""
    n = int(bg_cfg.urban.n_blobs)
    blob_xy = np.column_stack([rng.uniform(-half_x_km, half_x_km, n), rng.uniform(-half_y_km, half_y_km, n)])
    r = rng.uniform(*(float(v) for v in bg_cfg.urban.radius_km), n)
    amp = rng.uniform(*(float(v) for v in bg_cfg.urban.amplitude_mol_m2), n)
    gdir = rng.uniform(0, 2 * np.pi)
    g = float(bg_cfg.gradient_mol_m2_per_100km) / 100.0
    return Background(
        frame,
        FourierField.random(rng, float(bg_cfg.smooth_wavelength_km)),
        float(bg_cfg.smooth_amplitude_mol_m2),
        np.array([g * np.cos(gdir), g * np.sin(gdir)]),
        blob_xy,
        r,
        amp,
    )


def background_for_day(bg: Background, rng: np.random.Generator, bg_cfg) -> Background:
    lo, hi = (float(v) for v in bg_cfg.mean_mol_m2)
    v = float(bg_cfg.urban.day_variability)
    return Background(
        bg.frame,
        FourierField.random(rng, float(bg_cfg.smooth_wavelength_km)),
        bg.smooth_amplitude,
        bg.gradient_per_km,
        bg.blob_xy,
        bg.blob_radius_km,
        bg.blob_amplitude,
        rng.uniform(lo, hi),
        np.clip(1.0 + v * rng.standard_normal(bg.blob_xy.shape[0]), 0.2, None),
    )
