"""Write one granule in the official Sentinel-5P L2 NO2 layout (the subset of names the ingest reader uses).

File name: ``S5P_OSSE_L2__NO2____<start>_<end>_<orbit:05d>_01_020400_<processing>.nc`` (the processing-stream
slot that holds OFFL/RPRO/NRTI in real products holds ``OSSE``). Groups and variables::

    /                         title, product_type "L2__NO2___", time_coverage_start/end, Conventions "CF-1.7", ...
    /PRODUCT                  dims time=1, scanline, ground_pixel, corner=4
        scanline, ground_pixel, corner, time(time) int32 "seconds since 2010-01-01 00:00:00"
        delta_time(time, scanline) int32 "milliseconds since <day> 00:00:00"
        latitude, longitude (time, scanline, ground_pixel) float32
        nitrogendioxide_tropospheric_column, ..._precision (time, scanline, ground_pixel) float32 "mol m-2"
        qa_value (time, scanline, ground_pixel) uint8, scale_factor 0.01, add_offset 0
    /PRODUCT/SUPPORT_DATA/GEOLOCATIONS   latitude_bounds, longitude_bounds (time, scanline, ground_pixel, corner)
    /PRODUCT/SUPPORT_DATA/INPUT_DATA     cloud_fraction_crb (time, scanline, ground_pixel)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path

FILL_F32 = np.float32(9.96921e36)
TITLE = "TROPOMI/S5P NO2 1-Orbit L2 Swath 5.5x3.5km (OSSE, synthetic)"
EPOCH_2010 = np.datetime64("2010-01-01T00:00:00", "s")
PIXEL = ("time", "scanline", "ground_pixel")
CORNERS = (*PIXEL, "corner")
GEOLOCATIONS = "PRODUCT/SUPPORT_DATA/GEOLOCATIONS"


@dataclass(frozen=True)
class Var:
    """One float32 pixel variable of the file: where it goes, which argument of :func:`write_granule` fills it."""

    group: str
    name: str
    arg: str
    dims: tuple[str, ...]
    attrs: dict
    fill: bool = True  # write non-finite values as the fill value (geolocation has no fill value)


#: the float32 pixel variables, in the order they are written (the order fixes the file's bytes)
PRODUCT_VARS = (
    Var(
        "PRODUCT",
        "latitude",
        "lat",
        PIXEL,
        {
            "units": "degrees_north",
            "standard_name": "latitude",
            "long_name": "pixel center latitude",
            "valid_min": -90.0,
            "valid_max": 90.0,
            "bounds": "/PRODUCT/SUPPORT_DATA/GEOLOCATIONS/latitude_bounds",
        },
        fill=False,
    ),
    Var(
        "PRODUCT",
        "longitude",
        "lon",
        PIXEL,
        {
            "units": "degrees_east",
            "standard_name": "longitude",
            "long_name": "pixel center longitude",
            "valid_min": -180.0,
            "valid_max": 180.0,
            "bounds": "/PRODUCT/SUPPORT_DATA/GEOLOCATIONS/longitude_bounds",
        },
        fill=False,
    ),
    Var(
        "PRODUCT",
        "nitrogendioxide_tropospheric_column",
        "no2",
        PIXEL,
        {
            "units": "mol m-2",
            "standard_name": "troposphere_mole_content_of_nitrogen_dioxide",
            "long_name": "Tropospheric vertical column of nitrogen dioxide",
            "coordinates": "longitude latitude",
            "ancillary_variables": "nitrogendioxide_tropospheric_column_precision",
            "multiplication_factor_to_convert_to_molecules_percm2": np.float32(6.02214e19),
        },
    ),
    Var(
        "PRODUCT",
        "nitrogendioxide_tropospheric_column_precision",
        "no2_precision",
        PIXEL,
        {
            "units": "mol m-2",
            "standard_name": "troposphere_mole_content_of_nitrogen_dioxide standard_error",
            "long_name": "Precision of the tropospheric vertical column of nitrogen dioxide",
            "coordinates": "longitude latitude",
        },
    ),
)
#: written after qa_value
SUPPORT_VARS = (
    Var(
        GEOLOCATIONS,
        "latitude_bounds",
        "lat_bounds",
        CORNERS,
        {"units": "degrees_north", "long_name": "latitude of the ground pixel corners"},
        fill=False,
    ),
    Var(
        GEOLOCATIONS,
        "longitude_bounds",
        "lon_bounds",
        CORNERS,
        {"units": "degrees_east", "long_name": "longitude of the ground pixel corners"},
        fill=False,
    ),
    Var(
        "PRODUCT/SUPPORT_DATA/INPUT_DATA",
        "cloud_fraction_crb",
        "cloud",
        PIXEL,
        {
            "units": "1",
            "long_name": "cloud fraction (simulated)",
            "coordinates": "/PRODUCT/longitude /PRODUCT/latitude",
        },
    ),
)
QA_ATTRS = {
    "units": "1",
    "scale_factor": np.float32(0.01),
    "add_offset": np.float32(0.0),
    "valid_min": np.uint8(0),
    "valid_max": np.uint8(100),
    "long_name": "data quality value",
    "comment": (
        "A continuous quality descriptor, varying between 0 (no data) and 1 (full quality data). "
        "Recommend to ignore data with qa_value < 0.5"
    ),
    "coordinates": "longitude latitude",
}


def _stamp(t: np.datetime64) -> str:
    return str(np.datetime64(t, "s")).replace("-", "").replace(":", "")


def granule_name(start: np.datetime64, end: np.datetime64, orbit: int, processed: np.datetime64) -> str:
    return f"S5P_OSSE_L2__NO2____{_stamp(start)}_{_stamp(end)}_{orbit:05d}_01_020400_{_stamp(processed)}.nc"


def write_granule(
    path: str | Path,
    *,
    day: np.datetime64,
    delta_time_ms: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    lat_bounds: np.ndarray,
    lon_bounds: np.ndarray,
    no2: np.ndarray,
    no2_precision: np.ndarray,
    qa: np.ndarray,
    cloud: np.ndarray,
    orbit: int,
    extra_attrs: dict | None = None,
) -> None:
    """Write the granule atomically with netCDF4 (groups); arrays are (scanline, ground_pixel[, corner])."""
    import netCDF4

    data = {"lat": lat, "lon": lon, "lat_bounds": lat_bounds, "lon_bounds": lon_bounds, "no2": no2}
    data.update(no2_precision=no2_precision, cloud=cloud)
    day = np.datetime64(day, "D")
    with atomic_path(path) as tmp:
        ds = netCDF4.Dataset(tmp, "w", format="NETCDF4")
        try:
            ds.setncatts(global_attrs(day, delta_time_ms, orbit) | (extra_attrs or {}))
            p = _product_group(ds, *lat.shape)
            _times(p, day, delta_time_ms)
            for var in PRODUCT_VARS:
                _write_f32(ds, var, data[var.arg])
            _write_qa(p, qa)
            for var in SUPPORT_VARS:
                _write_f32(ds, var, data[var.arg])
        finally:
            ds.close()


def global_attrs(day: np.datetime64, delta_time_ms: np.ndarray, orbit: int) -> dict:
    start = np.datetime64(day, "ms") + np.timedelta64(int(delta_time_ms.min()), "ms")
    end = np.datetime64(day, "ms") + np.timedelta64(int(delta_time_ms.max()), "ms")
    return {
        "title": TITLE,
        "product_type": "L2__NO2___",
        "Conventions": "CF-1.7",
        "institution": "no2hotspots OSSE",
        "source": "no2hotspots osse stage: synthetic observing-system simulation",
        "summary": "SYNTHETIC DATA: simulated TROPOMI-like NO2 columns with known truth; not a satellite product",
        "comment": "synthetic (OSSE); truth (sources, winds, per-granule fields) is stored in the osse truth folder",
        "processing_stream": "OSSE",
        "orbit": np.int32(orbit),
        "time_reference": f"{day}T00:00:00Z",
        "time_coverage_start": f"{str(start)[:23]}Z",
        "time_coverage_end": f"{str(end)[:23]}Z",
        "sensor": "TROPOMI (simulated)",
        "platform": "Sentinel-5P (simulated)",
    }


def _product_group(ds, n_scan: int, n_gp: int):
    """/PRODUCT with its dimensions and index variables."""
    p = ds.createGroup("PRODUCT")
    p.createDimension("time", 1)
    p.createDimension("scanline", n_scan)
    p.createDimension("ground_pixel", n_gp)
    p.createDimension("corner", 4)
    for name, n, ln in (
        ("scanline", n_scan, "along-track dimension index"),
        ("ground_pixel", n_gp, "across-track dimension index"),
        ("corner", 4, "pixel corner index"),
    ):
        v = p.createVariable(name, "i4", (name,))
        v[:] = np.arange(n, dtype=np.int32)
        v.setncatts({"units": "1", "long_name": ln})
    return p


def _times(p, day: np.datetime64, delta_time_ms: np.ndarray) -> None:
    """``time`` (the day, seconds since 2010) and ``delta_time`` (ms since the day's 00 UTC, per scanline)."""
    t = p.createVariable("time", "i4", ("time",))
    t.setncatts(
        {
            "units": "seconds since 2010-01-01 00:00:00",
            "standard_name": "time",
            "axis": "T",
            "long_name": "reference time for the measurements",
        }
    )
    t[:] = np.int32((np.datetime64(day, "s") - EPOCH_2010) / np.timedelta64(1, "s"))
    dtv = p.createVariable("delta_time", "i4", ("time", "scanline"))
    dtv.setncatts(
        {"units": f"milliseconds since {day} 00:00:00", "long_name": "offset from reference start time of measurement"}
    )
    dtv[:] = delta_time_ms.astype(np.int32)[None, :]


def _group(ds, path: str):
    """The group at ``path`` (``A/B/C``), created (parents first) where missing."""
    g = ds
    for name in path.split("/"):
        g = g.groups[name] if name in g.groups else g.createGroup(name)
    return g


def _write_f32(ds, var: Var, data) -> None:
    """A float32 variable, zlib level 4; with ``var.fill`` non-finite values are written as the fill value."""
    v = _group(ds, var.group).createVariable(
        var.name, "f4", var.dims, zlib=True, complevel=4, fill_value=FILL_F32 if var.fill else None
    )
    v.setncatts(var.attrs)
    data = np.asarray(data, np.float32)
    if var.fill:
        data = np.where(np.isfinite(data), data, FILL_F32)
    v[:] = data[None, ...]


def _write_qa(p, qa) -> None:
    """qa_value: uint8 percent with scale_factor 0.01 (as the official product)."""
    q = p.createVariable("qa_value", "u1", PIXEL, zlib=True, complevel=4, fill_value=np.uint8(255))
    q.set_auto_maskandscale(False)
    q.setncatts(QA_ATTRS)
    q[:] = np.clip(np.round(np.asarray(qa) * 100), 0, 100).astype(np.uint8)[None, ...]
