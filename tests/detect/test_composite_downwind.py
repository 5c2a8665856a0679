"""The recurrence rule's downwind test (no2hotspots.detect.downwind): a site whose map maxima come when the wind
carries a stronger site's plume onto it is a satellite and is dropped; a neighbour that peaks whatever the wind stays.
The end-to-end case writes real detect unit files and a real wind file in the OSSE's layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from no2hotspots.contracts import detections
from no2hotspots.detect import downwind
from no2hotspots.detect.composite import composite_hotspots
from no2hotspots.detect.period import SatelliteTest
from no2hotspots.winds import open_winds

RES = 0.05
LAT = 36.0 + RES * np.arange(30)
LON = 110.0 + RES * np.arange(30)
P, S, N, F = (12, 12), (12, 15), (15, 12), (25, 25)  # strong site, satellite 3 cells east, neighbour south, far site
#: winds FROM these directions, one per overpass in turn (W: the plume of P blows east, onto S)
DIRECTIONS = (270.0, 0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 315.0)


def test_partners_are_stronger_sites_within_the_radius():
    lat = np.array([LAT[P[0]], LAT[S[0]], LAT[F[0]]])
    lon = np.array([LON[P[1]], LON[S[1]], LON[F[1]]])
    pair, dx, dy = downwind.partners(lat, lon, np.array([0.5, 0.1, 0.05]), radius_km=20.0)
    assert pair.tolist() == [[False, False, False], [True, False, False], [False, False, False]]
    assert dx[1, 0] == pytest.approx(3 * RES * 111.32 * np.cos(np.deg2rad(lat.mean())))
    assert dy[1, 0] == pytest.approx(0.0)
    assert not downwind.partners(lat, lon, np.array([0.5, 0.1, 0.05]), radius_km=10.0)[0].any()


@pytest.mark.parametrize(
    ("direction_from", "expected"), [(270.0, True), (250.0, True), (200.0, False), (90.0, False), (np.nan, False)]
)
def test_a_site_east_of_its_partner_is_downwind_of_it_in_a_west_wind(direction_from, expected):
    pair, dx, dy = downwind.partners(np.array([36.0, 36.0]), np.array([110.0, 110.15]), np.array([0.5, 0.1]), 20.0)
    down = downwind.downwind_of_partner(pair, dx, dy, np.array([direction_from, np.nan]), half_angle_deg=45.0)
    assert down.tolist() == [False, expected]


def test_the_binomial_tail_flags_peaks_that_follow_the_wind_only():
    # 200 observed overpasses, 25 with the wind onto the site: 25 of 30 peak overpasses among them is a satellite,
    # 4 of 30 (about the 1/8 the wind explains) is not; no peaks or no downwind overpass: never flagged
    p, sat = downwind.satellite_test([200, 200, 200, 200], [25, 25, 25, 0], [30, 30, 0, 30], [25, 4, 0, 0], 0.01)
    assert sat.tolist() == [True, False, False, False]
    assert p[0] < 1e-10 and p[1] > 0.3 and p[2] == 1.0 and p[3] == 1.0


def test_counts_at_window_edges_unobserved_cells_and_neighbour_maxima():
    # sites: in the corner (two neighbours outside the window), unobserved centre, maximum only in a neighbour, a
    # maximum in a diagonal cell (not a 4-neighbour), outside the window; every site has the first as partner
    cells = np.array([[10, 20], [11, 22], [12, 24], [14, 22], [30, 30]])
    lat, lon = LAT[0] + RES * cells[:, 0], LON[0] + RES * cells[:, 1]
    pair = np.zeros((5, 5), bool)
    pair[1:, 0] = True
    dx = (lon[:, None] - lon[None, :]) * 111.32 * np.cos(np.deg2rad(lat.mean()))
    dy = (lat[:, None] - lat[None, :]) * 111.32
    mx = np.zeros((5, 5))  # the window: rows 10..14, columns 20..24 of the grid
    mx[1, 2] = np.nan  # site 1's own cell unobserved
    mx[2, 3] = 1.0  # next to site 2 (12, 24) -> (12, 23)
    mx[3, 1] = 1.0  # diagonal to site 3 (14, 22) -> (13, 21)
    mx[0, 1] = 1.0  # next to site 0, the corner
    west = np.array([270.0, np.nan, np.nan, np.nan, np.nan])  # every site lies east of site 0
    c = downwind.count_overpasses([(mx, west, (10, 20))] * 3, cells, pair, dx, dy, 45.0)
    assert c["n_obs"].tolist() == [0, 0, 3, 3, 0]  # site 0: no partner, not tested; site 4 outside
    assert c["n_hit"].tolist() == [0, 0, 3, 0, 0]
    assert c["n_obs_down"].tolist() == [0, 0, 3, 0, 0]  # site 3 lies north-north-east: 45+ degrees off a west wind
    assert c["n_hit_down"].tolist() == [0, 0, 3, 0, 0]
    unknown = np.full(5, np.nan)  # no wind at the partner: not counted
    assert not downwind.count_overpasses([(mx, unknown, (10, 20))], cells, pair, dx, dy, 45.0)["n_obs"].any()


def _unit_maps(n=96, seed=5):
    """Per overpass: a map with P's plume maxima, S's maximum when the wind blows from the west (plus 1 in 20
    otherwise), N's maximum on every third overpass whatever the wind, random alarms elsewhere; NaN border."""
    rng = np.random.default_rng(seed)
    maps = []
    for k in range(n):
        rel = rng.uniform(0.0, 0.01, (30, 30))
        rel[P] = 0.6
        west = DIRECTIONS[k % len(DIRECTIONS)] == 270.0
        if west or rng.random() < 0.05:
            rel[S] = 0.2
        if k % 3 == 0:
            rel[N] = 0.3
        rel[rng.integers(0, 30), rng.integers(0, 30)] = 0.1
        rel[0, :] = np.nan
        maps.append(rel)
    return maps


