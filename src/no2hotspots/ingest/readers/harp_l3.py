"""HARP Level-3 gridded TROPOMI NO2 (``Conventions = "HARP-1.0"``; dims time=1, latitude, longitude).

These files are already binned. The reader returns each grid cell as a "pixel" whose corners are the cell bounds
(midpoints between centres, extrapolated at the ends), so the same exact area-weighted gridding regrids them onto
the project grid (a 0.1 deg HARP cell splits exactly into 2x2 cells of 0.05 deg). HARP files carry no precision
(NaN) and no QA value: HARP already filtered them (the ``validity>=NN`` operation in ``history``, recorded as
``qa_filter``). The time (no time variable) comes from the start/stop stamps in ``source_product`` or the name.
"""

from __future__ import annotations

import re
from pathlib import Path

import netCDF4
import numpy as np

from ...errors import InputFileError
from .schema import make_pixels, to_mol_m2

NO2_VAR = "tropospheric_NO2_column_number_density"
_STAMPS = re.compile(r"_(\d{8}T\d{6})_(\d{8}T\d{6})_")


def matches(nc: netCDF4.Dataset) -> bool:
    return str(getattr(nc, "Conventions", "")).startswith("HARP")


def _edges(c: np.ndarray) -> np.ndarray:
    mid = 0.5 * (c[1:] + c[:-1])
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def _time(nc, path) -> np.datetime64:
    for text in (str(getattr(nc, "source_product", "")), Path(path).name):
        m = _STAMPS.search(text)
        if m:
            a, b = (
                np.datetime64(f"{s[:4]}-{s[4:6]}-{s[6:8]}T{s[9:11]}:{s[11:13]}:{s[13:15]}", "ns") for s in m.groups()
            )
            return a + (b - a) / 2
    if "datetime_start" in nc.variables:
        v = nc.variables["datetime_start"]
        return np.datetime64(
            netCDF4.num2date(
                np.asarray(v[:]).ravel()[0], v.units, only_use_cftime_datetimes=False, only_use_python_datetimes=True
            ),
            "ns",
        )
    raise InputFileError(
        path, "HARP L3 file without a time (no datetime_start, no time stamps in source_product or name)"
    )


def read(nc: netCDF4.Dataset, path):
    for name in (NO2_VAR, "latitude", "longitude"):
        if name not in nc.variables:
            raise InputFileError(path, f"missing variable {name} (HARP L3 layout)")
    var = nc.variables[NO2_VAR]
    a = var[:]
    no2 = np.ma.filled(a.astype(np.float64), np.nan) if np.ma.isMaskedArray(a) else np.asarray(a, np.float64)
    if no2.ndim == 3:
        no2 = no2[0]
    no2 = to_mol_m2(no2, getattr(var, "units", None), path, NO2_VAR)
    lat = np.asarray(nc.variables["latitude"][:], np.float64)
    lon = np.asarray(nc.variables["longitude"][:], np.float64)
    if lat.ndim != 1 or lon.ndim != 1 or no2.shape != (lat.size, lon.size):
        raise InputFileError(path, f"{NO2_VAR} shape {no2.shape} does not match latitude/longitude axes")
    for name, axis in (("latitude", lat), ("longitude", lon)):
        if axis.size < 2:
            raise InputFileError(path, f"{name} has {axis.size} cell centre(s): the cell size cannot be inferred")
    le, oe = _edges(lat), _edges(lon)
    # corners counter-clockwise: (lon0,lat0) (lon1,lat0) (lon1,lat1) (lon0,lat1)
    lat_b = np.stack(np.broadcast_arrays(le[:-1, None], le[:-1, None], le[1:, None], le[1:, None]), axis=-1)
    lon_b = np.stack(np.broadcast_arrays(oe[None, :-1], oe[None, 1:], oe[None, 1:], oe[None, :-1]), axis=-1)
    lat_b = np.broadcast_to(lat_b, no2.shape + (4,))
    lon_b = np.broadcast_to(lon_b, no2.shape + (4,))
    glat, glon = np.meshgrid(lat, lon, indexing="ij")
    m = re.search(r"validity\s*>=\s*(\d+)", str(getattr(nc, "history", "")))
    qa_filter = f">= {int(m.group(1)) / 100:.2f} (HARP)" if m else "applied by HARP"
    return make_pixels(
        path,
        no2=no2,
        precision=np.full_like(no2, np.nan),
        qa=np.full_like(no2, np.nan),
        lat=glat,
        lon=glon,
        lat_bounds=lat_b,
        lon_bounds=lon_b,
        time=_time(nc, path),
        layout="harp_l3",
        qa_filter=qa_filter,
        extra_attrs={"source_product": str(getattr(nc, "source_product", ""))},
    )
