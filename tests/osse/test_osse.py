"""The osse stage: deterministic S5P-layout granules with known truth, and the puff physics behind them."""

from __future__ import annotations

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from no2hotspots.errors import ConfigError
from no2hotspots.inventory import load_points, points_in_bbox
from no2hotspots.osse.geometry import across_track_edges_km, granule_grid, region_outline
from no2hotspots.osse.run import run
from no2hotspots.osse.transport import release_puffs, render_puffs
from no2hotspots.osse.truth import truth_field_name
from no2hotspots.osse.weather import DayWind

from .helpers import digest, osse_cfg


@pytest.fixture(scope="module")
def osse_run(osse_base):
    cfg, _, out = osse_base
    return cfg, out


def test_same_seed_gives_identical_files(osse_run, data_dir, tmp_path):
    cfg, out = osse_run
    run(osse_cfg(data_dir, tmp_path))
    a, b = digest(out), digest(tmp_path / "osse")
    # config.json records the (different) output folder; everything else is byte-identical
    assert a.pop("truth/config.json") and b.pop("truth/config.json")
    assert a == b and len([n for n in a if n.startswith("granules/S5P_OSSE_L2__NO2____")]) >= 3
    run(osse_cfg(data_dir, tmp_path / "other", ["seed=7"]))
    c = digest(tmp_path / "other" / "osse")
    assert {k for k in c if k.endswith("_truth.nc")} and any(a.get(k) != v for k, v in c.items() if k.endswith(".nc"))


def test_granule_layout_matches_official_names(osse_run):
    _, out = osse_run
    files = sorted((out / "granules").glob("*.nc"))
    name = files[0].name
    assert name.startswith("S5P_OSSE_L2__NO2____") and name.endswith(".nc")
    parts = name[len("S5P_OSSE_L2__NO2____") : -3].split("_")
    assert len(parts) == 6 and len(parts[2]) == 5 and parts[3:5] == ["01", "020400"]
    assert all(len(p) == 15 and p[8] == "T" for p in (parts[0], parts[1], parts[5]))
    with netCDF4.Dataset(files[0]) as ds:
        assert ds.title == "TROPOMI/S5P NO2 1-Orbit L2 Swath 5.5x3.5km (OSSE, synthetic)"
        assert ds.product_type == "L2__NO2___" and ds.Conventions == "CF-1.7"
        assert "synthetic" in ds.summary.lower()
        assert ds.time_coverage_start.startswith(parts[0][:4] + "-" + parts[0][4:6])
        p = ds["PRODUCT"]
        assert p.dimensions["time"].size == 1 and p.dimensions["corner"].size == 4
        ns, ng = p.dimensions["scanline"].size, p.dimensions["ground_pixel"].size
        for v in (
            "latitude",
            "longitude",
            "nitrogendioxide_tropospheric_column",
            "nitrogendioxide_tropospheric_column_precision",
            "qa_value",
        ):
            assert p[v].dimensions == ("time", "scanline", "ground_pixel"), v
        col = p["nitrogendioxide_tropospheric_column"]
        assert col.units == "mol m-2" and col.dtype == np.float32
        assert col._FillValue == np.float32(9.96921e36)
        assert p["latitude"].dtype == np.float32
        qa = p["qa_value"]
        assert qa.dtype == np.uint8 and qa.scale_factor == np.float32(0.01) and qa.add_offset == 0.0
        assert p["time"].dtype == np.int32 and p["time"].units == "seconds since 2010-01-01 00:00:00"
        assert p["delta_time"].dimensions == ("time", "scanline") and p["delta_time"].dtype == np.int32
        assert p["delta_time"].units.startswith("milliseconds since ")
        geo = ds["PRODUCT/SUPPORT_DATA/GEOLOCATIONS"]
        for v in ("latitude_bounds", "longitude_bounds"):
            assert geo[v].dimensions == ("time", "scanline", "ground_pixel", "corner") and geo[v].shape == (
                1,
                ns,
                ng,
                4,
            )
    x = xr.open_dataset(files[0], group="PRODUCT")
    q = x.qa_value.values
    assert np.nanmin(q) >= 0 and np.nanmax(q) <= 1.0 and np.nanmax(q) > 0.9
    no2 = x.nitrogendioxide_tropospheric_column.values
    assert np.isfinite(no2).all() and 0 < np.median(no2) < 1e-4  # realistic mol m-2
    geo = xr.open_dataset(files[0], group="PRODUCT/SUPPORT_DATA/GEOLOCATIONS")
    lat_b = geo.latitude_bounds.values[0]
    lat = x.latitude.values[0]
    assert np.all((lat_b.min(-1) <= lat) & (lat <= lat_b.max(-1)))
    assert x.time.values[0] >= np.datetime64("2019-09-01")  # CF-decodes to the day


