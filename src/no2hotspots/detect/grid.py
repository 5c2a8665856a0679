"""Geometry of the detection input (one ingest overpass, no2hotspots.contracts.grid): valid cells, cell sizes."""

from __future__ import annotations

import numpy as np
import xarray as xr

EARTH_RADIUS_M = 6_371_008.8
M_PER_DEG = np.pi * EARTH_RADIUS_M / 180.0


def valid_mask(ds: xr.Dataset, coverage_min: float = 0.0) -> np.ndarray:
    """Valid cells of one overpass ``(lat, lon)``: finite NO2 and coverage > 0 and coverage >= ``coverage_min``."""
    valid = np.isfinite(ds["no2"].values)
    if "coverage" in ds:
        cov = np.nan_to_num(ds["coverage"].values, nan=0.0)
        valid &= (cov > 0) & (cov >= coverage_min)
    return valid


def cell_size_m(ds: xr.Dataset) -> tuple[float, float]:
    """Median cell size (north-south, east-west) in metres at the grid's mean latitude."""
    lat, lon = ds["lat"].values, ds["lon"].values
    dlat = float(np.median(np.diff(lat))) if lat.size > 1 else float(ds.attrs.get("resolution_deg", np.nan))
    dlon = float(np.median(np.diff(lon))) if lon.size > 1 else float(ds.attrs.get("resolution_deg", np.nan))
    coslat = float(np.cos(np.deg2rad(np.mean(lat))))
    return dlat * M_PER_DEG, dlon * M_PER_DEG * coslat


def resolution_ratio(ds: xr.Dataset, pixel_size_m: float, *, finer_ok: bool = False) -> float:
    """How far the grid's cells are from the model pixel: max over both axes of max(d/p, p/d) (1 = identical).
    ``finer_ok``: cells finer than the pixel count as 1 (``detect.resample=model_pixel`` averages them onto it)."""
    dy, dx = cell_size_m(ds)
    ratios = [
        max(d / pixel_size_m, 1.0 if finer_ok else pixel_size_m / d) for d in (dy, dx) if np.isfinite(d) and d > 0
    ]
    return max(ratios) if ratios else 1.0


def resolution_refusal(
    ds: xr.Dataset, pixel_size_m: float, max_ratio: float, *, resampled: bool, key: str
) -> str | None:
    """Why the grid is refused (one line naming ``<key>.max_resolution_ratio``), or None: its cells differ more than
    ``max_ratio`` from the model pixel; with ``resampled`` (``resample=model_pixel``) only coarser cells count, and
    without it a grid finer than the pixel is pointed to ``<key>.resample=model_pixel``."""
    ratio = resolution_ratio(ds, pixel_size_m, finer_ok=resampled)
    if ratio <= max_ratio:
        return None
    dy, dx = cell_size_m(ds)
    finer = not resampled and any(np.isfinite(d) and 0 < d < pixel_size_m for d in (dy, dx))
    return (
        f"grid cells {dy / 1e3:.1f} km x {dx / 1e3:.1f} km differ {ratio:.1f}x from the model pixel "
        f"{pixel_size_m / 1e3:.1f} km (limit {key}.max_resolution_ratio={max_ratio:g}); grid it at "
        f"~{pixel_size_m / M_PER_DEG:.2f} deg" + (f" or set {key}.resample=model_pixel" if finer else "")
    )


def cell_area_km2(ds: xr.Dataset) -> np.ndarray:
    """Area of each cell ``(lat, lon)`` on the sphere: R^2 * dlon * (sin(lat_n) - sin(lat_s)), i.e. ~ cos(lat)."""
    lat, lon = ds["lat"].values.astype(float), ds["lon"].values.astype(float)
    if "lat_bnds" in ds and "lon_bnds" in ds:
        lat_b, lon_b = ds["lat_bnds"].values.astype(float), ds["lon_bnds"].values.astype(float)
        lat_lo, lat_hi = lat_b.min(axis=1), lat_b.max(axis=1)
        dlon = np.abs(lon_b[:, 1] - lon_b[:, 0])
    else:
        lat_lo, lat_hi = _edges(lat)
        lon_lo, lon_hi = _edges(lon)
        dlon = lon_hi - lon_lo
    band = np.sin(np.deg2rad(lat_hi)) - np.sin(np.deg2rad(lat_lo))
    return (EARTH_RADIUS_M**2 * np.outer(band, np.deg2rad(dlon))) / 1e6


def _edges(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if c.size == 1:
        return c - 0.025, c + 0.025
    mid = 0.5 * (c[1:] + c[:-1])
    lo = np.concatenate([[c[0] - (mid[0] - c[0])], mid])
    hi = np.concatenate([mid, [c[-1] + (c[-1] - mid[-1])]])
    return lo, hi
