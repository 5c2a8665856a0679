"""Readers on real files: the ddeq Matimba crop, an official-layout S5P L2 file built from it, real HARP L3."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from no2hotspots.errors import InputFileError
from no2hotspots.ingest.gridding import Grid, grid_overpass
from no2hotspots.ingest.readers import open_pixels, valid_pixels
from no2hotspots.ingest.run import run

from .conftest import stacked, write_s5p_l2

SCHEMA = {"no2", "no2_precision", "qa", "lat", "lon", "lat_bounds", "lon_bounds", "time"}


def test_ddeq_crop_reader(matimba_l2):
    px = open_pixels(matimba_l2)
    assert set(px.data_vars) == SCHEMA
    assert px.attrs["layout"] == "ddeq_crop" and px.attrs["qa_filter"] == "> 0.75"
    assert px.sizes == {"pixel": 132 * 169, "corner": 4}
    assert px.no2.attrs["units"] == "mol m-2"
    ok = valid_pixels(px, 0.75)
    assert ok.sum() == 22308 - 11998  # the crop's own QA mask, nothing else
    assert 1e-6 < np.nanmedian(px.no2.values[ok]) < 1e-4
    assert px.time.values[0].astype("datetime64[s]") == np.datetime64("2021-07-25T11:44:52")
    # centres lie inside their footprints
    assert np.all(np.abs(px.lat - px.lat_bounds.mean("corner")) < 0.02)


def test_s5p_l2_reader_matches_crop(matimba_l2, tmp_path):
    f = write_s5p_l2(tmp_path / "S5P_RPRO_L2__NO2____20210725T110715_x.nc", matimba_l2)
    px = open_pixels(f)
    assert set(px.data_vars) == SCHEMA
    assert px.attrs["layout"] == "s5p_l2" and px.attrs["product"] == "L2__NO2___"
    assert px.attrs["pixel_size_era"] == "5.5x3.5km"
    qa = px.qa.values
    assert qa.min() == pytest.approx(0.40, abs=1e-6) and qa.max() == pytest.approx(1.0, abs=1e-6)
    assert px.time.values[0].astype("datetime64[s]") == np.datetime64("2021-07-25T11:07:15")
    assert px.time.values[-1] > px.time.values[0]
    ok = valid_pixels(px, 0.75)
    ref = open_pixels(matimba_l2)
    ok_ref = valid_pixels(ref, 0.75)
    assert ok.sum() == ok_ref.sum()  # qa filtering recovers exactly the crop's QA mask
    grid = Grid.from_bbox([26.0, -25.0, 29.0, -22.0], 0.05)
    a = grid_overpass(
        grid, px.lon_bounds.values[ok], px.lat_bounds.values[ok], px.no2.values[ok], px.no2_precision.values[ok]
    )
    b = grid_overpass(
        grid,
        ref.lon_bounds.values[ok_ref],
        ref.lat_bounds.values[ok_ref],
        ref.no2.values[ok_ref],
        ref.no2_precision.values[ok_ref],
    )
    np.testing.assert_allclose(a.no2, b.no2, rtol=1e-5, equal_nan=True)  # float32 storage in the L2 file
    np.testing.assert_allclose(a.coverage, b.coverage, rtol=1e-5)


def test_s5p_l2_old_pixel_era_and_some_nan_corners(matimba_l2, tmp_path, caplog):
    f = write_s5p_l2(tmp_path / "old.nc", matimba_l2, start=dt.datetime(2019, 3, 1, 10, 0, 0), nan_corners="some")
    px = open_pixels(f)
    assert px.attrs["pixel_size_era"] == "7x3.5km"
    assert px.sizes["pixel"] == (132 - 5) * 169
    assert "NaN corner" in caplog.text


def test_harp_l3_scenes_ingest(shared_dir, ingest_cfg, tmp_path):
    files = sorted((shared_dir / "realdata" / "tropomi_l3_harp_nl").glob("*.nc"))
    assert len(files) == 3
    px = open_pixels(files[0])
    assert px.attrs["layout"] == "harp_l3" and int(np.isfinite(px.no2).sum()) == 779
    cfg = ingest_cfg(shared_dir / "realdata" / "tropomi_l3_harp_nl" / "*.nc")
    run(cfg)
    ds = stacked(tmp_path / "outputs" / "ingest" / "test")
    # HARP edges (50.2753 N, 2.395 E) are not multiples of 0.05, so the grid snaps outward to 77 x 109 cells
    assert ds.sizes["time"] == 3 and ds.sizes["lat"] == 77 and ds.sizes["lon"] == 109
    assert list(ds.time.dt.strftime("%Y%m%dT%H%M").values) == ["20211217T1150", "20211218T1130", "20211218T1310"]
    # conservation: a 0.1 deg HARP cell = 4 grid cells of area; column x area is conserved exactly
    for t, f in enumerate(files):
        harp = open_pixels(f).no2.values
        assert float(ds.coverage[t].sum()) == pytest.approx(4 * np.isfinite(harp).sum(), rel=1e-5)
        assert float((ds.no2[t] * ds.coverage[t]).sum()) == pytest.approx(4 * np.nansum(harp), rel=1e-5)
    assert int(ds.obs_count.max()) == 3
    # the Maasvlakte signal (18 Dec 11:27 scene): 3.1e-4 mol m-2, ~5.7x the scene median
    v = float(ds.no2.isel(time=1).sel(lat=51.944, lon=4.067, method="nearest"))
    assert v == pytest.approx(3.1e-4, rel=0.05)  # regridding a 0.1 deg cell onto 0.05 deg keeps the peak
    assert v / float(ds.no2.isel(time=1).median()) > 4
    assert (tmp_path / "outputs" / "ingest" / "test" / "validation.json").exists()


def test_truncated_file_is_input_error(matimba_l2, tmp_path):
    f = tmp_path / "trunc.nc"
    f.write_bytes(matimba_l2.read_bytes()[:300_000])
    with pytest.raises(InputFileError, match="trunc.nc"):
        open_pixels(f)


def test_s5p_l2_pixels_without_a_qa_value_fail_the_filter(matimba_l2, tmp_path):
    """qa_value at its fill (255): no QA, so no threshold is met (NaN means "filtered upstream" only for the HARP
    and ddeq layouts)."""
    px = open_pixels(write_s5p_l2(tmp_path / "S5P_RPRO_L2__NO2____fill.nc", matimba_l2, qa_all=2.55))
    assert np.isfinite(px.no2.values).any()
    assert not valid_pixels(px, 0.75).any() and not valid_pixels(px, 0.0 + 1e-3).any()


def test_an_l2_granule_without_pixels_is_one_line(tmp_path):
    import netCDF4

    f = tmp_path / "S5P_RPRO_L2__NO2____empty.nc"
    with netCDF4.Dataset(f, "w") as nc:
        nc.product_type = "L2__NO2___"
        p = nc.createGroup("PRODUCT")
        for d, n in (("time", 1), ("scanline", 0), ("ground_pixel", 450), ("corner", 4)):
            p.createDimension(d, n)
        dims3 = ("time", "scanline", "ground_pixel")
        p.createVariable("time", "i4", ("time",)).units = "seconds since 2010-01-01 00:00:00"
        p.createVariable("delta_time", "i4", ("time", "scanline")).units = "milliseconds"
        for name in ("nitrogendioxide_tropospheric_column", "latitude", "longitude"):
            p.createVariable(name, "f4", dims3).units = "mol m-2"
        p.createVariable("qa_value", "u1", dims3)
        g = p.createGroup("SUPPORT_DATA").createGroup("GEOLOCATIONS")
        for name in ("latitude_bounds", "longitude_bounds"):
            g.createVariable(name, "f4", dims3 + ("corner",))
    with pytest.raises(InputFileError, match=r"has no pixels \(0 scanlines x 450 ground pixels\)") as e:
        open_pixels(f)
    assert "\n" not in str(e.value)


def test_the_overpass_time_is_that_of_the_pixels_over_the_region(matimba_l2, ingest_cfg, tmp_path):
    """A granule reaching far beyond the collection's bbox (a full orbit spans ~100 min): the overpass is stamped
    with the mean time of the pixels whose footprint reaches the gridded crop, not of the whole granule."""
    (tmp_path / "in").mkdir()
    f = write_s5p_l2(tmp_path / "in" / "S5P_RPRO_L2__NO2____20210725T110715_x.nc", matimba_l2)
    px = open_pixels(f)
    ok = valid_pixels(px, 0.75)
    t = px.time.values[ok].astype("datetime64[ns]")
    whole = t.min() + (t - t.min()).mean()
    bbox = [26.0, -26.4, 30.0, -25.6]  # the southern edge of the crop: its first scanlines
    run(ingest_cfg(tmp_path / "in" / "*.nc", bbox=bbox))
    ds = stacked(tmp_path / "outputs" / "ingest" / "test")
    lo, la = px.lon_bounds.values[ok], px.lat_bounds.values[ok]
    south, north = float(ds.lat.min()) - 0.025, float(ds.lat.max()) + 0.025
    west, east = float(ds.lon.min()) - 0.025, float(ds.lon.max()) + 0.025
    seen = (lo.max(1) > west) & (lo.min(1) < east) & (la.max(1) > south) & (la.min(1) < north)
    ts = t[seen]
    assert 0 < seen.sum() < ok.sum()
    expected = ts.min() + (ts - ts.min()).mean()
    got = ds.time.values[0].astype("datetime64[ns]")
    assert abs(got - expected) < np.timedelta64(1, "s")
    assert abs(got - whole) > np.timedelta64(20, "s")  # the whole granule's mean lies well after the region's


def test_a_harp_file_of_one_row_says_why_it_cannot_be_gridded(shared_dir, tmp_path):
    import xarray as xr

    src = sorted((shared_dir / "realdata" / "tropomi_l3_harp_nl").glob("*.nc"))[0]
    f = tmp_path / "one_row.nc"
    with xr.open_dataset(src) as ds:
        ds.isel(latitude=slice(10, 11)).to_netcdf(f)
    with pytest.raises(InputFileError, match="latitude has 1 cell centre"):
        open_pixels(f)


def test_l2_scanlines_whose_delta_time_is_the_fill_have_no_time(matimba_l2, ingest_cfg, tmp_path):
    """delta_time at its fill is no time (it used to become 0 ms: the reference day's midnight, which pulled the
    overpass's mean time hours early); a granule whose every delta_time is the fill is a one-line error."""
    import netCDF4

    (tmp_path / "in").mkdir()
    f = write_s5p_l2(tmp_path / "in" / "S5P_RPRO_L2__NO2____20210725T110715_dtfill.nc", matimba_l2)
    before = open_pixels(f).time.values.astype("datetime64[ns]")
    with netCDF4.Dataset(f, "a") as nc:
        nc["PRODUCT"]["delta_time"][0, :5] = np.ma.masked  # the first scanlines: the crop's southern edge
    px = open_pixels(f)
    t = px.time.values.astype("datetime64[ns]")
    nat = np.isnat(t)
    assert nat.any() and not nat.all()
    np.testing.assert_array_equal(t[~nat], before[~nat])
    # the overpass time of a region holding both: the mean of its timed pixels only (the fill no longer counts)
    run(ingest_cfg(tmp_path / "in" / "*.nc", bbox=[26.0, -26.4, 30.0, -25.6]))
    got = stacked(tmp_path / "outputs" / "ingest" / "test").time.values[0].astype("datetime64[ns]")
    assert abs(got - t[~nat].min()) < np.timedelta64(30, "m")  # midnight in the mean put it hours off
    with netCDF4.Dataset(f, "a") as nc:
        nc["PRODUCT"]["delta_time"][0, :] = np.ma.masked
    with pytest.raises(InputFileError, match="delta_time holds only fill values") as e:
        open_pixels(f)
    assert "\n" not in str(e.value)
