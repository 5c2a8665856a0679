"""Combination of overpass estimates, sites from hotspots, CO2 via the plant's CO2/NOx ratio, evaluation statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from no2hotspots.quantify.co2 import CO2Config, InventoryMatcher, co2_from_nox
from no2hotspots.quantify.evaluation import stats
from no2hotspots.quantify.period import DEFAULT_CORRELATION, combine, sites_from_hotspots


def test_independent_errors_shrink_correlated_ones_do_not():
    q = np.array([100.0, 100.0, 100.0, 100.0])
    comps = {"noise": np.full(4, 20.0), "lifetime": np.full(4, 10.0)}
    r = combine(q, comps, DEFAULT_CORRELATION)
    assert r["value"] == pytest.approx(100.0)
    assert r["parts"]["noise"] == pytest.approx(20.0 / 2)  # 1/sqrt(4)
    assert r["parts"]["lifetime"] == pytest.approx(10.0)  # the same assumption every day
    assert r["sigma"] == pytest.approx(np.hypot(10.0, 10.0))
    assert r["spread"] == pytest.approx(0.0)


def test_spread_dominates_when_estimates_scatter_more_than_stated():
    q = np.array([50.0, 150.0, 60.0, 140.0])
    r = combine(q, {"noise": np.full(4, 1.0)}, DEFAULT_CORRELATION)
    assert r["value"] == pytest.approx(100.0)
    assert r["spread"] == pytest.approx(np.std(q, ddof=1) / 2, rel=1e-9)
    assert r["sigma"] == pytest.approx(r["spread"])


def test_weights_follow_noise_not_the_estimate():
    """Weighting by the total (which scales with q) would pull the mean low; noise weights do not depend on q."""
    r = combine(np.array([50.0, 150.0]), {"noise": np.array([10.0, 10.0]), "wind_speed": np.array([10.0, 30.0])}, {})
    assert r["value"] == pytest.approx(100.0)
    assert combine(np.array([np.nan, 7.0]), {"noise": np.array([1.0, 1.0])}, {})["n_overpasses"] == 1


def test_an_unknown_component_takes_the_largest_relative_value_of_the_others_not_zero():
    """An overpass whose wind-direction term could not be computed (the estimate broke down at the direction +- its
    sigma) counted as 0 until the period combination filled it in: the period's direction part was too small."""
    q = np.array([100.0, 50.0, 200.0])
    comps = {"noise": np.full(3, 10.0), "wind_direction": np.array([10.0, 10.0, np.nan])}  # 10 % and 20 % known
    r = combine(q, comps, {})
    filled = np.array([10.0, 10.0, 0.2 * 200.0])
    assert r["parts"]["wind_direction"] == pytest.approx(np.sqrt(np.sum(filled**2)) / 3)
    assert r["n_unknown_left"] == 0
    alone = combine(q, {"noise": np.full(3, 10.0), "wind_direction": np.full(3, np.nan)}, {})
    assert alone["parts"]["wind_direction"] == 0.0 and alone["n_unknown_left"] == 3
    assert r["value"] == alone["value"] == pytest.approx(350.0 / 3)  # the weights do not depend on it


def test_an_estimate_without_noise_gets_the_least_weight_of_the_others_whatever_the_unit():
    """Small noise values (e.g. mol/s) once met a fill of at least 1.0 (nanmax's initial), so a missing noise
    weighed far less than the largest known one; it now weighs as the largest known one, in any unit."""
    for scale in (1.0, 1e-3, 1e3):
        q = np.array([1.0, 2.0, 4.0]) * scale
        r = combine(q, {"noise": np.array([0.1, 0.2, np.nan]) * scale}, {})
        w = np.array([100.0, 25.0, 25.0])
        assert r["value"] == pytest.approx(float(np.sum(w * q) / w.sum()), rel=1e-12)
    r = combine(np.array([1.0, 3.0]), {"noise": np.array([np.nan, 0.0])}, {})
    assert r["value"] == pytest.approx(2.0)  # no usable noise at all: equal weights


