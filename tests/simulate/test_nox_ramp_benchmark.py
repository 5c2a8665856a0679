"""benchmarks/nox_ramp.py: the near-source NO -> NO2 ramp (Meier et al. 2024 via ddeq 1.1) against the training
world's fixed NO2 share, on the training world's own plume formula."""

import numpy as np
from ddeq.functions import NO2toNOxConversion


def test_the_ramp_only_takes_no2_away_and_most_at_the_source(benchmark_script):
    mod = benchmark_script("nox_ramp")
    kw = {"pixel_m": 5500.0, "n_pix": 5, "step_m": 100.0}
    base = mod.pixel_row(6.0, None, **kw)
    ramp = mod.pixel_row(6.0, NO2toNOxConversion(name="Matimba"), **kw)
    assert np.all(ramp < base) and np.all(ramp > 0)
    kept = ramp / base  # h(t) = f0 / (m exp(-t/r) + f0) rises with plume age: the source pixel keeps least
    assert np.all(np.diff(kept) > 0) and kept[0] < 0.5 and kept[-1] > 0.8
    b, r = mod.summarise(base, 5500.0), mod.summarise(ramp, 5500.0)
    assert r["source_pixel_share_of_max"] < b["source_pixel_share_of_max"]
    assert r["first_pixel_at_90pct_of_max"] > b["first_pixel_at_90pct_of_max"] == 1
    assert r["centroid_km"] > b["centroid_km"]


def test_no_conversion_left_is_the_training_worlds_plume(benchmark_script):
    mod = benchmark_script("nox_ramp")
    kw = {"pixel_m": 5500.0, "n_pix": 4, "step_m": 100.0}
    flat = NO2toNOxConversion(params=[0.0, 600.0, 1.3], params_std=[0.0, 0.0, 0.0])  # m = 0: no ramp
    np.testing.assert_allclose(mod.pixel_row(4.0, flat, **kw), mod.pixel_row(4.0, None, **kw), rtol=1e-12)
