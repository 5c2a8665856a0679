"""The pair-recall table: every pair in the headline, and the recall over pairs whose two sources pass the threshold."""

import math

import numpy as np

from no2hotspots.score.pairs import recall_table


def test_recall_table_conditions_on_both_true_r_above_threshold():
    found = np.array([True, False, True, False, True])
    sep = np.array([3.0, 4.0, 5.0, 8.0, 1.0])
    r = np.array([[0.5, 0.3], [0.5, 0.1], [0.25, 0.9], [0.4, 0.2], [0.5, 0.5]])
    t = recall_table(found, sep, r, threshold=0.2)
    assert t["n_pairs"] == 5 and math.isclose(t["pair_recall_all"], 3 / 5)
    assert math.isclose(t["pair_recall_ge3px"], 2 / 4)  # the 1-px pair is out
    # the 4-px pair has a source at r 0.1 (no hotspot even alone): out; r exactly at the threshold counts
    assert t["n_pairs_ge3px_both_above_threshold"] == 3
    assert math.isclose(t["pair_recall_ge3px_both_above_threshold"], 2 / 3)
    assert t["pair_recall_1px"] == 1.0 and t["pair_recall_4px"] == 0.0


def test_recall_table_needs_two_listed_sources():
    # a scene listing one source (NaN-padded) is never a pair above the threshold
    t = recall_table(np.array([False]), np.array([5.0]), np.array([[0.9, np.nan]]), threshold=0.2)
    assert t["n_pairs_ge3px_both_above_threshold"] == 0
    assert math.isnan(t["pair_recall_ge3px_both_above_threshold"])