def test_sites_merge_hotspots_within_distance():
    h = pd.DataFrame(
        {
            "peak_lat": [40.0, 40.05, 41.0, 40.01],
            "peak_lon": [112.0, 112.0, 112.0, 112.01],
            "peak_rel_emission": [0.5, 0.9, 0.3, 0.2],
        }
    )
    sites, site_of = sites_from_hotspots(h, merge_km=10.0)
    assert len(sites) == 2
    assert list(site_of) == [1, 1, 2, 1]
    assert sites.iloc[0][["lat", "lon"]].tolist() == [40.05, 112.0]  # the strongest hotspot places the site
    assert sites["n_detections"].tolist() == [3, 1]


def test_co2_from_matched_plants_and_fuel_default():
    inv = pd.DataFrame(
        {
            "id": ["A", "B", "C"],
            "lat": [40.0, 40.05, 45.0],
            "lon": [112.0, 112.0, 112.0],
            "nox_t_per_yr": [10000.0, 5000.0, 2000.0],
            "co2_t_per_yr": [10e6, 8e6, 1e6],
            "fuel": ["coal", "coal", "natural gas"],
        }
    )
    m = InventoryMatcher(inv, CO2Config(match_km=10.0))
    r = m.ratio(40.02, 112.0)  # A and B within 10 km: summed
    assert r.ratio == pytest.approx(18e6 / 15000.0)
    assert r.nox_t_per_yr == 15000.0 and r.basis.startswith("matched")
    q, comp = co2_from_nox(12000.0, {"noise": 1200.0}, r)
    assert q == pytest.approx(12000.0 * 1200.0 / 1e6)
    assert comp["noise"] == pytest.approx(1200.0 * 1200.0 / 1e6)
    assert comp["co2_ratio"] == pytest.approx(q * 0.25)
    far = m.ratio(45.1, 112.0)  # 11 km from C: no match, but C's fuel picks the default
    assert far.basis == "fuel default: natural gas" and far.ratio == 830.0 and np.isnan(far.nox_t_per_yr)
    assert InventoryMatcher(None).ratio(0.0, 0.0).basis == "fuel default: unknown"


def test_a_matched_plant_without_co2_does_not_dilute_the_ratio():
    """Two plants within the match radius, one listing no CO2 (an inventory without that species): the CO2/NOx
    ratio is that of the plant listing both (before: 743 instead of 1189, CO2 37 % low); the truth the evaluation
    reads still sums every NOx listed there."""
    inv = pd.DataFrame(
        {
            "id": ["A", "B"],
            "lat": [-23.6688, -23.7050],
            "lon": [27.6108, 27.5638],
            "nox_t_per_yr": [19000.0, 11400.0],
            "co2_t_per_yr": [22.6e6, np.nan],
        }
    )
    r = InventoryMatcher(inv, CO2Config(match_km=10.0)).ratio(-23.69, 27.59)
    assert r.matched_ids == ["A", "B"] and r.basis == "matched: A B"
    assert r.ratio == pytest.approx(22.6e6 / 19000.0)
    assert r.nox_t_per_yr == pytest.approx(30400.0) and r.co2_t_per_yr == pytest.approx(22.6e6)
    only_nox = InventoryMatcher(inv.assign(co2_t_per_yr=np.nan), CO2Config(match_km=10.0)).ratio(-23.69, 27.59)
    assert only_nox.basis == "fuel default: unknown"


def test_stats_log_ratio_and_coverage():
    s = stats([110.0, 80.0, -5.0], [20.0, 10.0, 10.0], [100.0, 100.0, 100.0])
    assert s["n"] == 3 and s["n_nonpositive"] == 1
    assert s["median_abs_log_ratio"] == pytest.approx(np.median(np.abs(np.log([1.1, 0.8]))))
    assert s["coverage_68"] == pytest.approx(1 / 3)  # only 110 +- 20 covers 100
    assert s["share_within_factor_1_3"] == pytest.approx(1.0)
    assert s["median_rel_sigma"] == pytest.approx(np.median([20 / 110, 10 / 80, 10 / 5]))


