"""Opening the user's input files with one-line errors: a missing or unreadable file is an
:class:`~no2hotspots.errors.InputFileError` naming the file and the problem, never a traceback."""

from __future__ import annotations

from pathlib import Path

from .errors import InputFileError


def _exists(path: str | Path, not_found: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, not_found)
    return path


def read_csv(path: str | Path, *, not_found: str = "not found", **kwargs):
    """``pandas.read_csv`` of ``path``; an empty or unparsable file is a one-line error."""
    import pandas as pd

    path = _exists(path, not_found)
    try:
        return pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError:
        raise InputFileError(path, "empty file (expected at least the header row)") from None
    except Exception as e:  # noqa: BLE001 - any parser failure is the file's problem
        raise InputFileError(path, f"not a readable CSV ({type(e).__name__}: {e})") from None


def show_value(v) -> str:
    """repr of a table value without numpy's type wrapper (95.0, not np.float64(95.0))."""
    return repr(v.item() if hasattr(v, "item") else v)


def coordinates_in_range(df, source, lat_col: str = "lat", lon_col: str = "lon") -> None:
    """Make ``df[lat_col]``/``df[lon_col]`` floats in -90..90 / -180..180 (in place), else a one-line
    :class:`~no2hotspots.errors.InputFileError` naming ``source``, the column, the first bad value and its row (a
    missing or non-numeric value is out of range too)."""
    import pandas as pd

    for col, lim in ((lat_col, 90), (lon_col, 180)):
        vals = pd.to_numeric(df[col], errors="coerce")
        bad = ~vals.between(-lim, lim)
        if bad.any():
            row = bad.idxmax()
            raise InputFileError(
                source,
                f"column {col} has values outside -{lim}..{lim}, e.g. {show_value(df.loc[row, col])} in row {row}",
            )
        df[col] = vals.astype(float)


def open_netcdf(
    path: str | Path, *, not_found: str = "not found", load: bool = False, what: str = "NetCDF file", **kwargs
):
    """``xarray.open_dataset`` of ``path`` (loaded into memory and closed with ``load=True``). The engine is netCDF4
    unless given (it reads NetCDF3 and NetCDF4/HDF5): xarray's guessing opens the file once more, 6.4 vs 8.0 ms per
    small detect file."""
    import xarray as xr

    path = _exists(path, not_found)
    kwargs.setdefault("engine", "netcdf4")
    try:
        if load:
            with xr.open_dataset(path, **kwargs) as ds:
                return ds.load()
        return xr.open_dataset(path, **kwargs)
    except Exception as e:  # noqa: BLE001 - truncated, not HDF5/NetCDF, ...
        raise InputFileError(path, f"not a readable {what} ({type(e).__name__}: {e})") from None
