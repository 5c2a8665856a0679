"""The hybrid stage on the baseline's real output for an analytic plume in noise: a site on the source is confirmed,
sites in the background and far down the plume are not; bad inputs are one-line errors that leave the published
table as it was."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from baseline.test_baseline import TAU, _plume_collection, _winds

from no2hotspots.baseline.run import run as run_baseline
from no2hotspots.config import compose
from no2hotspots.errors import InputFileError
from no2hotspots.hybrid.confirm import point_contrast, site_z, snap_to_peak, z_map
from no2hotspots.hybrid.run import run as run_hybrid


def _add_noise(folder, std=2e-6, seed=0):
    """Independent noise on every overpass (a flat background has no spread to standardise by)."""
    rng = np.random.default_rng(seed)
    for path in sorted((folder / "overpasses").glob("*.nc")):
        one = xr.open_dataset(path).load()
        one["no2"].values[:] = one["no2"].values + rng.normal(0.0, std, one["no2"].shape)
        path.unlink()
        one.to_netcdf(path)


def _noisy_baseline(tmp, ds):
    """Noise on the collection's overpasses, then the baseline stage over them with the test wind file."""
    _add_noise(tmp / "ingest" / "test")
    winds = _winds(tmp / "winds.nc", ds)
    cfg = compose(
        [
            f"paths.outputs={tmp}",
            "baseline.collection=test",
            "parallel.scheduler=sync",
            f"+baseline.collections.test.wind_paths=[{winds}]",
            f"baseline.lifetime_h={TAU / 3600}",
        ]
    )
    run_baseline(cfg)
    return tmp, ds


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The baseline stage's output over a noisy plume from cell (30, 20), blowing east, 5 overpasses."""
    tmp = tmp_path_factory.mktemp("hybrid")
    ds = _plume_collection(tmp / "ingest" / "test", nt=5)  # the 5 days of the test wind file
    return _noisy_baseline(tmp, ds)


@pytest.fixture(scope="module")
def blob_world(tmp_path_factory):
    """As ``world`` plus a static urban column (Gaussian, 25 km radius, 3e-5 mol m-2) centred on cell (15, 60),
    ~85 km south-east of the stack: through the sink term and the advection of its flank the flux divergence
    peaks on the area's upwind side, above the confirmation threshold, where no stack is."""
    tmp = tmp_path_factory.mktemp("hybrid_blob")
    ds = _plume_collection(tmp / "ingest" / "test", nt=5)
    lat, lon = np.meshgrid(ds["lat"].values, ds["lon"].values, indexing="ij")
    km_y = (lat - lat[15, 0]) * 111.19
    km_x = (lon - lon[0, 60]) * 111.19 * np.cos(np.radians(lat[15, 0]))
    blob = 3e-5 * np.exp(-(km_x**2 + km_y**2) / (2 * 25.0**2))
    for path in sorted((tmp / "ingest" / "test" / "overpasses").glob("*.nc")):
        one = xr.open_dataset(path).load()
        one["no2"].values[:] = one["no2"].values + blob
        path.unlink()
        one.to_netcdf(path)
    return _noisy_baseline(tmp, ds)


def _sites(folder, ds, cells):
    lat, lon = ds["lat"].values, ds["lon"].values
    rows = [
        {"site_id": k + 1, "peak_lat": float(lat[i]), "peak_lon": float(lon[j]), "peak_value": 0.1, "n_cells": 1}
        for k, (i, j) in enumerate(cells)
    ]
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "composite.csv", index=False)


def _config(tmp, *extra):
    """The hybrid over detect's composite table as it is (``candidates=composite``), without the baseline's own sites,
    unless ``extra`` says otherwise."""
    return compose(
        [
            f"paths.outputs={tmp}",
            "hybrid.collection=test",
            "+hybrid.collections=[test]",
            "hybrid.candidates=composite",
            "hybrid.baseline_sites=false",
            *extra,
        ]
    )


def test_the_source_is_confirmed_and_the_plume_and_background_are_not(world):
    tmp, ds = world
    # on the source; 25 cells down the plume (~125 km: still in it, E ~ 0 there); background north of the plume
    _sites(tmp / "detect" / "test", ds, [(30, 20), (30, 45), (52, 60)])
    summary = run_hybrid(_config(tmp))["test"]
    sites = pd.read_csv(tmp / "hybrid" / "test" / "sites.csv")
    kept = pd.read_csv(tmp / "hybrid" / "test" / "composite.csv")
    assert sites["divergence_z"].iloc[0] > 20  # the source stands out by far
    assert sites["divergence_z"].iloc[1:].abs().max() < 3
    assert list(sites["confirmed"]) == [True, False, False]
    assert list(kept["origin_site_id"]) == [1] and list(kept["origin"]) == ["model"] and "divergence_z" in kept.columns
    assert summary["n_candidates"] == 3 and summary["n_confirmed"] == 1
    assert summary["settings"]["min_valid"] == 3  # the baseline's own, read from its baseline.json


