"""Splitting regions at prominent peaks (no2hotspots.peaks): neighbouring sources are separate hotspots and
separately scored blobs; one broad or noisy peak stays one."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

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
