"""Per-label extremes of a labelled array, without sorting.

``scipy.ndimage.maximum``/``minimum`` with an index sort every labelled value (an argsort over the whole array): on
the score stage's 2,080 x 64 x 64 validation maps that sort was ~30 s of a 150 s run. An unbuffered ``ufunc.at``
over the labelled cells only gives the same values (max/min are exact; NaN propagates as in ndimage).
"""

from __future__ import annotations

import numpy as np


def _extreme(ufunc, start: float, values, labels, n: int) -> np.ndarray:
    lab = np.asarray(labels).ravel()
    val = np.asarray(values, dtype=np.float64).ravel()
    if lab.shape != val.shape:
        raise ValueError(f"values {np.shape(values)} and labels {np.shape(labels)} differ in shape")
    sel = lab > 0
    out = np.full(int(n) + 1, start, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ufunc.at(out, lab[sel], val[sel])
    return out[1:]


def label_max(values, labels, n: int) -> np.ndarray:
    """(n,) float64: the largest of ``values`` over each label 1..n of ``labels`` (-inf where a label is empty)."""
    return _extreme(np.maximum, -np.inf, values, labels, n)


def label_min(values, labels, n: int) -> np.ndarray:
    """(n,) float64: the smallest of ``values`` over each label 1..n of ``labels`` (+inf where a label is empty)."""
    return _extreme(np.minimum, np.inf, values, labels, n)