def test_k_sigma_zero_keeps_every_site_above_the_median_and_off_grid_sites_never(world):
    tmp, ds = world
    lat = ds["lat"].values
    _sites(tmp / "detect" / "test", ds, [(30, 20)])
    table = pd.read_csv(tmp / "detect" / "test" / "composite.csv")
    table.loc[1] = [2, float(lat[0]) - 1.0, 110.0, 0.1, 1]  # a degree south of the grid
    table.to_csv(tmp / "detect" / "test" / "composite.csv", index=False)
    run_hybrid(_config(tmp, "hybrid.k_sigma=0"))
    sites = pd.read_csv(tmp / "hybrid" / "test" / "sites.csv")
    assert sites["confirmed"].tolist() == [True, False] and np.isnan(sites["divergence_z"].iloc[1])


def test_z_map_standardises_by_the_robust_spread_and_leaves_unobserved_cells_out():
    rng = np.random.default_rng(1)
    mean = rng.normal(5.0, 2.0, (80, 80))
    mean[40, 40] = 50.0
    n_valid = np.full(mean.shape, 10)
    n_valid[:, :5] = 2
    z = z_map(mean, n_valid, min_valid=3, smooth_cells=1)
    assert np.isnan(z[:, :5]).all() and np.isfinite(z[:, 5:]).all()
    assert abs(np.median(z[:, 5:])) < 0.05 and 0.9 < 1.4826 * np.median(np.abs(z[:, 5:])) < 1.1
    assert z[40, 40] == pytest.approx((50.0 - np.median(mean[:, 5:])) / (1.4826 * 2.0 * 0.6745), rel=0.1)
    smooth = z_map(mean, n_valid, min_valid=3, smooth_cells=3)
    # the spike spread over its 3x3 box ((50 + 8 x 5) / 9 = 10 against the smoothed noise: sigma 2 / 3): z ~ 7.5
    assert 5 < smooth[40, 40] < z[40, 40]
    lat = np.arange(80) * 0.05
    assert np.isnan(site_z(z, [-0.2, 2.0], [2.0, 2.0], lat, lat, 0.05)[0])
    assert site_z(z, [2.0], [2.0], lat, lat, 0.05)[0] == z[40, 40]


def test_a_window_reads_the_highest_z_of_the_block_around_the_site():
    """window_cells 3: a site one cell off a peak reads the peak's z; two cells off it does not; NaN cells are
    passed over, and an all-NaN block stays NaN."""
    z = np.zeros((20, 20))
    z[10, 10] = 9.0
    z[2:5, 2:5] = np.nan
    lat = np.arange(20) * 0.05
    sites = ([0.5, 0.55, 0.6, 0.15], [0.55, 0.55, 0.55, 0.15])  # cells (10, 11), (11, 11), (12, 11), (3, 3)
    one = site_z(z, *sites, lat, lat, 0.05)
    three = site_z(z, *sites, lat, lat, 0.05, window_cells=3)
    assert one[:3].tolist() == [0.0, 0.0, 0.0] and np.isnan(one[3])
    assert three[:3].tolist() == [9.0, 9.0, 0.0] and np.isnan(three[3])


def test_snapping_moves_a_site_to_the_highest_z_of_its_block_and_nowhere_else():
    """snap_cells 3: a site one cell off the peak moves onto it, one two cells off does not (5 moves it); a site in
    an all-NaN block and one off the grid stay where they were; 1 moves nothing."""
    z = np.zeros((20, 20))
    z[10, 10] = 9.0
    z[9, 12] = 4.0  # a lower peak beside the path: the block's highest wins
    z[2:5, 2:5] = np.nan
    lat = np.arange(20) * 0.05
    # cells (10, 11), (10, 12), (3, 3), and a site a degree south of the grid
    sites = ([0.5, 0.5, 0.15, -1.0], [0.55, 0.6, 0.15, 0.5])
    la3, lo3 = snap_to_peak(z, *sites, lat, lat, 0.05, 3)
    assert la3.tolist() == pytest.approx([0.5, 0.45, 0.15, -1.0]) and lo3.tolist() == pytest.approx(
        [0.5, 0.6, 0.15, 0.5]
    )
    la5, lo5 = snap_to_peak(z, *sites, lat, lat, 0.05, 5)
    assert (la5[1], lo5[1]) == pytest.approx((0.5, 0.5))  # two cells off: reached by a 5-cell block
    la1, lo1 = snap_to_peak(z, *sites, lat, lat, 0.05, 1)
    assert la1.tolist() == sites[0] and lo1.tolist() == sites[1]


