"""Each estimator recovers a synthetic plume of known rate and wind (the simulator's physics on a 0.05 deg grid)."""

from __future__ import annotations

import numpy as np
import pytest

from no2hotspots.quantify import chemistry, csf, divergence, ime
from no2hotspots.quantify.estimate import Lifetime, Wind
from no2hotspots.quantify.scene import local_scene

Q = 5.24  # mol/s NO2, ~10 kt NOx/yr
TAU = 4 * 3600.0
ESTIMATORS = [csf, ime, divergence]


def scene_of(lat, lon, c, prec, lat0=40.0, lon0=112.0):
    return local_scene(lat, lon, c, prec, lat0, lon0, 60.0)


@pytest.mark.parametrize("direction", [250.0, 45.0, 135.0, 0.0])
@pytest.mark.parametrize("method", ESTIMATORS, ids=lambda m: m.METHOD)
def test_clean_plume_recovered_within_10_percent(synthetic_plume, method, direction):
    lat, lon, c, prec = synthetic_plume(Q, 5.0, direction, TAU)
    est = method.estimate(scene_of(lat, lon, c, prec), Wind(5.0, 1.0, direction, 15.0), Lifetime(TAU, 1.5 * 3600))
    assert est.ok, est.flags
    assert est.q == pytest.approx(Q, rel=0.10)
    for comp in ("noise", "wind_speed", "lifetime"):
        assert est.sigma[comp] >= 0


@pytest.mark.parametrize("method", ESTIMATORS, ids=lambda m: m.METHOD)
def test_recovered_without_decay_and_at_other_speeds(synthetic_plume, method):
    """No loss (lifetime off) and a faster wind: the decay correction and U scaling are not tuned to one case."""
    lat, lon, c, prec = synthetic_plume(Q, 8.0, 300.0, np.inf)
    est = method.estimate(scene_of(lat, lon, c, prec), Wind(8.0, 1.0, 300.0, 15.0), Lifetime(np.inf, 0.0))
    assert est.q == pytest.approx(Q, rel=0.10)


@pytest.mark.parametrize("method", ESTIMATORS, ids=lambda m: m.METHOD)
def test_noise_uncertainty_matches_the_scatter_over_noise_realisations(synthetic_plume, method):
    """With TROPOMI-like noise (1e-5 mol m-2 per cell) the stated noise sigma is the real scatter (within 40 %),
    and the mean over realisations is unbiased (within 10 %)."""
    qs, sig = [], []
    for seed in range(24):
        lat, lon, c, prec = synthetic_plume(Q, 5.0, 250.0, TAU, noise=1e-5, seed=seed)
        e = method.estimate(scene_of(lat, lon, c, prec), Wind(5.0, 1.0, 250.0, 15.0), Lifetime(TAU, 1.5 * 3600),
                            _sens=False)  # fmt: skip
        qs.append(e.q)
        sig.append(e.sigma["noise"])
    qs, sig = np.array(qs), np.array(sig)
    assert np.mean(qs) == pytest.approx(Q, rel=0.10)
    assert np.std(qs, ddof=1) == pytest.approx(np.mean(sig), rel=0.4)


def test_wind_speed_error_propagates_about_linearly(synthetic_plume):
    lat, lon, c, prec = synthetic_plume(Q, 5.0, 250.0, TAU)
    sc = scene_of(lat, lon, c, prec)
    e = ime.estimate(sc, Wind(5.0, 1.0, 250.0, 15.0), Lifetime(TAU, 1.5 * 3600))
    # Q ~ U for a short residence time: 1 m/s of 5 m/s is ~20 % (less, as decay damps it)
    assert 0.1 * e.q < e.sigma["wind_speed"] < 0.25 * e.q
    worse = ime.estimate(sc, Wind(5.0, 2.0, 250.0, 15.0), Lifetime(TAU, 1.5 * 3600))
    assert worse.sigma["wind_speed"] > 1.8 * e.sigma["wind_speed"]


def test_unknown_direction_csf_and_divergence_refuse_ime_still_works(synthetic_plume):
    lat, lon, c, prec = synthetic_plume(Q, 5.0, 250.0, TAU)
    sc = scene_of(lat, lon, c, prec)
    w = Wind(5.0, 1.0)  # direction NaN
    assert not csf.estimate(sc, w, Lifetime()).ok
    assert "no_wind_direction" in divergence.estimate(sc, w, Lifetime()).flags
    e = ime.estimate(sc, w, Lifetime(TAU, 1.5 * 3600))
    assert e.q == pytest.approx(Q, rel=0.10)
    assert "background_ring_without_sector" in e.flags


def test_cloud_gap_over_the_plume_is_refused_not_biased(synthetic_plume):
    lat, lon, c, prec = synthetic_plume(Q, 5.0, 270.0, TAU)  # plume goes east
    sc = scene_of(lat, lon, c, prec)
    sc.c[(sc.x > 0) & (sc.x < 40) & (np.abs(sc.y) < 20)] = np.nan
    w, life = Wind(5.0, 1.0, 270.0, 15.0), Lifetime(TAU, 1.5 * 3600)
    assert "too_few_transects" in csf.estimate(sc, w, life).flags
    assert "disk_not_observed" in ime.estimate(sc, w, life).flags
    assert "disk_not_observed" in divergence.estimate(sc, w, life).flags


def test_neighbouring_source_is_kept_out_of_the_background(synthetic_plume, qhelp):
    """A second plume crossing the background region must not bias the estimate of the first one."""
    lat, lon, c, prec = synthetic_plume(Q, 5.0, 250.0, TAU)
    c2 = qhelp.plume_columns(Q, 5.0, 250.0, TAU, lat=lat, lon=lon, src_lat=40.0, src_lon=112.45)
    sc = local_scene(lat, lon, c + c2, prec, 40.0, 112.0, 60.0, others=[(40.0, 112.45)], exclude_km=8.0)
    e = ime.estimate(sc, Wind(5.0, 1.0, 250.0, 15.0), Lifetime(TAU, 1.5 * 3600))
    assert e.q == pytest.approx(Q, rel=0.15)


def test_nox_conversion_units_and_ratio_uncertainty():
    chem = chemistry.Chemistry()
    from no2hotspots.quantify.estimate import Estimate

    e = chemistry.to_nox(Estimate("x", 1.0, {"noise": 0.1}), chem)
    # 1 mol/s NO2 * 1.32 * 46.0055 g/mol * 365.25 d * 86400 s = 1916.4 t/yr (as NO2 mass)
    assert e.q == pytest.approx(1.32 * 46.0055 * 365.25 * 86400 / 1e6, rel=1e-9)
    assert e.sigma["noise"] == pytest.approx(0.1 * e.q)
    assert e.sigma["nox_ratio"] == pytest.approx(e.q * 0.13 / 1.32)
    assert chemistry.nox_t_per_yr_to_no2_mol_s(e.q) == pytest.approx(1.0)