def test_truth_files_list_the_region_sources(osse_run):
    cfg, out = osse_run
    truth = out / "truth"
    for f in ("sources.csv", "winds.csv", "granules.csv", "config.json"):
        assert (truth / f).is_file(), f
    src = pd.read_csv(truth / "sources.csv")
    expected = points_in_bbox(load_points(cfg.inventory), cfg.osse.region.bbox, cfg.osse.region.margin_deg)
    expected = expected[expected.nox_t_per_yr >= cfg.osse.sources.min_nox_t_per_yr]
    assert set(src.id) == set(expected.id) and len(src) >= 5
    assert {"id", "lat", "lon", "nox_t_per_yr", "co2_t_per_yr", "no2_rate_mol_s"} <= set(src.columns)
    assert (src.no2_rate_mol_s > 0).all()
    gran = pd.read_csv(truth / "granules.csv")
    assert set(gran.file) == {p.name for p in (out / "granules").glob("*.nc")}
    assert len(list((truth / "fields").glob("*_truth.nc"))) == len(gran)
    assert sorted(p.name for p in (truth / "winds").glob("*.nc")) == [f"{d}.nc" for d in sorted(set(gran.date))]
    winds = pd.read_csv(truth / "winds.csv")
    assert winds.date.nunique() == 3 and winds.speed_m_s.gt(0).all()
    for row in gran.itertuples():  # the truth field's time is its plume snapshot's: the region centre's scan time
        with xr.open_dataset(truth / "fields" / truth_field_name(row.file)) as f:
            t = np.datetime64(f.attrs["overpass_time_utc"])
        assert t == np.datetime64(row.date) + np.timedelta64(int(round(row.overpass_utc_h * 3600)), "s")
        assert np.datetime64(row.time_coverage_start) <= t <= np.datetime64(row.time_coverage_end)


def test_clouds_lower_qa_and_observations_vary_by_day(osse_run):
    _, out = osse_run
    gran = pd.read_csv(out / "truth" / "granules.csv")
    for name in gran.file:
        t = xr.open_dataset(out / "truth" / "fields" / name.replace(".nc", "_truth.nc"))
        qa = xr.open_dataset(out / "granules" / name, group="PRODUCT").qa_value.values[0]
        cf = t.cloud_fraction.values
        assert np.all(qa[cf > 0.8] < 0.75) and np.all(qa[cf < 0.2] == 1.0)
    per_day = gran.groupby("date").n_qa_ge_075_region.sum()
    assert per_day.nunique() == len(per_day) and per_day.max() > 1.3 * per_day.min()


def test_bad_region_is_one_line_config_error(data_dir, tmp_path):
    cfg = osse_cfg(data_dir, tmp_path, ["osse.region.bbox=[112,38,111,39]"])
    with pytest.raises(ConfigError, match="osse.region.bbox"):
        run(cfg)
    assert not (tmp_path / "osse").exists()