def test_stats_median_rel_sigma_skips_undefined_ratios():
    """An estimate of 0 with sigma 0, or a NaN sigma, has no relative sigma; the others still give a median (one
    such estimate used to turn the whole median into NaN, written as null)."""
    s = stats([110.0, 0.0, 80.0, 90.0], [20.0, 0.0, np.nan, 9.0], [100.0, 100.0, 100.0, 100.0])
    assert s["median_rel_sigma"] == pytest.approx(np.median([20 / 110, 9 / 90]))
    assert stats([0.0], [0.0], [100.0])["median_rel_sigma"] is None


def test_truth_follows_injected_changes():
    """The OSSE truth lists injected changes (a plant x factor from a date): the truth at an overpass follows them."""
    from no2hotspots.quantify.co2 import nox_at

    sites = pd.DataFrame(
        {
            "id": ["A", "B"],
            "nox_t_per_yr": [6000.0, 4000.0],
            "change_date": ["2019-09-05", None],
            "change_factor": [0.0, np.nan],
        }
    )
    assert nox_at(sites, ["A", "B"], "2019-09-04T06:00") == 10000.0
    assert nox_at(sites, ["A", "B"], pd.Timestamp("2019-09-05T06:00", tz="UTC")) == 4000.0
    assert nox_at(sites.drop(columns=["change_date", "change_factor"]), ["A"], "2019-09-09") == 6000.0
    assert np.isnan(nox_at(None, ["A"], "2019-09-09")) and np.isnan(nox_at(sites, [], "2019-09-09"))


def test_sites_merge_as_a_kd_tree_per_hotspot_did():
    """The greedy merge keeps one array of site positions instead of building a KD-tree per hotspot (7 s for the
    demo year's 7219 hotspots): the same sites and assignments on grid-snapped hotspots, where equal distances
    abound."""
    from no2hotspots.evaluate.geo import PointIndex

    rng = np.random.default_rng(3)
    n = 600
    cells = rng.integers(0, 30, (2, n))
    h = pd.DataFrame({"peak_lat": 40.0 + 0.05 * cells[0], "peak_lon": 112.0 + 0.05 * cells[1],
                      "peak_rel_emission": rng.choice([0.1, 0.2, 0.5], n)})  # fmt: skip
    order = np.argsort(-h["peak_rel_emission"].to_numpy(), kind="stable")
    lat, lon = h["peak_lat"].to_numpy(), h["peak_lon"].to_numpy()
    site_of, slat, slon = np.full(n, -1), [], []
    for i in order:  # the earlier code
        if slat:
            j, d = PointIndex(slat, slon).nearest(lat[i], lon[i])
            if d[0] <= 10.0:
                site_of[i] = j[0]
                continue
        slat.append(lat[i])
        slon.append(lon[i])
        site_of[i] = len(slat) - 1
    sites, new_of = sites_from_hotspots(h, merge_km=10.0)
    assert list(new_of) == list(site_of + 1)
    assert sites["lat"].tolist() == slat and sites["lon"].tolist() == slon and len(sites) > 10


def test_a_component_that_could_not_be_computed_is_flagged_not_hidden():
    """sigma_total leaves a NaN component out (it cannot be added), so the row says which one: the total is then a
    lower bound; an estimate with every component known carries no such flag."""
    import numpy as np

    from no2hotspots.quantify.co2 import Ratio
    from no2hotspots.quantify.estimate import Estimate
    from no2hotspots.quantify.overpass import estimate_rows

    ratio = Ratio(1000.0, 0.3, "fuel default: coal", [], float("nan"), float("nan"))
    known = Estimate("csf", 10.0, {"noise": 3.0, "wind_direction": 4.0}, [])
    unknown = Estimate("csf", 10.0, {"noise": 3.0, "wind_direction": float("nan")}, ["low_snr"])
    rows = estimate_rows([known, unknown, Estimate.failed("csf", "low_wind")], {}, ratio)
    assert rows[0]["nox_sigma_t_per_yr"] == 5.0 and rows[0]["quality_flags"] == ""
    assert rows[1]["nox_sigma_t_per_yr"] == 3.0
    assert rows[1]["quality_flags"] == "low_snr unknown_sigma_wind_direction"
    assert unknown.unknown_sigma == ["wind_direction"] and known.unknown_sigma == []
    assert rows[2]["quality_flags"] == "low_wind" and np.isnan(rows[2]["nox_sigma_t_per_yr"])


