"""Hotspot extraction on hand-made maps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from no2hotspots.detect.grid import cell_area_km2
from no2hotspots.detect.hotspots import find_hotspots, gap_distance, label_regions

from .helpers import make_grid


def _two_blobs():
    rel = np.zeros((1, 40, 50), np.float32)
    rel[0, 5:8, 5:9] = 0.3  # blob A: 3x4 = 12 cells, peak 0.9 at (6, 7)
    rel[0, 6, 7] = 0.9
    rel[0, 30, 40] = 0.5  # blob B: 2 cells joined diagonally (8-connectivity), peak 0.5
    rel[0, 31, 41] = 0.25
    rel[0, 20, 20] = 0.19  # below threshold
    rel[0, 21, 21] = np.nan  # NaN = no input: never a hotspot
    return rel


def test_two_blobs_give_two_hotspots_with_peaks_areas_and_nox_estimate():
    ds = make_grid(None, ny=40, nx=50, nt=1, lat0=-24.0, lon0=27.0)
    lat, lon = ds["lat"].values, ds["lon"].values
    area = cell_area_km2(ds)
    rows, ids = find_hotspots(
        _two_blobs()[0],
        lat,
        lon,
        cell_area_km2=area,
        emission_min=100.0,
        emission_max=20100.0,
        threshold=0.2,
    )
    df = pd.DataFrame(rows)
    assert len(df) == 2
    a, b = df.iloc[0], df.iloc[1]  # ordered by peak, descending
    assert a.overpass_hotspot == 1 and b.overpass_hotspot == 2
    assert (a.peak_lat, a.peak_lon) == pytest.approx((lat[6], lon[7]))
    assert (b.peak_lat, b.peak_lon) == pytest.approx((lat[30], lon[40]))
    assert a.peak_rel_emission == pytest.approx(0.9) and b.peak_rel_emission == pytest.approx(0.5)
    assert a.sum_rel_emission == pytest.approx(11 * 0.3 + 0.9, rel=1e-5)
    assert (a.n_cells, b.n_cells) == (12, 2)
    # area: 0.05 deg cells ~ (5.56 km)^2 cos(lat), independent of the exact formula used by the code
    km_per_deg = 6371.0088 * np.pi / 180
    expect_a = 12 * (0.05 * km_per_deg) ** 2 * np.cos(np.deg2rad(lat[6]))
    assert a.area_km2 == pytest.approx(expect_a, rel=1e-3)
    assert a.nox_rate_estimate_t_per_yr == pytest.approx(100 + 0.9 * 20000)
    assert b.nox_rate_estimate_t_per_yr == pytest.approx(100 + 0.5 * 20000)
    assert ids.shape == (40, 50) and (ids == 1).sum() == 12 and (ids == 2).sum() == 2 and ids[20, 20] == 0


def test_threshold_is_inclusive_and_min_cells_drops_small_regions():
    rel = _two_blobs()[0]
    lab, n = label_regions(rel, 0.19)
    assert n == 3
    lab, n = label_regions(rel, 0.2, min_cells=3)
    assert n == 1 and (lab == 1).sum() == 12
    lab, n = label_regions(rel, 0.95)
    assert n == 0 and not lab.any()


def test_equal_peaks_are_ordered_by_position_the_same_everywhere():
    rel = np.zeros((20, 20), np.float32)
    rel[15, 15] = rel[2, 3] = rel[2, 10] = 0.5
    ds = make_grid(None, ny=20, nx=20, nt=1)
    rows, ids = find_hotspots(
        rel, ds["lat"].values, ds["lon"].values, cell_area_km2=cell_area_km2(ds), emission_min=0, emission_max=1
    )
    assert [(r["peak_lat"], r["peak_lon"]) for r in rows] == [
        (round(float(ds.lat[i]), 6), round(float(ds.lon[j]), 6)) for i, j in ((2, 3), (2, 10), (15, 15))
    ]
    assert ids[2, 3] == 1 and ids[15, 15] == 3


def test_regions_peaking_on_the_edge_are_no_hotspots_and_the_rest_are_renumbered():
    """edge_cells = 1 drops a region whose peak is on the outermost row or column (even when it reaches inside),
    keeps one that touches the edge but peaks inside, and numbers the rest 1..n by peak with no gaps; 2 also drops
    a peak one cell in; 0 keeps all."""
    rel = np.zeros((20, 20), np.float32)
    rel[0, 8], rel[1, 8] = 0.9, 0.5  # peak on the first row, region reaches row 1
    rel[10, 19] = 0.8  # peak on the last column
    rel[19, 3], rel[18, 3] = 0.3, 0.7  # touches the last row, peaks one cell in
    rel[10, 10] = 0.6  # inside
    ds = make_grid(None, ny=20, nx=20, nt=1)
    lat, lon, area = ds["lat"].values, ds["lon"].values, cell_area_km2(ds)

    def peaks(edge_cells):
        rows, ids = find_hotspots(
            rel, lat, lon, cell_area_km2=area, emission_min=0, emission_max=1, edge_cells=edge_cells
        )
        assert sorted(np.unique(ids[ids > 0]).tolist()) == [r["overpass_hotspot"] for r in rows]
        return [r["peak_rel_emission"] for r in rows], ids

    got, _ = peaks(0)
    assert got == pytest.approx([0.9, 0.8, 0.7, 0.6])
    got, ids = peaks(1)
    assert got == pytest.approx([0.7, 0.6])
    assert ids[18, 3] == ids[19, 3] == 1 and ids[10, 10] == 2 and ids[0, 8] == ids[1, 8] == ids[10, 19] == 0
    got, _ = peaks(2)
    assert got == pytest.approx([0.6])


def test_regions_beside_a_gap_are_dropped_only_where_background_was_taken_off():
    """min_gap_cells_shifted = 2 drops a region whose peak is next to an unobserved cell (gap_cells 1) where
    detection took background off (shift > 0); the same region on an unshifted background, and a shifted one two
    cells from the gap, stay; 0 keeps all. The survivors are renumbered 1..n by peak. With gap_shift_min_mol_m2
    the rule fires only where more than that was taken off."""
    rel = np.zeros((20, 20), np.float32)
    valid = np.ones((20, 20), bool)
    valid[:, 12:] = False  # a cloud gap over the eastern columns
    rel[3, 11] = 0.9  # beside the gap, shifted: dropped
    rel[10, 11] = 0.8  # beside the gap, not shifted: kept
    rel[16, 10] = 0.7  # two cells from the gap, shifted: kept
    rel[5, 4] = 0.6  # far from the gap, shifted: kept
    shift = np.zeros((20, 20))
    shift[:8, :] = 2e-5
    shift[14:, :] = 2e-5
    shift[3, 11] = 4e-5  # the dropped one: a larger shift than the other shifted peaks
    ds = make_grid(None, ny=20, nx=20, nt=1)
    lat, lon, area = ds["lat"].values, ds["lon"].values, cell_area_km2(ds)

    def kept(g, above=0.0):
        rows, ids = find_hotspots(
            rel, lat, lon, cell_area_km2=area, emission_min=0, emission_max=1,
            min_gap_cells_shifted=g, gap_shift_min_mol_m2=above, valid=valid, background_shift=shift,
        )  # fmt: skip
        assert sorted(np.unique(ids[ids > 0]).tolist()) == [r["overpass_hotspot"] for r in rows]
        return [r["peak_rel_emission"] for r in rows], [r["gap_cells"] for r in rows], ids

    got, gaps, _ = kept(0)
    assert got == pytest.approx([0.9, 0.8, 0.7, 0.6]) and gaps[:3] == [1, 1, 2] and gaps[3] >= 3
    got, _, ids = kept(2)
    assert got == pytest.approx([0.8, 0.7, 0.6])
    assert ids[3, 11] == 0 and ids[10, 11] == 1 and ids[5, 4] == 3
    got, _, _ = kept(3)
    assert got == pytest.approx([0.8, 0.6])
    assert kept(2, above=3e-5)[0] == pytest.approx([0.8, 0.7, 0.6])  # 4e-5 beside the gap: still dropped
    assert kept(3, above=3e-5)[0] == pytest.approx([0.8, 0.7, 0.6])  # 2e-5 two cells away: now kept
    assert kept(2, above=4e-5)[0] == pytest.approx([0.9, 0.8, 0.7, 0.6])  # "more than": 4e-5 is not


def test_no_hotspot_gives_an_empty_list():
    ds = make_grid(None, ny=10, nx=10, nt=1)
    rows, ids = find_hotspots(
        np.zeros((10, 10)),
        ds["lat"].values,
        ds["lon"].values,
        cell_area_km2=cell_area_km2(ds),
        emission_min=0,
        emission_max=1,
    )
    assert rows == [] and not ids.any()


def test_gap_distance_counts_cells_to_the_nearest_unobserved_cell_or_the_field_edge():
    valid = np.ones((9, 12), bool)
    valid[2:4, 7:9] = False  # a cloud gap
    d = gap_distance(valid)
    assert d[2, 7] == d[3, 8] == 0  # unobserved cells themselves
    assert d[1, 6] == d[4, 9] == 1  # diagonal neighbours (chessboard)
    assert d[0, 0] == d[8, 11] == 1  # the outermost ring: the field ends beside it
    assert d[4, 5] == 2  # the gap nearer (two columns) than the edge (five rows)
    assert d[6, 2] == 3  # the edge nearer (three rows below) than the gap (five columns)
    assert gap_distance(np.zeros((3, 3), bool)).max() == 0


def test_hotspots_carry_their_distance_to_a_gap():
    ds = make_grid(None, ny=40, nx=50, nt=1, lat0=-24.0, lon0=27.0)
    rel = _two_blobs()[0]
    kw = dict(cell_area_km2=cell_area_km2(ds), emission_min=0.0, emission_max=1.0, threshold=0.2)
    rows, _ = find_hotspots(rel, ds["lat"].values, ds["lon"].values, **kw)
    # blob A peaks at (6, 7): 7 cells to beyond the first row; blob B at (30, 40): 10 to beyond the last row and
    # column; the NaN cell at (21, 21) is farther from both
    assert [r["gap_cells"] for r in rows] == [7, 10]
    valid = np.ones(rel.shape, bool)
    valid[28:30, 36:39] = False  # a gap two cells north-west of B's peak, given as the overpass's valid mask
    rows, _ = find_hotspots(rel, ds["lat"].values, ds["lon"].values, valid=valid, **kw)
    assert [r["gap_cells"] for r in rows] == [7, 2]
