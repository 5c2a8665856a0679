"""The OSSE's truth beyond the granules: the puffs' winds as NetCDF (read by no2hotspots.winds), injected emission
changes (osse.changes), the china_year preset's composition, and one-line errors for bad osse values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from no2hotspots.config import compose
from no2hotspots.errors import ConfigError
from no2hotspots.osse.checks import check_config
from no2hotspots.osse.day import day_orbits, day_rates, day_weather, render_plume
from no2hotspots.osse.run import prepare, run, select_sources
from no2hotspots.winds import open_winds

from .helpers import osse_cfg


def _setup(cfg):
    return prepare(cfg, select_sources(cfg))


def test_wind_file_is_the_days_wind_and_the_winds_reader_reads_it(osse_base):
    cfg, _, out = osse_base
    setup = _setup(cfg)
    gran = pd.read_csv(out / "truth" / "granules.csv")
    for d, day in enumerate(["2019-09-01", "2019-09-02", "2019-09-03"]):
        path = out / "truth" / "winds" / f"{day}.nc"
        ds = xr.open_dataset(path)
        assert ds["u"].dims == ("time", "latitude", "longitude") and ds["u"].attrs["units"] == "m s-1"
        assert ds["u"].attrs["standard_name"] == "eastward_wind" and ds["v"].attrs["standard_name"] == "northward_wind"
        lat, lon = ds["latitude"].values, ds["longitude"].values
        assert np.allclose(np.diff(lat), 0.25) and np.allclose(np.diff(lon), 0.25)
        assert lat[0] <= 37.3 - 0.1 and lat[-1] >= 38.5 + 0.1 and lon[0] <= 111.0 - 0.1 and lon[-1] >= 112.5 + 0.1
        # hourly from the first puff release (4 h before the first overpass) to the last overpass
        hours = (ds["time"].values - np.datetime64(day)) / np.timedelta64(1, "h")
        overpass_h = gran.loc[gran.date == day, "overpass_utc_h"]
        assert np.allclose(np.diff(hours), 1.0)
        assert hours[0] <= overpass_h.min() - 4 and hours[-1] >= overpass_h.max() and hours[-1] - hours[0] <= 4 + 6
        ds.close()

        wind = day_weather(setup, d, day_orbits(setup, d)).wind
        field = open_winds({"paths": str(path), "time_window_h": 0.0})
        ii, jj = np.meshgrid([0, 2, len(lat) - 1], [1, 3, len(lon) - 2], indexing="ij")
        plat, plon = lat[ii.ravel()], lon[jj.ravel()]
        for h in (hours[1], hours[-2]):
            s = field.at(plat, plon, np.datetime64(day) + np.timedelta64(int(h * 3600), "s"))
            u, v = wind.uv(plat, plon, h * 3600.0)
            assert np.all(np.abs(s.u - u) <= 0.0051) and np.all(np.abs(s.v - v) <= 0.0051)
            assert "simple layout" in s.source[0] and np.abs(u).max() > 0.5


def _plume_mass(folder, name):
    t = xr.open_dataset(folder / "truth" / "fields" / name.replace(".nc", "_truth.nc"))
    return t["no2_plume"].values.astype(np.float64)


def test_an_emission_change_applies_from_its_date(osse_base, data_dir, tmp_path):
    cfg, _, base = osse_base
    src = pd.read_csv(base / "truth" / "sources.csv")
    big = src.sort_values("nox_t_per_yr").iloc[-1]
    change = f"osse.changes=[{{source:{big.id},from:'2019-09-02',factor:0.0}}]"
    changed_cfg = osse_cfg(data_dir, tmp_path, [change])
    run(changed_cfg)
    out = tmp_path / "osse"

    truth = pd.read_csv(out / "truth" / "sources.csv", keep_default_na=False)
    i = int(np.flatnonzero(truth.id == big.id)[0])
    row = truth.iloc[i]
    assert (row.change_date, float(row.change_factor)) == ("2019-09-02", 0.0)
    others = truth[truth.id != big.id]
    assert (others.change_date == "").all() and (others.change_factor == "").all()

    setup = _setup(changed_cfg)
    assert day_rates(setup, "2019-09-01")[i] == pytest.approx(big.no2_rate_mol_s)
    assert day_rates(setup, "2019-09-02")[i] == 0.0
    gran = pd.read_csv(base / "truth" / "granules.csv")
    assert gran.date.nunique() == 3
    for d, day in enumerate(["2019-09-01", "2019-09-02", "2019-09-03"]):
        orbits = day_orbits(setup, d)
        weather = day_weather(setup, d, orbits)
        alone = np.zeros_like(setup.src_q)
        alone[i] = big.no2_rate_mol_s
        for name, (t_ov, _, grid) in zip(gran.loc[gran.date == day, "file"], orbits):
            before, after = _plume_mass(base, name), _plume_mass(out, name)
            area = grid.area_m2()
            own = render_plume(setup, weather, alone, t_ov, grid)
            assert (own * area).sum() > 0.05 * (before * area).sum()  # the plant's plume is on the granule
            if day < "2019-09-02":
                assert np.array_equal(before, after)
            else:
                assert ((before - after) * area).sum() == pytest.approx((own * area).sum(), rel=1e-4)
                assert np.allclose(before - after, own, atol=1e-6 * before.max())


def test_china_year_is_the_demo_with_a_few_keys_changed():
    demo = compose([]).osse
    china = compose(["osse=china_year"]).osse
    assert list(china.region.bbox) == [73.0, 18.0, 135.0, 54.0] and china.dates.days == 365
    assert china.dates.start == "2019-01-01" and china.swath.along_track_km == 7.0
    for group in ("transport", "wind", "clouds", "background", "noise", "truth"):
        assert china[group] == demo[group], group
    assert [dict(c) for c in china.changes] == [{"source": "CoCO2_02495", "from": "2019-07-01", "factor": 0.0}]
    assert [dict(c) for c in demo.changes] == [{"source": "CoCO2_02495", "from": "2020-03-01", "factor": 0.0}]


def test_china_years_change_names_a_real_big_plant(data_dir):
    cfg = compose([f"paths.data={data_dir}", "osse=china_year"])
    check_config(cfg)
    src = select_sources(cfg)
    off = src[src.change_date.notna()]
    assert list(off.id) == ["CoCO2_02495"] and off.nox_t_per_yr.iloc[0] > 20_000 and off.iso3.iloc[0] == "CHN"


def test_europe_year_is_china_year_elsewhere_with_its_own_seed_and_no_change(data_dir):
    """The validation country year: china_year's physics and period, a box disjoint from china_year's (the test) and
    the demo's, seed 7 (not the global 42 that the demo and china_year take), no injected change."""
    china = compose(["osse=china_year"]).osse
    cfg = compose([f"paths.data={data_dir}", "osse=europe_year"])
    europe = cfg.osse
    assert europe.region.name == "europe" and europe.seed == 7 and china.seed == 42 and list(europe.changes) == []
    for group in ("dates", "swath", "sources", "transport", "wind", "clouds", "background", "noise", "truth"):
        assert europe[group] == china[group], group
    (w, s_, e, n), (cw, cs, ce, cn) = europe.region.bbox, china.region.bbox
    m = europe.region.margin_deg + china.region.margin_deg
    assert e + m < cw or w - m > ce or n + m < cs or s_ - m > cn  # disjoint, margins included
    check_config(cfg)
    src = select_sources(cfg)
    assert len(src) > 500 and (src.nox_t_per_yr >= 100).all() and src.change_date.isna().all()


