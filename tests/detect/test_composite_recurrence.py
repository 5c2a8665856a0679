"""The recurrence rule of the composite (detect.composite.rule=recurrence) on small hand-made peak maps."""

from __future__ import annotations

import numpy as np
import pytest

from no2hotspots.detect.composite import (
    benjamini_hochberg,
    composite_hotspots,
    full_blocks,
    local_maxima,
    peak_counts,
    recurrence_map,
    share_centroids,
)
from no2hotspots.errors import ConfigError

LAT = 36.0 + 0.05 * np.arange(20)
LON = 110.0 + 0.05 * np.arange(24)
RULE = {"alpha": 1e-4, "min_peaks": 2, "separation_cells": 1}


def _settings(**kw):
    return {"rule": "recurrence", "min_valid": 3, "recurrence": {**RULE, **kw}}


def _period(n_peaks, n_valid=100):
    n_peaks = np.asarray(n_peaks)
    return {
        "n_peaks": n_peaks,
        "n_valid": np.full(n_peaks.shape, n_valid, np.int32),
        "n_detections": 2 * n_peaks.astype(np.int32),
    }


def _scattered_alarms(k=40, seed=3):
    """k single false peaks on distinct cells away from row 10, column 12."""
    rng = np.random.default_rng(seed)
    m = np.zeros((20, 24), np.int64)
    cells = [(i, j) for i in range(20) for j in range(24) if abs(i - 10) > 3 or abs(j - 12) > 3]
    for c in rng.choice(len(cells), size=k, replace=False):
        m[cells[c]] = 1
    return m


def test_a_recurring_source_is_one_site_and_one_off_alarms_are_none():
    m = _scattered_alarms()
    m[10, 12] = 15  # a source: its peaks in one cell on 15 % of the overpasses, a few in the cells around
    m[10, 13] = m[11, 12] = 3
    df = composite_hotspots(_period(m), LAT, LON, _settings())
    assert len(df) == 1
    row = df.iloc[0]
    assert (row.peak_lat, row.peak_lon) == (pytest.approx(LAT[10]), pytest.approx(LON[12]))
    assert row.peak_value == pytest.approx(0.15) and row.n_cells == 1 and row.n_valid == 100
    assert row.n_detections == 30 and row.site_id == 1
    assert row.threshold == pytest.approx(m.sum() / (100 * m.size))  # lambda0: every peak over every valid cell


def test_two_sources_two_cells_apart_are_two_sites_unless_the_separation_asks_for_more():
    m = _scattered_alarms()
    m[10, 11], m[10, 13] = 12, 9
    one = composite_hotspots(_period(m), LAT, LON, _settings())
    assert [(round(a, 6), round(b, 6)) for a, b in zip(one.peak_lat, one.peak_lon, strict=True)] == [
        (round(LAT[10], 6), round(LON[11], 6)),
        (round(LAT[10], 6), round(LON[13], 6)),
    ]  # strongest first
    two = composite_hotspots(_period(m), LAT, LON, _settings(separation_cells=2))
    assert len(two) == 1 and two.peak_lon.iloc[0] == pytest.approx(LON[11])


def test_a_plateau_gives_one_site_the_first_cell_in_row_major_order():
    m = np.zeros((20, 24), np.int64)
    m[5, 5] = m[5, 6] = m[6, 5] = 8
    df = composite_hotspots(_period(m), LAT, LON, _settings())
    assert len(df) == 1 and (df.peak_lat.iloc[0], df.peak_lon.iloc[0]) == (
        pytest.approx(LAT[5]),
        pytest.approx(LON[5]),
    )


def test_min_peaks_and_min_valid_and_significance():
    m = np.zeros((20, 24), np.int64)
    m[4, 4] = 1  # alone: below min_peaks
    m[15, 20] = 9
    p = _period(m)
    p["n_valid"][15, 20] = 2  # seen twice only: below min_valid, takes no part
    assert len(composite_hotspots(p, LAT, LON, _settings())) == 0
    # uniform peaks everywhere: nothing recurs more than the false-alarm rate
    flat = np.full((20, 24), 3, np.int64)
    assert len(composite_hotspots(_period(flat), LAT, LON, _settings())) == 0


def test_benjamini_hochberg_and_the_peak_counts():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.9, np.nan])
    assert benjamini_hochberg(p, 0.05) == pytest.approx(0.008)  # 0.039 > 0.05 * 3 / 5
    assert benjamini_hochberg(p, 1e-6) == -1.0
    counts = peak_counts([36.0, 36.0, 36.051, 35.0], [110.0, 110.0, 110.1, 110.0], LAT, LON, 0.05)
    assert counts[0, 0] == 2 and counts[1, 2] == 1 and counts.sum() == 3  # the last peak is off the grid
    m = recurrence_map(counts, np.full(counts.shape, 10), min_valid=3, alpha=0.05)
    assert m["lambda0"] == pytest.approx(3 / (10 * counts.size)) and m["share"][0, 0] == pytest.approx(0.2)


