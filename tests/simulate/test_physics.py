import numpy as np
import pytest

from no2hotspots.simulate import fields
from no2hotspots.simulate.physics import column_point, sigma_y
from no2hotspots.simulate.reference import plume_scene
from no2hotspots.simulate.scenes import plume_columns, sample_scenes, simulate_batch

A = 5500.0


@pytest.mark.parametrize("cls", range(6))
def test_crosswind_flux_decays_with_lifetime(one_source, settings, cls):
    u, tau_h, q = 5.0, 4.0, 1.3
    p = one_source(settings, q=q, u=u, tau_h=tau_h, cls=cls, wdir=270.0)  # wind from west: plume along +col
    c = plume_columns(p, settings)[0]
    for j in (14, 20, 30, 45, 60):
        x = (j - 10.3) * A
        flux = c[:, j].sum(dtype=np.float64) * A * u
        assert flux == pytest.approx(q * np.exp(-x / (u * tau_h * 3600)), rel=0.02)


@pytest.mark.parametrize("cls", [0, 3, 5])
@pytest.mark.parametrize("wdir", [45.0, 200.0, 333.0])
def test_total_mass_any_wind_angle(one_source, settings, cls, wdir):
    # short-lived plume fully inside the scene: mass = Q * tau
    q, tau_h = 1.0, 1.0
    p = one_source(settings, row=32.3, col=31.6, q=q, u=2.0, wdir=wdir, tau_h=tau_h, cls=cls)
    c = plume_columns(p, settings)[0]
    assert c.sum(dtype=np.float64) * A * A == pytest.approx(q * tau_h * 3600, rel=0.02)


@pytest.mark.parametrize("wdir", [0.0, 60.0, 135.0, 250.0])
def test_plume_axis_follows_wind(one_source, settings, wdir):
    p = one_source(settings, row=32.0, col=32.0, wdir=wdir, tau_h=8.0, cls=4)
    c = plume_columns(p, settings)[0]
    rr, cc = np.nonzero(c > 0.05 * c.max())
    w = c[rr, cc]
    de, dn = np.average(cc - 32.0, weights=w), np.average(rr - 32.0, weights=w)
    to_dir = (np.degrees(np.arctan2(de, dn)) + 360) % 360  # direction of the plume's centre of mass
    assert abs(((to_dir - (wdir + 180)) + 180) % 360 - 180) < 5
    # nothing upwind beyond the source pixel
    ex, ey = -np.sin(np.radians(wdir)), -np.cos(np.radians(wdir))
    r, k = np.meshgrid(np.arange(64) - 32.0, np.arange(64) - 32.0, indexing="ij")
    assert c[(k * ex + r * ey) < -1.5].max() == 0


def test_sigma_y_grows_and_orders_by_stability():
    x = np.array([1e3, 5e3, 2e4, 1e5])
    s = np.array([sigma_y(x, k, 200.0) for k in range(6)])
    assert np.all(np.diff(s, axis=1) > 0)  # grows downwind
    assert np.all(np.diff(s, axis=0) < 0)  # A > B > ... > F
    assert sigma_y(0.0, 5, 200.0) == pytest.approx(200.0)


@pytest.mark.parametrize("wdir", [270.0, 225.0, 300.0])
@pytest.mark.parametrize("cls", [0, 5])
def test_near_source_pixels_match_brute_force_area_average(one_source, settings, wdir, cls):
    u, tau_h, q = 4.0, 5.0, 1.0
    row, col = 32.2, 31.7
    p = one_source(settings, row=row, col=col, q=q, u=u, wdir=wdir, tau_h=tau_h, cls=cls)
    c = plume_columns(p, settings)[0]
    ex, ey = -np.sin(np.radians(wdir)), -np.cos(np.radians(wdir))
    m = 250  # 250 x 250 point samples per pixel (22 m apart), enough for sigma0 = 200 m
    off = (np.arange(m) + 0.5) / m - 0.5
    total = float(c.max())
    for pr in range(31, 35):
        for pc in range(30, 35):
            sr, sc = np.meshgrid(pr + off, pc + off, indexing="ij")
            de, dn = (sc - col) * A, (sr - row) * A
            ref = column_point(de * ex + dn * ey, dn * ex - de * ey, q, u, tau_h * 3600, cls, settings.sigma0_m).mean()
            assert float(c[pr, pc]) == pytest.approx(float(ref), abs=0.05 * total, rel=0.1), (pr, pc)


def test_vectorised_equals_per_scene_loop(paper_settings, paper_world):
    rng = np.random.default_rng(3)
    p = sample_scenes(rng, 12, paper_settings, paper_world)
    vec = plume_columns(p, paper_settings)
    for i in range(p.n):
        ref = plume_scene(p, i, paper_settings)
        np.testing.assert_allclose(vec[i], ref, atol=1e-4 * max(ref.max(), 1e-12), rtol=1e-4)


