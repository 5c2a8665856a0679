"""Monthly series and the step-change test on a collection with a plant switched off half-way, counted by hand.

Grid 0.05 deg over lat 0..0.5, lon 0..0.5 (10 x 10), 24 overpasses: 4 per month, January to June 2019. Source A
(0.125, 0.125) is detected on every overpass of January-March and never after (its truth: change_date 2019-04-01,
change_factor 0); source B (0.375, 0.375) is detected on every overpass. The relative emission at A is 0.6 while it
runs and 0 after; at B always 0.5.
"""

import numpy as np
import pandas as pd
import pytest

from no2hotspots.config import compose
from no2hotspots.evaluate import timeseries
from no2hotspots.evaluate.run import run

from .helpers import overrides, write_collection

MONTHS = ["2019-01", "2019-02", "2019-03", "2019-04", "2019-05", "2019-06"]


def _times():
    return [pd.Timestamp(f"{m}-{d:02d}T05:30:00") for m in MONTHS for d in (3, 10, 17, 24)]


@pytest.fixture
def switched_off(tmp_path):
    times = _times()
    rows = []
    for t in range(len(times)):
        if t < 12:
            rows.append(
                {
                    "t": t,
                    "peak_lat": 0.125,
                    "peak_lon": 0.125,
                    "peak_rel_emission": 0.6,
                    "nox_rate_estimate_t_per_yr": 6000.0,
                }
            )
        rows.append(
            {
                "t": t,
                "peak_lat": 0.375,
                "peak_lon": 0.375,
                "peak_rel_emission": 0.5,
                "nox_rate_estimate_t_per_yr": 5000.0,
            }
        )
    out = tmp_path / "outputs"
    write_collection(out, "osse", times=times, coverage=np.ones((len(times), 10, 10)), hotspots=pd.DataFrame(rows))
    (out / "osse" / "truth").mkdir(parents=True)
    pd.DataFrame(
        {
            "id": ["A", "B"],
            "lat": [0.125, 0.375],
            "lon": [0.125, 0.375],
            "nox_t_per_yr": [6000.0, 5000.0],
            "co2_t_per_yr": [2e6, 2e6],
            "change_date": ["2019-04-01", ""],
            "change_factor": [0.0, np.nan],
        }
    ).to_csv(out / "osse" / "truth" / "sources.csv", index=False)
    return compose([*overrides(tmp_path), "evaluate.collections.osse.regions=null"])


def test_series_find_the_injected_step(switched_off, tmp_path):
    m = run(switched_off)["osse"]
    d = tmp_path / "outputs" / "evaluate" / "osse"
    series = pd.read_csv(d / "timeseries.csv")
    a = series[(series["kind"] == "source") & (series["id"] == "A")].set_index("period")
    assert list(a.index) == MONTHS
    assert a["n_valid"].tolist() == [4] * 6
    assert a["n_detections"].tolist() == [4, 4, 4, 0, 0, 0]
    assert a["detection_rate"].tolist() == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    np.testing.assert_allclose(a["mean_rel_emission"], [0.6, 0.6, 0.6, 0.0, 0.0, 0.0], atol=1e-6)
    assert a.loc["2019-01", "mean_nox_estimate_t_per_yr"] == 6000.0 and np.isnan(
        a.loc["2019-05", "mean_nox_estimate_t_per_yr"]
    )
    ch = pd.read_csv(d / "changes.csv", keep_default_na=False).set_index("id")
    assert (
        bool(ch.loc["A", "flagged"]) and ch.loc["A", "step_period"] == "2019-04" and ch.loc["A", "direction"] == "drop"
    )
    assert ch.loc["A", "injected"] and ch.loc["A", "change_found"]
    assert not ch.loc["B", "flagged"] and not ch.loc["B", "injected"]
    site_rows = ch[ch["kind"] == "site"]
    assert len(site_rows) == 2 and site_rows["flagged"].astype(bool).sum() == 1  # A's site drops, B's does not
    assert m["timeseries/injected_n"] == 1 and m["timeseries/injected_found"] == 1
    assert m["timeseries/flagged_unchanged_sources"] == 0 and m["timeseries/n_periods"] == 6


def test_a_step_in_the_wrong_month_is_not_found(switched_off, tmp_path):
    src = tmp_path / "outputs" / "osse" / "truth" / "sources.csv"
    pd.read_csv(src).assign(change_date=["2019-06-01", ""]).to_csv(src, index=False)  # truth says June
    m = run(switched_off)["osse"]
    assert m["timeseries/injected_n"] == 1 and m["timeseries/injected_found"] == 0  # the series steps in April


def test_step_scan_counts():
    # 3 periods of 10 valid observations: 9/10 detected, then 1/10 twice -> the step is at period 1
    r = timeseries.step_scan([9, 1, 1], [10, 10, 10], [0, 0, 0], [0, 0, 0], [0, 0, 0], min_valid=10)
    assert r["rate_step"] == 1 and r["rate_before"] == 0.9 and r["rate_after"] == 0.1
    assert r["rate_p"] < 1e-3 and r["rel_step"] == -1  # no relative emission: not tested
    flat = timeseries.step_scan([5, 5, 5], [10, 10, 10], [0, 0, 0], [0, 0, 0], [0, 0, 0], min_valid=10)
    assert flat["rate_p"] == pytest.approx(1.0)


def test_benjamini_hochberg():
    flags = timeseries.benjamini_hochberg(np.array([0.001, 0.02, np.nan, 0.04, 0.5]), alpha=0.05)
    # sorted tested p: 0.001 <= 0.0125, 0.02 <= 0.025, 0.04 > 0.0375 ... and 0.04 is not <= 0.0375
    assert flags.tolist() == [True, True, False, False, False]
