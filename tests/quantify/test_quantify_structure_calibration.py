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
