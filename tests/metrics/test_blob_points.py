"""blob_points_every_and_counted: the two conventions' blob positions from one labelling equal the positions of
each convention labelled and split on its own (the code before)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from no2hotspots.metrics.scores import (
    blob_labels,
    blob_points_every_and_counted,
    blob_positions,
    counted_blobs,
    ignore_region,
)


def _maps(seed: int, n: int = 24, size: int = 64):
    """Smooth random maps with many multi-peak blobs, and hidden footprints whose dilation covers some blobs
    wholly and cuts through others."""
    rng = np.random.default_rng(seed)
    pred = np.stack([gaussian_filter(rng.random((size, size)), 2.0) for _ in range(n)])
    pred = (pred - pred.min()) / (pred.max() - pred.min())
    hidden = np.zeros(pred.shape, bool)
    for k in range(n):
        for r, c in rng.integers(4, size - 8, (6, 2)):
            hidden[k, r : r + 4, c : c + 4] = True
    target = hidden.astype(float) * 0.01
    return pred, ignore_region(target, hidden, 2)


@pytest.mark.parametrize(
    "split", [None, {"prominence": 0.2, "min_separation_px": 2}, {"prominence": 0.05, "min_separation_px": 1}]
)
@pytest.mark.parametrize("seed", [0, 1])
def test_one_labelling_gives_both_conventions(seed, split):
    pred, region = _maps(seed)
    dropped = 0
    for level in (0.45, 0.55, 0.65, 0.75):
        marked = pred >= level
        every, counted = blob_points_every_and_counted(pred, marked, region, split)
        want_every = blob_positions(pred, *blob_labels(pred, marked, split))
        want_counted = blob_positions(pred, *blob_labels(pred, counted_blobs(marked, region), split))
        for got, want in ((every, want_every), (counted, want_counted)):
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])
        dropped += len(every[1]) - len(counted[1])
    assert dropped > 0  # the case is real: some blobs lie wholly inside the region
    # no region: both conventions see the same blobs
    every, counted = blob_points_every_and_counted(pred, pred >= 0.5, None, split)
    assert counted is every
