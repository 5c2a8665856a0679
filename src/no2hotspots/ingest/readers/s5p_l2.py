"""Official Sentinel-5P L2 NO2 granules (OFFL/RPRO/NRTI; both pixel-size eras) and the OSSE granules in that layout.

Group ``PRODUCT`` with dims (time=1, scanline, ground_pixel, corner=4): ``nitrogendioxide_tropospheric_column``
[mol m-2], ``..._precision``, ``qa_value`` (uint8, scale_factor 0.01 -> 0..1), ``latitude``/``longitude``,
``time`` (seconds since 2010-01-01) and ``delta_time`` (time, scanline; milliseconds since ``time``); corners in
``PRODUCT/SUPPORT_DATA/GEOLOCATIONS/{latitude,longitude}_bounds``. Fill values become NaN (netCDF4 auto-masking).
"""

from __future__ import annotations

import datetime as dt
import re

import netCDF4
import numpy as np

from ...errors import InputFileError
from .schema import make_pixels, to_mol_m2

NO2_PRODUCT = "L2__NO2___"
NO2_VAR = "nitrogendioxide_tropospheric_column"
#: TROPOMI along-track pixel size changed from 7 km to 5.5 km on 6 August 2019.
PIXEL_CHANGE = np.datetime64("2019-08-06T00:00:00", "ns")
_FNAME_PRODUCT = re.compile(r"S5P_[A-Z]{4}_(L2__[A-Z0-9_]{6})")


def matches(nc: netCDF4.Dataset) -> bool:
    return "PRODUCT" in nc.groups


def product_type(nc: netCDF4.Dataset, path) -> str | None:
    """The product short name: root attr ``product_type``, METADATA ``ProductShortName``, the file name, variables."""
    if "product_type" in nc.ncattrs():
        return str(nc.getncattr("product_type")).strip()
    try:
        gd = nc.groups["METADATA"].groups["GRANULE_DESCRIPTION"]
        if "ProductShortName" in gd.ncattrs():
            return str(gd.getncattr("ProductShortName")).strip()
    except KeyError:
        pass
    m = _FNAME_PRODUCT.search(str(path).rsplit("/", 1)[-1])
    if m:
        return m.group(1)
    prod = nc.groups["PRODUCT"].variables
    if "carbonmonoxide_total_column" in prod:
        return "L2__CO____"
    if NO2_VAR in prod:
        return NO2_PRODUCT
    return None


def _filled(var) -> np.ndarray:
    a = var[:]
    if np.ma.isMaskedArray(a):
        return np.ma.filled(a.astype(np.float64), np.nan)
    return np.asarray(a, dtype=np.float64)


def _times(prod, path) -> np.ndarray:
    """Per-scanline observation time (datetime64[ns]) from ``time`` + ``delta_time``; a scanline whose
    ``delta_time`` is the fill value gets NaT (not ``time`` itself, the reference day's midnight)."""
    try:
        tvar = prod.variables["time"]
        t0 = netCDF4.num2date(
            np.asarray(tvar[:]).ravel()[0], tvar.units, only_use_cftime_datetimes=False, only_use_python_datetimes=True
        )
        t0 = np.datetime64(t0.replace(tzinfo=None) if isinstance(t0, dt.datetime) else t0, "ns")
        if "delta_time" not in prod.variables:
            return np.array([t0])
        dvar = prod.variables["delta_time"]
        delta = np.atleast_1d(_filled(dvar)[0])
        ok = np.isfinite(delta)
        if not ok.any():
            raise InputFileError(path, "PRODUCT/delta_time holds only fill values: no observation time")
        units = getattr(dvar, "units", "milliseconds")
        out = np.full(delta.shape, np.datetime64("NaT"), "datetime64[ns]")
        if "since" in units:
            dates = netCDF4.num2date(delta[ok], units, only_use_cftime_datetimes=False, only_use_python_datetimes=True)
            out[ok] = [np.datetime64(d, "ns") for d in np.atleast_1d(dates)]
        else:
            out[ok] = t0 + (delta[ok] * 1e6).astype("timedelta64[ns]")
        return out
    except (KeyError, AttributeError, ValueError) as e:
        raise InputFileError(path, f"unreadable PRODUCT/time or delta_time ({e})") from None


def read(nc: netCDF4.Dataset, path):
    ptype = product_type(nc, path)
    if ptype is not None and ptype != NO2_PRODUCT:
        raise InputFileError(path, f"wrong product ({ptype}), expected {NO2_PRODUCT}")
    prod = nc.groups["PRODUCT"]
    for name in (NO2_VAR, "latitude", "longitude", "qa_value"):
        if name not in prod.variables:
            raise InputFileError(path, f"missing variable PRODUCT/{name}")
    try:
        geo = prod.groups["SUPPORT_DATA"].groups["GEOLOCATIONS"]
        latb, lonb = geo.variables["latitude_bounds"], geo.variables["longitude_bounds"]
    except KeyError:
        raise InputFileError(
            path, "missing PRODUCT/SUPPORT_DATA/GEOLOCATIONS/latitude_bounds or longitude_bounds"
        ) from None

    var = prod.variables[NO2_VAR]
    no2 = to_mol_m2(_filled(var)[0], getattr(var, "units", None), path, f"PRODUCT/{NO2_VAR}")
    pname = NO2_VAR + "_precision"
    if pname in prod.variables:
        pvar = prod.variables[pname]
        prec = to_mol_m2(_filled(pvar)[0], getattr(pvar, "units", None), path, f"PRODUCT/{pname}")
    else:
        prec = np.full_like(no2, np.nan)
    # netCDF4 applies scale_factor 0.01 -> 0..1; a fill value (no QA) fails every threshold: NaN would read as
    # "filtered upstream" (the HARP and ddeq layouts' convention, schema.valid_pixels), which an L2 file is not
    qa = np.nan_to_num(_filled(prod.variables["qa_value"])[0], nan=0.0)
    lat = _filled(prod.variables["latitude"])[0]
    lon = _filled(prod.variables["longitude"])[0]
    lat_b = _filled(latb)[0]
    lon_b = _filled(lonb)[0]
    nscan, ngp = no2.shape
    if no2.size == 0:
        raise InputFileError(path, f"has no pixels ({nscan} scanlines x {ngp} ground pixels)")
    t = _times(prod, path)
    time = np.broadcast_to(t[:, None] if t.size == nscan else t.reshape(1, 1)[:1], (nscan, ngp))
    first = t[~np.isnat(t)].min()
    start = str(first)
    attrs = {
        "pixel_size_era": "7x3.5km" if first < PIXEL_CHANGE else "5.5x3.5km",
        "time_coverage_start": str(getattr(nc, "time_coverage_start", start)),
    }
    for key in ("title", "time_coverage_end", "orbit"):
        if key in nc.ncattrs():
            attrs[key] = str(nc.getncattr(key))
    return make_pixels(
        path,
        no2=no2,
        precision=prec,
        qa=qa,
        lat=lat,
        lon=lon,
        lat_bounds=lat_b,
        lon_bounds=lon_b,
        time=time,
        layout="s5p_l2",
        product=NO2_PRODUCT,
        qa_filter="",
        extra_attrs=attrs,
    )
