"""The pair failure classes of benchmarks/pair_failures.py on hand-made maps, one scene per class."""

from __future__ import annotations

import numpy as np

from no2hotspots.metrics.scores import Sources

SPLIT = {"prominence": 0.2, "min_separation_px": 2}


def _bump(m: np.ndarray, row: float, col: float, peak: float, width: float = 1.2) -> None:
    yy, xx = np.mgrid[0:64, 0:64].astype(float)
    np.maximum(m, peak * np.exp(-((yy - row) ** 2 + (xx - col) ** 2) / (2 * width**2)), out=m)


def test_each_class_is_told_apart(benchmark_script):
    mod = benchmark_script("pair_failures")
    # two sources 6 px apart on one row in every scene; 4 x 4 blocks centred on (20.5, 20.5) and (20.5, 26.5)
    rows = np.full((5, 2), 20.5)
    cols = np.tile([20.5, 26.5], (5, 1))
    sources = Sources(rows, cols, np.full((5, 2), 0.5), 4)
    pred = np.zeros((5, 64, 64))
    _bump(pred[0], 20.5, 20.5, 0.6)  # resolved: two separate peaks at the sources
    _bump(pred[0], 20.5, 26.5, 0.6)
    _bump(pred[1], 20.5, 20.5, 0.6)  # the second source stays under the threshold
    _bump(pred[1], 20.5, 26.5, 0.1)
    pred[2, 18:24, 18:30] = 0.5  # one flat plateau over both: merged
    _bump(pred[3], 20.5, 14.0, 0.6)  # two peaks, neither within 2 px of a source...
    _bump(pred[3], 20.5, 33.0, 0.6)
    pred[3, 19:23, 19:29] = np.maximum(pred[3, 19:23, 19:29], 0.25)  # ...though both blocks reach the threshold
    cls = mod.classify(pred[:4], sources, 0.2, 2.0, SPLIT)
    assert [mod.CLASSES[c] for c in cls] == ["resolved", "weak_under_threshold", "merged", "split_unmatched"]
    one = Sources(np.array([[20.5, np.nan]]), np.array([[20.5, np.nan]]), np.array([[0.5, np.nan]]), 4)
    assert mod.classify(pred[:1], one, 0.2, 2.0, SPLIT).tolist() == [-1]  # not a pair