RAMP_RANGES = [
    "osse.transport.no2_ramp.m=[1.6,6.1]",
    "osse.transport.no2_ramp.r_s=645",
    "osse.transport.no2_ramp.f0=[1.31,1.9]",
]


def test_no2_ramp_ranges_are_drawn_per_source_from_the_runs_seed(data_dir, tmp_path):
    src = select_sources(osse_cfg(data_dir, tmp_path, RAMP_RANGES))
    m, r_s, f0 = (src[c].to_numpy() for c in ("no2_ramp_m", "no2_ramp_r_s", "no2_ramp_f0"))
    assert len(src) >= 5 and np.unique(m).size == len(src) and np.unique(f0).size == len(src)
    assert (m >= 1.6).all() and (m <= 6.1).all() and (f0 >= 1.31).all() and (f0 <= 1.9).all() and (r_s == 645).all()
    again = select_sources(osse_cfg(data_dir, tmp_path, RAMP_RANGES))
    assert np.array_equal(again["no2_ramp_m"], m) and np.array_equal(again["no2_ramp_f0"], f0)
    other = select_sources(osse_cfg(data_dir, tmp_path, [*RAMP_RANGES, "osse.seed=8"]))
    assert not np.array_equal(other["no2_ramp_m"], m)
    setup = prepare(osse_cfg(data_dir, tmp_path, RAMP_RANGES), src)
    assert all(np.array_equal(a, b) for a, b in zip(setup.src_ramp, (m, r_s, f0)))
    off = select_sources(osse_cfg(data_dir, tmp_path))  # m 0: no ramp, no columns (the truth file as before)
    assert "no2_ramp_m" not in off and _setup(osse_cfg(data_dir, tmp_path)).src_ramp is None