def test_the_period_row_counts_the_overpasses_with_an_unknown_component():
    import numpy as np
    import pandas as pd

    from no2hotspots.quantify.co2 import Ratio
    from no2hotspots.quantify.overpass import SIGMA_COMPONENTS
    from no2hotspots.quantify.period import PeriodConfig
    from no2hotspots.quantify.run import period_table

    n = 4
    est = pd.DataFrame(
        {
            "site_id": 1,
            "method": "csf",
            "nox_t_per_yr": [10.0, 12.0, np.nan, 11.0],
            "inventory_nox_t_per_yr": np.nan,
            "detected": True,
            "upwind_sources": [0.0, 2.0, 1.0, np.nan],  # the third has no estimate, the fourth no direction
            **{f"nox_sigma_{c}_t_per_yr": np.ones(n) for c in SIGMA_COMPONENTS},
        }
    )
    est.loc[1, "nox_sigma_wind_direction_t_per_yr"] = np.nan  # used, unknown
    est.loc[2, "nox_sigma_wind_direction_t_per_yr"] = np.nan  # no estimate: not counted
    sites = pd.DataFrame({"site_id": [1], "lat": [0.0], "lon": [0.0], "n_detections": [3]})
    ratio = Ratio(1000.0, 0.3, "fuel default: coal", [], float("nan"), float("nan"))
    per = period_table(est, sites, {1: ratio}, {"period": PeriodConfig()})
    assert per["n_overpasses"].tolist() == [3] and per["n_overpasses_unknown_sigma"].tolist() == [1]
    assert per["n_overpasses_upwind_sources"].tolist() == [1]
    assert per["nox_sigma_lower_bound"].tolist() == [False]  # the others give the component: filled in
    est["nox_sigma_wind_direction_t_per_yr"] = np.nan  # no estimate gives it: 0, and the row says so
    per = period_table(est, sites, {1: ratio}, {"period": PeriodConfig()})
    assert per["nox_sigma_lower_bound"].tolist() == [True] and per["n_overpasses_unknown_sigma"].tolist() == [3]
    assert per["nox_sigma_wind_direction_t_per_yr"].tolist() == [0.0]


def test_a_fixed_offset_seen_along_each_wind_is_correlated_as_the_cosine_between_winds():
    """along_wind_variance: one fixed offset projected on each overpass's wind. Winds from one side: the errors add
    (fully correlated); from opposite sides: they cancel; at right angles: they add in quadrature; an overpass without
    a direction adds in full; combine uses it for the position term by default (correlation.position)."""
    from no2hotspots.quantify.period import ALONG_WIND, along_wind_variance

    w = np.array([3.0, 4.0])
    assert along_wind_variance(w, np.array([90.0, 90.0])) == pytest.approx(49.0)
    assert along_wind_variance(w, np.array([90.0, 270.0])) == pytest.approx(1.0)
    assert along_wind_variance(w, np.array([0.0, 90.0])) == pytest.approx(25.0)
    assert along_wind_variance(w, np.array([0.0, np.nan])) == pytest.approx(49.0)
    assert along_wind_variance(w, None) == pytest.approx(49.0)
    assert DEFAULT_CORRELATION["position"] == ALONG_WIND
    q = np.array([100.0, 100.0])
    comps = {"noise": np.array([10.0, 10.0]), "position": np.array([20.0, 20.0])}
    same = combine(q, comps, DEFAULT_CORRELATION, np.array([10.0, 10.0]))
    opposite = combine(q, comps, DEFAULT_CORRELATION, np.array([10.0, 190.0]))
    assert same["parts"]["position"] == pytest.approx(20.0) and opposite["parts"]["position"] == pytest.approx(0.0)
    assert combine(q, comps, DEFAULT_CORRELATION)["parts"]["position"] == pytest.approx(20.0)  # no directions given
