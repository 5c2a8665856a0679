"""The IME and flux-divergence disk shared with another known source (quantify/neighbours.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from no2hotspots.quantify import divergence, ime
from no2hotspots.quantify.estimate import Lifetime, Wind
from no2hotspots.quantify.neighbours import exit_km, own_fraction, own_side
from no2hotspots.quantify.overpass import sharing_sources, upwind_sources
from no2hotspots.quantify.scene import EARTH_RADIUS_M, disk_fraction, local_scene

Q = 5.24  # mol/s NO2, ~10 kt NOx/yr
TAU = 4 * 3600.0
R = 20.0


def _offset(dx_km: float, dy_km: float, lat0=40.0, lon0=112.0) -> tuple[float, float]:
    lat = lat0 + np.degrees(dy_km * 1e3 / EARTH_RADIUS_M)
    return lat, lon0 + np.degrees(dx_km * 1e3 / (EARTH_RADIUS_M * np.cos(np.radians(lat))))


def _scene(qhelp, other_km, c=None, share=True):
    lat, lon = qhelp.grid_axes()
    if c is None:
        c = qhelp.background(lat, lon)
    nb = [_offset(*other_km)]
    return local_scene(lat, lon, c, np.full(c.shape, 1e-6), 40.0, 112.0, 60.0, nb, 8.0, sharing=nb if share else ())


@pytest.mark.parametrize("d_km", [12.0, 16.0, 30.0])
def test_own_fraction_is_the_disk_less_the_segment_beyond_the_half_way_line(qhelp, d_km):
    """The area kept equals the disk's less the circular segment beyond D/2 (analytic) within 1 %; the cells wholly
    on this side keep their disk share, those beyond keep nothing."""
    sc = _scene(qhelp, (d_km * np.cos(0.6), d_km * np.sin(0.6)))
    frac, disk = own_fraction(sc, R), disk_fraction(sc, R)
    h = d_km / 2
    segment = R**2 * np.arccos(h / R) - h * np.sqrt(R**2 - h**2)
    assert (frac * sc.area).sum() / (disk * sc.area).sum() == pytest.approx(1 - segment / (np.pi * R**2), rel=0.01)
    o = sc.sharing[0]
    beyond = sc.x * o[0] + sc.y * o[1] - 0.5 * d_km**2
    assert np.all(frac[beyond > d_km * 4.0] == 0) and np.array_equal(
        frac[beyond < -d_km * 4.0], disk[beyond < -d_km * 4.0]
    )
    assert np.array_equal(own_side(sc, R), beyond < 0)


def test_sources_nearer_than_the_split_distance_or_beyond_2r_do_not_split(qhelp):
    points = [_offset(8.0, 0.0), _offset(0.0, 16.0), _offset(-41.0, 0.0)]
    assert sharing_sources(40.0, 112.0, points, 10.0) == [pytest.approx(p) for p in points[1:]]
    assert sharing_sources(40.0, 112.0, points, None) == [] and sharing_sources(40.0, 112.0, [], 10.0) == []
    sc = _scene(qhelp, (-41.0, 0.0))  # no half-way line inside the disk
    assert np.array_equal(own_fraction(sc, R), disk_fraction(sc, R)) and own_side(sc, R).all()
    assert exit_km(sc, R, 90.0) == R


def test_exit_is_where_the_wind_meets_the_half_way_line(qhelp):
    sc = _scene(qhelp, (16.0, 0.0))  # 16 km east
    assert exit_km(sc, R, 270.0) == pytest.approx(8.0, abs=0.05)  # wind from the west: straight at it
    assert exit_km(sc, R, 210.0) == pytest.approx(16.0, abs=0.05)  # heading 60 deg off: D^2 / (2 D cos 60)
    assert exit_km(sc, R, 90.0) == R and exit_km(sc, R, 0.0) == R  # heading away, along the line
    assert exit_km(sc, R, np.nan) == R


def _two_plumes(qhelp, other_km, w=270.0, q2=2.0 * Q):
    lat, lon = qhelp.grid_axes()
    nb = _offset(*other_km)
    c = qhelp.plume_columns(Q, 5.0, w, TAU, lat=lat, lon=lon) + qhelp.background(lat, lon)
    return c + qhelp.plume_columns(q2, 5.0, w, TAU, lat=lat, lon=lon, src_lat=nb[0], src_lon=nb[1])


@pytest.mark.parametrize(
    ("other_km", "ime_ok"),
    [((0.0, 15.0), True), ((0.0, -13.0), True), ((15.0, 0.0), True), ((-15.0, 0.0), False)],
    ids=["beside_north", "beside_south", "downwind", "upwind"],
)
def test_a_neighbour_inside_the_disk_stays_on_its_side(qhelp, other_km, ime_ok):
    """A source twice as strong 13-15 km away, beside, downwind or upwind (wind from the west, 5 m/s, 4 h): without
    the split both disk methods count much of it (IME and divergence 1.3-2.2 x the rate); with it (the divergence's
    is off by default) the divergence gets this source's rate within 12 % wherever the neighbour sits, the IME beside
    and downwind of it (the plume's path ends at the half-way line). A neighbour upwind sends its plume through the
    disk: the IME still counts that (module docstring)."""
    c = _two_plumes(qhelp, other_km)
    sc, alone = _scene(qhelp, other_km, c), _scene(qhelp, other_km, c, share=False)
    w, life = Wind(5.0, 1.0, 270.0, 15.0), Lifetime(TAU, 1.5 * 3600)
    for method, cfg in ((divergence, divergence.DivergenceConfig(split_disk=True)), (ime, ime.IMEConfig())):
        whole = method.estimate(alone, w, life, cfg, _sens=False)
        split = method.estimate(sc, w, life, cfg, _sens=False)
        assert method.estimate(sc, w, life, replace(cfg, split_disk=False), _sens=False).q == whole.q
        assert whole.ok and split.ok, (whole.flags, split.flags)
        assert whole.q > 1.3 * Q, method.METHOD
        if method is divergence or ime_ok:
            assert split.q == pytest.approx(Q, rel=0.12), method.METHOD
        else:
            assert split.q > 1.3 * Q


def test_the_ime_exit_moves_with_the_wind_direction_and_its_term_sees_it(qhelp):
    """With the neighbour straight downwind the direction term re-runs the split at +-1 sigma: the exit moves, and
    the estimate at each direction is still this source's rate (the term stays below 15 % of it)."""
    sc = _scene(qhelp, (15.0, 0.0), _two_plumes(qhelp, (15.0, 0.0)))
    e = ime.estimate(sc, Wind(5.0, 1.0, 270.0, 15.0), Lifetime(TAU, 1.5 * 3600))
    assert e.diag["exit_km"] == pytest.approx(7.5, abs=0.1)
    assert 0 < e.sigma["wind_direction"] < 0.15 * Q


def test_the_truth_counts_each_inventory_source_at_the_nearest_point():
    """The inventory sources matched within co2.match_km of a point count in its truth only where they lie nearer to
    it than to each source sharing its disk: a plant 7 km east of a hotspot and 5 km from a site 12 km east is the
    site's, not the hotspot's (both would have counted it before)."""
    import pandas as pd

    from no2hotspots.quantify.overpass import Context

    a, b, c = _offset(0.5, 0.0), _offset(7.0, 0.0), _offset(4.0, 5.0)
    inv = pd.DataFrame({"id": ["A", "B", "C"], "lat": [a[0], b[0], c[0]], "lon": [a[1], b[1], c[1]],
                        "nox_t_per_yr": [3000.0, 2000.0, 500.0]})  # fmt: skip
    sites = pd.DataFrame({"site_id": [1], "lat": [40.0], "lon": [112.0], "n_detections": [1]})
    ctx = Context({}, sites, {}, None, inv, None)
    ids, t = ["A", "B", "C"], "2020-01-01"
    assert ctx.truth_at(ids, 40.0, 112.0, [], t) == pytest.approx(5500.0)
    assert ctx.truth_at(ids, 40.0, 112.0, [_offset(12.0, 0.0)], t) == pytest.approx(3500.0)
    assert ctx.truth_at(ids, 40.0, 112.0, [_offset(12.0, 0.0), _offset(6.0, 9.0)], t) == pytest.approx(3000.0)
    assert np.isnan(ctx.truth_at(["B"], 40.0, 112.0, [_offset(12.0, 0.0)], t))  # none left: no truth


def test_upwind_sources_counts_known_sources_whose_plume_passes_through():
    """Known sources upwind of a point within csf's cone half-width of the wind's axis and one e-folding length
    U tau: 30 km upwind on the axis counts (once with a second point 2 km from it); downwind, 20 km across, nearer
    than period.merge_km, or beyond U tau at a slow wind does not; no direction: NaN."""
    from no2hotspots.quantify import chemistry, csf
    from no2hotspots.quantify.period import PeriodConfig

    s = {"chemistry": chemistry.Chemistry(lifetime_h=4.0), "scene_half_km": 80.0, "csf": csf.CSFConfig(),
         "period": PeriodConfig()}  # fmt: skip
    west = {"wind_speed_m_s": 5.0}  # U tau = 72 km
    info = {"direction_used_deg": 270.0}  # from the west: upwind is west
    up, down, side, near = _offset(-30, 0), _offset(30, 0), _offset(-30, 20), _offset(-8, 0)
    assert upwind_sources(40.0, 112.0, [up], info, west, s) == 1
    assert upwind_sources(40.0, 112.0, [up, _offset(-60, 5)], info, west, s) == 2
    assert upwind_sources(40.0, 112.0, [up, _offset(-32, 1)], info, west, s) == 1  # a hotspot at a site: once
    assert upwind_sources(40.0, 112.0, [down, side, near], info, west, s) == 0
    assert upwind_sources(40.0, 112.0, [up], {"direction_used_deg": 90.0}, west, s) == 0
    assert upwind_sources(40.0, 112.0, [up], info, {"wind_speed_m_s": 2.0}, s) == 0  # U tau = 28.8 km
    assert upwind_sources(40.0, 112.0, [], info, west, s) == 0
    assert np.isnan(upwind_sources(40.0, 112.0, [up], {"direction_used_deg": np.nan}, west, s))


def test_upwind_sources_counts_a_chain_the_same_in_any_order():
    """A chain of known sources 8 km apart upwind (merge_km 10): counted nearest first, the one 8 km beyond the
    first is the same source and the next, 16 km beyond it, another: 2 in each of the six orders (counted in
    input order, the middle one first gave 1)."""
    import itertools

    from no2hotspots.quantify import chemistry, csf
    from no2hotspots.quantify.period import PeriodConfig

    s = {"chemistry": chemistry.Chemistry(lifetime_h=4.0), "scene_half_km": 80.0, "csf": csf.CSFConfig(),
         "period": PeriodConfig()}  # fmt: skip
    chain = [_offset(-20, 0), _offset(-28, 0), _offset(-36, 0)]
    counts = {upwind_sources(40.0, 112.0, list(o), {"direction_used_deg": 270.0}, {"wind_speed_m_s": 5.0}, s)
              for o in itertools.permutations(chain)}  # fmt: skip
    assert counts == {2.0}
