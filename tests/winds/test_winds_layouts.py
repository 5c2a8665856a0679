"""Wind file layouts: the simple u/v layout (OSSE), CDS quirks, and one-line errors naming the file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from no2hotspots.errors import ConfigError, InputFileError
from no2hotspots.winds import open_winds
from no2hotspots.winds.field import direction_from_uv
from no2hotspots.winds.profile import interp_columns


def simple_file(path, times, u, v, *, lat=(38.0, 42.0), lon=(110.0, 114.0), units="m s-1", names=("u", "v")):
    t = pd.to_datetime(times).values
    shape = (len(t), len(lat), len(lon))
    data = {}
    for name, val in zip(names, (u, v)):
        if name is not None:
            arr = np.broadcast_to(np.asarray(val, float)[:, None, None], shape).copy()
            data[name] = (("time", "latitude", "longitude"), arr, {"units": units})
    xr.Dataset(data, coords={"time": t, "latitude": list(lat), "longitude": list(lon)}).to_netcdf(path)
    return path


def test_simple_layout_is_read_and_interpolated_in_time(tmp_path):
    f = simple_file(tmp_path / "w.nc", ["2019-09-01T06:00", "2019-09-01T07:00"], [2.0, 4.0], [-1.0, -1.0])
    w = open_winds({"paths": str(f), "time_window_h": 0.0, "level": {"kind": "pressure"}})  # level n/a: one level
    s = w.at([40.0], [112.0], "2019-09-01T06:30")
    assert s.u[0] == pytest.approx(3.0) and s.v[0] == pytest.approx(-1.0)
    assert s.direction_from[0] == pytest.approx(direction_from_uv(3.0, -1.0))
    assert "simple layout" in s.source[0]
    # the 1 h window before 07:00 averages 06:00..07:00 and measures the change as spread
    s2 = open_winds({"paths": str(f), "time_window_h": 1.0}).at([40.0], [112.0], "2019-09-01T07:00")
    assert s2.u[0] == pytest.approx(3.0)
    assert (
        s2.sigma_speed[0]
        > open_winds({"paths": str(f), "time_window_h": 0.0}).at([40.0], [112.0], "2019-09-01T07:00").sigma_speed[0]
    )


def test_directions_follow_the_meteorological_convention():
    assert direction_from_uv(0.0, -5.0) == pytest.approx(0.0)  # blowing south = from north
    assert direction_from_uv(-5.0, 0.0) == pytest.approx(90.0)  # blowing west = from east
    assert direction_from_uv(5.0, 0.0) == pytest.approx(270.0)


def test_cds_longitudes_0_360_and_descending_latitudes(tmp_path):
    lat = np.array([41.0, 40.0, 39.0])  # descending, as the CDS writes
    lon = np.array([358.0, 359.0, 0.0, 1.0])  # 0..360 across the meridian
    u = np.broadcast_to(lon[None, None, :] * 0 + np.arange(4)[None, None, :], (2, 3, 4)).astype(float)
    ds = xr.Dataset(
        {
            "u10": (("valid_time", "latitude", "longitude"), u, {"units": "m s**-1"}),
            "v10": (("valid_time", "latitude", "longitude"), np.zeros_like(u) - 1, {"units": "m s**-1"}),
        },
        coords={
            "valid_time": pd.to_datetime(["2021-01-01T00", "2021-01-01T01"]).values,
            "latitude": lat,
            "longitude": lon,
        },
    )
    ds.to_netcdf(tmp_path / "sl.nc")
    w = open_winds({"paths": str(tmp_path / "sl.nc"), "level": {"kind": "single", "single": "10m"}, "time_window_h": 0})
    s = w.at([40.0, 40.0], [-1.5, 0.5], "2021-01-01T00:30")
    # lon -1.5 lies between 358 (u=0) and 359 (u=1); 0.5 between 0 (u=2) and 1 (u=3)
    assert s.u == pytest.approx([0.5, 2.5])


@pytest.mark.parametrize("units", ["km h-1", "knots", "m s-2"])
def test_wrong_units_one_line_naming_the_file(tmp_path, units):
    f = simple_file(tmp_path / "bad_units.nc", ["2019-09-01T06:00"], [2.0], [1.0], units=units)
    with pytest.raises(InputFileError) as e:
        open_winds({"paths": str(f)})
    msg = str(e.value)
    assert "\n" not in msg and str(f) in msg and repr(units) in msg and "m s-1" in msg


def test_missing_units_attribute(tmp_path):
    f = simple_file(tmp_path / "nounits.nc", ["2019-09-01T06:00"], [2.0], [1.0])
    ds = xr.open_dataset(f).load()
    del ds["u"].attrs["units"]
    ds.to_netcdf(tmp_path / "nounits2.nc")
    with pytest.raises(InputFileError, match="nounits2.nc: variable u has no units attribute"):
        open_winds({"paths": str(tmp_path / "nounits2.nc")})


def test_missing_wind_variable_one_line_naming_the_file(tmp_path):
    only_u = simple_file(tmp_path / "only_u.nc", ["2019-09-01T06:00"], [2.0], [1.0], names=("u", None))
    with pytest.raises(InputFileError) as e:
        open_winds({"paths": str(only_u)})
    assert "\n" not in str(e.value) and str(only_u) in str(e.value) and "missing wind variable v" in str(e.value)
    nothing = tmp_path / "no_wind.nc"
    t2m = (("time", "lat", "lon"), np.zeros((1, 2, 2)), {"units": "K"})
    when = pd.to_datetime(["2019-09-01"]).values
    xr.Dataset({"t2m": t2m}, coords={"time": when, "lat": [0.0, 1.0], "lon": [0.0, 1.0]}).to_netcdf(nothing)
    with pytest.raises(InputFileError) as e:
        open_winds({"paths": str(nothing)})
    assert "\n" not in str(e.value) and str(nothing) in str(e.value) and "missing wind variable" in str(e.value)


def test_real_era5_with_a_wrong_unit_or_without_v(ddeq_data, tmp_path):
    """The shipped ERA5 file, altered: a unit other than m s-1, then the v component removed."""
    src = ddeq_data / "era5" / "Matimba_ERA5-pl-20210725.nc"
    ds = xr.open_dataset(src).load()
    bad = ds.copy()
    bad["u"].attrs["units"] = "km h**-1"
    bad.to_netcdf(tmp_path / "pl_kmh.nc")
    with pytest.raises(InputFileError) as e:
        open_winds({"paths": str(tmp_path / "pl_kmh.nc"), "level": {"kind": "pressure"}})
    assert "\n" not in str(e.value) and "pl_kmh.nc: variable u has units 'km h**-1'" in str(e.value)
    ds.drop_vars("v").to_netcdf(tmp_path / "pl_no_v.nc")
    with pytest.raises(InputFileError, match=r"pl_no_v.nc: missing wind variable v \(found u\)"):
        open_winds({"paths": str(tmp_path / "pl_no_v.nc"), "level": {"kind": "pressure"}})


def test_missing_file_and_unknown_pressure_level(tmp_path, ddeq_data):
    with pytest.raises(InputFileError, match="nowhere.nc: wind file not found"):
        open_winds({"paths": str(tmp_path / "nowhere.nc")})
    assert open_winds({"paths": str(tmp_path / "*.nc")}).files == []  # an empty glob: no files, fallback
    pl = str(ddeq_data / "era5" / "Matimba_ERA5-pl-20210725.nc")
    w = open_winds({"paths": pl, "level": {"kind": "pressure", "pressure_hpa": 500}})
    with pytest.raises(ConfigError, match="quantify.winds.level.pressure_hpa: 500 hPa is not in"):
        w.at([-23.7], [27.6], "2021-07-25T11:00")
    with pytest.raises(ConfigError, match="quantify.winds.level.kind"):
        open_winds({"paths": pl, "level": {"kind": "sometimes"}})


def test_layer_needs_surface_geopotential(ddeq_data):
    pl = str(ddeq_data / "era5" / "Matimba_ERA5-pl-20210725.nc")
    w = open_winds({"paths": pl, "level": {"kind": "layer"}})
    with pytest.raises(ConfigError, match="surface geopotential"):
        w.at([-23.7], [27.6], "2021-07-25T11:00")


def test_interp_columns_linear_profile_mean_is_exact():
    h = np.array([[np.nan], [100.0], [300.0], [1000.0]])  # one level missing (below ground)
    u = np.array([[99.0], [1.0], [3.0], [10.0]])  # u = h / 100
    z = (np.arange(10)[:, None] + 0.5) / 10 * 200.0 + 100.0  # 100..300 m
    (ui,) = interp_columns(h, [u], z)
    assert ui.mean() == pytest.approx(2.0)
    (below,) = interp_columns(h, [u], np.array([[10.0]]))
    assert below[0, 0] == pytest.approx(1.0)  # constant below the lowest valid level


def test_a_period_of_daily_files_is_never_held_at_once(tmp_path):
    """Stream, don't stack: walking 20 daily files keeps at most ``cache_files`` reduced; the winds do not depend on
    the cache's size or on the order of the queries."""
    days = pd.date_range("2019-09-01", periods=20, freq="D")
    for k, d in enumerate(days):  # hourly winds, a different u every day and hour
        times = pd.date_range(d, periods=24, freq="h")
        simple_file(tmp_path / f"w_{k:02d}.nc", times, 1.0 + k + np.arange(24) / 24.0, np.full(24, -1.0))
    cfg = {"paths": str(tmp_path / "w_*.nc"), "time_window_h": 1.0}
    at = [d + pd.Timedelta(hours=h) for d in days for h in (0, 5, 13)]  # 00:00 needs the day before too
    small, big = open_winds(cfg), open_winds(cfg)
    small.cache_files, big.cache_files = 3, 100
    u_small, u_big = [], []
    for t in at:
        u_small.append(small.at([40.0], [112.0], t).u[0])
        u_big.append(big.at([40.0], [112.0], t).u[0])
        assert len(small._cache) <= 3
    assert len(big._cache) == 20
    assert np.allclose(u_small, u_big)
    assert u_small[4] == pytest.approx(2.0 + 5 / 24 - 0.5 / 24)  # day 1, 05:00: mean of 04:00..05:00
    rev = open_winds(cfg)
    rev.cache_files = 2
    assert np.allclose([rev.at([40.0], [112.0], t).u[0] for t in reversed(at)], u_big[::-1])
    assert len(rev._cache) <= 2