@pytest.mark.parametrize(
    "override, key",
    [
        ("osse.transport.substeps=2.5", "osse.transport.substeps"),
        ("osse.transport.chunk=1.5", "osse.transport.chunk"),
        ("osse.swath.n_ground_pixels=3.7", "osse.swath.n_ground_pixels"),
        ("osse.swath.n_ground_pixels=true", "osse.swath.n_ground_pixels"),
        ("osse.dates.days=2.5", "osse.dates.days"),
        ("osse.background.urban.n_blobs=1.5", "osse.background.urban.n_blobs"),
        ("osse.seed=1.5", "osse.seed"),
    ],
)
def test_integer_keys_refuse_non_integers_instead_of_truncating(override, key, data_dir, tmp_path):
    cfg = osse_cfg(data_dir, tmp_path, [override])
    with pytest.raises(ConfigError, match=f"^config {key}: must be an integer") as e:
        run(cfg)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "osse").exists()


# --- physics of the puff model on a regular test swath centred on one source ---------------------------------

LAT0, LON0 = 38.0, 112.0


def _grid():
    edges = across_track_edges_km(120, 6.0, 824.0)  # ~3.5 km pixels, 170 km wide
    return granule_grid(
        LAT0,
        LON0,
        azimuth_deg=0.0,
        full_edges=edges,
        along_km=3.5,
        outline=region_outline([LON0 - 0.9, LAT0 - 0.7, LON0 + 0.9, LAT0 + 0.7], 0.0),
        pad_km=0.0,
        min_overlap=0.0,
    )


def _plume(wind, lifetime_h=4.0, T=6 * 3600.0):
    grid = _grid()
    puffs = release_puffs(
        [LAT0],
        [LON0],
        [100.0],
        wind,
        T,
        release_hours=6.0,
        release_interval_min=10.0,
        substeps=1,
        sigma0_m=800.0,
        diffusivity_m2_s=1500.0,
        lifetime_h=lifetime_h,
    )
    field = render_puffs(puffs, grid)
    lat, lon = grid.centres()
    x, y = grid.plane.to_xy(lat, lon)  # km from the source
    return field, x, y, grid


def _bearing(field, x, y, r0, r1):
    r = np.hypot(x, y)
    w = np.where((r > r0) & (r < r1), field, 0.0)
    return np.degrees(np.arctan2((w * x).sum(), (w * y).sum())) % 360  # 0 = north, 90 = east


def test_constant_wind_carries_the_plume_downwind():
    field, x, y, _ = _plume(DayWind.constant(4.0, 270.0))  # from the west: blows east
    cx, cy = (field * x).sum() / field.sum(), (field * y).sum() / field.sum()
    assert cx > 15.0 and abs(cy) < 0.1 * cx
    assert field[x < -10].sum() < 0.01 * field.sum()  # nothing upwind
    near, far = _bearing(field, x, y, 5, 30), _bearing(field, x, y, 40, 80)
    assert abs(near - 90) < 5 and abs(far - 90) < 5  # straight


def test_turning_wind_bends_the_plume():
    T = 6 * 3600.0
    # wind from the south (blowing north) six hours before overpass, veering to from the west (blowing east)
    wind = DayWind(np.array([0.0, T]), np.array([4.0, 4.0]), np.array([180.0, 270.0]))
    field, x, y, _ = _plume(wind, T=T)
    near, far = _bearing(field, x, y, 5, 30), _bearing(field, x, y, 40, 80)
    assert 70 < near < 100  # young plume follows the latest wind (eastward)
    assert far < near - 20  # old plume left northward first: the centreline bends


def test_shorter_lifetime_gives_smaller_burden():
    wind = DayWind.constant(3.0, 200.0)
    short, *_ = _plume(wind, lifetime_h=2.0)
    long_, _, _, grid = _plume(wind, lifetime_h=6.0)
    area = grid.area_m2()
    b_short, b_long = (short * area).sum(), (long_ * area).sum()
    assert b_short < 0.7 * b_long
    # with tau -> burden ~ Q tau (1 - exp(-6h/tau)): check the ratio to 15 %
    expect = (2.0 * (1 - np.exp(-3.0))) / (6.0 * (1 - np.exp(-1.0)))
    assert b_short / b_long == pytest.approx(expect, rel=0.15)
