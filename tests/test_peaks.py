"""Splitting regions at prominent peaks (no2hotspots.peaks): neighbouring sources are separate hotspots and
separately scored blobs; one broad or noisy peak stays one."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from no2hotspots import peaks
from no2hotspots.detect.hotspots import label_regions
from no2hotspots.metrics.scores import Sources, source_scores_at
from no2hotspots.peaks import split_peaks

Y, X = np.mgrid[0:40, 0:40]


def gauss(cy, cx, a, s=1.0):
    return a * np.exp(-((Y - cy) ** 2 + (X - cx) ** 2) / (2 * s * s))


def regions(m, thr=0.1):
    return ndimage.label(m >= thr, np.ones((3, 3)))[0]


@pytest.mark.parametrize("d", [5, 6])
def test_two_peaks_in_one_region_become_two(d):
    m = gauss(20, 10, 1.0, 1.5) + gauss(20, 10 + d, 0.5, 1.5)
    lab = regions(m)
    assert lab.max() == 1  # one connected region above the threshold
    out = split_peaks(m, lab, prominence=0.2, min_separation_px=2)
    assert out.max() == 2
    assert out[20, 10] != out[20, 10 + d]
    assert set(np.unique(out)) == {0, 1, 2}
    assert ((out > 0) == (lab > 0)).all()  # the same cells, only relabelled


def test_broad_noisy_peak_stays_one():
    rng = np.random.default_rng(3)
    m = gauss(20, 20, 1.0, 3.0) + rng.normal(0.0, 0.02, Y.shape)
    lab = regions(m, 0.2)
    assert lab.max() == 1
    assert split_peaks(m, lab, prominence=0.2, min_separation_px=2).max() == 1


def test_prominence_one_never_splits_and_close_peaks_merge():
    m = gauss(20, 10, 1.0, 1.5) + gauss(20, 15, 0.5, 1.5)
    lab = regions(m)
    assert lab.max() == 1 and split_peaks(m, lab, prominence=0.2, min_separation_px=2).max() == 2
    assert split_peaks(m, lab, prominence=1.0, min_separation_px=2).max() == 1
    assert split_peaks(m, lab, prominence=0.2, min_separation_px=6).max() == 1  # peaks 5 px apart: too close


def test_label_regions_splits_and_keeps_row_major_numbering():
    m = gauss(20, 20, 0.4, 1.5) + gauss(20, 25, 0.8, 1.5) + gauss(5, 5, 0.3)
    lab, n = label_regions(m, 0.1, prominence=0.2, min_separation_px=2)
    assert n == 3
    assert lab[5, 5] == 1 and {lab[20, 20], lab[20, 25]} == {2, 3}
    first = [np.flatnonzero(lab.ravel() == k)[0] for k in (1, 2, 3)]
    assert first == sorted(first)  # numbered in row-major order of each region's first cell
    lab0, n0 = label_regions(m, 0.1)
    assert n0 == 2


def test_pair_scored_as_two_found_sources_only_with_splitting():
    pred = (gauss(20, 10, 0.9) + gauss(20, 14, 0.6))[None]
    src = Sources(np.array([[20.0, 20.0]]), np.array([[10.0, 14.0]]), np.array([[0.9, 0.6]]), footprint_px=1)
    whole = source_scores_at(pred, src, pred >= 0.1, 2.0)
    split = source_scores_at(pred, src, pred >= 0.1, 2.0, split={"prominence": 0.2, "min_separation_px": 2})
    assert whole.n_blobs[0] == 1 and whole.n_matched[0] == 1
    assert split.n_blobs[0] == 2 and split.n_matched[0] == 2


def _per_map(values, labels, **split):
    """The reference: split every map alone and number on (what the score stage did map by map)."""
    out, base = np.zeros(labels.shape, np.int64), 0
    for i in range(len(labels)):
        sub = split_peaks(values[i], labels[i], **split)
        out[i] = np.where(sub > 0, sub + base, 0)
        base += int(sub.max())
    return out, base


def test_stack_split_equals_map_by_map():
    """A stack of maps (pairs, singles, empty maps, noise) is split exactly as each map alone would be."""
    from no2hotspots.metrics.scores import label
    from no2hotspots.peaks import split_peaks_stack

    rng = np.random.default_rng(11)
    maps = []
    for k in range(24):
        m = rng.normal(0.0, 0.03, Y.shape)
        for _ in range(k % 4):
            m += gauss(rng.uniform(5, 35), rng.uniform(5, 35), rng.uniform(0.3, 1.0), rng.uniform(1.0, 2.5))
        if k % 3 == 0:  # a pair 5-6 px apart in one connected region
            cy, cx = rng.uniform(8, 30, 2)
            m += gauss(cy, cx, 1.0, 1.5) + gauss(cy, cx + 5 + k % 2, 0.5, 1.5)
        maps.append(m)
    values = np.stack(maps)
    lab, n = label(values >= 0.1)
    assert n > 0
    split = {"prominence": 0.2, "min_separation_px": 2}
    want, n_want = _per_map(values, lab, **split)
    got, n_got = split_peaks_stack(values, lab, **split)
    assert n_want > n  # some regions did split
    assert n_got == n_want
    np.testing.assert_array_equal(got, want)


def test_label_extremes_equal_ndimage():
    from no2hotspots.labelstats import label_max, label_min

    rng = np.random.default_rng(5)
    v = rng.normal(size=(6, 30, 30))
    lab, n = ndimage.label(v > 1.0)
    idx = np.arange(1, n + 1)
    np.testing.assert_array_equal(label_max(v, lab, n), ndimage.maximum(v, lab, idx))
    np.testing.assert_array_equal(label_min(v, lab, n), ndimage.minimum(v, lab, idx))
    with pytest.raises(ValueError, match="differ in shape"):
        label_max(v[0], lab, n)


@pytest.mark.parametrize("shape", [(8, 64, 64), (40, 50)])
def test_label_centroid_equals_ndimage_bit_for_bit(shape):
    """The scores' source and blob positions: the same floats as scipy's center_of_mass (which sums over every
    cell), for uniform weights and for weights that are zero on part of a label (the blobs' tops)."""
    from no2hotspots.labelstats import label_centroid

    rng = np.random.default_rng(11)
    v = rng.normal(size=shape)
    lab, n = ndimage.label(v > 1.5)
    assert n > 20
    idx = np.arange(1, n + 1)
    peak = np.concatenate([[0.0], ndimage.maximum(v, lab, idx)])
    top = np.where((lab > 0) & (v >= 0.9 * peak[lab]), v, 0.0)
    for w in (np.ones_like(v), top):
        want = np.asarray(ndimage.center_of_mass(w, lab, idx), dtype=np.float64).reshape(-1, len(shape))
        got = label_centroid(w, lab, n)
        assert got.shape == want.shape
        assert np.array_equal(got, want)
    with pytest.raises(ValueError, match="differ in shape"):
        label_centroid(v[0], lab, n)


def test_half_peak_centroid_is_the_ndimage_rule_of_both_callers():
    """One rule for a region's location (score stage blobs, composite ``position: centroid``): scipy's centroid of
    the cells at >= half the region's peak, bit for bit, with cells below half the peak left out."""
    from no2hotspots.labelstats import half_peak_centroid, half_peak_weights

    rng = np.random.default_rng(3)
    v = rng.gamma(2.0, size=(4, 40, 40))
    lab, n = ndimage.label(v > 2.5)
    idx = np.arange(1, n + 1)
    peak = np.concatenate([[0.0], ndimage.maximum(v, lab, idx)])
    top = np.where((lab > 0) & (v >= 0.5 * peak[lab]), v, 0.0)
    assert 0 < (top[lab > 0] == 0).sum() < (lab > 0).sum()  # some labelled cells fall below half their peak
    np.testing.assert_array_equal(half_peak_weights(v, lab, n), top)
    want = np.asarray(ndimage.center_of_mass(top, lab, idx), dtype=np.float64).reshape(-1, 3)
    assert np.array_equal(half_peak_centroid(v, lab, n), want)
    # a plume-shaped tail: a peak of 4 at column 2 and a long tail of 1.5 stays at the peak
    tail = np.zeros((1, 12))
    tail[0, 2], tail[0, 3:] = 4.0, 1.5
    lab1, n1 = ndimage.label(tail > 0)
    assert half_peak_centroid(tail, lab1, n1).tolist() == [[0.0, 2.0]]


def _reference_split(
    values: np.ndarray, labels: np.ndarray, *, prominence: float, min_separation_px: int
) -> np.ndarray:
    """The plain flooding (dicts, one neighbour at a time) that peaks.split_peaks replaced with a vectorised
    neighbour search: kept as the reference it must equal cell for cell."""
    labels = np.asarray(labels)
    if float(prominence) >= 1.0 or not labels.any():
        return peaks._renumber(np.where(labels > 0, labels, 0).astype(np.int32))
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=-np.inf)
    h, w = labels.shape
    multi = peaks._multi_peak_regions(v, labels, float(prominence))
    if multi.size == 0:  # no region can split: most maps, cheaply
        return peaks._renumber(np.where(labels > 0, labels, 0).astype(np.int32))
    cells = np.flatnonzero(np.isin(labels.ravel(), multi))
    order = cells[np.lexsort((cells, -v.ravel()[cells]))]  # highest first, ties by position
    parent: dict[int, int] = {}
    peak: dict[int, int] = {}  # root -> flat index of its peak
    lab_flat = labels.ravel()

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    owner = np.full(labels.size, -1, dtype=np.int64)  # flat index -> its region's (original) root at assignment
    vf = v.ravel()
    for c in order.tolist():
        i, j = divmod(c, w)
        roots: dict[int, float] = {}
        best, best_v = -1, -np.inf
        for di, dj in peaks._NEIGHBOURS:
            a, b = i + di, j + dj
            if 0 <= a < h and 0 <= b < w:
                nb = a * w + b
                if owner[nb] >= 0 and lab_flat[nb] == lab_flat[c]:
                    r = find(int(owner[nb]))
                    roots[r] = vf[peak[r]]
                    if vf[nb] > best_v or (vf[nb] == best_v and nb < best):
                        best, best_v = nb, vf[nb]
        if not roots:
            parent[c], peak[c], owner[c] = c, c, c
            continue
        target = find(int(owner[best]))
        owner[c] = target
        for r in sorted(roots, key=lambda q: (-roots[q], peak[q])):
            top = find(target)
            r = find(r)
            if r == top:
                continue
            hi, lo = (top, r) if (vf[peak[top]], -peak[top]) >= (vf[peak[r]], -peak[r]) else (r, top)
            p, s = vf[peak[lo]], vf[c]
            (pi, pj), (qi, qj) = divmod(peak[lo], w), divmod(peak[hi], w)
            apart = max(abs(pi - qi), abs(pj - qj)) >= int(min_separation_px)
            if apart and p - s >= float(prominence) * p:
                continue  # two peaks: both regions stay
            parent[lo] = hi
    flat = np.where(labels.ravel() > 0, labels.size + labels.ravel().astype(np.int64), 0)  # unsplit regions
    flat[cells] = [find(int(owner[c])) + 1 for c in cells.tolist()]
    return peaks._renumber(flat.reshape(labels.shape))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("prominence, sep", [(0.2, 2), (0.05, 1), (0.5, 3)])
def test_split_equals_reference_flooding_on_noisy_maps(seed, prominence, sep):
    """Smooth noise with many multi-peak regions and exact ties (values rounded): the vectorised flooding gives the
    reference's labels cell for cell."""
    rng = np.random.default_rng(seed)
    m = ndimage.gaussian_filter(rng.normal(size=(64, 64)), 1.5)
    m = np.round(m / m.std(), 1)  # many equal values: tie-breaking by position is exercised
    lab = ndimage.label(m > 0.3, np.ones((3, 3)))[0]
    want = _reference_split(m, lab, prominence=prominence, min_separation_px=sep)
    got = split_peaks(m, lab, prominence=prominence, min_separation_px=sep)
    assert want.max() > lab.max()  # the map does split
    np.testing.assert_array_equal(got, want)