def test_snapped_sites_land_on_the_source_and_merge(world):
    """Two candidates one cell downwind and one cell north-downwind of the source: unsnapped both are confirmed where
    the model put them (two sites); with snap_cells 3 both move onto the source's cell and become one site."""
    tmp, ds = world
    lat, lon = ds["lat"].values, ds["lon"].values
    _sites(tmp / "detect" / "test", ds, [(30, 21), (31, 21)])
    run_hybrid(_config(tmp, "hybrid.k_sigma=3"))
    kept = pd.read_csv(tmp / "hybrid" / "test" / "composite.csv")
    assert len(kept) == 2 and kept["peak_lon"].tolist() == pytest.approx([lon[21]] * 2)
    summary = run_hybrid(_config(tmp, "hybrid.k_sigma=3", "hybrid.snap_cells=3"))["test"]
    kept = pd.read_csv(tmp / "hybrid" / "test" / "composite.csv")
    sites = pd.read_csv(tmp / "hybrid" / "test" / "sites.csv")
    assert len(kept) == 1 and (kept["peak_lat"].iloc[0], kept["peak_lon"].iloc[0]) == pytest.approx((lat[30], lon[20]))
    assert summary["n_merged_by_snapping"] == 1 and summary["n_confirmed"] == 1
    assert sites["snap_lon"].tolist() == pytest.approx([lon[20]] * 2)  # both candidates' moves are kept


def test_a_flat_map_confirms_nothing():
    z = z_map(np.ones((10, 10)), np.full((10, 10), 5), min_valid=3, smooth_cells=3)
    assert np.isnan(z).all()


@pytest.mark.parametrize("damage", ["no_period", "no_min_valid", "bad_site", "no_composite"])
def test_bad_inputs_are_one_line_errors_and_the_published_table_stays(world, tmp_path, damage):
    tmp, ds = world
    _sites(tmp_path / "detect" / "test", ds, [(30, 20)])
    base = tmp_path / "baseline" / "test"
    base.mkdir(parents=True)
    for f in ("period.nc", "baseline.json"):
        (base / f).write_bytes((tmp / "baseline" / "test" / f).read_bytes())
    cfg = _config(tmp_path)
    run_hybrid(cfg)
    published = (tmp_path / "hybrid" / "test" / "composite.csv").read_bytes()
    if damage == "no_period":
        (base / "period.nc").unlink()
        expected = "period.nc: not found"
    elif damage == "no_min_valid":
        (base / "baseline.json").write_text(json.dumps({"settings": {}}))
        expected = "baseline.json: no settings.min_valid"
    elif damage == "bad_site":
        path = tmp_path / "detect" / "test" / "composite.csv"
        path.write_text("site_id,peak_lat,peak_lon\n1,abc,110.0\n")
        expected = "composite.csv: column peak_lat has values outside -90..90, e.g. 'abc' in row 0"
    else:
        (tmp_path / "detect" / "test" / "composite.csv").unlink()
        expected = "composite.csv: not found"
    with pytest.raises(InputFileError, match=expected) as err:
        run_hybrid(cfg)
    assert "\n" not in str(err.value)
    assert (tmp_path / "hybrid" / "test" / "composite.csv").read_bytes() == published


def _detect_period(folder, ds, maxima: dict, rule="recurrence", n=12):
    """detect's period.nc (written by the contract's writer) with ``maxima`` {cell: overpasses with a local maximum},
    every cell observed ``n`` times, and a detect.json recording the composite settings."""
    from no2hotspots.config import compose as compose_cfg
    from no2hotspots.contracts.detections import write_period
    from no2hotspots.detect.run import composite_settings

    shape = (ds.sizes["lat"], ds.sizes["lon"])
    n_maxima = np.zeros(shape, np.int32)
    for (i, j), k in maxima.items():
        n_maxima[i, j] = k
    zeros = np.zeros(shape)
    folder.mkdir(parents=True, exist_ok=True)
    write_period(
        folder,
        lat=ds["lat"].values,
        lon=ds["lon"].values,
        res=0.05,
        rel_max=zeros,
        rel_mean=zeros,
        n_valid=np.full(shape, n),
        n_detections=n_maxima,
        n_peaks=zeros,
        n_maxima=n_maxima,
        maxima_level=0.02,
        n_maxima_valid=np.full(shape, n),
        attrs={},
    )
    composite = composite_settings(compose_cfg([f"detect.composite.rule={rule}"]))
    (folder / "detect.json").write_text(json.dumps({"params": {"composite": composite}}, default=str))


