"""Emission units on pint: inventory spellings, case (Mg is a tonne, mg a milligram), refusals, and the readers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from omegaconf import OmegaConf

from no2hotspots.errors import ConfigError, InputFileError
from no2hotspots.inventory import load_gridded, load_points
from no2hotspots.inventory.units import SECONDS_PER_YEAR, flux_factor, rate_factor, unit_problem

YEAR_S = 365.25 * 86400.0  # the Julian year the pipeline uses everywhere (simulate, osse)


@pytest.mark.parametrize(
    "unit,t_per_yr",
    [
        ("t/yr", 1.0),
        ("t yr-1", 1.0),
        ("t a-1", 1.0),
        ("tonnes/year", 1.0),
        ("tonne/yr", 1.0),
        ("t per year", 1.0),
        ("Mg/yr", 1.0),  # megagram = tonne
        ("kt/yr", 1e3),  # kilotonne, not knot/yr
        ("Mt/yr", 1e6),
        ("Gg/yr", 1e3),
        ("Tg/yr", 1e6),
        ("kg/yr", 1e-3),
        ("kg/s", YEAR_S / 1e3),
        ("kg s-1", YEAR_S / 1e3),
        ("kg s^-1", YEAR_S / 1e3),
        ("kg*s**-1", YEAR_S / 1e3),
        ("g/s", YEAR_S / 1e6),
        ("g s-1", YEAR_S / 1e6),
        ("kg/h", 8766.0 / 1e3),
        ("kg/min", YEAR_S / 60.0 / 1e3),
        ("t/d", 365.25),
        ("t/month", 12.0),
        ("1e3 t/yr", 1e3),
        ("short_ton/yr", 0.90718474),
    ],
)
def test_rate_spellings(unit, t_per_yr):
    assert rate_factor(unit) == pytest.approx(t_per_yr, rel=1e-12)
    assert flux_factor(unit) is None  # a per-source rate is not a flux
    assert unit_problem(unit) is None


def test_case_sensitive_milligram_is_not_megagram():
    assert rate_factor("Mg/yr") == pytest.approx(1.0)
    # 1 mg/s = 1e-9 t/s = 0.0316 t/yr (the old lower-casing reader said 31,557,600 t/yr)
    assert rate_factor("mg/s") == pytest.approx(1e-9 * YEAR_S, rel=1e-12)
    assert rate_factor("Mg/s") == pytest.approx(YEAR_S, rel=1e-12)
    assert rate_factor("Mg/s") / rate_factor("mg/s") == pytest.approx(1e9)
    assert rate_factor("µg/s") == pytest.approx(rate_factor("ug/s")) == pytest.approx(1e-12 * YEAR_S)
    # upper-case spellings that are not units are refused, not folded to lower case
    for unit in ("KG/S", "T/YR", "Kg/s"):
        assert rate_factor(unit) is None, unit


@pytest.mark.parametrize(
    "unit,t_per_m2_yr",
    [
        ("kg m-2 s-1", YEAR_S / 1e3),
        ("kg/m2/s", YEAR_S / 1e3),
        ("kg/m2 s", YEAR_S / 1e3),  # after "/", juxtaposed units stay in the denominator
        ("kg/(m2 s)", YEAR_S / 1e3),
        ("kg m^-2 s^-1", YEAR_S / 1e3),
        ("kg s-1 m-2", YEAR_S / 1e3),
        ("g m-2 s-1", YEAR_S / 1e6),
        ("g m-2 yr-1", 1e-6),
        ("kg m-2 yr-1", 1e-3),
        ("t km-2 yr-1", 1e-6),
        ("Mg km-2 yr-1", 1e-6),
        ("t/ha/yr", 1e-4),
        ("mg m-2 d-1", 1e-9 * 365.25),
    ],
)
def test_flux_spellings(unit, t_per_m2_yr):
    assert flux_factor(unit) == pytest.approx(t_per_m2_yr, rel=1e-12)
    assert rate_factor(unit) is None  # a flux is not a per-source rate
    assert unit_problem(unit, flux=True) is None


@pytest.mark.parametrize(
    "unit,why",
    [
        ("kg", "is [mass], not a mass per time"),
        ("t", "is [mass], not a mass per time"),
        ("s-1", "is 1 / [time], not a mass per time"),
        ("mol/s", "is [substance] / [time], not a mass per time"),
        ("molecules cm-2 s-1", "not a mass per time"),
        ("kg/s/s", "is [mass] / [time] ** 2"),
        ("t/yr/yr", "is [mass] / [time] ** 2"),
        ("kg m-2 s-1", "not a mass per time"),
        ("kt", "is [mass]"),
        ("kn", "not a mass per time"),  # knot: a speed
        ("ton/yr", "ambiguous (short ton or metric tonne?)"),
        ("tons per year", "ambiguous"),
        ("furlongs", "is [length]"),
        ("kilograms per blorp", "unknown unit name"),
        ("0 kg/s", "zero, negative or non-finite scale"),
        ("", "not a unit expression"),
        ("kg/s)", "not a unit expression"),
        ("kg;import os", "not a unit expression"),
        ("__import__('os')", "not a unit expression"),
        ("k" * 300, "not a unit expression"),
    ],
)
def test_non_rates_refused_with_a_reason(unit, why):
    assert rate_factor(unit) is None
    problem = unit_problem(unit)
    assert why in problem and "\n" not in problem
    assert len(problem) < 160  # a long unit is shortened in the message


def test_flux_refusals():
    for unit in ("kg/s", "t/yr", "kg m-2", "kg m-3 s-1", "mol m-2 s-1"):
        assert flux_factor(unit) is None, unit
        assert unit_problem(unit, flux=True).endswith("not a mass per area per time")
    assert SECONDS_PER_YEAR == YEAR_S


def _csv(tmp_path, values):
    p = tmp_path / "points.csv"
    pd.DataFrame({"Y": [10.0, 20.0], "X": [5.0, 6.0], "E": values}).to_csv(p, index=False)
    return p


def _points(p, unit):
    cfg = {"kind": "csv", "path": str(p), "columns": {"lat": "Y", "lon": "X", "nox": "E"}, "units": {"nox": unit}}
    return load_points(OmegaConf.create(cfg))


def test_csv_reader_converts_milligram_and_megagram(tmp_path):
    p = _csv(tmp_path, [2.0, 3.0])
    np.testing.assert_allclose(_points(p, "Mg/yr").nox_t_per_yr, [2.0, 3.0])
    np.testing.assert_allclose(_points(p, "kt/yr").nox_t_per_yr, [2000.0, 3000.0])
    (tmp_path / "big").mkdir()
    big = _csv(tmp_path / "big", [2.0e6, 3.0e6])  # 2-3 kg/s: plausible point sources, written in mg/s
    np.testing.assert_allclose(_points(big, "mg/s").nox_t_per_yr, np.array([2e6, 3e6]) * 1e-9 * YEAR_S, rtol=1e-12)
    # 2-3 mg/s is 0.06-0.09 t/yr: no inventory of point sources looks like that; the reader says so
    with pytest.raises(InputFileError, match=r"median 0\.0789 t/yr after converting from 'mg/s' is implausible"):
        _points(p, "mg/s")


@pytest.mark.parametrize("unit", ["kg", "mol/s", "kg m-2 s-1", "ton/yr", "kg/s/s"])
def test_csv_reader_refuses_non_rates_naming_the_key_and_unit(tmp_path, unit):
    p = _csv(tmp_path, [2.0, 3.0])
    with pytest.raises(ConfigError) as e:
        _points(p, unit)
    msg = str(e.value)
    assert msg.startswith("config inventory.units.nox:") and repr(unit) in msg and "\n" not in msg


def _grid(tmp_path, units):
    lat = np.arange(30.05, 30.5, 0.1)
    lon = np.arange(110.05, 110.5, 0.1)
    flux = np.full((lat.size, lon.size), 2e-9)
    ds = xr.Dataset({"emi_nox": (("lat", "lon"), flux, {"units": units})}, coords={"lat": lat, "lon": lon})
    p = tmp_path / "grid.nc"
    ds.to_netcdf(p)
    return OmegaConf.create({"kind": "edgar", "path": str(p), "variables": {"nox": "emi_nox"}, "bbox": None})


def test_gridded_reader_flux_and_case(tmp_path):
    kg = load_gridded(_grid(tmp_path, "kg m-2 s-1")).nox_t_per_yr
    mg = load_gridded(_grid(tmp_path, "mg m-2 s-1")).nox_t_per_yr
    mega = load_gridded(_grid(tmp_path, "Mg m-2 s-1")).nox_t_per_yr
    np.testing.assert_allclose(mg / kg, 1e-6, rtol=1e-12)
    np.testing.assert_allclose(mega / kg, 1e3, rtol=1e-12)
    per_cell = load_gridded(_grid(tmp_path, "kg/s")).nox_t_per_yr  # a per-cell rate, no area
    np.testing.assert_allclose(per_cell, 2e-9 * YEAR_S / 1e3, rtol=1e-12)


@pytest.mark.parametrize("units", ["kg m-2", "mol m-2 s-1", "kg m-3 s-1"])
def test_gridded_reader_refuses_wrong_dimensions_naming_the_unit(tmp_path, units):
    with pytest.raises(InputFileError) as e:
        load_gridded(_grid(tmp_path, units))
    msg = str(e.value)
    assert "grid.nc" in msg and f"unknown units {units!r}" in msg and "\n" not in msg