def _write_case(tmp_path, maps, turn=0.0):
    """Unit files as detect writes them, an index as ingest's grid gives it, and one OSSE-layout wind file whose
    wind comes from DIRECTIONS (turned by ``turn`` degrees) in turn."""
    tmp_path.mkdir(exist_ok=True)
    t0 = np.datetime64("2019-06-01T05:00", "ns")
    times = [t0 + np.timedelta64(k, "D") for k in range(len(maps))]
    units_dir = tmp_path / "units"
    units_dir.mkdir()
    for k, rel in enumerate(maps):
        detections.write_overpass(
            units_dir / f"o{k:03d}.nc",
            lat=LAT,
            lon=LON,
            res=RES,
            rel=rel,
            ids=np.zeros(rel.shape),
            time=times[k],
            attrs={},
        )
    index = pd.DataFrame({"key": [f"o{k:03d}" for k in range(len(maps))], "time": pd.to_datetime(times)})
    index[["i0", "j0", "ny", "nx"]] = (0, 0, 30, 30)
    wt = np.array([t + np.timedelta64(h, "h") for t in times for h in (-3, 0, 1)], dtype="datetime64[ns]")
    d = np.deg2rad(np.repeat([DIRECTIONS[k % len(DIRECTIONS)] + turn for k in range(len(maps))], 3))
    wlat, wlon = np.arange(35.0, 38.01, 0.5), np.arange(109.0, 112.01, 0.5)
    shape = (len(wt), len(wlat), len(wlon))
    u = np.broadcast_to((-6.0 * np.sin(d))[:, None, None], shape)
    v = np.broadcast_to((-6.0 * np.cos(d))[:, None, None], shape)
    attrs = {"units": "m s-1"}
    xr.Dataset(
        {
            "u": (("time", "latitude", "longitude"), u, {**attrs, "standard_name": "eastward_wind"}),
            "v": (("time", "latitude", "longitude"), v, {**attrs, "standard_name": "northward_wind"}),
        },
        coords={"time": wt, "latitude": wlat, "longitude": wlon},
    ).to_netcdf(tmp_path / "winds.nc")
    return index, units_dir


def _recurrence_settings(alpha):
    return {
        "rule": "recurrence",
        "min_valid": 3,
        "recurrence": {
            "alpha": 1e-4,
            "min_peaks": 2,
            "separation_cells": 1,
            "ring_cells": 0,
            "position": "cell",
            "level": 0.02,
            "downwind": {"alpha": alpha, "radius_km": 20.0, "half_angle_deg": 45.0},
        },
    }


def _period(maps):
    from no2hotspots.detect.composite import full_blocks, local_maxima

    n_valid = np.sum([np.isfinite(m) for m in maps], axis=0)
    n_max = np.sum([local_maxima(m, 0.02) for m in maps], axis=0)
    n_block = np.sum([full_blocks(m) for m in maps], axis=0)
    zeros = np.zeros((30, 30), np.int64)
    return {"n_valid": n_valid, "n_maxima": n_max, "n_maxima_valid": n_block, "n_peaks": zeros, "n_detections": zeros}


def _cells(df):
    return sorted(
        zip(np.rint((df.peak_lat - LAT[0]) / RES).astype(int), np.rint((df.peak_lon - LON[0]) / RES).astype(int))
    )


def _test(folder, turn=0.0):
    maps = _unit_maps()
    index, units_dir = _write_case(folder, maps, turn)
    winds = open_winds({"level": {"kind": "layer"}, "time_window_h": 0.0, "on_missing": "error"}, [folder / "winds.nc"])
    return maps, SatelliteTest(index, units_dir, 0.02, winds, _recurrence_settings(0.01)["recurrence"]["downwind"])


def test_the_satellite_is_dropped_and_the_neighbour_that_peaks_in_any_wind_stays(tmp_path):
    maps, test = _test(tmp_path)
    s = _recurrence_settings(0.01)
    assert _cells(composite_hotspots(_period(maps), LAT, LON, s)) == [P, S, N]  # all recur above the alarms' rate
    kept = composite_hotspots(_period(maps), LAT, LON, s, satellites=test)
    assert _cells(kept) == [P, N]
    assert (test.summary["n_sites"], test.summary["n_tested"], test.summary["n_dropped"]) == (3, 2, 1)


def test_with_the_wind_turned_nothing_follows_it_and_every_site_stays(tmp_path):
    # from the north when S peaks: P's plume goes south, onto N, whose peaks do not follow the wind; S's do not either
    maps, test = _test(tmp_path, turn=90.0)
    kept = composite_hotspots(_period(maps), LAT, LON, _recurrence_settings(0.01), satellites=test)
    assert _cells(kept) == [P, S, N]
    assert test.summary["n_dropped"] == 0
