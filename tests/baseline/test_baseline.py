"""The flux-divergence baseline on an analytic plume: the hotspot sits on the source and its integrated emission
recovers the rate; the stage writes the composite-table layout the evaluation reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from detect.helpers import make_grid

from no2hotspots.baseline.divergence import EARTH_RADIUS_M
from no2hotspots.baseline.run import NO2_G_PER_MOL, SECONDS_PER_YEAR, run
from no2hotspots.config import compose
from no2hotspots.contracts import grid as contract

Q_MOL_S = 10.0  # NO2
U, TAU, SIGMA = 5.0, 4 * 3600.0, 4000.0


def _plume_collection(folder, nt=4):
    """A steady Gaussian column plume blowing east from cell (30, 20) of a 60 x 80 grid at 0.05 deg, 2e-5 background."""
    ds = make_grid(folder, ny=60, nx=80, nt=nt, plumes=(), lat0=30.0, lon0=110.0)
    lat, lon = ds["lat"].values, ds["lon"].values
    x = (lon[None, :] - lon[20]) * np.radians(1) * EARTH_RADIUS_M * np.cos(np.radians(lat[30]))
    y = (lat[:, None] - lat[30]) * np.radians(1) * EARTH_RADIUS_M
    # cell-averaged along x by integrating over the cell (the source cell holds the start of the plume)
    dx = np.radians(0.05) * EARTH_RADIUS_M * np.cos(np.radians(lat[30]))
    lo, hi = np.maximum(x - dx / 2, 0), np.maximum(x + dx / 2, 0)
    along = U * TAU * (np.exp(-lo / (U * TAU)) - np.exp(-hi / (U * TAU))) / dx
    plume = Q_MOL_S / (U * np.sqrt(2 * np.pi) * SIGMA) * np.exp(-(y**2) / (2 * SIGMA**2)) * along
    for t in range(nt):
        key = f"granule_{t:03d}"
        path = contract.overpass_path(folder, key)
        one = xr.open_dataset(path).load()
        one["no2"].values[:] = 2e-5 + plume
        path.unlink()
        one.to_netcdf(path)
    return ds


def _winds(path, ds, u=U):
    lat = np.arange(29.0, 34.0, 0.25)
    lon = np.arange(109.0, 115.0, 0.25)
    time = ds["time"].values[0] - np.timedelta64(3, "h") + np.arange(24 * 5) * np.timedelta64(1, "h")
    shape = (time.size, lat.size, lon.size)
    xr.Dataset(
        {
            "u": (("time", "latitude", "longitude"), np.full(shape, u), {"units": "m s-1"}),
            "v": (("time", "latitude", "longitude"), np.zeros(shape), {"units": "m s-1"}),
        },
        coords={"time": time, "latitude": lat, "longitude": lon},
    ).to_netcdf(path)
    return path


def _config(tmp_path, winds, *extra):
    """The baseline over the test collection with the given wind file, one process, no smoothing, every region."""
    return compose(
        [
            f"paths.outputs={tmp_path}",
            "baseline.collection=test",
            "parallel.scheduler=sync",
            f"+baseline.collections.test.wind_paths=[{winds}]",
            "baseline.smooth_cells=1",
            "baseline.min_cells=1",
            *extra,
        ]
    )


def test_baseline_finds_the_source_and_recovers_its_rate(tmp_path):
    ds = _plume_collection(tmp_path / "ingest" / "test")
    winds = _winds(tmp_path / "winds.nc", ds)
    cfg = _config(tmp_path, winds, f"baseline.lifetime_h={TAU / 3600}")
    summary = run(cfg)["test"]
    table = pd.read_csv(tmp_path / "baseline" / "test" / "composite.csv")
    assert summary["n_overpasses_with_wind"] == 4 and len(table) >= 1
    top = table.iloc[0]
    assert abs(top.peak_lat - ds.lat.values[30]) < 0.06 and abs(top.peak_lon - ds.lon.values[20]) < 0.11
    q = Q_MOL_S * 1.32 * NO2_G_PER_MOL * SECONDS_PER_YEAR / 1e6  # t NOx / yr
    assert top.nox_t_per_yr == pytest.approx(q, rel=0.25)


def test_no_wind_for_any_overpass_is_a_one_line_error(tmp_path):
    from no2hotspots.errors import InputFileError

    _plume_collection(tmp_path / "ingest" / "test", nt=1)
    cfg = compose(
        [
            f"paths.outputs={tmp_path}",
            "baseline.collection=test",
            "parallel.scheduler=sync",
            "+baseline.collections.test.wind_paths=null",
        ]
    )
    with pytest.raises(InputFileError, match="no overpass has a wind direction"):
        run(cfg)


def test_a_damaged_unit_file_is_a_one_line_error_and_the_published_table_stays(tmp_path):
    """A unit file that lost its ``emission`` (damaged on disk after its marker was written) is named in one line
    when the period is accumulated, and the collection's published table from the run before is left as it was."""
    from no2hotspots.errors import InputFileError

    ds = _plume_collection(tmp_path / "ingest" / "test", nt=2)
    winds = _winds(tmp_path / "winds.nc", ds)
    cfg = _config(tmp_path, winds)
    run(cfg)
    published = (tmp_path / "baseline" / "test" / "composite.csv").read_bytes()
    unit = sorted((tmp_path / ".units" / "baseline" / "test").glob("*.nc"))[0]
    xr.Dataset({"other": ("x", np.zeros(3))}).to_netcdf(unit)
    with pytest.raises(InputFileError, match="missing variable emission") as err:
        run(cfg)
    assert unit.name in str(err.value) and "\n" not in str(err.value)
    assert (tmp_path / "baseline" / "test" / "composite.csv").read_bytes() == published


