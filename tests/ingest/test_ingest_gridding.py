"""Exact area-weighted gridding: conservation, uniform fields, precision propagation, the obs_count rule."""

from __future__ import annotations

import numpy as np
import pytest

from no2hotspots.ingest.gridding import Grid, centre_binning, grid_overpass, overlap_weights


def _swath(n_scan=60, n_gp=40, lon0=10.0, lat0=45.0, seed=0):
    """Tilted, slightly irregular quadrilateral footprints tiling a swath (about 0.03 x 0.05 deg)."""
    rng = np.random.default_rng(seed)
    i, j = np.meshgrid(np.arange(n_gp + 1), np.arange(n_scan + 1))
    lon = lon0 + 0.031 * i + 0.012 * j + rng.normal(0, 0.002, i.shape)
    lat = lat0 + 0.004 * i + 0.049 * j + rng.normal(0, 0.002, i.shape)
    c = lambda a: np.stack([a[:-1, :-1], a[:-1, 1:], a[1:, 1:], a[1:, :-1]], -1).reshape(-1, 4)  # noqa: E731
    return c(lon), c(lat)


def _area(lo, la):
    return 0.5 * np.abs(np.sum(lo * np.roll(la, -1, 1) - np.roll(lo, -1, 1) * la, axis=1))


def test_area_conservation_partly_outside_grid():
    lo, la = _swath()
    grid = Grid.from_bbox([10.3, 45.5, 11.2, 47.0], 0.05)  # cuts through the swath
    p, c, w = overlap_weights(grid, lo, la)
    total = np.bincount(c, weights=w, minlength=grid.nlat * grid.nlon).sum() * grid.cell_area_deg2
    # reference: pixels wholly inside the grid contribute their whole area; compare with Monte Carlo for the rest
    inside = (
        (lo.min(1) >= grid.bbox[0])
        & (lo.max(1) <= grid.bbox[2])
        & (la.min(1) >= grid.bbox[1])
        & (la.max(1) <= grid.bbox[3])
    )
    per_pixel = np.bincount(p, weights=w, minlength=lo.shape[0]) * grid.cell_area_deg2
    np.testing.assert_allclose(per_pixel[inside], _area(lo[inside], la[inside]), rtol=1e-9)
    from matplotlib.path import Path as MPath

    rng = np.random.default_rng(1)
    pts = np.column_stack(
        [rng.uniform(grid.bbox[0], grid.bbox[2], 400_000), rng.uniform(grid.bbox[1], grid.bbox[3], 400_000)]
    )
    hit = np.zeros(len(pts), bool)
    for k in np.flatnonzero(~inside & (per_pixel > 0)):
        hit |= MPath(np.column_stack([lo[k], la[k]])).contains_points(pts)
    bbox_area = (grid.bbox[2] - grid.bbox[0]) * (grid.bbox[3] - grid.bbox[1])
    mc = hit.mean() * bbox_area + per_pixel[inside].sum()
    assert total == pytest.approx(mc, rel=0.01)
    assert total == pytest.approx(per_pixel.sum(), rel=1e-12)


def test_uniform_field_grids_to_same_value_and_full_coverage():
    lo, la = _swath()
    grid = Grid.from_bbox([10.55, 45.6, 11.0, 46.8], 0.05)  # wholly inside the swath
    g = grid_overpass(grid, lo, la, np.full(len(lo), 3.3e-5), np.full(len(lo), 1e-5))
    np.testing.assert_allclose(g.no2, 3.3e-5, rtol=1e-12)
    np.testing.assert_allclose(g.covered_area, 1.0, atol=1e-9)  # the footprints tile the plane
    assert np.all(g.no2_precision < 1e-5)  # averaging several pixels lowers the error


def test_precision_propagation_exact():
    grid = Grid(0.0, 0.0, 1.0, 2, 1)
    # two pixels splitting cell 0 into a 0.25 / 0.75 area; the second also covers half of cell 1
    lo = np.array([[0, 0.25, 0.25, 0], [0.25, 1.5, 1.5, 0.25]], float)
    la = np.array([[0, 0, 1, 1], [0, 0, 1, 1]], float)
    c, s = np.array([1.0, 3.0]), np.array([0.2, 0.4])
    g = grid_overpass(grid, lo, la, c, s)
    assert g.no2[0, 0] == pytest.approx(0.25 * 1 + 0.75 * 3)
    assert g.no2_precision[0, 0] == pytest.approx(np.sqrt(0.25**2 * 0.2**2 + 0.75**2 * 0.4**2))
    assert g.no2[0, 1] == pytest.approx(3.0) and g.no2_precision[0, 1] == pytest.approx(0.4)
    assert g.coverage[0, 0] == pytest.approx(1.0) and g.coverage[0, 1] == pytest.approx(0.5)


