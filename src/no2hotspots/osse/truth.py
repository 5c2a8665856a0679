"""The OSSE's per-granule and per-day truth files.

- ``truth/fields/<granule stem>_truth.nc``: the noise-free ``no2_plume`` and ``no2_background`` columns, the
  ``cloud_fraction`` and pixel-centre ``latitude``/``longitude`` on the granule's (scanline, ground_pixel) grid;
- ``truth/winds/<YYYY-MM-DD>.nc``: the day's wind, the very :class:`~no2hotspots.osse.weather.DayWind` the puffs
  were advected with, sampled on a regular grid in a simple ERA5-like layout that
  :mod:`no2hotspots.winds` reads (its ``simple`` layout): ``u``, ``v`` [m s-1] (CF ``eastward_wind`` /
  ``northward_wind``) on ``(time, latitude, longitude)``, every ``osse.truth.winds_step_min`` over the hours the
  puffs used (first release to last overpass, rounded outwards), on ``osse.truth.winds_resolution_deg`` over the
  region + margin (snapped outwards to multiples of the step). Packed as int16 with scale_factor 0.01 m s-1 (as
  ERA5's NetCDF files from the CDS used to be), so the values are the DayWind's to +-0.005 m s-1. The puff model
  has no vertical structure: this one level is the wind that carried the plumes.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..atomic import write_netcdf

WIND_SCALE = 0.01  # m s-1 per packed unit
WIND_FILL = np.int16(-32767)


def truth_field_name(granule: str) -> str:
    return granule.replace(".nc", "_truth.nc")


def _pixels(data, attrs: dict):
    return (("scanline", "ground_pixel"), np.asarray(data).astype("float32"), attrs)


def write_truth_fields(path, *, plume, background, cloud, lat, lon, attrs: dict) -> None:
    """One granule's noise-free truth (float32, CF attributes)."""
    fields = xr.Dataset(
        {
            "no2_plume": _pixels(
                plume, {"units": "mol m-2", "long_name": "noise-free NO2 column from the point sources"}
            ),
            "no2_background": _pixels(
                background, {"units": "mol m-2", "long_name": "noise-free NO2 background column"}
            ),
            "cloud_fraction": _pixels(cloud, {"units": "1", "long_name": "simulated cloud fraction"}),
            "latitude": _pixels(lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "longitude": _pixels(lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
        attrs={**attrs, "Conventions": "CF-1.10"},
    )
    write_netcdf(fields, path)


def wind_axes(bbox, margin: float, res: float) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes and longitudes (ascending, multiples of ``res``) covering ``bbox`` grown by ``margin``."""
    lo = np.floor((np.array([bbox[1], bbox[0]]) - margin) / res + 1e-9)
    hi = np.ceil((np.array([bbox[3], bbox[2]]) + margin) / res - 1e-9)
    lat = np.round(np.arange(lo[0], hi[0] + 1) * res, 6)
    lon = np.round(np.arange(lo[1], hi[1] + 1) * res, 6)
    return np.clip(lat, -90.0, 90.0), lon


def wind_times(t_lo: float, t_hi: float, step_s: float) -> np.ndarray:
    """Seconds since 00 UTC from ``t_lo`` rounded down to ``t_hi`` rounded up, every ``step_s``."""
    t0 = np.floor(t_lo / step_s) * step_s
    t1 = np.ceil(t_hi / step_s) * step_s
    return np.arange(t0, t1 + 0.5 * step_s, step_s)


def sample_wind(wind, lat: np.ndarray, lon: np.ndarray, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """u, v [m s-1] of ``wind`` (anything with ``uv(lat, lon, t_s)``) on the grid: shape (time, lat, lon)."""
    glat, glon = np.meshgrid(lat, lon, indexing="ij")
    u = np.empty((t_s.size, lat.size, lon.size))
    v = np.empty_like(u)
    for i, t in enumerate(t_s):
        u[i], v[i] = wind.uv(glat, glon, float(t))
    return u, v


def write_day_winds(path, wind, day, t_lo: float, t_hi: float, setup) -> None:
    """The day's wind file (see the module docstring)."""
    cfg = setup.o.truth
    lat, lon = wind_axes(setup.bbox, setup.margin, float(cfg.winds_resolution_deg))
    t_s = wind_times(t_lo, t_hi, float(cfg.winds_step_min) * 60.0)
    u, v = sample_wind(wind, lat, lon, t_s)
    time = np.datetime64(np.datetime64(day, "D"), "s") + t_s.astype(np.int64).astype("timedelta64[s]")
    dims = ("time", "latitude", "longitude")
    common = {"units": "m s-1"}
    ds = xr.Dataset(
        {
            "u": (dims, u, {**common, "standard_name": "eastward_wind", "long_name": "U component of wind"}),
            "v": (dims, v, {**common, "standard_name": "northward_wind", "long_name": "V component of wind"}),
        },
        coords={
            "time": ("time", time.astype("datetime64[ns]"), {"standard_name": "time", "long_name": "time"}),
            "latitude": ("latitude", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "longitude": ("longitude", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
        attrs={
            "title": "OSSE wind: the wind field the synthetic NO2 puffs were advected with",
            "source": "no2hotspots osse stage (synthetic weather; a single level: the puff model has no height)",
            "Conventions": "CF-1.10",
            "date": str(np.datetime64(day, "D")),
        },
    )
    pack = {"dtype": "int16", "scale_factor": WIND_SCALE, "add_offset": 0.0, "_FillValue": WIND_FILL, "zlib": True}
    encoding = {
        "u": {**pack, "complevel": 4},
        "v": {**pack, "complevel": 4},
        "time": {"units": "seconds since 1970-01-01", "calendar": "proleptic_gregorian", "dtype": "int64"},
    }
    write_netcdf(ds, path, encoding=encoding)
