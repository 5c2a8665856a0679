"""evaluate.geo: the point index's answers equal brute-force great-circle distances."""

import numpy as np
import pytest

from no2hotspots.evaluate.geo import PointIndex, haversine_km


def _brute_min_km(lat_a, lon_a, lat_b, lon_b):
    return haversine_km(lat_a[:, None], lon_a[:, None], lat_b[None, :], lon_b[None, :]).min(axis=1)


@pytest.mark.parametrize("km", [0.5, 10.0, 80.0])
def test_any_within_equals_the_brute_force_minimum_distance(km):
    rng = np.random.default_rng(3)
    lat_b, lon_b = rng.uniform(-60, 60, 400), rng.uniform(-180, 180, 400)
    # queries about the distance away from indexed points (some inside, some outside it) and anywhere
    step = km / 111.0  # degrees
    lat_a = np.concatenate([lat_b[:200] + rng.normal(0, step, 200), rng.uniform(-89, 89, 100)])
    lon_a = np.concatenate([lon_b[:200] + rng.normal(0, step, 200), rng.uniform(-180, 180, 100)])
    got = PointIndex(lat_b, lon_b).any_within(lat_a, lon_a, km)
    want = _brute_min_km(lat_a, lon_a, lat_b, lon_b) <= km
    assert got.dtype == bool and got.shape == (300,)
    assert 0 < want.sum() < len(want)  # both answers occur
    np.testing.assert_array_equal(got, want)


def test_any_within_across_the_antimeridian_and_with_nothing_indexed():
    index = PointIndex([10.0], [179.95])
    # 0.1 deg of longitude at 10 N is ~10.9 km: inside 12 km across the antimeridian, outside 10 km
    assert index.any_within([10.0], [-179.95], 12.0).tolist() == [True]
    assert index.any_within([10.0], [-179.95], 10.0).tolist() == [False]
    assert PointIndex([], []).any_within([10.0, 20.0], [0.0, 0.0], 1e4).tolist() == [False, False]
    assert index.any_within([], [], 5.0).shape == (0,)
