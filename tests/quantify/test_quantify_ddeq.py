"""The ddeq 1.1 path: our IME formula is ddeq's, and ddeq's own chain recovers the synthetic plume."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from no2hotspots.quantify import ddeq_ref, ime
from no2hotspots.quantify.chemistry import NO2_MOLAR_MASS_G
from no2hotspots.quantify.estimate import Lifetime, Wind

ddeq = pytest.importorskip("ddeq", reason="ddeq 1.1 is optional (pip install ddeq==1.1)")

Q = 5.24
TAU = 4 * 3600.0


@pytest.mark.parametrize("tau", [TAU, 2 * 3600.0])
def test_ime_residence_time_is_ddeq_calculate_flux(tau):
    """ddeq.ime.calculate_flux(IME, U, L, decay_time, 0, L) == IME / (tau (1 - exp(-L / (U tau))))."""
    mass_kg, u, length = 12.5, 4.2, 20e3
    ours = mass_kg / ime.residence_time(length, u, tau)
    theirs = ddeq.ime.calculate_flux(mass_kg, u, length, decay_time=tau, L_min=0.0, L_max=length)
    assert ours == pytest.approx(theirs, rel=1e-12)
    assert mass_kg / ime.residence_time(length, u, np.inf) == pytest.approx(ddeq.ime.calculate_flux(mass_kg, u, length))


def test_compatibility_shim_is_restored():
    orig = ddeq.misc.init_results_dataset
    with ddeq_ref._compatible_ddeq():
        assert ddeq.misc.init_results_dataset is not orig
    assert ddeq.misc.init_results_dataset is orig


@pytest.mark.slow
@pytest.mark.parametrize("direction", [250.0, 45.0])
def test_ddeq_chain_recovers_synthetic_plume(synthetic_plume, direction):
    lat, lon, c, prec = synthetic_plume(Q, 5.0, direction, TAU, noise=2e-6, seed=0, half_deg=1.6)
    ov = xr.Dataset(
        {"no2": (("lat", "lon"), c), "no2_precision": (("lat", "lon"), prec)}, coords={"lat": lat, "lon": lon}
    )
    est = ddeq_ref.estimate(
        ov, np.datetime64("2021-07-25T11:00"), 40.0, 112.0, Wind(5.0, 1.0, direction, 15.0), Lifetime(TAU, 5400.0), 2e-6
    )
    assert est.ok, est.flags
    assert est.q == pytest.approx(Q, rel=0.10)
    assert est.sigma["wind_speed"] == pytest.approx(est.q / 5.0, rel=1e-6)
    assert est.diag["detected_pixels"] > 20
    assert pytest.approx(1000 / NO2_MOLAR_MASS_G) == ddeq_ref.KG_S_TO_MOL_S


@pytest.mark.slow
def test_ddeq_chain_undoes_the_conversion_with_its_own_model(synthetic_plume):
    """A plume rendered with the near-source NO -> NO2 conversion: ddeq's chain given our conversion (its
    NO2toNOxConversion) recovers Q, and reads it lower without it."""
    from no2hotspots.quantify.estimate import Ramp

    ramp = Ramp(m=4.0, r_s=645.0, f0=1.51, sigma_m=1.85, sigma_r_s=535.0)
    lat, lon, c, prec = synthetic_plume(Q, 5.0, 250.0, TAU, noise=2e-6, seed=0, half_deg=1.6, ramp=ramp)
    ov = xr.Dataset(
        {"no2": (("lat", "lon"), c), "no2_precision": (("lat", "lon"), prec)}, coords={"lat": lat, "lon": lon}
    )
    t, w = np.datetime64("2021-07-25T11:00"), Wind(5.0, 1.0, 250.0, 15.0)
    on = ddeq_ref.estimate(ov, t, 40.0, 112.0, w, Lifetime(TAU, 5400.0, ramp), 2e-6)
    off = ddeq_ref.estimate(ov, t, 40.0, 112.0, w, Lifetime(TAU, 5400.0), 2e-6)
    assert on.ok and off.ok, (on.flags, off.flags)
    assert on.q == pytest.approx(Q, rel=0.10)
    assert off.q < 0.95 * on.q
