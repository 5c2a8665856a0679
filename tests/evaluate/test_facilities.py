"""Units of one plant scored as one facility (no2hotspots.evaluate.facilities)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from no2hotspots.evaluate import timeseries
from no2hotspots.evaluate.facilities import group_units
from no2hotspots.evaluate.geo import haversine_km
from no2hotspots.inventory.changes import injected_mask

KM_LAT = 1.0 / 111.195  # degrees of latitude per km


def _inv(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["id", "lat", "lon", "nox_t_per_yr", "co2_t_per_yr", "n_units"])


def test_units_within_the_distance_become_one_facility():
    inv = _inv(
        [
            ("a", 40.0, 116.0, 1000.0, 1.0e6, 2),
            ("far", 40.0 + 5 * KM_LAT, 116.0, 500.0, 4.0e5, 1),
            ("b", 40.0 + 0.3 * KM_LAT, 116.0, 3000.0, 2.0e6, 3),
        ]
    )
    out = group_units(inv, 1.0)
    assert list(out["id"]) == ["b", "far"]  # in the order of each facility's first unit, named by its strongest
    fac = out.set_index("id").loc["b"]
    assert fac["nox_t_per_yr"] == pytest.approx(4000.0) and fac["co2_t_per_yr"] == pytest.approx(3.0e6)
    assert fac["n_units"] == 5 and fac["unit_ids"] == "a;b"
    # at the NOx-weighted position: three quarters of the way from a to b
    assert fac["lat"] == pytest.approx(40.0 + 0.225 * KM_LAT, abs=1e-9) and fac["lon"] == pytest.approx(116.0)
    assert out.set_index("id").loc["far", "unit_ids"] == "far"
    assert len(group_units(inv, 0.2)) == 3  # 0.3 km apart: two facilities at 0.2 km
    assert group_units(inv, 0.0) is inv  # 0: off


def test_chains_link_and_changed_units_stay_alone():
    # a-b 0.8 km, b-c 0.8 km: single linkage puts all three in one facility (a-c is 1.6 km)
    inv = _inv(
        [
            ("a", 40.0, 116.0, 100.0, 1.0, 1),
            ("b", 40.0 + 0.8 * KM_LAT, 116.0, 100.0, 1.0, 1),
            ("c", 40.0 + 1.6 * KM_LAT, 116.0, 100.0, 1.0, 1),
        ]
    )
    assert float(haversine_km(40.0, 116.0, 40.0 + 1.6 * KM_LAT, 116.0)[()]) > 1.0
    out = group_units(inv, 1.0)
    assert len(out) == 1 and out.loc[0, "nox_t_per_yr"] == pytest.approx(300.0) and out.loc[0, "id"] == "a"
    # an injected change (OSSE truth) is a per-unit truth: that unit keeps its own row
    inv["change_date"] = ["", "2020-03-01", None]
    inv["change_factor"] = [np.nan, 0.0, np.nan]
    out = group_units(inv, 1.0)
    assert sorted(out["id"]) == ["a", "b", "c"]  # b alone; a and c are 1.6 km apart once b leaves the chain
    assert out.set_index("id").loc["b", "change_date"] == "2020-03-01"


@pytest.mark.parametrize(
    ("date", "factor", "alone"),
    [
        ("2020-03-01", 0.0, True),  # switched off on that day
        ("2020-03-01", 2.5, True),
        ("2020-03-01", 1.0, False),  # a factor of 1 changes nothing
        ("not a date", 0.0, False),  # what evaluate.timeseries would not test either
        ("2020-03-01", np.nan, False),
        ("", 0.0, False),
    ],
)
def test_only_an_injected_change_keeps_a_unit_alone(date, factor, alone):
    inv = _inv([("a", 40.0, 116.0, 100.0, 1.0, 1), ("b", 40.0 + 0.5 * KM_LAT, 116.0, 300.0, 1.0, 1)])
    inv["change_date"] = ["", date]
    inv["change_factor"] = [np.nan, factor]
    assert bool(injected_mask(inv)[1]) is alone
    out = group_units(inv, 1.0)
    assert sorted(out["id"]) == (["a", "b"] if alone else ["b"])
    # the time-series test calls the same rows changed
    changes = pd.DataFrame({"id": ["a", "b"], "flagged": False, "direction": "", "step_period": ""})
    assert timeseries.injected(changes, inv, ["2020-01"], "M", 1)["injected"].tolist() == [False, alone]


def test_missing_emissions_stay_missing_and_weights_fall_back():
    inv = _inv(
        [
            ("a", 40.0, 116.0, np.nan, 1.0e6, 1),
            ("b", 40.0 + 0.5 * KM_LAT, 116.0, np.nan, 3.0e6, 1),
        ]
    )
    out = group_units(inv, 1.0)
    assert len(out) == 1 and np.isnan(out.loc[0, "nox_t_per_yr"])  # a species not in the inventory stays NaN
    assert out.loc[0, "co2_t_per_yr"] == pytest.approx(4.0e6) and out.loc[0, "id"] == "b"
    assert out.loc[0, "lat"] == pytest.approx(40.0 + 0.375 * KM_LAT, abs=1e-9)  # CO2-weighted without NOx
