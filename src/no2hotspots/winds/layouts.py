"""Wind file layouts, recognised by content; every layout is normalised to the same names and checked for units.

Recognised layouts (NetCDF):

- ``pressure``: ERA5 on pressure levels as the Climate Data Store writes it: ``u``, ``v`` [m s-1] (optionally ``z``
  geopotential [m2 s-2], ``t`` [K]) on dims ``(valid_time|time, pressure_level|level, latitude, longitude)``;
- ``single``: ERA5 single levels: ``u10``/``v10`` and/or ``u100``/``v100`` [m s-1], optionally ``z`` (surface
  geopotential), ``sp`` [Pa], ``blh`` [m] on ``(valid_time|time, latitude, longitude)``;
- ``simple``: ``u``, ``v`` [m s-1] on ``(time, latitude|lat, longitude|lon)``, no vertical dimension: the layout the
  OSSE writes for its own winds (one file per day), and an easy target for any other model's winds.

Normalised form: dims ``time``, (``level`` in hPa, pressure layout only), ``lat`` ascending, ``lon`` ascending in
-180..180; the CDS ``expver`` split (ERA5T) is merged; ``number``/``expver`` coordinates are dropped. A missing wind
variable or a unit other than m s-1 is a one-line :class:`~no2hotspots.errors.InputFileError` naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import InputFileError
from ..readfile import open_netcdf

TIME_NAMES = ("valid_time", "time")
LAT_NAMES = ("latitude", "lat")
LON_NAMES = ("longitude", "lon")
LEVEL_NAMES = ("pressure_level", "level", "isobaricInhPa", "plev")

#: wind unit spellings accepted (after lower-casing and removing blanks, '**' and '^')
WIND_UNITS = {"ms-1", "m/s", "m.s-1", "m*s-1", "meterspersecond", "metrespersecond", "ms**-1"}
GEOPOTENTIAL_UNITS = {"m2s-2", "m**2s**-2", "m2/s2", "m^2s^-2", "m2.s-2"}
#: single-level wind pairs by level name
SINGLE_PAIRS = {"10m": ("u10", "v10"), "100m": ("u100", "v100")}


def _norm(units) -> str:
    return str(units).lower().replace(" ", "").replace("**", "").replace("^", "")


def check_units(ds: xr.Dataset, var: str, path, accepted: set[str], expected: str) -> None:
    """One-line InputFileError unless ``ds[var]`` states one of the ``accepted`` unit spellings."""
    units = ds[var].attrs.get("units")
    if units is None:
        raise InputFileError(path, f"variable {var} has no units attribute; expected {expected}")
    if _norm(units) not in {_norm(a) for a in accepted}:
        raise InputFileError(path, f"variable {var} has units {units!r}; expected {expected}")


def check_wind_units(ds: xr.Dataset, names, path) -> None:
    for n in names:
        check_units(ds, n, path, WIND_UNITS, "m s-1 (m s**-1, m/s)")


def _first(names, available) -> str | None:
    return next((n for n in names if n in available), None)


@dataclass
class WindFile:
    """One wind file: its layout, wind variables and time axis; the values are read (and the file closed again)
    when the field is reduced, so no file handle stays open between calls."""

    path: Path
    kind: str  # "pressure" | "single" | "simple"
    winds: tuple[str, ...]  # wind variables present (u, v / u10, v10, u100, v100)
    time: np.ndarray
    _ds: xr.Dataset | None = None

    @property
    def ds(self) -> xr.Dataset:
        """The normalised dataset, loaded into memory on first use."""
        if self._ds is None:
            self._ds = normalise(open_netcdf(self.path, load=True, what="wind file"), self.path)
        return self._ds

    def release(self) -> None:
        self._ds = None

    @property
    def t0(self) -> np.datetime64:
        return self.time.min()

    @property
    def t1(self) -> np.datetime64:
        return self.time.max()

    def describe(self) -> str:
        return f"{self.path.name} ({self.kind})"


def normalise(ds: xr.Dataset, path) -> xr.Dataset:
    """Rename coordinates to time/level/lat/lon, merge expver, sort lat/lon ascending with lon in -180..180."""
    dims_and_coords = set(ds.dims) | set(ds.coords)
    tname = _first(TIME_NAMES, dims_and_coords)
    latn = _first(LAT_NAMES, dims_and_coords)
    lonn = _first(LON_NAMES, dims_and_coords)
    if latn is None or lonn is None:
        raise InputFileError(path, "no latitude/longitude coordinates (expected latitude, longitude or lat, lon)")
    if tname is None:
        raise InputFileError(path, "no time coordinate (expected valid_time or time)")
    ren = {}
    if tname != "time":
        ren[tname] = "time"
    if latn != "lat":
        ren[latn] = "lat"
    if lonn != "lon":
        ren[lonn] = "lon"
    lev = _first(LEVEL_NAMES, set(ds.dims))
    if lev is not None and lev != "level":
        ren[lev] = "level"
    # a scalar 'time' next to the 'valid_time' dimension (older cfgrib output) would clash with the rename
    clash = [n for n in ren.values() if n in ds.variables and n not in ren]
    ds = ds.drop_vars(clash).rename(ren)
    if "time" not in ds.dims:
        ds = ds.expand_dims("time")
    if "expver" in ds.dims:  # old CDS files: ERA5 and ERA5T side by side; keep whichever is present
        ds = ds.max("expver", skipna=True, keep_attrs=True)
    ds = ds.drop_vars([c for c in ("expver", "number", "step", "surface") if c in ds.coords])
    if "level" in ds.dims:
        units = _norm(ds["level"].attrs.get("units", "hPa"))
        if units == "pa":
            ds = ds.assign_coords(level=ds["level"] / 100.0)
        elif units not in ("hpa", "millibars", "mbar", "mb"):
            raise InputFileError(
                path, f"pressure levels in units {ds['level'].attrs.get('units')!r}; expected hPa or Pa"
            )
    lon = ((ds["lon"].values + 180.0) % 360.0) - 180.0
    ds = ds.assign_coords(lon=lon).sortby(["lat", "lon"])
    if ds.sizes["lat"] < 1 or ds.sizes["lon"] < 1:
        raise InputFileError(path, "empty latitude/longitude axes")
    return ds.sortby("time")


def classify(ds: xr.Dataset, path) -> tuple[str, tuple[str, ...]]:
    """Layout of a normalised dataset and its wind variables; one-line error for a missing wind variable."""
    have = set(ds.data_vars)
    if "u" in have or "v" in have:
        for a, b in (("u", "v"), ("v", "u")):
            if a in have and b not in have:
                raise InputFileError(path, f"missing wind variable {b} (found {a})")
        kind = "pressure" if "level" in ds["u"].dims else "simple"
        if ds["u"].dims != ds["v"].dims:
            raise InputFileError(path, f"u and v have different dims {ds['u'].dims} / {ds['v'].dims}")
        need = ("time", "level", "lat", "lon") if kind == "pressure" else ("time", "lat", "lon")
        if set(ds["u"].dims) != set(need):
            raise InputFileError(path, f"variable u has dims {ds['u'].dims}; expected {need}")
        return kind, ("u", "v")
    pairs = []
    for a, b in SINGLE_PAIRS.values():
        if a in have and b not in have:
            raise InputFileError(path, f"missing wind variable {b} (found {a})")
        if b in have and a not in have:
            raise InputFileError(path, f"missing wind variable {a} (found {b})")
        if a in have:
            pairs += [a, b]
    if pairs:
        return "single", tuple(pairs)
    raise InputFileError(
        path,
        "missing wind variable: expected u and v (pressure levels, or the simple layout) or u10/v10, u100/v100 "
        f"(ERA5 single levels); found {', '.join(sorted(have)) or 'no variables'}",
    )


def open_wind_file(path: str | Path) -> WindFile:
    """Open, normalise and check one wind file (metadata only; values are read when the field is reduced)."""
    path = Path(path)
    ds = open_netcdf(path, not_found="wind file not found (quantify.winds / quantify.collections.*.winds)")
    try:
        ds = normalise(ds, path)
        kind, winds = classify(ds, path)
        check_wind_units(ds, winds, path)
        if ds.sizes["time"] == 0:
            raise InputFileError(path, "no time steps")
        time = ds["time"].values.astype("datetime64[ns]")
    finally:
        ds.close()
    return WindFile(path, kind, winds, time)
