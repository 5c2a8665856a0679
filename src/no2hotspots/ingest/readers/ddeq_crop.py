"""The ddeq crop layout (the embedded default Matimba granule): a TROPOMI L2 NO2 swath cropped around a source.

Root variables ``NO2``, ``NO2_std`` (nrows, nobs), ``lat``, ``lon``, ``latc``, ``lonc`` (nrows, nobs, corner) and a
scalar ``time``. The QA filter is already applied upstream (global attr ``QA value filter``, e.g. "> 0.75"):
pixels failing it are NaN, so ``qa`` is returned as NaN ("filtered upstream").
"""

from __future__ import annotations

import netCDF4
import numpy as np

from ...errors import InputFileError
from .schema import make_pixels, to_mol_m2


def matches(nc: netCDF4.Dataset) -> bool:
    v = nc.variables
    return "latc" in v and "lonc" in v


def _filled(var) -> np.ndarray:
    a = var[:]
    if np.ma.isMaskedArray(a):
        return np.ma.filled(a.astype(np.float64), np.nan)
    return np.asarray(a, dtype=np.float64)


def read(nc: netCDF4.Dataset, path):
    for name in ("NO2", "lat", "lon", "time"):
        if name not in nc.variables:
            raise InputFileError(path, f"missing variable {name} (ddeq crop layout)")
    var = nc.variables["NO2"]
    no2 = to_mol_m2(_filled(var), getattr(var, "units", None), path, "NO2")
    if "NO2_std" in nc.variables:
        svar = nc.variables["NO2_std"]
        prec = to_mol_m2(_filled(svar), getattr(svar, "units", None), path, "NO2_std")
    else:
        prec = np.full_like(no2, np.nan)
    tvar = nc.variables["time"]
    try:
        t = netCDF4.num2date(
            np.asarray(tvar[:]).ravel()[0],
            tvar.units,
            getattr(tvar, "calendar", "standard"),
            only_use_cftime_datetimes=False,
            only_use_python_datetimes=True,
        )
    except (AttributeError, ValueError) as e:
        raise InputFileError(path, f"unreadable time ({e})") from None
    qa_filter = str(getattr(nc, "QA value filter", "applied upstream"))
    attrs = {k: str(nc.getncattr(k)) for k in ("original file name", "source") if k in nc.ncattrs()}
    attrs = {k.replace(" ", "_"): v for k, v in attrs.items()}
    return make_pixels(
        path,
        no2=no2,
        precision=prec,
        qa=np.full_like(no2, np.nan),
        lat=_filled(nc.variables["lat"]),
        lon=_filled(nc.variables["lon"]),
        lat_bounds=_filled(nc.variables["latc"]),
        lon_bounds=_filled(nc.variables["lonc"]),
        time=np.datetime64(t, "ns"),
        layout="ddeq_crop",
        qa_filter=qa_filter,
        extra_attrs=attrs,
    )
