"""A wind field from files (ERA5 or the OSSE's own), sampled at (lat, lon, time) with a stated 1-sigma uncertainty.

``WindField.at(lat, lon, time)`` returns, per point, u, v [m s-1], speed, the meteorological direction the wind
blows *from* [degree], and their 1-sigma uncertainties:

    sigma_speed^2     = speed_abs^2 + (speed_rel * speed)^2 + var_along
    sigma_direction^2 = direction_deg^2 + atan(sqrt(var_cross) / speed)^2          (capped at 90 degree)

``speed_abs``, ``speed_rel`` and ``direction_deg`` are stated in the config (``quantify.winds.uncertainty``: the
error of the wind product and of taking one wind for a plume); ``var_along``/``var_cross`` are the variances of the
wind vector along/across its mean direction measured in the data: over the layer's heights (the unknown effective
plume height, :mod:`.profile`) and over the ``time_window_h`` before the overpass (the wind that carried the
observed plume, sampled every 15 min), or over a window per point (``at(..., window_h=...)``: quantify gives each
method the air's travel time to its reach, :func:`travel_window_h`; a window reaching back before the files is cut
to them). ``WindSample.window_h`` says which.

Space: bilinear on the file's regular grid; points beyond half a grid step outside it, and times not covered by any
file, get the **fallback** (``quantify.winds.fallback``): a default speed with a large uncertainty and an unknown
direction (NaN; the estimators then take the direction from the plume itself). ``source`` says which applied.
"""

from __future__ import annotations

import glob
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, UserError
from .layouts import WindFile, open_wind_file
from .profile import LevelSpec, ReducedWind, reduce_layer, reduce_pressure, reduce_simple, reduce_single

log = logging.getLogger(__name__)
HOUR = np.timedelta64(3600, "s")
#: reduced wind files kept in memory per WindField (least recently used dropped): a query needs the 1-3 files around
#: its time and a stage walks its overpasses in time order, so a period's winds are never held at once
CACHE_FILES = 8


@dataclass(frozen=True)
class WindUncertainty:
    """Stated 1-sigma wind errors (config ``quantify.winds.uncertainty``)."""

    speed_abs_m_s: float = 1.0
    speed_rel: float = 0.15
    direction_deg: float = 15.0


@dataclass(frozen=True)
class FallbackWind:
    """The wind used where none is given (config ``quantify.winds.fallback``): direction unknown."""

    speed_m_s: float = 5.0
    speed_sigma_m_s: float = 2.5


@dataclass
class WindSample:
    """Winds at N points (arrays of shape (N,)); direction NaN where unknown (fallback)."""

    u: np.ndarray
    v: np.ndarray
    speed: np.ndarray
    direction_from: np.ndarray
    sigma_speed: np.ndarray
    sigma_direction: np.ndarray
    source: np.ndarray  # str per point: the file(s) and level, or "fallback: <why>"
    level: str = ""
    window_h: np.ndarray | None = None  # hours averaged over before the time, per point (NaN: fallback)
    # the measured part of sigma_direction: atan(sqrt(var_cross) / speed) [degree], the wind's spread across its mean
    # direction over the layer and the window (the turning the plume saw; NaN: fallback)
    spread_direction: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.speed.size)

    def row(self, i: int) -> dict:
        return {
            "wind_u_m_s": float(self.u[i]),
            "wind_v_m_s": float(self.v[i]),
            "wind_speed_m_s": float(self.speed[i]),
            "wind_speed_sigma_m_s": float(self.sigma_speed[i]),
            "wind_from_deg": float(self.direction_from[i]),
            "wind_from_sigma_deg": float(self.sigma_direction[i]),
            "wind_source": str(self.source[i]),
            "wind_window_h": float(self.window_h[i]) if self.window_h is not None else float("nan"),
            "wind_from_spread_deg": float(self.spread_direction[i]) if self.spread_direction is not None else np.nan,
        }


def direction_spread_deg(u, v, var_u, var_v) -> np.ndarray:
    """The wind's measured spread across its mean direction (u, v) [degree]: atan(sqrt(var_cross) / speed), var_cross
    the variance of the wind vector across it from the component variances (the data part of the direction sigma)."""
    speed = np.hypot(u, v)
    with np.errstate(invalid="ignore", divide="ignore"):
        eu, ev = u / speed, v / speed
        var_cross = ev**2 * var_u + eu**2 * var_v
        return np.degrees(np.arctan(np.sqrt(var_cross) / speed))