def test_local_maxima_of_one_map_and_the_rule_counting_them():
    rel = np.zeros((6, 7))
    rel[1, 1] = 0.04  # a weak peak
    rel[1, 2] = 0.03  # its shoulder: no maximum
    rel[4, 5] = 0.01  # a peak under the level
    rel[0, 6] = np.nan  # no valid input: never a maximum, and its neighbours' blocks are not fully observed
    rel[1, 5] = 0.05  # highest of its block, but the block holds the NaN: not counted
    rel[4, 6] = 0.06  # on the map's border: fewer neighbours to beat, never counted
    rel[3, 3] = 0.03  # an interior peak
    top = local_maxima(rel, 0.02)
    assert {tuple(c) for c in np.argwhere(top)} == {(1, 1), (3, 3)}
    assert not local_maxima(np.full((3, 3), np.nan), 0.02).any()
    blocks = full_blocks(rel)
    assert not blocks[[0, -1]].any() and not blocks[:, [0, -1]].any() and not blocks[1, 5]
    assert blocks[1:5, 1:5].all() and blocks.sum() == 4 * 5 - 1  # the interior 4 x 5 but the NaN's neighbour
    # the rule counts n_maxima (out of n_maxima_valid) instead of the hotspot peaks when a level is set
    m = _scattered_alarms()
    maxima = np.zeros_like(m)
    maxima[3, 3] = 20
    p = {**_period(m), "n_maxima": maxima, "n_maxima_valid": _period(m)["n_valid"]}
    with_level = composite_hotspots(p, LAT, LON, _settings(level=0.02))
    assert len(with_level) == 1 and with_level.peak_lat.iloc[0] == pytest.approx(LAT[3])
    assert len(composite_hotspots(p, LAT, LON, _settings(level=None))) == 0  # the scattered alarms: no site
    with pytest.raises(ConfigError, match="recurrence.level"):
        composite_hotspots(_period(m), LAT, LON, _settings(level=0.02))


def test_centroid_position_is_the_share_weighted_centre_of_the_sites_3x3_block():
    m = _scattered_alarms()
    m[10, 12] = 20  # the site's cell; three of its neighbours hold peaks too, most the one to the east
    m[10, 13], m[11, 12], m[9, 11] = 10, 5, 5
    cell = composite_hotspots(_period(m), LAT, LON, _settings(position="cell"))
    cen = composite_hotspots(_period(m), LAT, LON, _settings(position="centroid"))
    assert len(cell) == len(cen) == 1 and (cell.peak_lat.iloc[0], cell.peak_lon.iloc[0]) == (LAT[10], LON[12])
    # shares 0.20 / 0.10 / 0.05 / 0.05 (100 valid overpasses each): rows (10*20 + 10*10 + 11*5 + 9*5) / 40,
    # columns (12*20 + 13*10 + 12*5 + 11*5) / 40
    assert cen.peak_lat.iloc[0] == pytest.approx(np.interp(400 / 40, np.arange(20), LAT), abs=1e-6)
    assert cen.peak_lon.iloc[0] == pytest.approx(np.interp(485 / 40, np.arange(24), LON), abs=1e-6)
    # everything but the place is the same
    cols = ["site_id", "peak_value", "n_cells", "n_valid", "n_detections", "threshold"]
    assert cell[cols].equals(cen[cols])
    # at the map's edge the block is cut; a block without share keeps its cell
    share = np.zeros((4, 5))
    share[0, 0], share[0, 1] = 0.3, 0.1
    pos = share_centroids(share, np.array([[0, 0], [3, 4]]))
    assert pos.tolist() == [[0.0, 0.25], [3.0, 4.0]]
    with pytest.raises(ConfigError, match="recurrence.position"):
        composite_hotspots(_period(m), LAT, LON, _settings(position="peak"))


def test_ring_cells_test_peaks_against_their_surroundings():
    m = _scattered_alarms()
    m[6:15, 8:21] = 4  # a strong plume's area: peaks on 4 % of the overpasses everywhere in it
    m[10, 15] = 8  # a side peak inside it
    m[2, 3], m[2, 4] = 20, 5  # an isolated weak source

    def cells(ring):
        df = composite_hotspots(_period(m), LAT, LON, _settings(ring_cells=ring))
        return {(int(np.argmin(abs(LAT - a))), int(np.argmin(abs(LON - b)))) for a, b in zip(df.peak_lat, df.peak_lon)}

    wide, local = cells(0), cells(3)
    assert {(10, 15), (2, 3)} <= wide  # against the map-wide rate (~1 %) both recur
    assert (2, 3) in local and (10, 15) not in local  # against its ring (~4 %) the side peak does not
    mp = recurrence_map(m, np.full(m.shape, 100), min_valid=3, alpha=1e-4, ring_cells=3)
    assert mp["local_rate"][10, 15] == pytest.approx(0.04)  # the ring 2..3 cells away lies inside the area
    assert mp["local_rate"][2, 3] == pytest.approx(mp["lambda0"])  # the map-wide rate is the floor


def test_pure_noise_puts_no_site_on_the_maps_border():
    # noise alone: every cell of a fully observed block is its maximum 1 time in 9, wherever it lies; a border cell
    # (5 or 3 neighbours) used to be one 1 time in 6 or 4, and the rule then found its false sites all on the border
    rng = np.random.default_rng(11)
    maps = rng.normal(0.05, 0.02, (400, 20, 24))
    maps[:, 8:11, 0:5] = np.nan  # a cloud gap, always at the same place, touching the border
    n_max = np.sum([local_maxima(m, 0.02) for m in maps], axis=0)
    n_block = np.sum([full_blocks(m) for m in maps], axis=0)
    share = n_max[n_block > 0] / n_block[n_block > 0]
    assert share.mean() == pytest.approx(1 / 9, rel=0.05)
    assert share.max() < 0.2  # no cell stands out (the border's old share: 1/6 edges, 1/4 corners)
    period = {**_period(np.zeros((20, 24)), 400), "n_maxima": n_max, "n_maxima_valid": n_block}
    sites = composite_hotspots(period, LAT, LON, _settings(level=0.02, alpha=1e-3))
    assert len(sites) == 0
