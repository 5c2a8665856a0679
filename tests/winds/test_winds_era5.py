"""The real ERA5 files shipped with the embedded data (Matimba, 25 July 2021), read in the CDS layout."""

from __future__ import annotations

import numpy as np
import pytest

from no2hotspots.errors import UserError
from no2hotspots.winds import open_winds
from no2hotspots.winds.layouts import open_wind_file

MATIMBA = (-23.668, 27.611)
OVERPASS = "2021-07-25T11:44:52"


@pytest.fixture(scope="module")
def era5(ddeq_data):
    return sorted(str(p) for p in (ddeq_data / "era5").glob("Matimba_ERA5-*-20210725.nc"))


def test_layouts_recognised(era5):
    kinds = {open_wind_file(p).kind for p in era5}
    assert kinds == {"pressure", "single"}
    pl = next(open_wind_file(p) for p in era5 if "-pl-" in p)
    assert pl.ds["lat"].values[0] < pl.ds["lat"].values[-1]  # CDS stores latitude descending: normalised
    assert pl.time.size == 24 and pl.ds["level"].max() == 1000.0


@pytest.mark.parametrize(
    "level",
    [
        {"kind": "layer", "bottom_m": 0, "top_m": 500},
        {"kind": "pbl"},
        {"kind": "pressure", "pressure_hpa": 850},
        {"kind": "single", "single": "10m"},
        {"kind": "single", "single": "100m"},
    ],
    ids=lambda d: d["kind"] + str(d.get("pressure_hpa", d.get("single", ""))),
)
def test_plausible_winds_at_matimba(era5, level):
    """The Waterberg at midday in winter: a moderate east-north-easterly (ERA5: ~4-8 m/s from 60-75 degrees)."""
    w = open_winds({"paths": era5, "level": level})
    s = w.at([MATIMBA[0]], [MATIMBA[1]], OVERPASS)
    assert 3.0 < s.speed[0] < 10.0
    assert 50.0 < s.direction_from[0] < 90.0
    assert s.u[0] < 0 and s.v[0] < 0  # blowing towards the west-south-west
    assert s.sigma_speed[0] >= 1.0  # at least the stated 1 m/s
    assert 15.0 <= s.sigma_direction[0] < 40.0
    assert "Matimba_ERA5" in s.source[0] and not s.source[0].startswith("fallback")


def test_wind_increases_with_height_and_levels_are_distinct(era5):
    at = lambda level: open_winds({"paths": era5, "level": level}).at([MATIMBA[0]], [MATIMBA[1]], OVERPASS)  # noqa: E731
    s10 = at({"kind": "single", "single": "10m"}).speed[0]
    s100 = at({"kind": "single", "single": "100m"}).speed[0]
    s850 = at({"kind": "pressure", "pressure_hpa": 850}).speed[0]
    layer = at({"kind": "layer", "top_m": 500})
    assert s10 < s100 < s850
    assert s10 < layer.speed[0] < s850
    assert "0-500 m above ground" in layer.source[0]


def test_levels_below_ground_are_not_used(era5):
    """Matimba's ground is ~910 m a.s.l. (~927 hPa): a 0-100 m layer mean must sit near the 10 m/100 m winds, not
    near the 1000/975/950 hPa levels ERA5 extrapolates below the ground."""
    s = open_winds({"paths": era5, "level": {"kind": "layer", "top_m": 100}}).at([MATIMBA[0]], [MATIMBA[1]], OVERPASS)
    s10 = open_winds({"paths": era5, "level": {"kind": "single", "single": "10m"}}).at(
        [MATIMBA[0]], [MATIMBA[1]], OVERPASS
    )
    s100 = open_winds({"paths": era5, "level": {"kind": "single", "single": "100m"}}).at(
        [MATIMBA[0]], [MATIMBA[1]], OVERPASS
    )
    assert s10.speed[0] <= s.speed[0] <= s100.speed[0] + 0.3


def test_time_window_spread_and_interpolation(era5):
    inst = open_winds({"paths": era5, "time_window_h": 0.0}).at([MATIMBA[0]], [MATIMBA[1]], "2021-07-25T11:00:00")
    hour = open_winds({"paths": era5, "time_window_h": 0.0}).at([MATIMBA[0]], [MATIMBA[1]], "2021-07-25T11:30:00")
    nxt = open_winds({"paths": era5, "time_window_h": 0.0}).at([MATIMBA[0]], [MATIMBA[1]], "2021-07-25T12:00:00")
    assert hour.u[0] == pytest.approx(0.5 * (inst.u[0] + nxt.u[0]), rel=1e-9)


def test_outside_the_domain_gets_the_fallback(era5):
    """The Highveld hotspot (26 S, 29.8 E) lies outside the ERA5 crop (23-25.2 S, 25-29 E)."""
    w = open_winds({"paths": era5, "fallback": {"speed_m_s": 4.0, "speed_sigma_m_s": 3.0}})
    s = w.at([MATIMBA[0], -25.975], [MATIMBA[1], 29.825], OVERPASS)
    assert not s.source[0].startswith("fallback")
    assert s.source[1].startswith("fallback: outside")
    assert s.speed[1] == 4.0 and s.sigma_speed[1] == 3.0 and np.isnan(s.direction_from[1])


def test_time_not_covered_falls_back_or_fails_in_one_line(era5):
    s = open_winds({"paths": era5}).at([MATIMBA[0]], [MATIMBA[1]], "2021-07-27T11:00:00")
    assert s.source[0].startswith("fallback: time not covered")
    with pytest.raises(UserError) as e:
        open_winds({"paths": era5, "on_missing": "error"}).at([MATIMBA[0]], [MATIMBA[1]], "2021-07-27T11:00:00")
    assert "\n" not in str(e.value) and "on_missing" in str(e.value)


def test_no_files_means_fallback_everywhere():
    w = open_winds({"paths": None})
    s = w.at([0.0, 10.0], [0.0, 10.0], OVERPASS)
    assert (s.speed == 5.0).all() and (s.sigma_speed == 2.5).all() and np.isnan(s.direction_from).all()
    assert "fallback" in w.describe()


@pytest.mark.parametrize("bad", [2.5, "25", True, 1])
def test_level_n_points_is_an_exact_integer_of_at_least_two(bad):
    from no2hotspots.errors import ConfigError
    from no2hotspots.winds.profile import LevelSpec

    with pytest.raises(ConfigError) as e:
        LevelSpec.from_config({"kind": "layer", "n_points": bad})
    assert e.value.key == "quantify.winds.level.n_points" and "\n" not in str(e.value)
    assert LevelSpec.from_config({"kind": "layer", "n_points": 7}).n_points == 7
