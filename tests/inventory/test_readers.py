"""Inventory readers on real-layout files: CoCO2 (real), JRC power plants (real, generic CSV), EDGAR-like NetCDF."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from omegaconf import OmegaConf

from no2hotspots.config import compose
from no2hotspots.errors import ConfigError, InputFileError
from no2hotspots.inventory import load_gridded, load_points
from no2hotspots.inventory.gridded import EARTH_RADIUS_M
from no2hotspots.inventory.points_csv import POINT_COLUMNS

SECONDS_PER_YEAR = 365.25 * 86400


def test_default_config_reads_coco2(coco2_csv):
    cfg = compose([f"paths.data={coco2_csv.parent.parent}"])
    df = load_points(cfg.inventory)
    assert list(df.columns) == list(POINT_COLUMNS)
    raw = pd.read_csv(coco2_csv)
    assert df.nox_t_per_yr.sum() == pytest.approx(raw.nox_emis_ty.sum())
    assert len(df) < len(raw)  # units aggregated into sites
    matimba = df[(df.lat.sub(-23.668).abs() < 0.02) & (df.lon.sub(27.61).abs() < 0.02)]
    assert len(matimba) == 1 and matimba.n_units.iloc[0] == 6


@pytest.fixture(scope="module")
def jrc_csv(shared_dir, tmp_path_factory):
    """The real JRC units joined with their 2018 CO2 (kg/yr), as a user would prepare a generic CSV."""
    d = shared_dir / "realdata" / "jrc_power_plants"
    units = pd.read_csv(d / "JRC_OPEN_UNITS.csv")
    temporal = pd.read_csv(d / "JRC_OPEN_TEMPORAL.csv")
    t18 = temporal[temporal.cyear == 2018][["eic_g", "co2emitted"]]
    joined = units.merge(t18, on="eic_g", how="inner").dropna(subset=["co2emitted"])
    d = tmp_path_factory.mktemp("jrc")
    raw = d / "jrc_2018_raw.csv"
    joined.to_csv(raw, index=False)
    # the real file has a few negative values (net consumption of idle units): the reader refuses them
    clean = joined[joined.co2emitted >= 0]
    path = d / "jrc_2018.csv"
    clean.to_csv(path, index=False)
    return path, clean, raw


def _csv_cfg(path, **over):
    cfg = {
        "kind": "csv",
        "path": str(path),
        "sep": ",",
        "aggregate_sites": True,
        "columns": {
            "id": "eic_p",
            "name": "name_p",
            "iso3": None,
            "fuel": "type_g",
            "lat": "lat",
            "lon": "lon",
            "nox": None,
            "co2": "co2emitted",
        },
        "units": {"co2": "kg/yr"},
    }
    cfg.update(over)
    return OmegaConf.create(cfg)


def test_generic_csv_reads_real_jrc_plants_in_tonnes(jrc_csv):
    path, joined, raw = jrc_csv
    with pytest.raises(InputFileError, match="column co2emitted has negative or infinite emissions"):
        load_points(_csv_cfg(raw))
    df = load_points(_csv_cfg(path))
    assert list(df.columns) == list(POINT_COLUMNS)
    located = joined.dropna(subset=["lat", "lon"])  # two real rows lack coordinates: skipped with a warning
    assert df.co2_t_per_yr.sum() == pytest.approx(located.co2emitted.sum() / 1000.0)
    assert df.nox_t_per_yr.isna().all()
    assert len(df) < len(joined.dropna(subset=["lat", "lon"]))  # units of one plant share coordinates
    top = df.loc[df.co2_t_per_yr.idxmax()]
    # Europe's largest emitter (Belchatow, PL) emits ~35-40 Mt CO2/yr
    assert 25e6 < top.co2_t_per_yr < 45e6
    assert 51.0 < top.lat < 51.5 and 19.0 < top.lon < 19.6


@pytest.mark.parametrize(
    "unit,factor",
    [
        ("t/yr", 1.0),
        ("kt/yr", 1e3),
        ("kg/s", SECONDS_PER_YEAR / 1e3),
        ("g s-1", SECONDS_PER_YEAR / 1e6),
        ("t/d", 365.25),
    ],
)
def test_generic_csv_unit_conversion(tmp_path, unit, factor):
    p = tmp_path / "p.csv"
    pd.DataFrame({"Y": [10.0, 20.0], "X": [5.0, 6.0], "E": [2.0, 3.0]}).to_csv(p, index=False)
    cfg = OmegaConf.create(
        {"kind": "csv", "path": str(p), "columns": {"lat": "Y", "lon": "X", "nox": "E"}, "units": {"nox": unit}}
    )
    df = load_points(cfg)
    np.testing.assert_allclose(df.nox_t_per_yr, np.array([2.0, 3.0]) * factor)
    assert df.co2_t_per_yr.isna().all()


def test_generic_csv_bad_input_is_one_line(tmp_path):
    p = tmp_path / "p.csv"
    pd.DataFrame({"lat": [10.0, 95.0], "lon": [5.0, 6.0], "nox": [1.0, 1.0]}).to_csv(p, index=False)
    base = {"kind": "csv", "path": str(p), "columns": {"lat": "lat", "lon": "lon", "nox": "nox"}}
    with pytest.raises(InputFileError, match="column lat has values outside -90..90, e.g. 95"):
        load_points(OmegaConf.create(base))
    with pytest.raises(InputFileError, match="missing column.*NOX_T"):
        load_points(OmegaConf.create({**base, "columns": {"lat": "lat", "lon": "lon", "nox": "NOX_T"}}))
    with pytest.raises(ConfigError, match=r"inventory.units.nox: unknown emission unit 'furlongs'"):
        load_points(OmegaConf.create({**base, "units": {"nox": "furlongs"}}))
    with pytest.raises(ConfigError, match="inventory.kind"):
        load_points(OmegaConf.create({**base, "kind": "shapefile"}))
    with pytest.raises(InputFileError, match="not found"):
        load_points(OmegaConf.create({**base, "path": str(tmp_path / "nope.csv")}))
    for e in (InputFileError, ConfigError):
        assert issubclass(e, Exception)


def _edgar(tmp_path, units="kg m-2 s-1"):
    lat = np.arange(30.05, 31.0, 0.1)
    lon = np.arange(110.05, 111.0, 0.1) % 360.0
    flux = np.zeros((lat.size, lon.size))
    flux[3, 4] = 1e-9
    flux[7, 1] = 5e-10
    ds = xr.Dataset(
        {"emi_nox": (("lat", "lon"), flux, {"units": units, "long_name": "NOx flux"})}, coords={"lat": lat, "lon": lon}
    )
    p = tmp_path / "edgar.nc"
    ds.to_netcdf(p)
    return p, lat, flux


def test_edgar_flux_converted_with_cell_areas(tmp_path):
    p, lat, flux = _edgar(tmp_path)
    ds = load_gridded(
        OmegaConf.create({"kind": "edgar", "path": str(p), "variables": {"nox": "emi_nox"}, "bbox": None})
    )
    assert ds.nox_t_per_yr.attrs["units"] == "t yr-1"
    area = EARTH_RADIUS_M**2 * np.radians(0.1) * (np.sin(np.radians(lat[3] + 0.05)) - np.sin(np.radians(lat[3] - 0.05)))
    assert float(ds.nox_t_per_yr[3, 4]) == pytest.approx(1e-9 * area * SECONDS_PER_YEAR / 1e3, rel=1e-6)
    assert area == pytest.approx(11.1e3 * 9.6e3, rel=0.02)  # ~0.1 deg cell at 30 N
    sub = load_gridded(
        OmegaConf.create(
            {"kind": "edgar", "path": str(p), "variables": {"nox": "emi_nox"}, "bbox": [110.0, 30.0, 110.3, 30.5]}
        )
    )
    assert sub.sizes == {"lat": 5, "lon": 3}
    assert float(sub.nox_t_per_yr.sum()) == 0.0


def test_edgar_unknown_unit_names_it(tmp_path):
    p, _, _ = _edgar(tmp_path, units="molecules cm-2 s-1 furlong")
    cfg = OmegaConf.create({"kind": "edgar", "path": str(p), "variables": {"nox": "emi_nox"}})
    with pytest.raises(InputFileError, match="unknown units 'molecules cm-2 s-1 furlong'"):
        load_gridded(cfg)
    with pytest.raises(InputFileError, match="no variable 'emi_co2'"):
        load_gridded(OmegaConf.create({"kind": "edgar", "path": str(p), "variables": {"co2": "emi_co2"}}))
    with pytest.raises(ConfigError, match="point-source"):
        load_gridded(OmegaConf.create({"kind": "coco2", "path": str(p)}))
