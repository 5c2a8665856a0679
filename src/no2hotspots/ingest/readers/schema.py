"""The common pixel schema every reader returns (so nothing downstream knows which layout a granule came in).

A pixel dataset has dims ``pixel`` (scanline x ground_pixel flattened) and ``corner`` (4) with variables

- ``no2`` [mol m-2] tropospheric vertical column, NaN where missing;
- ``no2_precision`` [mol m-2] (NaN where the layout has none);
- ``qa`` [1] quality value 0..1; NaN means "filtered upstream" (the layout already applied a QA filter, named in
  the attribute ``qa_filter``);
- ``lat``, ``lon`` pixel centres [degree]; ``lat_bounds``, ``lon_bounds`` (pixel, corner) footprint corners;
- ``time`` (pixel) datetime64[ns] observation time;

and attrs ``source_file``, ``layout``, ``product``, ``qa_filter``. Pixels whose corners are not all finite are
dropped here; if none remains the file is rejected.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import xarray as xr

from ...errors import InputFileError

log = logging.getLogger(__name__)

MOL_M2 = "mol m-2"
AVOGADRO = 6.02214076e23


def to_mol_m2(values: np.ndarray, units: str | None, path, var: str) -> np.ndarray:
    """Convert a column to mol m-2 from the units the file states (mol m-2, mol/m2, molecules cm-2)."""
    u = (units or "").strip().replace("^", "").replace("**", "")
    norm = u.lower().replace(" ", "").replace(".", "")
    if norm in ("molm-2", "mol/m2", "molm2", "mol/m^2"):
        return values
    if norm in ("moleculescm-2", "molecules/cm2", "molec/cm2", "moleccm-2", "molecules/cm^2"):
        return values * (1e4 / AVOGADRO)
    raise InputFileError(path, f"variable {var} has units {units!r}; expected mol m-2 or molecules cm-2")


def make_pixels(
    path,
    *,
    no2,
    precision,
    qa,
    lat,
    lon,
    lat_bounds,
    lon_bounds,
    time,
    layout: str,
    product: str = "L2__NO2___",
    qa_filter: str = "",
    extra_attrs: dict | None = None,
) -> xr.Dataset:
    """Flatten arrays of shape (..., ) / (..., 4) to the pixel schema, dropping pixels with non-finite corners."""
    lat_b = np.asarray(lat_bounds, dtype=np.float64).reshape(-1, 4)
    lon_b = np.asarray(lon_bounds, dtype=np.float64).reshape(-1, 4)
    n = lat_b.shape[0]

    def flat(a, dtype=np.float64):
        a = np.asarray(a, dtype=dtype)
        return np.broadcast_to(a, (n,)) if a.ndim == 0 else a.reshape(n)

    no2 = flat(no2)
    precision = flat(precision)
    qa = flat(qa)
    lat = flat(lat)
    lon = flat(lon)
    time = np.asarray(time, dtype="datetime64[ns]")
    time = np.broadcast_to(time, (n,)) if time.ndim == 0 else time.reshape(n)

    ok = np.isfinite(lat_b).all(axis=1) & np.isfinite(lon_b).all(axis=1)
    if n and not ok.any():
        raise InputFileError(path, "all pixel corner coordinates are NaN (no usable geolocation)")
    if not ok.all():
        log.warning("%s: dropped %d of %d pixels with NaN corner coordinates", Path(path).name, int((~ok).sum()), n)
    # centres: fill missing ones from the corners
    lat = np.where(np.isfinite(lat), lat, lat_b.mean(axis=1))
    lon = np.where(np.isfinite(lon), lon, lon_b.mean(axis=1))

    ds = xr.Dataset(
        {
            "no2": (
                "pixel",
                no2[ok].astype(np.float64),
                {
                    "units": MOL_M2,
                    "long_name": "tropospheric vertical column of nitrogen dioxide",
                    "standard_name": "troposphere_mole_content_of_nitrogen_dioxide",
                },
            ),
            "no2_precision": (
                "pixel",
                precision[ok].astype(np.float64),
                {"units": MOL_M2, "long_name": "precision of the tropospheric NO2 column"},
            ),
            "qa": (
                "pixel",
                qa[ok].astype(np.float32),
                {"units": "1", "long_name": "quality assurance value (NaN: filtered upstream, see qa_filter)"},
            ),
            "lat": ("pixel", lat[ok], {"units": "degree_north", "standard_name": "latitude", "bounds": "lat_bounds"}),
            "lon": ("pixel", lon[ok], {"units": "degree_east", "standard_name": "longitude", "bounds": "lon_bounds"}),
            "lat_bounds": (("pixel", "corner"), lat_b[ok], {"units": "degree_north"}),
            "lon_bounds": (("pixel", "corner"), lon_b[ok], {"units": "degree_east"}),
            "time": ("pixel", time[ok], {"long_name": "observation time", "standard_name": "time"}),
        },
        attrs={
            "Conventions": "CF-1.10",
            "source_file": str(path),
            "layout": layout,
            "product": product,
            "qa_filter": qa_filter,
            **(extra_attrs or {}),
        },
    )
    return ds


def valid_pixels(px: xr.Dataset, qa_threshold: float) -> np.ndarray:
    """Boolean mask of pixels to grid: finite NO2 and (qa >= threshold, or qa NaN = filtered upstream)."""
    qa = px["qa"].values
    return np.isfinite(px["no2"].values) & ((qa >= qa_threshold - 1e-6) | np.isnan(qa))