def _two_sources_map():
    """A period-mean emission map: a source and one 0.3x as strong 3 cells (15 km) east of it, each spread over
    ~1 cell (sigma 0.7 cells), on weak noise."""
    ny, nx = 40, 40
    yy, xx = np.mgrid[0:ny, 0:nx]

    def blob(i, j):
        return np.exp(-((yy - i) ** 2 + (xx - j) ** 2) / (2 * 0.7**2))

    noise = np.random.default_rng(3).normal(0.0, 0.005, (ny, nx))
    mean = (blob(20, 18) + 0.3 * blob(20, 21) + noise) * 1e-8
    grid = xr.Dataset(
        coords={"lat": 30.0 + 0.05 * np.arange(ny), "lon": 110.0 + 0.05 * np.arange(nx)},
        attrs={"resolution_deg": 0.05},
    )
    return mean, np.full((ny, nx), 300), grid


def test_a_years_defaults_keep_two_sources_three_cells_apart_apart():
    """The period default (no box, peaks split at a 5 % dip) gives the weaker neighbour its own site; a single
    overpass's settings (matimba: the 3x3 box and the model's 20 % split) merge it into the stronger one's region."""
    from no2hotspots.baseline.run import hotspots, settings

    mean, n_valid, grid = _two_sources_map()
    cfg = compose([])
    period = hotspots(mean, n_valid, grid, settings(cfg, "osse"))
    assert len(period) == 2
    assert sorted(np.round((period.peak_lon.to_numpy() - 110.0) / 0.05).astype(int)) == [18, 21]
    assert set(np.round((period.peak_lat.to_numpy() - 30.0) / 0.05).astype(int)) == {20}
    one_overpass = hotspots(mean, n_valid, grid, settings(cfg, "matimba"))
    assert len(one_overpass) == 1 and round((one_overpass.peak_lon.iloc[0] - 110.0) / 0.05) == 18


def test_period_settings_reuse_every_unit_and_map_settings_do_not(tmp_path):
    """The threshold, smoothing and peak split act on the accumulated maps: changing them reuses every
    per-overpass unit; the lifetime and the wind level change the maps and recompute them."""
    ds = _plume_collection(tmp_path / "ingest" / "test", nt=2)
    winds = _winds(tmp_path / "winds.nc", ds)
    folder = tmp_path / ".units" / "baseline" / "test"

    def stamps():
        return {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob("*.nc"))}

    run(_config(tmp_path, winds))
    first = stamps()
    assert len(first) == 2
    run(_config(tmp_path, winds, "baseline.k_sigma=3", "baseline.smooth_cells=3", "baseline.peaks.prominence=0.5"))
    assert stamps() == first
    run(_config(tmp_path, winds, "baseline.lifetime_h=2"))
    second = stamps()
    assert second.keys() == first.keys() and all(second[k] != first[k] for k in first)
    run(_config(tmp_path, winds, "baseline.lifetime_h=2", "quantify.winds.time_window_h=3"))
    assert all(stamps()[k] != second[k] for k in second)


def test_a_wind_file_replaced_or_added_recomputes_the_maps(tmp_path):
    """The per-overpass maps depend on the wind files the wind paths match, not on the paths as written: a wind
    file rewritten in place (the wind reversed) or one added under the same glob recomputes them (before, the
    resume cache kept the old winds' maps, sign and all)."""
    ds = _plume_collection(tmp_path / "ingest" / "test", nt=2)
    wind_dir = tmp_path / "winds"
    wind_dir.mkdir()
    winds = _winds(wind_dir / "a.nc", ds)
    cfg = _config(tmp_path, f"{wind_dir}/*.nc")
    folder = tmp_path / ".units" / "baseline" / "test"

    def stamps():
        return {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob("*.nc"))}

    run(cfg)
    east = pd.read_csv(tmp_path / "baseline" / "test" / "composite.csv")
    first = stamps()
    run(cfg)
    assert stamps() == first  # nothing changed: every unit reused
    _winds(winds, ds, u=-U)  # the same file, the wind from the other side
    run(cfg)
    second = stamps()
    assert all(second[k] != first[k] for k in first)
    west = pd.read_csv(tmp_path / "baseline" / "test" / "composite.csv")
    # blown the other way, the plume's divergence no longer peaks at the source: the top site is not the same
    assert (
        east.empty
        or west.empty
        or (east.iloc[0].peak_lon, east.iloc[0].peak_lat)
        != (
            west.iloc[0].peak_lon,
            west.iloc[0].peak_lat,
        )
    )
    _winds(wind_dir / "b.nc", ds)  # one more file under the glob
    run(cfg)
    assert all(stamps()[k] != second[k] for k in second)
