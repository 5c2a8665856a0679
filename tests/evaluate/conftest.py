"""A tiny OSSE-like collection with known truth, small enough to count by hand.

Collection grid: 0.05 deg cells over lat 0..0.5, lon 0..1.0 (10 x 20), 4 overpasses (t0..t3, one day apart)
-> evaluation grid 2 x 4 cells of 0.25 deg; cell (row, col) = (iy, ix). Cell (1,3) is under cloud on every overpass
(coverage 0, truth cloud fraction 1), everything else is covered.

Sources (truth):      cell   NOx t/yr CO2 t/yr  nearest other source
  S1 (0.125, 0.125)   (0,0)  6000     2.0e6     S2 40.6 km
  S2 (0.125, 0.490)   (0,1)  3000     0.5e6     S3 7.8 km
  S3 (0.125, 0.560)   (0,2)  1000     2.0e6     S2 7.8 km
  S4 (0.375, 0.875)   (1,3)  6000     2.0e6     under cloud on every overpass -> unobserved
  S5 (10.0, 10.0)     -      3000     3.0e6     outside the grid: ignored by Table 2 / Fig. 10
Hotspots:             cell   nearest source
  H1 t0 (0.130, 0.140) (0,0)  S1 1.76 km
  H2 t1 (0.125, 0.125) (0,0)  S1 0 km
  H3 t1 (0.125, 0.515) (0,2)  S2 2.78 km (S3 5.0 km): peak in S3's cell, nearest source S2 in cell (0,1)
  H4 t2 (0.375, 0.375) (1,1)  S2 27.9 km: a source-free cell next to source cells (the chance floor)
  H5 t3 (0.127, 0.142) (0,0)  S1 1.9 km; within 10 km of H1/H2 -> same site
"""

from __future__ import annotations

import copy
import shutil

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from no2hotspots.config import compose

from .helpers import overrides, write_collection

SOURCES = pd.DataFrame(
    {
        "id": ["S1", "S2", "S3", "S4", "S5"],
        "lat": [0.125, 0.125, 0.125, 0.375, 10.0],
        "lon": [0.125, 0.490, 0.560, 0.875, 10.0],
        "nox_t_per_yr": [6000.0, 3000.0, 1000.0, 6000.0, 3000.0],
        "co2_t_per_yr": [2.0e6, 0.5e6, 2.0e6, 2.0e6, 3.0e6],
    }
)
TIMES = pd.date_range("2021-07-01T11:00:00", periods=4, freq="D")
HOTSPOTS = pd.DataFrame(
    {
        "t": [0, 1, 1, 2, 3],
        "peak_lat": [0.130, 0.125, 0.125, 0.375, 0.127],
        "peak_lon": [0.140, 0.125, 0.515, 0.375, 0.142],
        "peak_rel_emission": [0.6, 0.7, 0.3, 0.25, 0.5],
        "nox_rate_estimate_t_per_yr": [5000.0, 5800.0, 2500.0, 900.0, 4000.0],
    }
)


def coverage_and_clouds():
    cov = np.ones((4, 10, 20))
    cov[:, 5:10, 15:20] = 0.0  # cell (1,3) (S4) under cloud on every overpass
    return cov, 1.0 - cov


def write_case(out):
    cov, clouds = coverage_and_clouds()
    write_collection(out, "osse", times=TIMES, coverage=cov, hotspots=HOTSPOTS, clouds=clouds)
    (out / "osse" / "truth").mkdir(parents=True, exist_ok=True)
    SOURCES.to_csv(out / "osse" / "truth" / "sources.csv", index=False)


def make_case(tmp_path, extra=()):
    """The case's files under tmp_path/outputs and the config for them."""
    write_case(tmp_path / "outputs")
    return case_config(tmp_path, extra)


def case_config(tmp_path, extra=()):
    cfg = compose([*overrides(tmp_path), *extra])
    cfg.evaluate.collections.osse.regions = OmegaConf.create(
        {
            "west": {"lat_min": 0.0, "lat_max": 0.5, "lon_min": 0.0, "lon_max": 0.25},
            "east": {"lat_min": 0.0, "lat_max": 0.5, "lon_min": 0.25, "lon_max": 1.0},
        }
    )
    return cfg


@pytest.fixture(scope="session")
def case_files(tmp_path_factory):
    """The case's files, written once per session (tests get copies)."""
    out = tmp_path_factory.mktemp("evaluate_case") / "outputs"
    write_case(out)
    return out


@pytest.fixture(scope="session")
def case_cfg(tmp_path_factory):
    """The case's config, composed once per session (tests get copies with their own paths)."""
    return case_config(tmp_path_factory.mktemp("evaluate_cfg"))


@pytest.fixture
def case(tmp_path, case_files, case_cfg):
    """A copy of the OSSE-like inputs under tmp_path and the config pointing at them."""
    shutil.copytree(case_files, tmp_path / "outputs")
    cfg = copy.deepcopy(case_cfg)
    for k, v in zip(("outputs", "metrics", "plots", "mlruns"), ("outputs", "metrics", "plots", "mlruns")):
        cfg.paths[k] = str(tmp_path / v)
    return cfg


@pytest.fixture
def truth_sources() -> pd.DataFrame:
    return SOURCES.copy()