def test_recurrence_candidates_come_from_detects_period_and_the_divergence_confirms_the_source(world):
    """Two cells where the maps' maxima recur on 10 of 12 overpasses: the source, and a cell far down its plume.
    Both are recurrence sites; the flux divergence confirms the source only."""
    tmp, ds = world
    _detect_period(tmp / "detect" / "test", ds, {(30, 20): 10, (30, 45): 10})
    summary = run_hybrid(_config(tmp, "hybrid.candidates=recurrence"))["test"]
    sites = pd.read_csv(tmp / "hybrid" / "test" / "sites.csv")
    lat, lon = ds["lat"].values, ds["lon"].values
    near = [(abs(sites.peak_lat - lat[30]) < 0.03) & (abs(sites.peak_lon - lon[j]) < 0.03) for j in (20, 45)]
    assert summary["n_candidates"] == 2 and all(m.sum() == 1 for m in near)
    assert sites.loc[near[0], "confirmed"].item() and not sites.loc[near[1], "confirmed"].item()
    assert summary["n_confirmed"] == 1


def test_recurrence_candidates_need_a_recurrence_composite(world, tmp_path):
    from no2hotspots.errors import InputFileError

    tmp, ds = world
    _detect_period(tmp_path / "detect" / "test", ds, {(30, 20): 10}, rule="mean")
    base = tmp_path / "baseline" / "test"
    base.mkdir(parents=True)
    for f in ("period.nc", "baseline.json"):
        (base / f).write_bytes((tmp / "baseline" / "test" / f).read_bytes())
    with pytest.raises(InputFileError, match="detect.json: the composite was not made by the recurrence rule"):
        run_hybrid(_config(tmp_path, "hybrid.candidates=recurrence"))
    assert not (tmp_path / "hybrid").exists()


def test_baseline_sites_join_where_no_confirmed_site_lies_near(world):
    """The baseline finds the source; with a confirmed model site on it, nothing is added; with the only model site
    in the background (not confirmed), the baseline's source site is added, numbered after the model's."""
    tmp, ds = world
    base = pd.read_csv(tmp / "baseline" / "test" / "composite.csv")
    assert len(base) >= 1
    _sites(tmp / "detect" / "test", ds, [(30, 20)])
    summary = run_hybrid(_config(tmp, "hybrid.baseline_sites=true"))["test"]
    kept = pd.read_csv(tmp / "hybrid" / "test" / "composite.csv")
    far = base[
        np.hypot((base.peak_lat - ds.lat.values[30]) / 0.09, (base.peak_lon - ds.lon.values[20]) / 0.11) > 1
    ]  # baseline sites more than ~10 km from the source (none expected on a clean plume)
    assert summary["n_confirmed"] == 1 and summary["n_baseline_sites_added"] == len(far)
    assert kept["origin"].iloc[0] == "model"
    _sites(tmp / "detect" / "test", ds, [(52, 60)])
    summary = run_hybrid(_config(tmp, "hybrid.baseline_sites=true"))["test"]
    kept = pd.read_csv(tmp / "hybrid" / "test" / "composite.csv")
    assert summary["n_confirmed"] == 0 and summary["n_baseline_sites_added"] == len(base)
    assert list(kept["site_id"]) == list(range(1, len(base) + 1)) and set(kept["origin"]) == {"baseline"}
    assert list(kept["origin_site_id"]) == list(base["site_id"])
    assert kept["divergence_z"].iloc[0] > 20 and kept["peak_value"].isna().all()