def test_empty_scene_is_background_plus_noise(one_source, settings):
    p = one_source(settings, n_src=0)
    p.noise_std[:] = 1.2e-5
    out = simulate_batch(p, settings, np.random.default_rng(7))
    bg = fields.background(
        np.random.default_rng(7), p.background_mean, settings.background_rel_std, 64, settings.background_coarse_px
    )
    resid = (out["no2"] - bg)[0]
    assert np.all(out["valid"] == 1) and np.isfinite(out["no2"]).all()
    assert abs(resid.mean()) < 4 * 1.2e-5 / 64
    assert resid.std() == pytest.approx(1.2e-5, rel=0.05)
    assert out["emission"].max() == 0 and out["emission_class"][0] == 0
    assert np.all(plume_columns(p, settings) == 0)


def test_emission_target_footprint_and_classes(paper_settings, paper_world):
    settings = paper_settings
    p = sample_scenes(np.random.default_rng(5), 200, settings, paper_world)
    out = simulate_batch(p, settings, np.random.default_rng(6))
    k = settings.footprint_px
    for i in range(20):
        n = int(p.n_sources[i])
        n_pos = int(np.nansum(p.source_rel_emission[i] > 0))  # the population minimum itself has r = 0
        assert (out["emission"][i] > 0).sum() == n_pos * k * k
        if n:
            assert out["emission"][i].max() == pytest.approx(np.nanmax(p.source_rel_emission[i]), rel=1e-6)
    r = p.source_rel_emission[~np.isnan(p.source_rel_emission)]
    assert r.min() >= 0 and r.max() <= 1
    # stratified: all three classes are present in roughly the configured shares
    shares = np.array([(r < 0.33).mean(), ((r >= 0.33) & (r <= 0.66)).mean(), (r > 0.66).mean()])
    np.testing.assert_allclose(shares, np.array(settings.class_weights) / sum(settings.class_weights), atol=0.08)
    cf = out["cloud_fraction"]
    assert np.all((cf >= 0) & (cf <= 0.6)) and (out["valid"] == 0).any()
    assert np.array_equal(np.isnan(out["no2"]), out["valid"] == 0)


def test_overlapping_footprints_take_the_larger_r(settings, world):
    # demo world: sources down to 1 px apart, footprints overlap; the target is the max of r over the union
    p = sample_scenes(np.random.default_rng(8), 300, settings, world)
    out = simulate_batch(p, settings, np.random.default_rng(9))
    k = settings.footprint_px
    close = np.min(np.nan_to_num(out["source_nn_distance_px"], nan=np.inf), axis=1) < k
    assert close.sum() >= 10  # close neighbours are common
    for i in np.flatnonzero(close)[:10]:
        exp = np.zeros((64, 64), np.float32)
        for r, c, q in zip(p.source_row[i], p.source_col[i], p.source_rel_emission[i]):
            if np.isnan(r):
                continue
            r0, c0 = int(np.floor(r - (k - 1) / 2 + 0.5)), int(np.floor(c - (k - 1) / 2 + 0.5))
            blk = exp[max(r0, 0) : r0 + k, max(c0, 0) : c0 + k]
            np.maximum(blk, np.float32(q), out=blk)
        np.testing.assert_array_equal(out["emission"][i], exp)


@pytest.mark.parametrize("cls", [0, 3, 5])
def test_no2_ramp_scales_the_crosswind_flux_by_the_conversion_at_each_age(one_source, settings, cls):
    # near-source NO -> NO2 (simulate.no2_ramp): the flux at downwind x is q exp(-x/(u tau)) f0 / (m exp(-x/(u r)) + f0)
    from dataclasses import replace

    u, tau_h, q, (m, r, f0) = 5.0, 4.0, 1.3, (6.1, 744.0, 1.9)
    st = replace(settings, no2_ramp_m=(m, m))
    c = plume_columns(one_source(st, q=q, u=u, tau_h=tau_h, cls=cls, wdir=270.0, ramp=(m, r, f0)), st)[0]
    for j in (14, 20, 30, 45):
        x = (j - 10.3) * A
        flux = c[:, j].sum(dtype=np.float64) * A * u
        want = q * np.exp(-x / (u * tau_h * 3600)) * f0 / (m * np.exp(-x / (u * r)) + f0)
        assert flux == pytest.approx(want, rel=0.02)
    off = plume_columns(one_source(settings, q=q, u=u, tau_h=tau_h, cls=cls, wdir=270.0), settings)[0]
    assert c[:, 11].sum() < 0.5 * off[:, 11].sum() and c[:, 45].sum() > 0.95 * off[:, 45].sum()


def test_no2_ramp_of_m_0_is_the_plume_without_it(one_source, settings):
    from dataclasses import replace

    st = replace(settings, no2_ramp_m=(0.0, 1.0))  # on, but this scene's m is 0: the conversion is exactly 1
    for transport in (0, 1):
        p = one_source(st, row=30.4, col=12.7, wdir=250.0, transport=transport)
        np.testing.assert_array_equal(plume_columns(p, st), plume_columns(p, settings))
