"""The OSSE-like case of conftest.py, counted by hand."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from no2hotspots.evaluate import overlap
from no2hotspots.evaluate.run import run

KM_PER_DEG = 6371.0088 * math.pi / 180  # great-circle km per degree


def test_table2_unobserved_is_not_missed(case, tmp_path):
    m = run(case)["osse"]
    t2 = pd.read_csv(tmp_path / "outputs" / "evaluate" / "osse" / "table2.csv")
    assert t2["bin"].tolist() == ["gt5000", "4000_5000", "2000_4000", "lt2000", "all"]  # the paper's order
    gt = t2.set_index("bin").loc["gt5000"]
    # S1 found, S2 missed, S3 cloud-covered on every overpass -> unobserved, not missed
    assert (gt.n_total, gt.n_observed, gt.n_unobserved, gt.n_found, gt.n_missed) == (3, 2, 1, 1, 1)
    assert gt.rate == 0.5
    lt = t2.set_index("bin").loc["lt2000"]
    assert (lt.n_observed, lt.n_found) == (1, 0) and lt.rate == 0.0
    assert t2.set_index("bin").loc["4000_5000"].n_total == 0
    assert math.isnan(t2.set_index("bin").loc["4000_5000"].rate)
    assert m["table2_rate_gt5000"] == 0.5 and m["table2_found_gt5000"] == 1 and m["table2_total_gt5000"] == 2
    assert m["table2_unobserved_gt5000"] == 1 and m["table2_rate_4000_5000"] is None
    assert m["n_cells_inventory"] == 4 and m["n_cells_observed"] == 3


def test_co2_overlap_and_regions(case, tmp_path):
    m = run(case)["osse"]
    d = tmp_path / "outputs" / "evaluate" / "osse"
    per_source = pd.read_csv(d / "co2_overlap.csv").set_index("id")
    # >= 100 kt/month = 1.2 Mt/yr: S1, S2, S3 (S4 too small, S5 outside the grid)
    assert sorted(per_source.index) == ["S1", "S2", "S3"]
    assert per_source.loc["S1", "matched"] and not per_source.loc["S2", "matched"]
    assert not per_source.loc["S3", "observed"]
    assert (m["co2_overlap_n"], m["co2_overlap_total"], m["co2_overlap_unobserved"]) == (1, 2, 1)
    assert m["co2_overlap_pct"] == 50.0
    reg = pd.read_csv(d / "co2_overlap_by_region.csv").set_index("region")
    assert reg.loc["west", "pct_matched"] == 100.0 and reg.loc["west", "n_observed"] == 1
    assert reg.loc["east", "pct_matched"] == 0.0 and reg.loc["east", "n_unobserved"] == 1
    assert m["co2_overlap_pct_west"] == 100.0 and m["co2_overlap_pct_east"] == 0.0


def test_precision_and_localisation(case, tmp_path):
    m = run(case)["osse"]
    d = tmp_path / "outputs" / "evaluate" / "osse"
    # H1, H2 within 10 km of S1; H3 is 26 km from the nearest source (S3)
    assert m["hotspot_precision"] == pytest.approx(2 / 3)
    # H1 and H2 merge into one site (1.76 km apart), H3 is its own site
    assert m["n_hotspot_sites"] == 2 and m["site_precision"] == 0.5
    h1 = KM_PER_DEG * math.hypot(0.005, 0.015 * math.cos(math.radians(0.1275)))
    h3 = KM_PER_DEG * math.hypot(0.075, 0.225 * math.cos(math.radians(0.4125)))
    det = pd.read_csv(d / "hotspots_matched.csv").set_index("hotspot_id")
    assert det.loc[1, "nearest_source_km"] == pytest.approx(h1, rel=1e-3)
    assert det.loc[2, "nearest_source_km"] == pytest.approx(0.0, abs=1e-6)
    assert det.loc[3, "nearest_source_id"] == "S3" and det.loc[3, "nearest_source_km"] == pytest.approx(h3, rel=1e-3)
    assert m["loc_error_km_median"] == pytest.approx(h1, rel=1e-3)  # median of {0, 1.76, 26.4}
    assert m["loc_error_km_median_matched"] == pytest.approx(h1 / 2, rel=1e-3)
    loc = pd.read_csv(d / "localisation.csv").set_index("subset")
    assert loc.loc["all", "n"] == 3 and loc.loc["matched", "n"] == 2


def test_recall_curves(case, tmp_path):
    run(case)
    d = tmp_path / "outputs" / "evaluate" / "osse"
    em = pd.read_csv(d / "recall_by_emission.csv").set_index("bin")
    assert (em.loc["4000_8000", "n_observed"], em.loc["4000_8000", "n_found"]) == (2, 1)  # S1, S2 (S3 unobserved)
    assert em.loc["4000_8000", "n_unobserved"] == 1
    assert (em.loc["1000_2000", "n_observed"], em.loc["1000_2000", "n_found"]) == (1, 0)  # S4
    ob = pd.read_csv(d / "recall_by_obs.csv").set_index("bin")
    assert (ob.loc["lt1", "n_total"], ob.loc["lt1", "n_found"]) == (1, 0)  # S3, 0 observations
    assert (ob.loc["2_5", "n_total"], ob.loc["2_5", "n_found"]) == (3, 1)  # S1, S2, S4: 3 each


def test_outputs_written(case, tmp_path):
    case.evaluate.maps = True
    run(case)
    d = tmp_path / "outputs" / "evaluate" / "osse"
    for f in (
        "table2.csv",
        "co2_overlap.csv",
        "co2_overlap_by_region.csv",
        "precision.csv",
        "localisation.csv",
        "recall_by_emission.csv",
        "recall_by_obs.csv",
        "hotspot_sites.csv",
        "map_no2_mean.png",
        "map_obs_count.png",
        "map_hotspots.png",
    ):
        assert (d / f).stat().st_size > 0, f
    metrics = json.loads((tmp_path / "metrics" / "evaluate_osse.json").read_text())
    assert metrics["n_hotspots"] == 3 and metrics["table2_rate_gt5000"] == 0.5
    assert all(v is None or isinstance(v, (int, float)) for v in metrics.values())  # flat, DVC-readable
    plot = pd.read_csv(tmp_path / "plots" / "evaluate" / "osse_table2.csv")
    assert plot["bin"].iloc[0] == "gt5000" and plot["rate"].iloc[0] == 0.5
    assert not [p for p in d.parent.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_min_detections_counts_distinct_overpasses(case):
    case.evaluate.min_detections = 2  # S1 is seen on t1 and t2 -> still found
    assert run(case)["osse"]["table2_rate_gt5000"] == 0.5
    case.evaluate.min_detections = 3
    assert run(case)["osse"]["table2_rate_gt5000"] == 0.0


def test_min_observations_turns_cells_unobserved(case):
    case.evaluate.min_observations = 4  # only 3 overpasses -> nothing observed, nothing missed
    m = run(case)["osse"]
    assert m["table2_total_gt5000"] == 0 and m["table2_unobserved_gt5000"] == 3 and m["table2_rate_gt5000"] is None


def test_distance_mode_matches_near_the_cell():
    edges = np.array([0.0, 0.25, 0.5])
    cells = pd.DataFrame({"iy": [0], "ix": [0]})
    # a peak 0.05 deg east of the cell's east edge: ~5.56 km away
    hs = pd.DataFrame({"peak_lat": [0.125], "peak_lon": [0.30], "time": pd.to_datetime(["2021-01-01"])})
    kw = dict(lat_edges=edges, lon_edges=edges)
    assert overlap.match_cells(cells, hs, mode="cell", distance_km=0, **kw).tolist() == [0]
    assert overlap.match_cells(cells, hs, mode="distance", distance_km=6.0, **kw).tolist() == [1]
    assert overlap.match_cells(cells, hs, mode="distance", distance_km=5.0, **kw).tolist() == [0]
    pts = pd.DataFrame({"lat": [0.125], "lon": [0.25]})  # 0.05 deg from the peak
    assert overlap.match_points(pts, hs, mode="distance", distance_km=5.0, **kw).tolist() == [0]
    assert overlap.match_points(pts, hs, mode="distance", distance_km=6.0, **kw).tolist() == [1]
