"""The gridded-TROPOMI suite on a small good grid and on broken ones."""

from __future__ import annotations

import json

import numpy as np
import pytest

from no2hotspots.errors import ValidationFailed
from no2hotspots.validate.grid import validate_grid

from .sample_data import make_grid


def test_good_grid_passes(tmp_path, cfg_validate, gx_warm):
    res = validate_grid(make_grid(), tmp_path / "grid.json", cfg_validate)
    assert res.success and len(res.outcomes) >= 15
    assert json.loads((tmp_path / "grid.json").read_text())["success"] is True


def _break(ds, what):
    ds = ds.copy(deep=True)
    if "coverage" in what:
        ds["coverage"].values[1, 3, 3] = 1.2
    if "nan" in what:
        ds["coverage"].values[0, 4, 4] = 0.5
        ds["no2"].values[0, 4, 4] = np.nan
    if "bounds" in what:
        ds["no2"].values[2, 5, 5] = 2e-2
    if "lat" in what:
        ds = ds.isel(lat=slice(None, None, -1))
    if "obs" in what:
        obs = ds["obs_count"].values.astype(float)
        obs[obs > 0] += 0.5
        ds["obs_count"] = (("lat", "lon"), obs)
    return ds


@pytest.mark.parametrize(
    "what, expected",
    [
        (
            ("coverage", "nan", "bounds"),
            [
                "expect_column_values_to_be_between(coverage_max <= 1)",
                "expect_column_values_to_be_between(n_no2_nonfinite_covered == 0)",
                "expect_column_values_to_be_between(no2_max <= 0.005)",
            ],
        ),
        (
            ("lat", "obs"),
            [
                "expect_column_values_to_be_in_set(lat_ascending in {True})",
                "expect_column_values_to_be_in_set(obs_count_integer in {True})",
            ],
        ),
    ],
)
def test_bad_grid_fails_naming_expectations(tmp_path, cfg_validate, gx_warm, what, expected):
    with pytest.raises(ValidationFailed) as ei:
        validate_grid(_break(make_grid(), what), tmp_path / "grid.json", cfg_validate)
    msg = str(ei.value)
    assert "\n" not in msg and all(e in msg for e in expected), msg
    doc = json.loads((tmp_path / "grid.json").read_text())
    assert len(doc["failed"]) == len(expected), doc["failed"]  # each break trips exactly its own expectation
    assert all(e in (tmp_path / "grid.md").read_text() for e in expected)
