"""A tiny OSSE-like case with known truth, small enough to count by hand.

Ingest grid: 0.05 deg cells over lat 0..0.5, lon 0..0.75 (10 x 15), 3 overpasses -> evaluation grid 2 x 3 cells of
0.25 deg. Cell (row, col) = (iy, ix).

Sources (truth):            cell    NOx t/yr  CO2 t/yr  story
  S1 (0.125, 0.125)         (0,0)   6000      2.0e6     found by H1 (t1) and H2 (t2)
  S2 (0.125, 0.375)         (0,1)   6000      2.0e6     missed
  S3 (0.375, 0.625)         (1,2)   6000      2.0e6     cloud-covered on every overpass -> unobserved
  S4 (0.375, 0.125)         (1,0)   1000      0.5e6     missed, below the CO2 threshold
  S5 (10.0, 10.0)           -       3000      3.0e6     outside the grid: ignored by Table 2 / Fig. 10
Hotspots:
  H1 t1 (0.130, 0.140)  1.758 km from S1
  H2 t2 (0.125, 0.125)  on S1
  H3 t2 (0.450, 0.400)  false: nearest source S3 at 26.4 km
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from omegaconf import OmegaConf

from no2hotspots.config import compose

SOURCES = pd.DataFrame(
    {
        "id": ["S1", "S2", "S3", "S4", "S5"],
        "lat": [0.125, 0.125, 0.375, 0.375, 10.0],
        "lon": [0.125, 0.375, 0.625, 0.125, 10.0],
        "nox_t_per_yr": [6000.0, 6000.0, 6000.0, 1000.0, 3000.0],
        "co2_t_per_yr": [2.0e6, 2.0e6, 2.0e6, 0.5e6, 3.0e6],
    }
)
TIMES = pd.to_datetime(["2021-07-01T11:00:00", "2021-07-02T11:00:00", "2021-07-03T11:00:00"])
HOTSPOTS = pd.DataFrame(
    {
        "hotspot_id": [1, 2, 3],
        "time": ["2021-07-01T11:00:00Z", "2021-07-02T11:00:00Z", "2021-07-02T11:00:00Z"],
        "peak_lat": [0.130, 0.125, 0.450],
        "peak_lon": [0.140, 0.125, 0.400],
        "peak_rel_emission": [0.6, 0.7, 0.3],
        "sum_rel_emission": [1.2, 1.5, 0.4],
        "nox_rate_estimate_t_per_yr": [5000.0, 5800.0, 900.0],
        "area_km2": [60.0, 90.0, 30.0],
        "n_cells": [2, 3, 1],
        "obs_count": [3, 3, 3],
    }
)


def make_ingest(path):
    res = 0.05
    lat_e = np.round(np.arange(11) * res, 6)
    lon_e = np.round(np.arange(16) * res, 6)
    lat = 0.5 * (lat_e[:-1] + lat_e[1:])
    lon = 0.5 * (lon_e[:-1] + lon_e[1:])
    cov = np.ones((3, 10, 15))
    cov[:, 5:10, 10:15] = 0.0  # cell (1,2) (S3) cloud-covered on every overpass
    no2 = np.where(cov > 0, 3e-5, np.nan)
    obs = (cov > 0.75).sum(axis=0).astype("int32")
    ds = xr.Dataset(
        {
            "no2": (("time", "lat", "lon"), no2, {"units": "mol m-2"}),
            "coverage": (("time", "lat", "lon"), cov, {"units": "1"}),
            "obs_count": (("lat", "lon"), obs, {"units": "1"}),
            "no2_mean": (("lat", "lon"), no2[0], {"units": "mol m-2"}),
            "lat_bnds": (("lat", "bnds"), np.stack([lat_e[:-1], lat_e[1:]], 1)),
            "lon_bnds": (("lon", "bnds"), np.stack([lon_e[:-1], lon_e[1:]], 1)),
        },
        coords={"time": TIMES, "lat": lat, "lon": lon},
        attrs={"resolution_deg": res, "collection": "osse"},
    )
    ds.to_netcdf(path)
    return ds


@pytest.fixture
def case(tmp_path):
    """Writes the OSSE-like inputs under tmp_path and returns the composed config pointing at them."""
    out = tmp_path / "outputs"
    (out / "ingest").mkdir(parents=True)
    (out / "detect" / "osse").mkdir(parents=True)
    (out / "osse" / "truth").mkdir(parents=True)
    make_ingest(out / "ingest" / "osse.nc")
    HOTSPOTS.to_csv(out / "detect" / "osse" / "hotspots.csv", index=False)
    (out / "detect" / "osse" / "detect.json").write_text(
        json.dumps({"model_name": "m", "model_version": "1", "n_hotspots": 3})
    )
    SOURCES.to_csv(out / "osse" / "truth" / "sources.csv", index=False)
    cfg = compose(
        [
            f"paths.outputs={out}",
            f"paths.metrics={tmp_path}/metrics",
            f"paths.plots={tmp_path}/plots",
            f"paths.mlruns={tmp_path}/mlruns",
            "evaluate.collection=osse",
            "evaluate.log_to_mlflow=false",
            "evaluate.maps=false",
        ]
    )
    cfg.evaluate.collections.osse.regions = OmegaConf.create(
        {
            "west": {"lat_min": 0.0, "lat_max": 0.5, "lon_min": 0.0, "lon_max": 0.25},
            "east": {"lat_min": 0.0, "lat_max": 0.5, "lon_min": 0.25, "lon_max": 0.75},
        }
    )
    return cfg


@pytest.fixture
def truth_sources() -> pd.DataFrame:
    return SOURCES.copy()
