"""The puff transport's fast paths against their plain references: windowed (sparse) rendering against the dense
puffs x pixels product, source selection near a granule against advecting every source, grouped rendering and
per-source winds (the training simulator's puff scenes) against the OSSE's one-wind path."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from no2hotspots.osse.geometry import across_track_edges_km, granule_grid, region_outline
from no2hotspots.osse.transport import Puffs, release_puffs, render_puffs, render_puffs_dense
from no2hotspots.osse.weather import DayWind, FieldFrame, SourceWinds, random_day_wind, smooth_series

LAT0, LON0 = 38.0, 112.0
RELEASE = dict(release_hours=6.0, release_interval_min=10.0, substeps=1, sigma0_m=800.0, diffusivity_m2_s=1500.0)
WIND_CFG = OmegaConf.create(
    dict(
        speed_m_s=[3.0, 8.0],
        speed_min_m_s=0.7,
        speed_variability=0.35,
        turn_deg=45.0,
        timescale_h=4.0,
        spatial_amplitude=0.2,
        spatial_wavelength_km=600.0,
    )
)


def _grid(lat0=LAT0, lon0=LON0, half_deg=(1.2, 0.9), n_gp=450, view=54.0, azimuth=-14.0):
    """A TROPOMI-like swath cropped to a box around (lat0, lon0): pixel widths vary across track."""
    edges = across_track_edges_km(n_gp, view, 824.0)
    box = [lon0 - half_deg[0], lat0 - half_deg[1], lon0 + half_deg[0], lat0 + half_deg[1]]
    return granule_grid(
        lat0,
        lon0 + 3.0,  # nadir east of the box: the box sees wide, unequal pixels
        azimuth_deg=azimuth,
        full_edges=edges,
        along_km=5.5,
        outline=region_outline(box, 0.0),
        pad_km=0.0,
        min_overlap=0.0,
    )


def _day_wind(seed=4, t_end=12 * 3600.0):
    return random_day_wind(np.random.default_rng(seed), WIND_CFG, 0.0, t_end, FieldFrame(LAT0, LON0), 1500.0)


def _sources(rng, n, spread_deg):
    lat = LAT0 + rng.uniform(-spread_deg, spread_deg, n)
    lon = LON0 + rng.uniform(-spread_deg, spread_deg, n)
    return lat, lon, rng.uniform(5.0, 200.0, n)


def test_windowed_render_equals_dense_reference():
    grid = _grid()
    rng = np.random.default_rng(0)
    lat, lon, q = _sources(rng, 40, 1.6)  # some sources outside the grid: puffs cut by its edges
    puffs = release_puffs(lat, lon, q, _day_wind(), 11 * 3600.0, lifetime_h=4.0, **RELEASE)
    dense = render_puffs_dense(puffs, grid)
    sparse = render_puffs(puffs, grid)
    assert sparse.shape == dense.shape == grid.shape and dense.max() > 1e-5
    np.testing.assert_allclose(sparse, dense, rtol=1e-7, atol=1e-8 * dense.max())
    # mass inside the grid: sum over pixels of column x area equals the puffs' mass inside (within the truncation)
    inside = (sparse * grid.area_m2()).sum()
    assert inside == pytest.approx((dense * grid.area_m2()).sum(), rel=1e-9)


def test_tiny_and_huge_puffs_render_like_dense():
    grid = _grid(half_deg=(0.5, 0.4))
    a = np.array([-10.0, 0.0, 3.0, 40.0, 0.0])
    c = np.array([5.0, 0.0, -2.0, 10.0, 60.0])
    a_mid, c_mid = grid.a_centres.mean(), grid.c_edges.mean()
    lat, lon = grid.plane.to_latlon(*grid.ac_to_xy(a_mid + a, c_mid + c))
    sigma = np.array([50.0, 300.0, 2000.0, 40000.0, 9000.0])  # much smaller than a pixel ... wider than the grid
    puffs = Puffs(lat, lon, sigma, np.array([1.0, 2.0, 3.0, 50.0, 0.0]), np.zeros(5), np.arange(5))
    dense = render_puffs_dense(puffs, grid)
    assert dense.max() > 1e-8
    np.testing.assert_allclose(render_puffs(puffs, grid), dense, rtol=1e-7, atol=1e-8 * dense.max())


def test_grouped_render_equals_one_render_per_group():
    grid = _grid(half_deg=(0.6, 0.5))
    rng = np.random.default_rng(1)
    lat, lon, q = _sources(rng, 9, 0.5)
    puffs = release_puffs(lat, lon, q, _day_wind(7), 10 * 3600.0, lifetime_h=3.0, **RELEASE)
    group = puffs.source % 3
    both = render_puffs(puffs, grid, group=group, n_groups=4)
    assert both.shape == (4,) + grid.shape and np.all(both[3] == 0)
    for g in range(3):
        sel = group == g
        one = Puffs(*(getattr(puffs, f)[sel] for f in ("lat", "lon", "sigma_m", "mass_mol", "age_s", "source")))
        np.testing.assert_allclose(both[g], render_puffs(one, grid), rtol=1e-12, atol=1e-20)


def test_release_near_grid_advects_fewer_sources_same_field():
    grid = _grid(half_deg=(0.8, 0.6))
    rng = np.random.default_rng(2)
    lat, lon, q = _sources(rng, 30, 0.8)
    far_lat = np.r_[lat, LAT0 + 12.0, LAT0 - 9.0, LAT0]  # three sources more than 1000 km away
    far_lon = np.r_[lon, LON0, LON0 + 3.0, LON0 - 16.0]
    far_q = np.r_[q, 300.0, 300.0, 300.0]
    wind = _day_wind(5)
    kw = dict(lifetime_h=5.0, **RELEASE)
    every = release_puffs(far_lat, far_lon, far_q, wind, 11 * 3600.0, **kw)
    near = release_puffs(far_lat, far_lon, far_q, wind, 11 * 3600.0, near=grid, **kw)
    kept = np.unique(near.source)
    assert set(kept) == set(range(30))  # the far three are left out, every nearby one kept
    # the puffs of the kept sources are the same puffs (same index into the given arrays)
    mask = np.isin(every.source, kept)
    np.testing.assert_allclose(near.lat, every.lat[mask], rtol=0, atol=1e-9)
    np.testing.assert_allclose(near.sigma_m, every.sigma_m[mask], rtol=1e-12)
    a, b = render_puffs(every, grid), render_puffs(near, grid)
    np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12 * a.max())


def test_source_winds_equal_one_day_wind_per_source():
    # SourceWinds (one series per source, the simulator's puff scenes) reproduces the OSSE's DayWind path
    t = np.arange(-900.0, 8 * 3600.0 + 1800.0, 900.0)
    rng = np.random.default_rng(3)
    speeds = 2.0 + 6.0 * rng.random((2, t.size))
    dirs = (200.0 + 120.0 * np.cumsum(rng.standard_normal((2, t.size)), axis=1) / t.size) % 360.0
    lat, lon, q = np.array([LAT0, LAT0 + 0.2]), np.array([LON0, LON0 - 0.3]), np.array([50.0, 80.0])
    kw = dict(lifetime_h=[3.0, 6.0], **RELEASE)
    both = release_puffs(lat, lon, q, SourceWinds(t, speeds, dirs), 7 * 3600.0, **kw)
    for s in range(2):
        one = release_puffs(
            lat[s : s + 1],
            lon[s : s + 1],
            q[s : s + 1],
            DayWind(t, speeds[s], dirs[s]),
            7 * 3600.0,
            **{
                **kw,
                "lifetime_h": kw["lifetime_h"][s],
            },
        )
        sel = both.source == s
        np.testing.assert_allclose(both.lat[sel], one.lat, rtol=0, atol=1e-10)
        np.testing.assert_allclose(both.lon[sel], one.lon, rtol=0, atol=1e-10)
        np.testing.assert_allclose(both.mass_mol[sel], one.mass_mol, rtol=1e-12)


def test_smooth_series_rows_draw_the_same_numbers():
    one = smooth_series(np.random.default_rng(9), 40, 900.0, 4.0)
    rows = smooth_series(np.random.default_rng(9), 40, 900.0, 4.0, rows=1)
    assert rows.shape == (1, 40)
    np.testing.assert_array_equal(rows[0], one)
    many = smooth_series(np.random.default_rng(9), 40, 900.0, 4.0, rows=5)
    np.testing.assert_allclose(many.std(axis=1), 1.0, rtol=1e-12)
    assert not np.allclose(many[1], many[0])


def test_max_speed_bounds_the_wind_everywhere():
    wind = _day_wind(11)
    vmax = wind.max_speed(2 * 3600.0, 10 * 3600.0)
    rng = np.random.default_rng(0)
    lat = LAT0 + rng.uniform(-8, 8, 4000)
    lon = LON0 + rng.uniform(-8, 8, 4000)
    for t in np.linspace(2 * 3600.0, 10 * 3600.0, 9):
        u, v = wind.uv(lat, lon, t)
        assert np.hypot(u, v).max() <= vmax


@pytest.mark.parametrize("speed", [4.0, 10.0])
def test_coarse_release_draws_the_plume_of_a_fine_release(speed):
    # a puff stands for release interval x wind speed of plume (9-18 km here): it must be spread along the wind,
    # not widened across it (one round puff widened by seg^2/12 gave 0.5-0.9 of the near-source peak)
    grid = _grid(half_deg=(0.8, 0.6))
    t = np.arange(-900.0, 7 * 3600.0 + 1800.0, 900.0)
    wind = SourceWinds(t, np.full((1, t.size), speed), np.full((1, t.size), 250.0))
    kw = dict(substeps=1, sigma0_m=800.0, diffusivity_m2_s=1500.0, lifetime_h=4.0)
    args = ([LAT0 - 0.1], [LON0 - 0.5], [100.0], wind, 7 * 3600.0)
    fields, mass = {}, {}
    for interval in (30.0, 2.0):
        puffs = release_puffs(*args, release_hours=6.0, release_interval_min=interval, **kw)
        fields[interval] = render_puffs(puffs, grid)
        mass[interval] = puffs.mass_mol.sum()
    coarse, fine = fields[30.0], fields[2.0]
    # the emission of the 6 h, decayed by age: q tau (1 - exp(-6 h / tau))
    assert mass[30.0] == pytest.approx(100.0 * 4 * 3600.0 * (1 - np.exp(-6.0 / 4.0)), rel=1e-3)
    assert coarse.max() / fine.max() == pytest.approx(1.0, abs=0.04)
    assert np.abs(coarse - fine).max() < 0.05 * fine.max()


def test_no2_ramp_takes_the_unconverted_share_off_each_sub_puff_by_its_age():
    # Meier et al. 2024's NOx/NO2 = m exp(-t/r) + f0 with the far-field share kept: mass x f0 / (m exp(-t/r) + f0)
    from no2hotspots.nox import no2_ramp_factor

    t = np.arange(-3600.0, 7 * 3600.0 + 1800.0, 900.0)
    wind = SourceWinds(t, np.full((2, t.size), 5.0), np.full((2, t.size), 250.0))
    kw = dict(release_hours=6.0, release_interval_min=30.0, substeps=1, sigma0_m=800.0, diffusivity_m2_s=1500.0)
    args = ([LAT0, LAT0 + 0.3], [LON0, LON0 - 0.2], [100.0, 40.0], wind, 7 * 3600.0)
    plain = release_puffs(*args, lifetime_h=4.0, **kw)
    ramp = release_puffs(*args, lifetime_h=4.0, no2_ramp=([6.1, 1.6], 744.0, [1.9, 1.31]), **kw)
    np.testing.assert_array_equal(ramp.age_s, plain.age_s)
    m = np.array([6.1, 1.6])[plain.source]
    f0 = np.array([1.9, 1.31])[plain.source]
    np.testing.assert_allclose(ramp.mass_mol, plain.mass_mol * no2_ramp_factor(plain.age_s, m, 744.0, f0), rtol=1e-12)
    young = plain.age_s < 600.0
    assert np.all(ramp.mass_mol[young] < 0.7 * plain.mass_mol[young])  # at most 0.65 for m 1.6, f0 1.31
    assert no2_ramp_factor(0.0, 6.1, 744.0, 1.9) == pytest.approx(1.9 / 8.0)
    assert no2_ramp_factor(6 * 3600.0, 6.1, 744.0, 1.9) == pytest.approx(1.0, abs=1e-9)
    same = release_puffs(*args, lifetime_h=4.0, no2_ramp=(0.0, 744.0, 1.9), **kw)  # m 0: exactly the plain puffs
    np.testing.assert_array_equal(same.mass_mol, plain.mass_mol)


@pytest.mark.parametrize("plant", ["Matimba", "Belchatow", "Janschwalde", "Lipetsk"])
def test_no2_ramp_factor_is_the_far_field_share_over_ddeqs_nox_to_no2_conversion(plant):
    """Our ramp is f0 over the NOx/NO2 factor of ddeq 1.1's ``NO2toNOxConversion`` (Meier et al. 2024) at every age
    downwind, with ddeq's own parameters for the four plants; float32 stays float32 (the Gaussian plume's kernel)."""
    from ddeq.functions import NO2toNOxConversion

    from no2hotspots.nox import no2_ramp_factor

    conversion = NO2toNOxConversion(name=plant)
    m, r, f0 = conversion.params
    t = np.concatenate([[0.0, 1.0, 60.0], np.geomspace(120.0, 12 * 3600.0, 40)])
    nox_over_no2, _ = conversion(t)
    np.testing.assert_allclose(no2_ramp_factor(t, m, r, f0), f0 / nox_over_no2, rtol=1e-12)
    assert no2_ramp_factor(t.astype(np.float32), np.float32(m), np.float32(r), np.float32(f0)).dtype == np.float32
