"""Where composite sites lie (detect.composite.position): the peak cell or the half-peak centroid, on tiny maps."""

from __future__ import annotations

import numpy as np
import pytest

from no2hotspots.detect.composite import composite_hotspots, site_positions
from no2hotspots.errors import ConfigError

LAT = 36.0 + 0.05 * np.arange(9)
LON = 110.0 + 0.05 * np.arange(10)


def _settings(**kw):
    s = {
        "min_valid": 3,
        "k_sigma": 5.0,
        "min_value": 0.05,
        "min_cells": 1,
        "peaks": {"prominence": 1.0, "min_separation_px": 2},
    }
    return {**s, **kw}


def _period():
    """Two sites on a zero background (threshold = min_value 0.05). Site A: peak 1.0 at (3, 3), 0.75 at (3, 4),
    0.5 at (2, 3) (exactly half: counted), 0.25 at (4, 3) and 0.125 at (4, 4) (in the region, below half). Site B:
    peak 0.5 at (7, 8) with 0.25 at (6, 8) and (7, 7) (half: counted) and 0.125 at (8, 8) (not)."""
    m = np.zeros((9, 10))
    m[3, 3], m[3, 4], m[2, 3], m[4, 3], m[4, 4] = 1.0, 0.75, 0.5, 0.25, 0.125
    m[7, 8], m[6, 8], m[7, 7], m[8, 8] = 0.5, 0.25, 0.25, 0.125
    n_valid = np.full(m.shape, 10, np.int32)
    n_valid[3, 3], n_valid[7, 8] = 12, 11
    return {"rel_trimmed": m, "n_valid": n_valid, "n_detections": np.zeros(m.shape, np.int32)}


# hand-computed centroids of the cells >= half the peak, weighted by their values
A = ((3 * 1.0 + 3 * 0.75 + 2 * 0.5) / 2.25, (3 * 1.0 + 4 * 0.75 + 3 * 0.5) / 2.25)  # (2.7778, 3.3333)
B = ((7 * 0.5 + 6 * 0.25 + 7 * 0.25) / 1.0, (8 * 0.5 + 8 * 0.25 + 7 * 0.25) / 1.0)  # (6.75, 7.75)


def test_default_is_the_peak_cell():
    df = composite_hotspots(_period(), LAT, LON, _settings())
    assert list(df["site_id"]) == [1, 2]
    assert (df["peak_lat"][0], df["peak_lon"][0]) == pytest.approx((LAT[3], LON[3]), abs=1e-9)
    assert (df["peak_lat"][1], df["peak_lon"][1]) == pytest.approx((LAT[7], LON[8]), abs=1e-9)
    same = composite_hotspots(_period(), LAT, LON, _settings(position="peak"))
    assert same.equals(df)


def test_centroid_of_the_cells_at_or_above_half_the_peak():
    df = composite_hotspots(_period(), LAT, LON, _settings(position="centroid"))
    assert list(df["peak_value"]) == [1.0, 0.5] and list(df["n_cells"]) == [5, 4]
    assert df["peak_lat"][0] == pytest.approx(36.0 + 0.05 * A[0], abs=2e-6)  # rounded to 6 decimals
    assert df["peak_lon"][0] == pytest.approx(110.0 + 0.05 * A[1], abs=2e-6)
    assert (df["peak_lat"][1], df["peak_lon"][1]) == pytest.approx((36.3375, 110.3875), abs=1e-9)  # B exactly
    # counts stay those of the peak cell
    assert list(df["n_valid"]) == [12, 11]


def test_site_positions_in_cells_and_bad_choice():
    m = _period()["rel_trimmed"]
    lab = np.zeros(m.shape, np.int32)
    lab[2:5, 3:5] = 1
    lab[6:9, 7:9] = 2
    assert site_positions(m, lab, 2, "peak").tolist() == [[3.0, 3.0], [7.0, 8.0]]
    assert site_positions(m, lab, 2, "centroid") == pytest.approx(np.array([A, B]), abs=1e-12)
    assert site_positions(m, lab, 0, "centroid").shape == (0, 2)
    with pytest.raises(ConfigError, match="detect.composite.position"):
        composite_hotspots(_period(), LAT, LON, _settings(position="argmax"))