def test_per_point_windows_average_each_point_over_its_own_hours(tmp_path):
    """u rises by 1 m/s per hour: the mean over w hours before 09:00 is u(09:00) - w/2 for each point's own w; equal
    windows give exactly the single-window answer; a window longer than the files reach back is cut to them."""
    times = pd.date_range("2019-09-01T05:00", "2019-09-01T09:00", freq="1h")
    f = simple_file(tmp_path / "w.nc", times, np.arange(5.0) + 2.0, np.zeros(5))  # 2..6 m/s
    w = open_winds({"paths": str(f), "time_window_h": 1.0})
    s = w.at([40.0, 40.0, 41.0], [112.0, 112.0, 113.0], "2019-09-01T09:00", window_h=[0.5, 2.0, 3.0])
    assert s.u == pytest.approx([6.0 - 0.25, 6.0 - 1.0, 6.0 - 1.5])
    assert s.window_h == pytest.approx([0.5, 2.0, 3.0])
    assert s.row(1)["wind_window_h"] == pytest.approx(2.0)
    # a longer window measures more change: the speed's spread grows with it
    assert s.sigma_speed[0] < s.sigma_speed[1] < s.sigma_speed[2]
    one = w.at([40.0, 41.0], [112.0, 113.0], "2019-09-01T09:00")
    same = w.at([40.0, 41.0], [112.0, 113.0], "2019-09-01T09:00", window_h=[1.0, 1.0])
    assert np.array_equal(one.u, same.u) and np.array_equal(one.sigma_speed, same.sigma_speed)
    assert one.window_h == pytest.approx([1.0, 1.0])
    # the files start at 05:00 (one hourly step of margin, as for the single window): 6 h asked at 09:00 gives 5
    cut = w.at([40.0, 40.0], [112.0, 112.0], "2019-09-01T09:00", window_h=[6.0, 1.0])
    assert cut.window_h == pytest.approx([5.0, 1.0]) and cut.source[0] == cut.source[1]
    assert cut.u[0] == pytest.approx(np.mean(np.interp(np.linspace(-5, 0, 21), [-4, -3, -2, -1, 0], [2, 3, 4, 5, 6])))


