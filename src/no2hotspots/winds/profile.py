"""Reduce a wind profile to the plume-relevant level (``quantify.winds.level``) and its vertical spread.

Levels (``kind``):

- ``pressure``: u, v on one pressure level (``pressure_hpa``, e.g. 850), from a pressure-level file;
- ``single``: the 10 m or 100 m wind of a single-level file (``single: 10m | 100m``);
- ``layer``: the mean wind over a layer ``bottom_m``..``top_m`` above ground (default 0-500 m, the layer whose mean
  wind Beirle et al. (2019, Sci. Adv. 5, eaax9800) use for the flux divergence of NOx point sources). The profile is
  built from the pressure levels above the ground (height above ground = (z - z_surface)/g; ERA5 extrapolates levels
  below the ground, these are dropped) plus the 10 m and 100 m winds where a single-level file is given; it is
  interpolated linearly in height and averaged at ``n_points`` equally spaced heights (constant below the lowest and
  above the highest available level);
- ``pbl``: the same mean from ``bottom_m`` to the ERA5 boundary-layer height ``blh``.

The vertical spread (variance of u and of v over the layer's heights) is returned with the mean: it measures how
much the answer depends on the unknown effective plume height and enters the wind uncertainty. Files in the simple
layout (the OSSE) have a single level: the level setting does not apply to them and their spread is zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from ..config import int_value
from ..errors import ConfigError
from .layouts import GEOPOTENTIAL_UNITS, SINGLE_PAIRS, WindFile, check_units

G0 = 9.80665  # standard gravity [m s-2], ERA5's geopotential -> geopotential height
KINDS = ("pressure", "single", "layer", "pbl")


@dataclass(frozen=True)
class LevelSpec:
    kind: str = "layer"
    pressure_hpa: float = 850.0
    single: str = "100m"
    bottom_m: float = 0.0
    top_m: float = 500.0
    n_points: int = 25

    def describe(self) -> str:
        if self.kind == "pressure":
            return f"{self.pressure_hpa:g} hPa"
        if self.kind == "single":
            return f"{self.single} above ground"
        if self.kind == "layer":
            return f"mean {self.bottom_m:g}-{self.top_m:g} m above ground"
        return f"mean {self.bottom_m:g} m to the boundary-layer height"

    @classmethod
    def from_config(cls, c, key: str = "quantify.winds.level") -> LevelSpec:
        get = c.get if hasattr(c, "get") else (lambda k, d=None: getattr(c, k, d))
        kind = str(get("kind", "layer"))
        if kind not in KINDS:
            raise ConfigError(f"{key}.kind", f"must be one of {', '.join(KINDS)} (got {kind!r})")
        spec = cls(
            kind=kind,
            pressure_hpa=float(get("pressure_hpa", 850.0)),
            single=str(get("single", "100m")),
            bottom_m=float(get("bottom_m", 0.0)),
            top_m=float(get("top_m", 500.0)),
            n_points=int_value(f"{key}.n_points", get("n_points", 25), 2),
        )
        if spec.single not in SINGLE_PAIRS:
            raise ConfigError(f"{key}.single", f"must be one of {', '.join(SINGLE_PAIRS)} (got {spec.single!r})")
        if not 0 <= spec.bottom_m < spec.top_m:
            raise ConfigError(f"{key}.top_m", f"need 0 <= bottom_m < top_m (got {spec.bottom_m}, {spec.top_m})")
        if spec.n_points < 2:
            raise ConfigError(f"{key}.n_points", f"must be >= 2 (got {spec.n_points})")
        if not 1.0 <= spec.pressure_hpa <= 1100.0:
            raise ConfigError(f"{key}.pressure_hpa", f"must be a pressure in hPa (got {spec.pressure_hpa})")
        return spec


@dataclass
class ReducedWind:
    """u, v [m s-1] at the chosen level and their vertical variance [m2 s-2], on ``(time, lat, lon)``."""

    time: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    u: np.ndarray
    v: np.ndarray
    var_u: np.ndarray
    var_v: np.ndarray
    description: str


def reduce_simple(wf: WindFile) -> ReducedWind:
    ds = wf.ds[["u", "v"]].transpose("time", "lat", "lon").load()
    z = np.zeros(ds["u"].shape)
    return ReducedWind(
        wf.time,
        ds["lat"].values,
        ds["lon"].values,
        ds["u"].values.astype(float),
        ds["v"].values.astype(float),
        z,
        z.copy(),
        f"{wf.path.name}: u, v as given (simple layout, one level)",
    )


def _on_grid(sl: xr.Dataset, ref: xr.Dataset) -> xr.Dataset:
    """Single-level fields on the pressure-level file's times and grid (interpolated only where they differ)."""
    same = (
        sl.sizes["lat"] == ref.sizes["lat"]
        and sl.sizes["lon"] == ref.sizes["lon"]
        and np.allclose(sl["lat"].values, ref["lat"].values)
        and np.allclose(sl["lon"].values, ref["lon"].values)
    )
    if not same:
        sl = sl.interp(lat=ref["lat"], lon=ref["lon"])
    if not np.array_equal(sl["time"].values, ref["time"].values):
        sl = sl.interp(time=ref["time"])
    return sl


