"""Gridded emission reader for the EDGAR NetCDF layout (a lat/lon grid of emission flux or amount per cell).

EDGAR "flux" files hold e.g. ``emi_nox`` or ``fluxes`` in ``kg m-2 s-1``; this reader converts any flux unit it
knows to tonnes per cell per year using spherical cell areas, and per-cell rates (``t/yr``, ``kg/s``) directly.
The unit is read from the variable's ``units`` attribute; an unknown or missing unit is an error naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import ConfigError, InputFileError
from ..readfile import open_netcdf
from .units import KNOWN_FLUX_UNITS, KNOWN_RATE_UNITS, flux_factor, rate_factor

EARTH_RADIUS_M = 6_371_008.8
LAT_NAMES = ("lat", "latitude", "y")
LON_NAMES = ("lon", "longitude", "x")


def cell_area_m2(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Spherical area [m2] of the cells centred on the (regular, 1-D) ``lat``/``lon`` axes, shape (lat, lon)."""
    lat = np.asarray(lat, float)
    lon = np.asarray(lon, float)
    dlat = abs(float(np.median(np.diff(lat)))) if lat.size > 1 else 1.0
    dlon = abs(float(np.median(np.diff(lon)))) if lon.size > 1 else 1.0
    top = np.radians(np.clip(lat + dlat / 2, -90, 90))
    bot = np.radians(np.clip(lat - dlat / 2, -90, 90))
    band = EARTH_RADIUS_M**2 * np.radians(dlon) * np.abs(np.sin(top) - np.sin(bot))
    return np.broadcast_to(band[:, None], (lat.size, lon.size)).copy()


def _coord(ds: xr.Dataset, names, path, what: str) -> str:
    for n in names:
        if n in ds.coords or n in ds.variables:
            return n
    raise InputFileError(path, f"no {what} coordinate (looked for {', '.join(names)})")


def read_gridded_netcdf(
    path: str | Path,
    variables: Mapping[str, str],
    *,
    bbox=None,
    key: str = "inventory",
) -> xr.Dataset:
    """Read gridded emissions; return a Dataset with ``<species>_t_per_yr(lat, lon)`` [t yr-1 per cell].

    ``variables`` maps species (``nox``, ``co2``) to the variable name in the file. ``bbox`` =
    ``[lon_min, lat_min, lon_max, lat_max]`` subsets the grid. Longitudes 0..360 are wrapped to -180..180 and
    both axes are returned ascending. Also returns ``cell_area(lat, lon)`` [m2].
    """
    path = Path(path)
    if not variables:
        raise ConfigError(f"{key}.variables", "give at least one species -> variable name, e.g. {nox: emi_nox}")
    src = open_netcdf(path)
    with src:
        latn, lonn, lat, lon = _axes(src, path)
        area = cell_area_m2(lat, lon)
        out = {
            f"{species}_t_per_yr": _tonnes_per_cell_year(
                src, var, (latn, lonn), area, path, f"{key}.variables.{species}"
            )
            for species, var in variables.items()
        }
    return _emission_dataset(out, lat, lon, area, path, bbox)


def _axes(src: xr.Dataset, path: Path) -> tuple[str, str, np.ndarray, np.ndarray]:
    """Names and values of the 1-D latitude and longitude axes, checked to lie on the globe."""
    latn = _coord(src, LAT_NAMES, path, "latitude")
    lonn = _coord(src, LON_NAMES, path, "longitude")
    lat = np.asarray(src[latn].values, float)
    lon = np.asarray(src[lonn].values, float)
    if lat.ndim != 1 or lon.ndim != 1:
        raise InputFileError(path, f"{latn}/{lonn} must be 1-D axes of a regular grid")
    if np.any(np.abs(lat) > 90):
        raise InputFileError(path, f"{latn} has values outside -90..90, e.g. {float(lat[np.abs(lat) > 90][0])}")
    if np.any((lon < -180) | (lon > 360)):
        raise InputFileError(
            path, f"{lonn} has values outside -180..360, e.g. {float(lon[(lon < -180) | (lon > 360)][0])}"
        )
    return latn, lonn, lat, lon


def _tonnes_per_cell_year(src: xr.Dataset, var: str, dims: tuple[str, str], area, path: Path, key: str) -> np.ndarray:
    """Variable ``var`` (on ``dims``) in t/yr per cell, from its units attribute (a flux times the cell area, or a
    per-cell rate); ``key`` names the config entry that chose it."""
    latn, lonn = dims
    if var not in src.variables:
        raise InputFileError(path, f"no variable {var!r} (for {key}); has {', '.join(map(str, src.data_vars))}")
    da = src[var]
    extra = [d for d in da.dims if d not in (latn, lonn)]
    if any(da.sizes[d] != 1 for d in extra):
        raise InputFileError(path, f"variable {var} has extra dimension(s) {extra}; expected ({latn}, {lonn})")
    da = da.squeeze([d for d in extra]).transpose(latn, lonn)
    unit = str(da.attrs.get("units", "")).strip()
    if not unit:
        raise InputFileError(path, f"variable {var} has no units attribute")
    values = np.asarray(da.values, float)
    ff = flux_factor(unit)
    if ff is not None:
        tpy = values * ff * area
    else:
        rf = rate_factor(unit)
        if rf is None:
            raise InputFileError(
                path,
                f"variable {var} has unknown units {unit!r} (known fluxes: {KNOWN_FLUX_UNITS}; "
                f"per-cell rates: {KNOWN_RATE_UNITS})",
            )
        tpy = values * rf
    if np.any(tpy[np.isfinite(tpy)] < 0):
        raise InputFileError(path, f"variable {var} has negative emissions")
    return tpy


def _emission_dataset(out: dict, lat, lon, area, path: Path, bbox) -> xr.Dataset:
    """The per-cell emissions as a CF Dataset: longitudes wrapped to -180..180, axes ascending, cut to ``bbox``."""
    lon_w = np.where(lon > 180, lon - 360, lon)
    ds = xr.Dataset(
        {
            name: (
                ("lat", "lon"),
                v.astype("float64"),
                {
                    "units": "t yr-1",
                    "long_name": f"{name.split('_')[0].upper()} emission per grid cell",
                    "source_file": path.name,
                },
            )
            for name, v in out.items()
        },
        coords={
            "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", lon_w, {"units": "degrees_east", "standard_name": "longitude"}),
        },
    )
    ds["cell_area"] = (("lat", "lon"), area, {"units": "m2", "long_name": "grid cell area"})
    ds = ds.sortby(["lat", "lon"])
    if bbox is not None:
        lon0, lat0, lon1, lat1 = (float(b) for b in bbox)
        ds = ds.sel(lat=slice(lat0, lat1), lon=slice(lon0, lon1))
    ds.attrs.update({"Conventions": "CF-1.10", "source": str(path.name)})
    return ds