def test_travel_windows_are_the_air_travel_time_within_the_limits():
    from no2hotspots.winds.field import travel_window_h

    w = travel_window_h(20.0, np.array([5.0, 2.0, 20.0, np.nan, 0.0]), (0.5, 2.5))
    assert w == pytest.approx([20e3 / 5 / 3600, 2.5, 0.5, 2.5, 2.5])


def test_the_direction_spread_is_the_measured_turning_of_the_wind(tmp_path):
    """A wind of 5 m/s turning from the west (270 deg) to the south-west (225 deg) over the hour before 07:00: the
    1-h mean measures the spread across its mean direction, wind_from_spread_deg = atan(sqrt(var_cross) / speed) over
    the window's samples, the data part of wind_from_sigma_deg (the stated 15 deg added in quadrature); a steady wind
    has none, the fallback NaN."""
    times = pd.date_range("2019-09-01T06:00", "2019-09-01T07:00", freq="1h")
    u0, v0 = 5.0, 0.0  # blowing east: from 270 deg
    u1, v1 = 5.0 * np.cos(np.radians(45.0)), 5.0 * np.sin(np.radians(45.0))  # blowing north-east: from 225 deg
    f = simple_file(tmp_path / "w.nc", times, [u0, u1], [v0, v1])
    s = open_winds({"paths": str(f), "time_window_h": 1.0}).at([40.0], [112.0], "2019-09-01T07:00")
    row = s.row(0)
    x = np.linspace(0.0, 1.0, 5)  # the window's samples every 15 min, linear in time between the hourly fields
    us, vs = u0 + (u1 - u0) * x, v0 + (v1 - v0) * x
    eu, ev = us.mean() / np.hypot(us.mean(), vs.mean()), vs.mean() / np.hypot(us.mean(), vs.mean())
    expect = np.degrees(np.arctan(np.sqrt(ev**2 * us.var() + eu**2 * vs.var()) / np.hypot(us.mean(), vs.mean())))
    assert row["wind_from_spread_deg"] == pytest.approx(expect, rel=1e-6)
    assert 5.0 < row["wind_from_spread_deg"] < 20.0
    assert row["wind_from_sigma_deg"] == pytest.approx(np.hypot(15.0, expect), rel=1e-9)
    steady = simple_file(tmp_path / "s.nc", times, [u0, u0], [v0, v0])
    assert open_winds({"paths": str(steady)}).at([40.0], [112.0], "2019-09-01T07:00").row(0)[
        "wind_from_spread_deg"] == pytest.approx(0.0, abs=1e-9)  # fmt: skip
    assert np.isnan(open_winds({"paths": None}).at([40.0], [112.0], "2019-09-01T07:00").row(0)["wind_from_spread_deg"])