def reduce_single(sl: WindFile, spec: LevelSpec) -> ReducedWind:
    a, b = SINGLE_PAIRS[spec.single]
    if a not in sl.winds:
        raise ConfigError(
            "quantify.winds.level.single",
            f"{spec.single} wind ({a}, {b}) is not in {sl.path} (it holds {', '.join(sl.winds)})",
        )
    ds = sl.ds[[a, b]].transpose("time", "lat", "lon").load()
    z = np.zeros(ds[a].shape)
    return ReducedWind(
        sl.time,
        ds["lat"].values,
        ds["lon"].values,
        ds[a].values.astype(float),
        ds[b].values.astype(float),
        z,
        z.copy(),
        f"{sl.path.name}: {spec.describe()}",
    )


def reduce_pressure(pl: WindFile, spec: LevelSpec) -> ReducedWind:
    levels = pl.ds["level"].values.astype(float)
    k = int(np.argmin(np.abs(levels - spec.pressure_hpa)))
    if abs(levels[k] - spec.pressure_hpa) > 0.5:
        raise ConfigError(
            "quantify.winds.level.pressure_hpa",
            f"{spec.pressure_hpa:g} hPa is not in {pl.path} (levels: {', '.join(f'{x:g}' for x in sorted(levels))})",
        )
    ds = pl.ds[["u", "v"]].isel(level=k).transpose("time", "lat", "lon").load()
    z = np.zeros(ds["u"].shape)
    return ReducedWind(
        pl.time,
        ds["lat"].values,
        ds["lon"].values,
        ds["u"].values.astype(float),
        ds["v"].values.astype(float),
        z,
        z.copy(),
        f"{pl.path.name}: {spec.describe()}",
    )


