"""The method-structure calibration (benchmarks/quantify_structure.py) on a few of the simulator's puff scenes."""

from __future__ import annotations

import numpy as np


def test_puff_scenes_are_estimated_at_the_source_with_the_quantify_wind(benchmark_script):
    """Scenes drawn as the simulator draws its puff scenes (independent seed), each method at the true source: the
    ratios are near 1 (the scene, source position and wind are oriented as the estimators take them: a flipped axis
    or a wind from the wrong side gives ratios far off), and the residence time R / U / tau is the puffs' own."""
    mod = benchmark_script("quantify_structure")
    res = mod.run(24, seed=5)
    assert set(res["ratio"]) == {"csf", "ime", "divergence"}
    for m, r in res["ratio"].items():
        ok = np.isfinite(r)
        assert ok.sum() >= 20, m
        assert 0.85 < np.median(r[ok]) < 1.05, m
    assert (res["speed"] > 0).all() and (res["residence_over_tau"] > 0).all()
    s = mod.stats(res["ratio"]["ime"], np.random.default_rng(0))
    assert s["p16_p84"][0] < s["median_ratio"] < s["p16_p84"][1] and s["rel_sigma_68"] > 0


def test_travel_time_winds_shrink_the_structure_error_of_turning_winds(benchmark_script):
    """The same puff scenes with each method's wind averaged over the air's travel time to its reach (quantify's
    default, ``quantify.wind_travel``) and with the 1-h mean for all: the half-width of the 16-84 % range of ln
    estimate/truth shrinks for every method (n 2000: csf 0.055 -> 0.037, ime 0.034 -> 0.014, divergence 0.071 ->
    0.040; at n 150 and seeds 5-7 the same within 0.003)."""
    mod = benchmark_script("quantify_structure")
    on = mod.run(150, seed=5)
    off = mod.run(150, seed=5, overrides=("quantify.wind_travel=false",))
    rng = np.random.default_rng(0)
    limit = {"csf": 0.9, "ime": 0.7, "divergence": 0.85}
    for m, k in limit.items():
        s_on, s_off = mod.stats(on["ratio"][m], rng), mod.stats(off["ratio"][m], rng)
        assert s_on["n"] >= 130 and s_off["n"] >= 130, m
        assert s_on["rel_sigma_68"] < k * s_off["rel_sigma_68"], (m, s_on["rel_sigma_68"], s_off["rel_sigma_68"])
        assert 0.9 < s_on["median_ratio"] < 1.05, m


def test_residence_fit_recovers_a_known_slope_and_the_puffs_have_one(benchmark_script):
    """The median fit of ln ratio = ln b0 - beta x recovers b0 and beta from data with outliers; on the puff scenes
    csf's bias falls with the residence time over the lifetime (quantify.structure.bias_slope; n 2000: 0.128), and
    with the wind's turning in the joint fit (turning_fit; n 2000: gamma 0.576)."""
    mod = benchmark_script("quantify_structure")
    rng = np.random.default_rng(3)
    x = rng.uniform(0.0, 0.8, 400)
    lr = np.log(0.99) - 0.12 * x + rng.laplace(0.0, 0.01, x.size)
    lr[:20] += 0.5  # outliers a least-squares fit would follow
    fit = mod.residence_fit(np.exp(lr), x)
    assert abs(fit["b0"] - 0.99) < 0.005 and abs(fit["beta"] - 0.12) < 0.015
    res = mod.run(150, seed=5)
    assert mod.residence_fit(res["ratio"]["csf"], res["residence_over_tau"])["beta"] > 0.03
    # the joint fit with the wind's turning theta recovers gamma; on the puffs csf reads lower the more it turned
    th = rng.uniform(0.0, 35.0, x.size)
    lr2 = lr - 0.6 * np.radians(th) ** 2
    tf = mod.turning_fit(np.exp(lr2), x, th)
    assert abs(tf["b0"] - 0.99) < 0.005 and abs(tf["beta"] - 0.12) < 0.02 and abs(tf["gamma"] - 0.6) < 0.05
    turning = res["turning_deg"]["csf"]
    assert np.isfinite(turning).all() and (turning >= 0).all() and np.percentile(turning, 90) > 5.0
    assert mod.turning_fit(res["ratio"]["csf"], res["residence_over_tau"], turning)["gamma"] > 0.1
