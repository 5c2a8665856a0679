"""Readers: one small handler per file layout, detected by content, all returning the pixel schema (see schema).

``open_pixels(path)`` is the only entry point the rest of the project uses.
"""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from ...errors import InputFileError
from . import ddeq_crop, harp_l3, s5p_l2
from .schema import make_pixels, valid_pixels

#: tried in order; the first whose ``matches(nc)`` is true reads the file
HANDLERS = (("harp_l3", harp_l3), ("s5p_l2", s5p_l2), ("ddeq_crop", ddeq_crop))

__all__ = ["open_pixels", "detect_layout", "make_pixels", "valid_pixels", "HANDLERS"]


def _open(path):
    import netCDF4

    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "not found")
    try:
        return netCDF4.Dataset(p, "r")
    except OSError as e:
        raise InputFileError(p, f"cannot be opened as NetCDF (truncated or not NetCDF?): {e.strerror or e}") from None


def check_complete(nc, path) -> None:
    """A NetCDF3 (classic) file cut short still opens, and netCDF4 reads the missing part as zeros: check with
    scipy's reader, which maps every variable onto the file and fails when the data would run past its end."""
    if not str(nc.file_format).startswith("NETCDF3"):
        return
    import warnings

    from scipy.io import netcdf_file

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = netcdf_file(path, "r", mmap=True)
            try:
                for v in f.variables.values():
                    _ = v.data.shape
            finally:
                f.close()
    except Exception as e:  # noqa: BLE001 - any failure to map the variables: the file is incomplete
        raise InputFileError(path, f"truncated or corrupt NetCDF3 file (its variables run past the end: {e})") from None


def detect_layout(nc, path) -> tuple[str, object]:
    for name, mod in HANDLERS:
        if mod.matches(nc):
            return name, mod
    if "NO2" not in nc.variables and any(v in nc.variables for v in ("lat", "lon")):
        raise InputFileError(path, "missing variable NO2 (and no S5P PRODUCT group or HARP convention)")
    raise InputFileError(
        path, "unrecognised layout: expected S5P L2 (group PRODUCT), a ddeq crop (NO2, latc, lonc) or HARP L3"
    )


def open_pixels(path) -> xr.Dataset:
    """Read one granule of any supported layout into the common pixel schema (raises InputFileError)."""
    nc = _open(path)
    try:
        check_complete(nc, path)
        _, mod = detect_layout(nc, path)
        return mod.read(nc, path)
    except InputFileError:
        raise
    except (OSError, RuntimeError, IndexError) as e:  # HDF errors on truncated data show up on read
        raise InputFileError(path, f"cannot be read (truncated or corrupt?): {e}") from None
    finally:
        nc.close()