def direction_from_uv(u, v) -> np.ndarray:
    """Meteorological direction the wind blows from [degree, 0 = from north, 90 = from east]."""
    return np.degrees(np.arctan2(-np.asarray(u, float), -np.asarray(v, float))) % 360.0


def uv_from_direction(speed, direction_from_deg) -> tuple[np.ndarray, np.ndarray]:
    phi = np.radians(np.asarray(direction_from_deg, float))
    s = np.asarray(speed, float)
    return -s * np.sin(phi), -s * np.cos(phi)


def travel_window_h(travel_km: float, speed_m_s, limits_h: tuple[float, float]) -> np.ndarray:
    """The time [h] the air takes to travel ``travel_km`` at ``speed_m_s`` (per point), within ``limits_h``; points
    without a speed get the upper limit. Averaging the wind over it gives the wind that carried the air now that far
    downwind (quantify's per-method winds, ``quantify.wind_travel``)."""
    lo, hi = limits_h
    with np.errstate(divide="ignore", invalid="ignore"):
        w = float(travel_km) * 1e3 / (np.asarray(speed_m_s, float) * 3600.0)
    return np.clip(np.where(np.isfinite(w) & (w > 0), w, hi), lo, hi)


def _offsets(window_h: float) -> np.ndarray:
    """Sample offsets before the time: every 15 min or closer over the window (the time itself alone for 0)."""
    n_s = max(int(round(window_h / 0.25)) + 1, 2) if window_h > 0 else 1
    return (np.linspace(-window_h, 0.0, n_s) * 3600.0 * 1e9).astype("timedelta64[ns]")


def _window_means_per_point(x: np.ndarray, series: tuple, t, t0, wins: np.ndarray):
    """Per point i, the mean of u and v over its own window ``wins[i]`` before ``t`` and their variances (the files'
    variance plus that over the window), from the series ``(su, sv, svu, svv)`` (T, N) at seconds ``x`` after t0."""
    su, sv, svu, svv = series
    out = np.full((4, wins.size), np.nan)
    for i, w in enumerate(wins):
        xs = (t + _offsets(float(w)) - t0) / np.timedelta64(1, "s")
        us, vs = np.interp(xs, x, su[:, i]), np.interp(xs, x, sv[:, i])
        out[0, i], out[1, i] = us.mean(), vs.mean()
        out[2, i] = np.interp(xs, x, svu[:, i]).mean() + us.var()
        out[3, i] = np.interp(xs, x, svv[:, i]).mean() + vs.var()
    return out[0], out[1], out[2], out[3]