def test_the_point_test_drops_an_urban_area_and_keeps_the_stack(blob_world):
    """Without the test the area's divergence peak is confirmed and the baseline lists it; with
    point_contrast_min=0.7 the stack stays and neither the model's area site nor the baseline's area sites do."""
    tmp, ds = blob_world
    base = pd.read_csv(tmp / "baseline" / "test" / "composite.csv")
    on_area = base["peak_lon"] > ds["lon"].values[40]
    assert on_area.sum() >= 1 and (~on_area).sum() == 1  # the baseline: the stack and the area's upwind side
    area_cell = (int(np.rint((base.loc[on_area, "peak_lat"].iloc[0] - ds["lat"].values[0]) / 0.05)), 56)
    _sites(tmp / "detect" / "test", ds, [(30, 20), area_cell])
    run_hybrid(_config(tmp))
    sites = pd.read_csv(tmp / "hybrid" / "test" / "sites.csv")
    assert list(sites["confirmed"]) == [True, True] and "point_contrast" not in sites.columns
    summary = run_hybrid(_config(tmp, "hybrid.point_contrast_min=0.7", "hybrid.baseline_sites=true"))["test"]
    sites = pd.read_csv(tmp / "hybrid" / "test" / "sites.csv")
    kept = pd.read_csv(tmp / "hybrid" / "test" / "composite.csv")
    assert sites["point_contrast"].iloc[0] > 0.95 and sites["point_contrast"].iloc[1] < 0.6
    assert list(sites["confirmed"]) == [True, False]
    assert list(kept["origin"]) == ["model"] and kept["point_contrast"].iloc[0] > 0.95
    assert summary["n_baseline_sites_not_point"] == int(on_area.sum())
    assert summary["settings"]["point_ring_km"] == [20.0, 30.0]


def _grid(n=41, res=0.05, lat0=30.0):
    lat = lat0 + res * np.arange(n)
    lon = 110.0 + res * np.arange(n)
    return lat, lon, np.meshgrid(lat, lon, indexing="ij")


def test_point_contrast_is_high_for_a_stack_and_low_for_an_area():
    """On a 0.05 deg grid: one bright cell on a flat background ~1; a Gaussian area of 25 km radius well below; a
    second stack in the ring does not lower the first's (the ring's median); NaN where it cannot be told."""
    lat, lon, (la, lo) = _grid()
    rng = np.random.default_rng(1)
    z = rng.normal(0.0, 0.3, la.shape)
    z[20, 20] = 10.0
    z[20, 24] = 8.0  # a neighbouring stack ~19 km east, in the ring
    c = point_contrast(z, [lat[20]], [lon[20]], lat, lon, 0.05, (15.0, 25.0))
    assert c[0] > 0.95
    km_y = (la - lat[20]) * 111.19
    km_x = (lo - lon[20]) * 111.19 * np.cos(np.radians(lat[20]))
    area = 10.0 * np.exp(-(km_x**2 + km_y**2) / (2 * 25.0**2)) + rng.normal(0.0, 0.3, la.shape)
    c = point_contrast(area, [lat[20]], [lon[20]], lat, lon, 0.05, (15.0, 25.0))
    assert 0.2 < c[0] < 0.5  # exp(-r^2 / 2 R^2) over the ring: 0.61-0.83 of the centre
    narrow = 10.0 * np.exp(-(km_x**2 + km_y**2) / (2 * 5.0**2))  # a 5-km plant footprint: still a point
    assert point_contrast(narrow, [lat[20]], [lon[20]], lat, lon, 0.05, (15.0, 25.0))[0] > 0.99
    holes = z.copy()
    holes[:, :] = np.nan
    holes[20, 20] = 5.0
    off = point_contrast(z, [lat[0] - 1.0, lat[20]], [lon[20], lon[20]], lat, lon, 0.05, (15.0, 25.0))
    assert np.isnan(off[0]) and np.isfinite(off[1])
    assert np.isnan(point_contrast(holes, [lat[20]], [lon[20]], lat, lon, 0.05, (15.0, 25.0))[0])  # no ring
    assert np.isnan(point_contrast(-z, [lat[20]], [lon[20]], lat, lon, 0.05, (15.0, 25.0))[0])  # z <= 0


@pytest.mark.parametrize(
    ("value", "problem"),
    [("hybrid.point_contrast_min=1.5", "must be in 0..1"), ("hybrid.point_ring_km=[25,15]", "inner < outer")],
)
def test_bad_point_test_settings_are_one_line_config_errors(value, problem):
    from no2hotspots.errors import ConfigError
    from no2hotspots.hybrid.run import settings as hybrid_settings

    with pytest.raises(ConfigError, match=f"{value.split('=')[0]}: .*{problem}"):
        hybrid_settings(compose([value]))


@pytest.mark.parametrize(
    "key", ["hybrid.smooth_cells", "hybrid.window_cells", "hybrid.snap_cells", "baseline.smooth_cells"]
)
def test_an_even_window_is_a_one_line_config_error(key):
    from no2hotspots.baseline.run import settings as baseline_settings
    from no2hotspots.errors import ConfigError
    from no2hotspots.hybrid.run import settings as hybrid_settings

    cfg = compose([f"{key}=2"])
    with pytest.raises(ConfigError, match=f"{key}: must be odd") as err:
        (baseline_settings if key.startswith("baseline") else hybrid_settings)(cfg)
    assert "\n" not in str(err.value)