def test_a_per_source_ramp_is_each_plumes_own_and_a_range_of_one_value_is_that_value(data_dir, tmp_path):
    def plume(extra):
        cfg = osse_cfg(data_dir, tmp_path, extra)
        setup = _setup(cfg)
        orbits = day_orbits(setup, 0)
        weather = day_weather(setup, 0, orbits)
        t_ov, _, grid = orbits[0]
        return render_plume(setup, weather, setup.src_q, t_ov, grid)

    plain = plume([])
    scalar = plume(
        ["osse.transport.no2_ramp.m=4.0", "osse.transport.no2_ramp.r_s=645", "osse.transport.no2_ramp.f0=1.51"]
    )
    one = plume(
        [
            "osse.transport.no2_ramp.m=[4.0,4.0]",
            "osse.transport.no2_ramp.r_s=[645,645]",
            "osse.transport.no2_ramp.f0=[1.51,1.51]",
        ]
    )
    drawn = plume(RAMP_RANGES)
    assert np.array_equal(scalar, one)
    assert 0 < scalar.sum() < plain.sum() and 0 < drawn.sum() < plain.sum() and not np.array_equal(drawn, scalar)


BAD = [
    (["osse.dates.days=0"], "osse.dates.days"),
    (["osse.units_dir=${paths.outputs}/osse/cache"], "osse.units_dir"),
    (["osse.units_dir=${paths.outputs}"], "osse.units_dir"),
    (["osse.dates.end=2019-08-01"], "osse.dates.end"),
    (["osse.dates.end=yesterday"], "osse.dates.end"),
    (["osse.dates.start=2019-02-30"], "osse.dates.start"),
    (["osse.truth.winds_resolution_deg=0"], "osse.truth.winds_resolution_deg"),
    (["osse.truth.winds_step_min=-5"], "osse.truth.winds_step_min"),
    (["osse.transport.release_hours=0"], "osse.transport.release_hours"),
    (["osse.transport.no2_ramp.m=-1"], "osse.transport.no2_ramp.m"),
    (["osse.transport.no2_ramp.r_s=0"], "osse.transport.no2_ramp.r_s"),
    (["osse.transport.no2_ramp.m=[6.1,1.6]"], "osse.transport.no2_ramp.m"),
    (["osse.transport.no2_ramp.f0=[0,1.9]"], "osse.transport.no2_ramp.f0"),
    (["osse.transport.no2_ramp.r_s=[500,600,700]"], "osse.transport.no2_ramp.r_s"),
    (["osse.wind.speed_m_s=[5,2]"], "osse.wind.speed_m_s"),
    (["osse.changes=[5]"], "osse.changes[0]"),
    (["osse.changes=[{source:nowhere,from:'2019-09-02',factor:0}]"], "osse.changes[0].source"),
    (["osse.changes=[{source:CoCO2_03556,from:'2019-13-01',factor:0}]"], "osse.changes[0].from"),
    (["osse.changes=[{source:CoCO2_03556,from:'2019-09-02',factor:-1}]"], "osse.changes[0].factor"),
    (["osse.changes=[{source:CoCO2_03556,from:'2019-09-02'}]"], "osse.changes[0]"),
    (["osse.changes=[{source:CoCO2_03556,from:'2019-09-02',factor:0,until:'2019-09-03'}]"], "osse.changes[0]"),
    (
        [
            "osse.changes=[{source:CoCO2_03556,from:'2019-09-02',factor:0},"
            "{source:CoCO2_03556,from:'2019-09-03',factor:1}]"
        ],
        "osse.changes[1].source",
    ),
]


@pytest.mark.parametrize(("overrides", "key"), BAD, ids=[b[1] + ":" + b[0][0].split("=", 1)[1][:20] for b in BAD])
def test_bad_osse_values_are_one_line_errors_naming_the_key(data_dir, tmp_path, overrides, key):
    with pytest.raises(ConfigError) as e:
        run(osse_cfg(data_dir, tmp_path, overrides))
    assert e.value.key == key and "\n" not in str(e.value)
    assert not (tmp_path / "osse").exists() and not list(tmp_path.glob(".units/osse/*"))


def test_cli_prints_a_bad_change_in_one_line(data_dir, tmp_path, capsys):
    from no2hotspots.cli import main

    change = "osse.changes=[{source:nowhere,from:'2019-09-02',factor:0}]"
    rc = main(["osse", f"paths.data={data_dir}", f"paths.outputs={tmp_path}", change])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "osse.changes[0].source" in err and "nowhere" in err