def interp_columns(h: np.ndarray, vals: list[np.ndarray], z: np.ndarray) -> list[np.ndarray]:
    """Linear interpolation of column profiles at heights ``z``, constant beyond the ends.

    ``h`` (L, ...) heights with NaN for missing levels; each of ``vals`` (L, ...); ``z`` (N, ...) target heights.
    Returns arrays (N, ...). Columns without any valid level give NaN.
    """
    order = np.argsort(np.where(np.isfinite(h), h, np.inf), axis=0)
    hs = np.take_along_axis(h, order, axis=0)
    nvalid = np.isfinite(hs).sum(axis=0)  # (...)
    cnt = (hs[:, None] <= z[None]).sum(axis=0)  # (N, ...): valid levels at or below z (NaN compares False)
    last = np.maximum(nvalid - 1, 0)[None]
    hi = np.minimum(cnt, last)
    lo = np.clip(cnt - 1, 0, None)
    lo = np.minimum(lo, last)
    h_lo = np.take_along_axis(hs, lo, axis=0)
    h_hi = np.take_along_axis(hs, hi, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(h_hi > h_lo, (z - h_lo) / (h_hi - h_lo), 0.0)
    w = np.clip(np.nan_to_num(w), 0.0, 1.0)
    out = []
    for v in vals:
        vs = np.take_along_axis(v, order, axis=0)
        a = np.take_along_axis(vs, lo, axis=0)
        b = np.take_along_axis(vs, hi, axis=0)
        r = a + w * (b - a)
        out.append(np.where(nvalid[None] > 0, r, np.nan))
    return out


def reduce_layer(pl: WindFile | None, sl: WindFile | None, spec: LevelSpec) -> ReducedWind:
    """Mean (and variance) of u, v over a height layer above ground, from pressure levels and/or 10 m/100 m winds."""
    key = "quantify.winds.level"
    if spec.kind == "pbl" and (sl is None or "blh" not in sl.ds):
        raise ConfigError(f"{key}.kind", "pbl needs the boundary-layer height blh from an ERA5 single-level file")
    if pl is None and sl is None:
        raise ConfigError(f"{key}.kind", f"{spec.kind} needs wind files")
    ref = pl.ds if pl is not None else sl.ds
    slds = None
    if sl is not None:
        slds = _on_grid(sl.ds, ref) if pl is not None else sl.ds
    if pl is not None:
        if "z" not in pl.ds:
            raise ConfigError(
                f"{key}.kind", f"{spec.kind} needs the geopotential z in {pl.path} (heights of the levels)"
            )
        if slds is None or "z" not in slds:
            raise ConfigError(
                f"{key}.kind",
                f"{spec.kind} needs the surface geopotential z of an ERA5 single-level file next to {pl.path.name}",
            )
        check_units(pl.ds, "z", pl.path, GEOPOTENTIAL_UNITS, "m2 s-2 (geopotential)")
        check_units(sl.ds, "z", sl.path, GEOPOTENTIAL_UNITS, "m2 s-2 (geopotential)")
    if spec.kind == "pbl":
        check_units(sl.ds, "blh", sl.path, {"m"}, "m")

    times = (pl or sl).time
    lat, lon = ref["lat"].values, ref["lon"].values
    nt = times.size
    u_out = np.empty((nt, lat.size, lon.size))
    v_out, vu_out, vv_out = np.empty_like(u_out), np.empty_like(u_out), np.empty_like(u_out)
    frac = (np.arange(spec.n_points) + 0.5) / spec.n_points
    pl_l = pl.ds[["u", "v", "z"]].transpose("time", "level", "lat", "lon").load() if pl is not None else None
    sl_l = slds.load() if slds is not None else None
    for it in range(nt):
        hs, us, vs = [], [], []
        if pl_l is not None:
            zs = sl_l["z"].isel(time=it).values / G0
            h = pl_l["z"].isel(time=it).values / G0 - zs[None]
            h = np.where(h > 0, h, np.nan)  # levels below the ground are ERA5 extrapolations
            hs.append(h)
            us.append(pl_l["u"].isel(time=it).values)
            vs.append(pl_l["v"].isel(time=it).values)
        if sl_l is not None:
            for name, (a, b) in SINGLE_PAIRS.items():
                if a in sl_l:
                    height = float(name[:-1])
                    hs.append(np.full((1, lat.size, lon.size), height))
                    us.append(sl_l[a].isel(time=it).values[None])
                    vs.append(sl_l[b].isel(time=it).values[None])
        h = np.concatenate(hs, axis=0).astype(float)
        u = np.concatenate(us, axis=0).astype(float)
        v = np.concatenate(vs, axis=0).astype(float)
        top = sl_l["blh"].isel(time=it).values if spec.kind == "pbl" else np.full((lat.size, lon.size), spec.top_m)
        top = np.maximum(top, spec.bottom_m + 1.0)
        z = spec.bottom_m + frac[:, None, None] * (top - spec.bottom_m)[None]
        ui, vi = interp_columns(h, [u, v], z)
        u_out[it], v_out[it] = ui.mean(axis=0), vi.mean(axis=0)
        vu_out[it], vv_out[it] = ui.var(axis=0), vi.var(axis=0)
    names = " + ".join(w.path.name for w in (pl, sl) if w is not None)
    return ReducedWind(times, lat, lon, u_out, v_out, vu_out, vv_out, f"{names}: {spec.describe()}")