def test_a_pixel_without_a_precision_does_not_blank_its_cells_precision():
    grid = Grid(0.0, 0.0, 1.0, 2, 1)
    lo = np.array([[0, 0.25, 0.25, 0], [0.25, 1.5, 1.5, 0.25]], float)
    la = np.array([[0, 0, 1, 1], [0, 0, 1, 1]], float)
    g = grid_overpass(grid, lo, la, np.array([1.0, 3.0]), np.array([np.nan, 0.4]))
    assert g.no2[0, 0] == pytest.approx(0.25 * 1 + 0.75 * 3)  # the column is unaffected
    # the unknown pixel takes the cell's other pixels' precision: as if both had 0.4
    assert g.no2_precision[0, 0] == pytest.approx(np.sqrt(0.25**2 + 0.75**2) * 0.4)
    assert g.no2_precision[0, 1] == pytest.approx(0.4)
    none = grid_overpass(grid, lo, la, np.array([1.0, 3.0]), np.array([np.nan, np.nan]))
    assert np.isnan(none.no2_precision).all() and np.isfinite(none.no2).all()


def test_obs_count_counts_only_coverage_above_threshold(tmp_path):
    import pandas as pd

    from no2hotspots.contracts import grid as contract
    from no2hotspots.ingest.period import accumulate

    grid = Grid(0.0, 0.0, 1.0, 3, 1)
    covs = [0.74, 0.76, 1.0]  # fraction of each cell covered, per overpass
    rows = []
    for k, f in enumerate(covs):
        lo = np.array([[0, 3, 3, 0]], float)
        la = np.array([[0, 0, f, f]], float)
        g = grid_overpass(grid, lo, la, np.array([float(k + 1)]), np.array([0.1]))
        key = f"g{k}"
        contract.write_overpass(
            tmp_path / f"{key}.nc",
            lat=grid.lat,
            lon=grid.lon,
            res=1.0,
            no2=g.no2,
            no2_precision=g.no2_precision,
            coverage=g.coverage,
            time=np.datetime64("2021-01-01") + np.timedelta64(k, "D"),
            source_file=key,
        )
        rows.append({"key": key, "i0": 0, "j0": 0, "ny": 1, "nx": 3})
    counts, mean = accumulate(pd.DataFrame(rows), grid, tmp_path, 0.75)
    assert counts.tolist() == [[2, 2, 2]]  # 0.74 is not counted, 0.76 and 1.0 are
    assert mean[0, 0] == pytest.approx((2 + 3) / 2)


def test_clockwise_and_ccw_corners_agree_and_baseline_runs():
    lo, la = _swath(10, 10)
    grid = Grid.from_bbox([10.0, 45.0, 10.5, 45.6], 0.05)
    a = grid_overpass(grid, lo, la, np.arange(len(lo), dtype=float), np.ones(len(lo)))
    b = grid_overpass(grid, lo[:, ::-1], la[:, ::-1], np.arange(len(lo), dtype=float), np.ones(len(lo)))
    np.testing.assert_allclose(a.no2, b.no2, equal_nan=True)
    base = centre_binning(grid, lo.mean(1), la.mean(1), np.arange(len(lo), dtype=float))
    assert base.shape == a.no2.shape and np.isfinite(base).sum() > 0


def test_blocked_overlaps_equal_whole_groups(monkeypatch):
    """gridding.CHUNK only bounds the memory and keeps temporaries in cache: blocks of 7 pixels give the same
    (pixel, cell, weight) triples as whole groups, bit for bit, and the gridded sums (accumulated block by block) agree
    to rounding."""
    from no2hotspots.ingest import gridding

    lo, la = _swath(n_scan=80, n_gp=60, seed=3)
    grid = Grid.from_bbox([10.2, 45.3, 11.5, 47.5], 0.02)  # pixels span 2-4 cells: several groups, partly outside
    rng = np.random.default_rng(0)
    no2, prec = rng.uniform(1e-5, 1e-4, lo.shape[0]), rng.uniform(1e-6, 1e-5, lo.shape[0])
    monkeypatch.setattr(gridding, "CHUNK", 10**9)
    whole, g_whole = overlap_weights(grid, lo, la), grid_overpass(grid, lo, la, no2, prec)
    monkeypatch.setattr(gridding, "CHUNK", 7)
    blocked, g_blocked = overlap_weights(grid, lo, la), grid_overpass(grid, lo, la, no2, prec)
    assert whole[0].size > 1000
    key = lambda t: np.lexsort((t[1], t[0]))  # noqa: E731
    for a, b in zip(whole, blocked):
        assert a.dtype == b.dtype and np.array_equal(a[key(whole)], b[key(blocked)])
    for name in ("no2", "no2_precision", "coverage", "covered_area"):
        a, b = getattr(g_whole, name), getattr(g_blocked, name)
        assert np.isfinite(a).sum() > 1000 and np.array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(a, b, rtol=1e-12, equal_nan=True)