def _frac_index(axis: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fractional index of x on an ascending regular-ish axis (clamped), and whether x lies within half a step."""
    n = axis.size
    if n == 1:
        return np.zeros_like(x), np.abs(x - axis[0]) <= 0.5
    step = float(np.median(np.diff(axis)))
    inside = (x >= axis[0] - step / 2) & (x <= axis[-1] + step / 2)
    return np.interp(x, axis, np.arange(n, dtype=float)), inside


def _bilinear(arr: np.ndarray, fy: np.ndarray, fx: np.ndarray) -> np.ndarray:
    """arr (T, Y, X) at fractional indices -> (T, N)."""
    ny, nx = arr.shape[1:]
    y0 = np.clip(np.floor(fy).astype(int), 0, max(ny - 2, 0))
    x0 = np.clip(np.floor(fx).astype(int), 0, max(nx - 2, 0))
    y1 = np.minimum(y0 + 1, ny - 1)
    x1 = np.minimum(x0 + 1, nx - 1)
    wy = np.clip(fy - y0, 0, 1)
    wx = np.clip(fx - x0, 0, 1)
    a = arr[:, y0, x0] * (1 - wx) + arr[:, y0, x1] * wx
    b = arr[:, y1, x0] * (1 - wx) + arr[:, y1, x1] * wx
    return a * (1 - wy) + b * wy


@dataclass
class WindField:
    """Wind files of one collection, reduced to one level on demand (the last ``cache_files`` used are kept)."""

    files: list[WindFile]
    spec: LevelSpec = field(default_factory=LevelSpec)
    uncertainty: WindUncertainty = field(default_factory=WindUncertainty)
    fallback: FallbackWind = field(default_factory=FallbackWind)
    time_window_h: float = 1.0
    on_missing: str = "fallback"
    cache_files: int = CACHE_FILES
    _cache: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _warned: set = field(default_factory=set, repr=False)

    # -- which files make the field ----------------------------------------------------------------------------
    def _kind_files(self, kind: str) -> list[WindFile]:
        return [f for f in self.files if f.kind == kind]

    @property
    def primary(self) -> list[WindFile]:
        simple = self._kind_files("simple")
        if simple:
            return simple
        if self.spec.kind == "pressure":
            return self._kind_files("pressure")
        if self.spec.kind == "single":
            return self._kind_files("single")
        return self._kind_files("pressure") or self._kind_files("single")

    def describe(self) -> str:
        if not self.files:
            return (
                f"no wind files: fallback {self.fallback.speed_m_s:g} +- {self.fallback.speed_sigma_m_s:g} m/s, "
                "direction from the plume"
            )
        kinds = sorted({f.kind for f in self.files})
        level = "as given (simple layout)" if "simple" in kinds else self.spec.describe()
        return f"{len(self.files)} wind file(s) ({', '.join(kinds)}), level {level}"

    def _partner(self, wf: WindFile) -> WindFile | None:
        """The single-level file covering the same times as a pressure-level file (for heights, 10 m/100 m, blh)."""
        best, best_n = None, 0
        for s in self._kind_files("single"):
            n = int(np.isin(wf.time, s.time).sum())
            if n > best_n:
                best, best_n = s, n
        return best

    def _reduced(self, wf: WindFile) -> ReducedWind:
        if wf.path in self._cache:
            self._cache.move_to_end(wf.path)
        else:
            if wf.kind == "simple":
                r = reduce_simple(wf)
            elif self.spec.kind == "pressure":
                r = reduce_pressure(wf, self.spec)
            elif self.spec.kind == "single":
                r = reduce_single(wf, self.spec)
            elif wf.kind == "pressure":
                r = reduce_layer(wf, self._partner(wf), self.spec)
            else:
                r = reduce_layer(None, wf, self.spec)
            self._cache[wf.path] = r
            while len(self._cache) > max(1, self.cache_files):
                self._cache.popitem(last=False)
            for f in self.files:  # the reduced field is kept; the raw levels are not needed any more
                f.release()
            log.debug("wind %s", r.description)
        return self._cache[wf.path]

    # -- sampling ----------------------------------------------------------------------------------------------
    def _series(self, lat, lon, t_lo, t_hi):
        """Per-point time series (times, u, v, var_u, var_v, inside, description) from the files covering the span."""
        chunks = [self._reduced(f) for f in self.primary if f.t1 >= t_lo - 2 * HOUR and f.t0 <= t_hi + 2 * HOUR]
        if not chunks:
            return None
        times, us, vs, vus, vvs, ins, desc = [], [], [], [], [], [], []
        for r in chunks:
            fy, in_y = _frac_index(r.lat, lat)
            fx, in_x = _frac_index(r.lon, lon)
            times.append(r.time)
            us.append(_bilinear(r.u, fy, fx))
            vs.append(_bilinear(r.v, fy, fx))
            vus.append(_bilinear(r.var_u, fy, fx))
            vvs.append(_bilinear(r.var_v, fy, fx))
            ins.append(in_y & in_x)
            desc.append(r.description)
        t = np.concatenate(times)
        order = np.argsort(t, kind="stable")
        t = t[order]
        keep = np.concatenate([[True], t[1:] != t[:-1]])
        sel = order[keep]
        cat = lambda a: np.concatenate(a, axis=0)[sel]  # noqa: E731
        inside = np.logical_and.reduce(ins)
        return t[keep], cat(us), cat(vs), cat(vus), cat(vvs), inside, "; ".join(dict.fromkeys(desc))

    def at(self, lat, lon, time, window_h=None) -> WindSample:
        """Winds at points (lat, lon arrays) at one time (datetime64 / ISO string), averaged over the time window:
        ``time_window_h``, or ``window_h`` hours (one for all points, or one per point: :func:`travel_window_h`)."""
        lat = np.atleast_1d(np.asarray(lat, float))
        lon = ((np.atleast_1d(np.asarray(lon, float)) + 180.0) % 360.0) - 180.0
        t = np.datetime64(np.datetime64(time, "ns"))
        n = lat.size
        wins = np.broadcast_to(np.maximum(np.asarray(self.time_window_h if window_h is None else window_h, float), 0.0),
                               (n,))  # fmt: skip
        per_point = n > 0 and bool(np.any(wins != wins[0]))
        w = float(wins.max()) if n else max(float(self.time_window_h), 0.0)
        ts = t + _offsets(w)
        u = np.full(n, np.nan)
        v = np.full(n, np.nan)
        var_u = np.zeros(n)
        var_v = np.zeros(n)
        source = np.full(n, "fallback: no wind files", dtype=object)
        ok = np.zeros(n, dtype=bool)
        series = self._series(lat, lon, ts.min(), t) if self.files else None
        if series is not None:
            tt, su, sv, svu, svv, inside, desc = series
            step = np.max(np.diff(tt)) if tt.size > 1 else HOUR
            if per_point:  # windows longer than the files reach back are shortened to what they cover
                wins = np.minimum(wins, max((t - (tt[0] - step)) / HOUR, 0.0))
                ts = t - np.timedelta64(int(wins.min() * 3600e9), "ns")
            covered = (ts.min() >= tt[0] - step) and (t <= tt[-1] + step)  # constant up to one step beyond
            if covered:
                x = (tt - tt[0]) / np.timedelta64(1, "s")
                if per_point:
                    u, v, var_u, var_v = _window_means_per_point(x, (su, sv, svu, svv), t, tt[0], wins)
                else:
                    xs = (ts - tt[0]) / np.timedelta64(1, "s")
                    us = np.stack([np.interp(xs, x, su[:, i]) for i in range(n)], axis=1)  # (S, N)
                    vs = np.stack([np.interp(xs, x, sv[:, i]) for i in range(n)], axis=1)
                    vus = np.stack([np.interp(xs, x, svu[:, i]) for i in range(n)], axis=1)
                    vvs = np.stack([np.interp(xs, x, svv[:, i]) for i in range(n)], axis=1)
                    u, v = us.mean(axis=0), vs.mean(axis=0)
                    var_u = vus.mean(axis=0) + us.var(axis=0)
                    var_v = vvs.mean(axis=0) + vs.var(axis=0)
                ok = inside & np.isfinite(u) & np.isfinite(v)
                source = np.where(ok, desc, "fallback: outside the wind files' domain").astype(object)
            else:
                self._missing(
                    t, f"time {str(t)[:19]} not covered by the wind files ({str(tt[0])[:19]}..{str(tt[-1])[:19]})"
                )
                source[:] = "fallback: time not covered by the wind files"
        elif self.files:
            self._missing(t, f"no wind file covers {str(t)[:19]}")
            source[:] = "fallback: time not covered by the wind files"
        sample = self._combine(u, v, var_u, var_v, ok, source)
        sample.window_h = np.where(ok, wins, np.nan)
        return sample

    def _missing(self, t, msg: str) -> None:
        if self.on_missing == "error":
            raise UserError(f"winds: {msg} (quantify.winds.on_missing=error)")
        if msg not in self._warned:
            self._warned.add(msg)
            log.warning("winds: %s; using the fallback wind", msg)

    def _combine(self, u, v, var_u, var_v, ok, source) -> WindSample:
        unc = self.uncertainty
        speed = np.hypot(u, v)
        with np.errstate(invalid="ignore", divide="ignore"):
            eu, ev = u / speed, v / speed
            var_along = eu**2 * var_u + ev**2 * var_v
        sig_dir_data = direction_spread_deg(u, v, var_u, var_v)
        sig_speed = np.sqrt(unc.speed_abs_m_s**2 + (unc.speed_rel * speed) ** 2 + var_along)
        sig_dir = np.minimum(np.sqrt(unc.direction_deg**2 + np.nan_to_num(sig_dir_data, nan=90.0) ** 2), 90.0)
        direction = direction_from_uv(u, v)
        fb = ~ok
        speed = np.where(fb, self.fallback.speed_m_s, speed)
        sig_speed = np.where(fb, self.fallback.speed_sigma_m_s, sig_speed)
        direction = np.where(fb, np.nan, direction)
        sig_dir = np.where(fb, np.nan, sig_dir)
        u = np.where(fb, np.nan, u)
        v = np.where(fb, np.nan, v)
        spread = np.where(fb, np.nan, sig_dir_data)
        return WindSample(u, v, speed, direction, sig_speed, sig_dir, source, self.spec.describe(),
                          spread_direction=spread)  # fmt: skip


def _cfg_get(c, key, default=None):
    if c is None:
        return default
    try:
        return c.get(key, default)
    except AttributeError:
        return getattr(c, key, default)


def expand_paths(paths) -> list[Path]:
    """Files matching a glob or a list of globs (sorted, duplicates removed).

    A pattern matching nothing is skipped with a warning (e.g. the OSSE's winds before the osse stage wrote them);
    a plain path that does not exist is kept, so that opening it fails with a one-line error naming it.
    """
    if paths is None:
        return []
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[Path] = []
    for p in paths:
        hits = sorted(glob.glob(str(p)))
        if hits:
            out += [Path(h) for h in hits]
        elif glob.has_magic(str(p)):
            log.warning("winds: no file matches %s; the fallback wind applies where no other file covers", p)
        else:
            out.append(Path(p))
    return list(dict.fromkeys(out))


def open_winds(cfg, paths=None, key: str = "quantify.winds") -> WindField:
    """A WindField from the ``quantify.winds`` config section (``paths`` overrides ``cfg.paths``).

    No paths (null / empty list) gives a field that answers every query with the fallback.
    """
    paths = _cfg_get(cfg, "paths") if paths is None else paths
    files = [open_wind_file(p) for p in expand_paths(paths)]
    spec = LevelSpec.from_config(_cfg_get(cfg, "level", {}) or {}, f"{key}.level")
    u = _cfg_get(cfg, "uncertainty", {}) or {}
    unc = WindUncertainty(
        float(_cfg_get(u, "speed_abs_m_s", 1.0)),
        float(_cfg_get(u, "speed_rel", 0.15)),
        float(_cfg_get(u, "direction_deg", 15.0)),
    )
    f = _cfg_get(cfg, "fallback", {}) or {}
    fb = FallbackWind(float(_cfg_get(f, "speed_m_s", 5.0)), float(_cfg_get(f, "speed_sigma_m_s", 2.5)))
    for name, val, ok in (
        ("uncertainty.speed_abs_m_s", unc.speed_abs_m_s, unc.speed_abs_m_s >= 0),
        ("uncertainty.speed_rel", unc.speed_rel, 0 <= unc.speed_rel < 5),
        ("uncertainty.direction_deg", unc.direction_deg, 0 <= unc.direction_deg <= 90),
        ("fallback.speed_m_s", fb.speed_m_s, fb.speed_m_s > 0),
        ("fallback.speed_sigma_m_s", fb.speed_sigma_m_s, fb.speed_sigma_m_s >= 0),
    ):
        if not ok:
            raise ConfigError(f"{key}.{name}", f"out of range (got {val!r})")
    window = float(_cfg_get(cfg, "time_window_h", 1.0))
    if not 0 <= window <= 24:
        raise ConfigError(f"{key}.time_window_h", f"must be in 0..24 hours (got {window})")
    on_missing = str(_cfg_get(cfg, "on_missing", "fallback"))
    if on_missing not in ("fallback", "error"):
        raise ConfigError(f"{key}.on_missing", f"must be fallback or error (got {on_missing!r})")
    field_ = WindField(files, spec, unc, fb, window, on_missing)
    if files and not field_.primary:
        kinds = ", ".join(sorted({w.kind for w in files}))
        raise ConfigError(f"{key}.level.kind", f"{spec.kind} needs other wind files than the given ({kinds})")
    return field_
