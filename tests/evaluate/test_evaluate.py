"""The OSSE-like case of conftest.py, counted by hand (see its docstring for the story)."""

import hashlib
import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from no2hotspots.errors import ConfigError
from no2hotspots.evaluate import overlap
from no2hotspots.evaluate.run import run
from no2hotspots.inventory.gridding import aggregate_obs_count

from .conftest import SOURCES, coverage_and_clouds

KM_PER_DEG = 6371.0088 * math.pi / 180  # great-circle km per degree


def _digests(root) -> dict[str, str]:
    """SHA-256 of every file under ``root``."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file()}  # fmt: skip


def _out(tmp_path, *parts):
    return tmp_path.joinpath("outputs", "evaluate", "osse", *parts)


def test_table2_cell_rule_and_strict_rule(case, tmp_path):
    m = run(case)["osse"]
    t2 = pd.read_csv(_out(tmp_path, "model", "table2.csv")).set_index("bin")
    assert list(t2.index) == ["gt5000", "4000_5000", "2000_4000", "lt2000", "all"]  # the paper's order
    gt = t2.loc["gt5000"]
    # S1 found, S4 under cloud on every overpass -> unobserved, not missed
    assert (gt.n_total, gt.n_observed, gt.n_unobserved, gt.n_found, gt.n_missed) == (2, 1, 1, 1, 0)
    assert (t2.loc["2000_4000", "n_observed"], t2.loc["2000_4000", "n_found"]) == (1, 0)  # S2's cell: no peak in it
    assert (t2.loc["lt2000", "n_observed"], t2.loc["lt2000", "n_found"]) == (1, 1)  # S3's cell holds H3's peak
    assert math.isnan(t2.loc["4000_5000", "rate"])
    strict = pd.read_csv(_out(tmp_path, "model", "table2_strict.csv")).set_index("bin")
    # H3's nearest source is S2, in another cell: the strict rule does not credit S3's cell
    assert strict.loc["lt2000", "n_found"] == 0 and strict.loc["gt5000", "n_found"] == 1
    assert m["model/table2_rate_all"] == pytest.approx(2 / 3) and m["model/table2_strict_rate_all"] == pytest.approx(
        1 / 3
    )
    assert m["model/table2_rate_lt2000"] == 1.0 and m["model/table2_strict_rate_lt2000"] == 0.0
    assert m["model/table2_unobserved_gt5000"] == 1 and m["model/table2_rate_4000_5000"] is None
    side = pd.read_csv(_out(tmp_path, "table2_side_by_side.csv")).set_index("bin")
    assert side.loc["gt5000", "paper_pct"] == 89.0 and side.loc["lt2000", "model_pct"] == 100.0
    assert side.loc["lt2000", "model_strict_pct"] == 0.0 and side.loc["chance_floor", "model_pct"] == 25.0


def test_chance_floor(case, tmp_path):
    m = run(case)["osse"]
    floor = pd.read_csv(_out(tmp_path, "model", "chance_floor.csv"))
    # source cells (0,0) (0,1) (0,2) (1,3); source-free neighbours (0,3) (1,0) (1,1) (1,2), all observed;
    # only (1,1) holds a peak (H4)
    assert sorted(zip(floor["iy"], floor["ix"])) == [(0, 3), (1, 0), (1, 1), (1, 2)]
    assert floor.set_index(["iy", "ix"]).loc[(1, 1), "found"] and floor["found"].sum() == 1
    assert m["model/chance_floor"] == 0.25 and m["model/chance_floor_total"] == 4
    assert m["model/lowest_bin_over_chance"] == 4.0  # < 2000 bin 1/1 over the floor 1/4
    assert m["model/lowest_bin_strict_over_chance"] == 0.0  # strict: H3's nearest source lies in another cell


def test_neighbour_cells_4_and_8():
    src = np.zeros((3, 3), bool)
    src[1, 1] = True
    assert len(overlap.neighbour_cells(src, 8)) == 8
    four = overlap.neighbour_cells(src, 4)
    assert sorted(zip(four["iy"], four["ix"])) == [(0, 1), (1, 0), (1, 2), (2, 1)]


def test_sites_and_precision(case, tmp_path):
    m = run(case)["osse"]
    # H1, H2, H5 merge into one site on S1; H3 is a site 2.8 km from S2; H4 has no source within 10 km
    assert m["model/n_sites"] == 3 and m["model/site_precision"] == pytest.approx(2 / 3)
    assert m["model/hotspot_precision"] == pytest.approx(4 / 5)
    sites = pd.read_csv(_out(tmp_path, "model", "hotspot_sites.csv"))
    assert sorted(sites["n_overpasses"]) == [1, 1, 3]
    det = pd.read_csv(_out(tmp_path, "model", "hotspots_matched.csv")).set_index("hotspot_id")
    h1 = KM_PER_DEG * math.hypot(0.005, 0.015 * math.cos(math.radians(0.1275)))
    assert det.loc[1, "nearest_source_km"] == pytest.approx(h1, rel=1e-3)
    assert det.loc[3, "nearest_source_id"] == "S2"
    assert det.loc[1, "time"] == "2021-07-01T11:00:00Z"


def test_site_merging_follows_merge_distance(case):
    case.evaluate.merge_distance_km = 1.0  # H1-H5 are 0.4 km apart, H1-H2 1.8 km: sites {H1,H5} {H2} {H3} {H4}
    m = run(case)["osse"]
    assert m["model/n_sites"] == 4 and m["model/site_precision"] == 0.75


def test_per_source_rules(case, tmp_path):
    m = run(case)["osse"]
    src = pd.read_csv(_out(tmp_path, "model", "sources.csv")).set_index("id")
    found = {r: sorted(src.index[src[f"found_{r}"]]) for r in ("cell", "strict", "distance", "nearest")}
    assert found == {
        "cell": ["S1", "S3"],  # H3's peak lies in S3's cell
        "strict": ["S1"],  # ... but its nearest source is S2
        "distance": ["S1", "S2", "S3"],  # H3 is within 10 km of both S2 and S3
        "nearest": ["S1", "S2"],  # one hotspot credits one source
    }
    assert src.loc["S2", "nn_km"] == pytest.approx(KM_PER_DEG * 0.07 * math.cos(math.radians(0.125)), rel=1e-3)
    nn = pd.read_csv(_out(tmp_path, "model", "recall_by_neighbour.csv")).set_index("bin")
    row = nn.loc["5.5_11"]  # S2 and S3, 7.8 km apart
    assert (row.n_observed, row.rate_cell, row.rate_strict, row.rate_distance, row.rate_nearest) == (2, 0.5, 0, 1, 0.5)
    assert nn.loc["33_55", "n_observed"] == 1 and nn.loc["33_55", "rate_nearest"] == 1.0  # S1 (S4 unobserved)
    by_obs = pd.read_csv(_out(tmp_path, "model", "recall_by_obs.csv")).set_index("bin").loc["all"]
    assert (by_obs.n_total, by_obs.n_observed, by_obs.n_unobserved) == (4, 3, 1)  # S4's cell has no valid overpass
    assert m["model/recall_nn_5.5_11km"] == 0.5  # evaluate.source_rule = nearest
    assert m["model/source_recall_strict"] == pytest.approx(1 / 3)


def test_co2_overlap_and_regions(case, tmp_path):
    m = run(case)["osse"]
    strong = pd.read_csv(_out(tmp_path, "model", "co2_overlap.csv")).set_index("id")
    assert sorted(strong.index) == ["S1", "S3", "S4"]  # >= 1.2 Mt/yr inside the grid
    assert (m["model/co2_overlap_n"], m["model/co2_overlap_total"], m["model/co2_overlap_unobserved"]) == (2, 2, 1)
    assert m["model/co2_overlap_pct"] == 100.0 and m["model/co2_overlap_strict_pct"] == 50.0
    assert m["model/co2_overlap_pct_west"] == 100.0 and m["model/co2_overlap_pct_east"] == 100.0
    assert m["model/co2_overlap_strict_pct_east"] == 0.0  # S3 only by the cell rule


def test_obs_count_streamed_equals_the_cube(case, tmp_path):
    case.evaluate.overpasses_per_unit = 3  # units of 3 + 1 overpasses: the sums must not depend on the split
    m = run(case)["osse"]
    obs = xr.open_dataset(_out(tmp_path, "obs_count.nc"))["obs_count"].values
    expected = np.full((2, 4), 4)
    expected[1, 3] = 0
    np.testing.assert_array_equal(obs, expected)
    cov, _ = coverage_and_clouds()
    lat = 0.025 + 0.05 * np.arange(10)
    lon = 0.025 + 0.05 * np.arange(20)
    cube = xr.Dataset({"coverage": (("time", "lat", "lon"), cov)}, coords={"lat": lat, "lon": lon})
    np.testing.assert_array_equal(aggregate_obs_count(cube, [0, 0.25, 0.5], [0, 0.25, 0.5, 0.75, 1.0]).values, obs)
    assert m["fig8/n_overpasses"] == 4 and m["fig8/n_cells_observed"] == 7


def test_detection_frequency_and_cloud_edge(case, tmp_path):
    m = run(case)["osse"]
    src = pd.read_csv(_out(tmp_path, "model", "sources.csv")).set_index("id")
    assert src["n_valid"].to_dict() == {"S1": 4, "S2": 4, "S3": 4, "S4": 0}
    # nearest rule: S1 on t0, t1, t3; S2 on t1 (H3); S3 never
    assert src.loc["S1", "detection_frequency"] == 0.75 and src.loc["S2", "detection_frequency"] == 0.25
    assert src.loc["S3", "detection_frequency"] == 0.0 and math.isnan(src.loc["S4", "detection_frequency"])
    cloud = pd.read_csv(_out(tmp_path, "model", "recall_by_cloud_edge.csv")).set_index("bin")
    # nearest cloudy pixel (cell (1,3)): S2 35.8 km, S3 29.2 km -> 22-55 km; S1 74 km -> 55-110 km
    assert (cloud.loc["22_55", "n_observations"], cloud.loc["22_55", "n_detected_nearest"]) == (8, 1)
    assert (cloud.loc["55_110", "n_observations"], cloud.loc["55_110", "n_detected_nearest"]) == (4, 3)
    assert cloud.loc["22_55", "n_detected_cell"] == 1  # S3 by H3 under the cell rule
    assert m["model/recall_cloud_edge_22_55km"] == 0.125 and m["model/recall_cloud_edge_55_110km"] == 0.75
    sites = pd.read_csv(_out(tmp_path, "model", "hotspot_sites.csv")).sort_values("n_overpasses")
    # the S1 site is seen on 3 of its 4 valid overpasses, the other two on 1 of 4
    assert sites["detection_frequency"].tolist() == [0.25, 0.25, 0.75] and sites["n_valid"].tolist() == [4, 4, 4]
    assert m["model/site_detection_frequency_median"] == 0.25
    assert m["stream/n_truth_files"] == 4


def test_no_truth_fields_no_cloud_edge(case, tmp_path):
    shutil.rmtree(tmp_path / "outputs" / "osse" / "truth" / "fields")
    m = run(case)["osse"]
    assert not _out(tmp_path, "model", "recall_by_cloud_edge.csv").exists()
    assert not any(k.startswith("model/recall_cloud_edge") for k in m) and m["stream/n_truth_files"] == 0


def test_composite_and_baseline_tables_side_by_side(case, tmp_path):
    det = tmp_path / "outputs" / "detect" / "osse"
    pd.DataFrame(
        {
            "site_id": [1, 2, 3],
            "peak_lat": [0.126, 0.125, 0.40],
            "peak_lon": [0.128, 0.49, 0.60],
            "peak_value": [0.5, 0.2, 0.3],
            "n_cells": [3, 1, 1],
        }
    ).to_csv(det / "composite.csv", index=False)
    base = tmp_path / "outputs" / "baseline" / "osse"
    base.mkdir(parents=True)
    hot = pd.read_csv(det / "hotspots.csv")
    h1 = hot[hot["hotspot_id"] == 1].head(1)  # H1 only, in the baseline's (composite) layout
    pd.DataFrame(
        {
            "site_id": [1],
            "peak_lat": h1["peak_lat"].values,
            "peak_lon": h1["peak_lon"].values,
            "peak_value": [0.5],
            "n_cells": [1],
        }
    ).to_csv(base / "composite.csv", index=False)
    m = run(case)["osse"]
    # composite: S1's cell (0,0) and S2's cell (0,1) found; the third peak is 30 km from S3 in source-free (1,2)
    assert m["composite/table2_found_all"] == 2 and m["composite/table2_rate_2000_4000"] == 1.0
    assert m["composite/site_precision"] == pytest.approx(2 / 3) and m["composite/chance_floor"] == 0.25
    assert "composite/detection_frequency_median" not in m  # no overpasses in a composite table
    assert m["baseline/table2_found_all"] == 1 and m["baseline/site_precision"] == 1.0
    side = pd.read_csv(_out(tmp_path, "table2_side_by_side.csv")).set_index("bin")
    assert {"model_pct", "composite_pct", "baseline_pct"} <= set(side.columns)
    assert side.loc["2000_4000", "composite_found"] == 1 and side.loc["2000_4000", "model_found"] == 0
    summary = pd.read_csv(_out(tmp_path, "summary_side_by_side.csv")).set_index("metric")
    assert summary.loc["site_precision", "baseline"] == 1.0
    assert summary.loc["table2_rate_gt5000", "paper"] == 0.89
    keys = list(m)
    assert keys[0].startswith("fig8/") and keys.index("baseline/table2_rate_gt5000") < keys.index(
        "model/site_precision"
    )


def test_min_detections_counts_distinct_overpasses(case):
    case.evaluate.min_detections = 3  # S1's cell is hit on t0, t1, t3 -> still found
    assert run(case)["osse"]["model/table2_rate_gt5000"] == 1.0
    case.evaluate.min_detections = 4
    assert run(case)["osse"]["model/table2_rate_gt5000"] == 0.0


def test_min_observations_turns_cells_unobserved(case):
    case.evaluate.collections.osse.min_observations = 5  # only 4 overpasses -> nothing observed, nothing missed
    m = run(case)["osse"]
    assert m["model/table2_total_gt5000"] == 0 and m["model/table2_unobserved_gt5000"] == 2
    assert m["model/table2_rate_gt5000"] is None


def test_distance_mode_matches_near_the_cell():
    edges = np.array([0.0, 0.25, 0.5])
    cells = pd.DataFrame({"iy": [0], "ix": [0]})
    # a peak 0.05 deg east of the cell's east edge: ~5.56 km away
    hs = pd.DataFrame({"peak_lat": [0.125], "peak_lon": [0.30], "overpass": ["a"]})
    kw = dict(lat_edges=edges, lon_edges=edges)
    assert overlap.match_cells(cells, hs, mode="cell", distance_km=0, **kw).tolist() == [0]
    assert overlap.match_cells(cells, hs, mode="distance", distance_km=6.0, **kw).tolist() == [1]
    assert overlap.match_cells(cells, hs, mode="distance", distance_km=5.0, **kw).tolist() == [0]


def test_distance_mode_reaches_past_the_equatorward_corner():
    """A hotspot 9.995 km beyond the south-east corner of a 0.25 deg cell at 37 N: within 10 km of the cell, and
    farther from its centre than the poleward half-diagonal plus 10 km (the candidate search used that radius)."""
    from no2hotspots.evaluate.geo import haversine_km

    lat_edges, lon_edges = np.array([37.0, 37.25]), np.array([110.0, 110.25])
    cells = pd.DataFrame({"iy": [0], "ix": [0]})
    hs = pd.DataFrame({"peak_lat": [36.92976], "peak_lon": [110.32019], "overpass": ["a"]})
    d = float(overlap.distance_to_box_km(hs.peak_lat.values, hs.peak_lon.values, 37.0, 37.25, 110.0, 110.25)[0])
    poleward = float(haversine_km(37.125, 110.125, 37.25, 110.25)) + 10.0
    assert d < 10.0 and float(haversine_km(37.125, 110.125, 36.92976, 110.32019)) > poleward
    found = overlap.match_cells(cells, hs, mode="distance", distance_km=10.0, lat_edges=lat_edges, lon_edges=lon_edges)
    assert found.tolist() == [1]


def test_paths_come_from_config(tmp_path):
    from .conftest import make_case

    cfg = make_case(tmp_path)
    moved = tmp_path / "elsewhere"
    shutil.move(tmp_path / "outputs" / "ingest", moved / "ingest")
    shutil.move(tmp_path / "outputs" / "detect", moved / "detect")
    cfg.evaluate.ingest_dir = str(moved / "ingest")
    cfg.evaluate.detect_dir = str(moved / "detect")
    cfg.evaluate.tables.model.path = str(moved / "detect" / "{collection}" / "hotspots.csv")
    cfg.evaluate.out_dir = str(tmp_path / "results")
    assert run(cfg)["osse"]["model/table2_found_all"] == 2
    assert (tmp_path / "results" / "osse" / "model" / "table2.csv").exists()
    assert not (tmp_path / "outputs" / "evaluate").exists()


def test_collection_names_must_be_plain(case):
    case.evaluate.collection = "../osse"
    with pytest.raises(ConfigError, match="evaluate.collection: must be a plain name"):
        run(case)


def test_outputs_and_figures(case, tmp_path):
    case.evaluate.maps = True
    run(case)
    d = _out(tmp_path)
    for f in (
        "fig8_obs_count.png",
        "fig9b_period_hotspots.png",
        "fig10_co2_sources.png",
        "map_no2_mean.png",
        "model/map_hotspots.png",
        "timeseries_west.png",
        "timeseries_east.png",
    ):
        assert (d / f).stat().st_size > 10_000, f
    text = (tmp_path / "metrics" / "evaluate_osse.json").read_text()
    metrics = json.loads(text)
    assert all(v is None or isinstance(v, (int, float)) for v in metrics.values())  # flat, DVC-readable
    assert text.index('"fig8/') < text.index('"model/table2_rate_gt5000"') < text.index('"model/site_precision"')
    plot = pd.read_csv(tmp_path / "plots" / "evaluate" / "osse_table2.csv")
    model = plot[(plot["table"] == "model") & (plot["rule"] == "paper's")]
    assert model["bin"].iloc[0] == "> 5000" and model["rate_pct"].iloc[0] == 100.0
    assert model["label"].iloc[0] == "model / paper's / > 5000" and len(model) == 6  # four bins, all, chance floor
    ev = json.loads((d / "evaluate.json").read_text())
    assert ev["stream"]["n_overpasses"] == 4 and ev["tables"][0]["name"] == "model"
    assert not [p for p in d.parent.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_truth_change_columns_without_change(case, tmp_path):
    SOURCES.assign(change_date="", change_factor=np.nan).to_csv(
        tmp_path / "outputs" / "osse" / "truth" / "sources.csv", index=False
    )
    m = run(case)["osse"]
    assert m["timeseries/injected_n"] == 0 and m["timeseries/injected_found"] == 0


def _files(folder):
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix in (".csv", ".nc"):
            out[str(p.relative_to(folder))] = (
                pd.read_csv(p) if p.suffix == ".csv" else xr.open_dataset(p)["obs_count"].load()
            )
    return out


@pytest.mark.slow  # starting a LocalCluster with 2 worker processes on a busy 2-core box
def test_dask_local_cluster_gives_the_same_outputs_as_sync(case, tmp_path):
    sync = run(case)["osse"]
    first = _files(_out(tmp_path))
    case.parallel.scheduler = "local"
    case.parallel.n_workers = 2
    case.parallel.min_units = 1
    case.evaluate.overpasses_per_unit = 1  # 4 units on 2 workers
    dask = run(case)["osse"]
    assert dask == sync
    second = _files(_out(tmp_path))
    assert sorted(first) == sorted(second)
    for name, a in first.items():
        b = second[name]
        if isinstance(a, pd.DataFrame):
            pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)
        else:
            xr.testing.assert_identical(a, b)


def test_folder_metrics_and_plot_data_are_replaced_together(case, tmp_path):
    """The collection's folder, metrics/evaluate_<c>.json and plots/evaluate/<c>_table2.csv are one atomic group: a
    run that cannot write its plot data (the plots folder is a file) leaves all three as the last good run wrote
    them, not a new folder beside old metrics."""
    run(case)
    (tmp_path / "blocked").write_text("a file where the plots folder should be")
    before = _digests(tmp_path)
    case.evaluate.min_detections = 4  # other results (see test_min_detections_counts_distinct_overpasses)
    case.paths.plots = str(tmp_path / "blocked" / "plots")
    with pytest.raises(OSError):
        run(case)
    assert _digests(tmp_path) == before


def test_units_of_one_plant_are_one_facility(case, tmp_path, truth_sources):
    """A second unit 0.22 km from S1 (CoCO2 lists a plant's units at slightly different coordinates): with
    evaluate.facility_km (1 km by default) it is part of S1's facility, summed; at 0 it is a source of its own."""
    unit = pd.DataFrame(
        {"id": ["S1b"], "lat": [0.127], "lon": [0.125], "nox_t_per_yr": [2000.0], "co2_t_per_yr": [1e6]}
    )
    pd.concat([truth_sources, unit], ignore_index=True).to_csv(
        tmp_path / "outputs" / "osse" / "truth" / "sources.csv", index=False
    )
    m = run(case)["osse"]
    assert m["inventory/n_sources"] == 4  # S1-S4 in the grid, S1b inside S1's facility
    src = pd.read_csv(_out(tmp_path, "model", "sources.csv")).set_index("id")
    assert "S1b" not in src.index and src.loc["S1", "nox_t_per_yr"] == pytest.approx(8000.0)
    assert src.loc["S1", "unit_ids"] == "S1;S1b" and src.loc["S2", "unit_ids"] == "S2"
    case.evaluate.facility_km = 0.0
    assert run(case)["osse"]["inventory/n_sources"] == 5
    before = _digests(tmp_path)
    case.evaluate.facility_km = -1.0
    with pytest.raises(ConfigError, match="evaluate.facility_km"):
        run(case)
    assert _digests(tmp_path) == before  # the last good run's outputs, metrics and plot data untouched


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("nox_bins", [0, 2000, 4000], "evaluate.nox_bins: edges must be > 0"),
        ("collections.osse.min_observations", 0, "evaluate.collections.osse.min_observations: must be an integer >= 1"),
    ],
)
def test_a_bin_edge_of_0_or_no_observation_floor_is_one_line_and_keeps_the_outputs(case, tmp_path, key, value, message):
    """Settings that would score wrongly (an empty lowest bin; never-observed cells counted as misses) stop the run
    with one line before anything is written: the last good run's outputs, metrics and plot data stay."""
    from omegaconf import OmegaConf

    run(case)
    before = _digests(tmp_path)
    OmegaConf.update(case, f"evaluate.{key}", value)
    with pytest.raises(ConfigError, match=message) as e:
        run(case)
    assert "\n" not in str(e.value)
    assert _digests(tmp_path) == before
