"""Synthetic plumes with a known rate and wind, on a lat/lon grid like the ingest grid, and a quantify config.

The plume is the training simulator's own physics (``no2hotspots.simulate.physics.column_point``: a steady Gaussian
column plume with Briggs widths and first-order loss), averaged over 7 x 7 sub-samples of each 0.05 deg cell, on a
background with a gradient. Rates are NO2 in mol/s (what the estimators return before the NOx conversion).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from omegaconf import OmegaConf

from no2hotspots.config import CONF_DIR, compose
from no2hotspots.quantify.scene import EARTH_RADIUS_M
from no2hotspots.simulate.physics import column_point

LAT0, LON0 = 40.0, 112.0
RES = 0.05


def grid_axes(lat0=LAT0, lon0=LON0, half_deg=1.0, res=RES):
    lat = np.round(np.arange(lat0 - half_deg + res / 2, lat0 + half_deg, res), 6)
    lon = np.round(np.arange(lon0 - half_deg + res / 2, lon0 + half_deg, res), 6)
    return lat, lon


def plume_columns(
    q_mol_s,
    speed,
    direction_from,
    tau_s,
    *,
    lat,
    lon,
    src_lat=LAT0,
    src_lon=LON0,
    sub=7,
    stability=3,
    sigma0=2000.0,
    ramp=None,
):
    """Cell-averaged plume column [mol m-2] on the grid (lat, lon) for a source at (src_lat, src_lon); ``ramp``: a
    :class:`~no2hotspots.quantify.estimate.Ramp` whose share at the plume's age s / U scales it (the near-source
    NO -> NO2 conversion), as the OSSE renders it."""
    res_lat = float(np.median(np.diff(lat)))
    res_lon = float(np.median(np.diff(lon)))
    off = (np.arange(sub) + 0.5) / sub - 0.5
    la = lat[:, None, None, None] + off[None, None, :, None] * res_lat
    lo = lon[None, :, None, None] + off[None, None, None, :] * res_lon
    x = EARTH_RADIUS_M * np.radians(lo - src_lon) * np.cos(np.radians(la))
    y = EARTH_RADIUS_M * np.radians(la - src_lat)
    phi = np.radians(direction_from)
    ex, ey = -np.sin(phi), -np.cos(phi)
    s = x * ex + y * ey
    t = -x * ey + y * ex
    c = column_point(s, t, q_mol_s, speed, tau_s, stability, sigma0)
    if ramp is not None:
        c = c * ramp.share(np.maximum(s, 0.0) / speed)
    return c.mean(axis=(2, 3))


def background(lat, lon, level=2.0e-5):
    """A sloped background (about 2 % per 100 km) so a constant background is not assumed anywhere."""
    x = EARTH_RADIUS_M * np.radians(lon[None, :] - LON0) * np.cos(np.radians(lat[:, None])) / 1e3
    y = EARTH_RADIUS_M * np.radians(lat[:, None] - LAT0) / 1e3
    return level + 4e-9 * x + 2e-9 * y


@pytest.fixture
def synthetic_plume():
    """``make(q, speed, direction_from, tau_s, noise=0.0, seed=0, ramp=None) -> (lat, lon, no2, precision)``."""

    def make(q, speed, direction_from, tau_s, noise=0.0, seed=0, half_deg=1.0, ramp=None):
        lat, lon = grid_axes(half_deg=half_deg)
        c = plume_columns(q, speed, direction_from, tau_s, lat=lat, lon=lon, ramp=ramp) + background(lat, lon)
        if noise > 0:
            c = c + np.random.default_rng(seed).normal(0.0, noise, c.shape)
        prec = np.full(c.shape, noise if noise > 0 else 1e-6)
        return lat, lon, c, prec

    return make


def write_ingest_grid(path: Path, lat, lon, times, no2_stack, prec_stack) -> None:
    """An ingest grid in the contract layout (docs/contracts.md, Gridded TROPOMI)."""
    no2 = np.asarray(no2_stack, dtype=np.float32)
    cov = np.where(np.isfinite(no2), 1.0, 0.0).astype(np.float32)
    ds = xr.Dataset(
        {
            "no2": (("time", "lat", "lon"), no2, {"units": "mol m-2"}),
            "no2_precision": (("time", "lat", "lon"), np.asarray(prec_stack, np.float32), {"units": "mol m-2"}),
            "coverage": (("time", "lat", "lon"), cov, {"units": "1"}),
            "obs_count": (("lat", "lon"), (cov > 0.75).sum(axis=0).astype("int32")),
        },
        coords={"time": pd.to_datetime(times).values, "lat": lat, "lon": lon},
        attrs={"resolution_deg": RES, "collection": path.stem},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path)


def write_simple_winds(path: Path, times, u, v, lat=(38.0, 42.0), lon=(110.0, 114.0), units="m s-1") -> None:
    """A wind file in the simple layout the OSSE writes: u, v (time, latitude, longitude), spatially uniform."""
    t = pd.to_datetime(times).values
    shape = (len(t), len(lat), len(lon))
    ds = xr.Dataset(
        {
            "u": (("time", "latitude", "longitude"), np.broadcast_to(np.asarray(u, float)[:, None, None], shape).copy(),
                  {"units": units}),
            "v": (("time", "latitude", "longitude"), np.broadcast_to(np.asarray(v, float)[:, None, None], shape).copy(),
                  {"units": units}),
        },
        coords={"time": t, "latitude": list(lat), "longitude": list(lon)},
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path)


def quantify_cfg(overrides: dict) -> OmegaConf:
    """The composed config with the quantify group (added from conf/quantify/default.yaml if config.yaml lacks it)
    and dotted overrides applied."""
    cfg = compose()
    OmegaConf.set_struct(cfg, False)
    if "quantify" not in cfg:
        cfg.quantify = OmegaConf.load(Path(CONF_DIR) / "quantify" / "default.yaml")
    if "quantify.units_dir" not in overrides:  # no resume cache unless a test asks (never the workspace's outputs/)
        overrides = {**overrides, "quantify.units_dir": None}
    for k, v in overrides.items():
        OmegaConf.update(cfg, k, v, merge=False)
    return cfg


@pytest.fixture
def qhelp():
    """The helpers above, for tests (grid axes, plume columns, file writers, config)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        grid_axes=grid_axes,
        plume_columns=plume_columns,
        background=background,
        write_ingest_grid=write_ingest_grid,
        write_simple_winds=write_simple_winds,
        quantify_cfg=quantify_cfg,
        LAT0=LAT0,
        LON0=LON0,
    )
