"""EmissionMetrics on hand-made cases: the paper's worked example, quartiles by class, source-level rates."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from no2hotspots.metrics import EmissionMetrics, table1


def _blank(n=1):
    return torch.zeros(n, 64, 64), torch.zeros(n, 64, 64)


def test_worked_example_4x4_true_3x4_found_is_75_percent():
    pred, target = _blank()
    target[0, 10:14, 20:24] = 0.5  # 16 true pixels
    pred[0, 10:13, 20:24] = 0.4  # 12 of them found
    m = EmissionMetrics(threshold=0.05)
    m.update(pred, target)
    r = m.compute()
    assert r["acc_q2_all"] == pytest.approx(0.75)
    assert r["acc_q2_mid"] == pytest.approx(0.75)
    assert r["precision_q2_all"] == pytest.approx(1.0)
    assert r["iou_q2_all"] == pytest.approx(0.75)
    assert r["n_samples"] == 1 and r["n_samples_mid"] == 1 and r["n_samples_low"] == 0
    assert math.isnan(r["acc_q2_low"])  # a class without samples
    assert r["mae_at_sources"] == pytest.approx(0.1)  # max pred 0.4 on the footprint vs r 0.5
    t = table1({f"test/{k}": v for k, v in r.items()})
    assert list(t.index) == ["all", "low", "mid", "high"] and list(t.columns) == ["1Q", "2Q", "3Q", "n"]
    assert t.loc["all", "2Q"] == pytest.approx(75.0) and t.loc["mid", "n"] == 1


def test_quartiles_and_emission_classes():
    # 4 samples with 3x3 footprints (9 px); found 9, 6, 3, 0 px -> accuracies 1, 2/3, 1/3, 0
    # classes by r: 0.2 low, 0.5 mid, 0.9 high, 0.1 low; sample 5 empty
    n = 5
    pred, target = _blank(n)
    rs = [0.2, 0.5, 0.9, 0.1]
    found_rows = [3, 2, 1, 0]
    for i, (r, k) in enumerate(zip(rs, found_rows)):
        target[i, 30:33, 30:33] = r
        pred[i, 30 : 30 + k, 30:33] = 0.5
    m = EmissionMetrics(threshold=0.05)
    m.update(pred, target)
    r = m.compute()
    acc = np.array([1, 2 / 3, 1 / 3, 0])
    for q, p in (("q1", 25), ("q2", 50), ("q3", 75)):
        assert r[f"acc_{q}_all"] == pytest.approx(np.percentile(acc, p))
    assert r["acc_q2_low"] == pytest.approx(0.5)  # samples 0 (1.0) and 3 (0.0)
    assert r["acc_q2_mid"] == pytest.approx(2 / 3)
    assert r["acc_q2_high"] == pytest.approx(1 / 3)
    assert (r["n_samples"], r["n_samples_low"], r["n_samples_mid"], r["n_samples_high"], r["n_samples_empty"]) == (
        4,
        2,
        1,
        1,
        1,
    )
    # precision: 1, 1, 1, 0 (nothing predicted where there are sources)
    assert r["precision_q1_all"] == pytest.approx(0.75) and r["precision_q2_all"] == pytest.approx(1.0)


def test_source_recall_precision_false_alarm_and_localisation():
    pred, target = _blank(4)
    # scene 0: two sources; one found exactly, one missed
    target[0, 10:13, 10:13] = 0.5
    target[0, 40:43, 40:43] = 0.3
    pred[0, 10:13, 10:13] = 0.6
    # scene 1: one source found with the peak 1 px off-centre (within 2 px), one false blob far away
    target[1, 20:23, 20:23] = 0.8
    pred[1, 20:23, 21:24] = 0.3
    pred[1, 22, 23] = 0.7  # peak at (22, 23), centre (21, 21): distance sqrt(5) > 2 -> not found
    pred[1, 50:52, 50:52] = 0.2
    # scene 2: empty, one false alarm; scene 3: empty, quiet (below threshold)
    pred[2, 5:7, 5:7] = 0.1
    pred[3] = 0.01
    m = EmissionMetrics(threshold=0.05, match_distance_px=2.0)
    m.update(pred, target)
    r = m.compute()
    assert r["n_sources"] == 3 and r["n_blobs"] == 4 and r["n_sources_found"] == 1
    assert r["source_recall"] == pytest.approx(1 / 3)
    assert r["source_precision"] == pytest.approx(1 / 4)
    assert r["source_f1"] == pytest.approx(2 * (1 / 3) * (1 / 4) / (1 / 3 + 1 / 4))
    assert r["false_alarm_rate"] == pytest.approx(0.5)
    assert r["loc_error_px_median"] == pytest.approx(0.0)
    # with a looser match distance scene 1's source is found at sqrt(5) px
    m2 = EmissionMetrics(threshold=0.05, match_distance_px=2.5)
    m2.update(pred, target)
    r2 = m2.compute()
    assert r2["n_sources_found"] == 2
    assert r2["loc_error_px_mean"] == pytest.approx(math.sqrt(5) / 2)
    # MAE at sources: |0.6-0.5|, |0-0.3| (missed), |max pred on scene 1's footprint - 0.8|
    fp_max = float(pred[1, 20:23, 20:23].max())
    assert r["mae_at_sources"] == pytest.approx((0.1 + 0.3 + abs(fp_max - 0.8)) / 3)


def test_accumulating_two_updates_equals_one():
    g = torch.Generator().manual_seed(1)
    target = torch.zeros(10, 64, 64)
    for i in range(8):
        r0, c0 = torch.randint(2, 60, (2,), generator=g).tolist()
        target[i, r0 - 1 : r0 + 2, c0 - 1 : c0 + 2] = float(torch.rand(1, generator=g))
    pred = (target + 0.1 * torch.rand(10, 64, 64, generator=g) - 0.06).clamp(0, 1)
    one = EmissionMetrics()
    one.update(pred, target)
    two = EmissionMetrics()
    two.update(pred[:4], target[:4])
    two.update(pred[4:], target[4:])
    a, b = one.compute(), two.compute()
    assert a.keys() == b.keys()
    for k in a:
        assert (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == pytest.approx(b[k]), k
    assert all(isinstance(v, float) for v in a.values())
    two.reset()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert two.compute()["n_samples"] == 0


def test_a_perfect_prediction_scores_100_percent_and_sub_threshold_sources_are_hidden():
    pred, target = _blank()
    target[0, 10:14, 10:14] = 0.5
    target[0, 40:44, 40:44] = 0.01  # true r below the 0.05 threshold: a perfect prediction does not mark it
    m = EmissionMetrics(threshold=0.05)
    m.update(target.clone(), target)
    r = m.compute()
    assert r["acc_q1_all"] == 1.0 and r["precision_q1_all"] == 1.0 and r["iou_q1_all"] == 1.0
    assert r["source_recall"] == 1.0 and r["n_sources"] == 1 and r["n_sources_hidden"] == 1
    assert r["acc_with_hidden_q2_all"] == pytest.approx(0.5)  # 16 of the 32 footprint pixels marked
    # marking the hidden footprint, even with a blob wider than it, is not a false alarm either
    over = target.clone()
    over[0, 39:45, 39:45] = 0.3
    m2 = EmissionMetrics(threshold=0.05)
    m2.update(over, target)
    r2 = m2.compute()
    assert r2["precision_q2_all"] == 1.0 and r2["n_blobs"] == 1 and r2["acc_with_hidden_q2_all"] == 1.0


def test_sources_under_cloud_gaps_are_left_out_given_the_valid_mask():
    pred, target = _blank(3)
    valid = torch.ones(3, 64, 64)
    target[0, 10:14, 10:14] = 0.5
    target[0, 30:34, 30:34] = 0.7
    valid[0, 29:35, 29:35] = 0  # the second source's footprint is not observed
    pred[0, 10:14, 10:14] = 0.5  # only the visible source is found
    target[1, 20:24, 20:24] = 0.9
    valid[1, 20:24, 20:23] = 0  # 12 of 16 footprint pixels masked: 25 % visible < 50 %
    target[2, 5:9, 5:9] = 0.9
    valid[2, 5:9, 5:7] = 0  # 50 % visible: scored
    pred[2, 5:9, 5:9] = 0.9
    m = EmissionMetrics(threshold=0.05, min_visible_fraction=0.5)
    m.update(pred, target, valid)
    r = m.compute()
    assert r["acc_q1_all"] == 1.0 and r["n_samples"] == 2 and r["n_samples_hidden"] == 1
    assert r["n_samples_empty"] == 0 and math.isnan(r["false_alarm_rate"])  # a hidden-only scene is not empty
    assert r["n_sources"] == 2 and r["n_sources_hidden"] == 2 and r["source_recall"] == 1.0
    # sample 0's class comes from its scored source (r 0.5: mid), not from the hidden 0.7 one
    assert r["n_samples_mid"] == 1 and r["n_samples_high"] == 1 and r["acc_q2_mid"] == 1.0
    # without the mask (or with min_visible_fraction 0) every source above the threshold counts
    for kw, upd in (({}, (pred, target)), ({"min_visible_fraction": 0.0}, (pred, target, valid))):
        m0 = EmissionMetrics(threshold=0.05, **kw)
        m0.update(*upd)
        r0 = m0.compute()
        assert r0["n_samples"] == 3 and r0["n_sources"] == 4 and r0["n_sources_hidden"] == 0
        assert r0["acc_q1_all"] == pytest.approx(0.25)  # sample 0: 0.5, sample 1: 0, sample 2: 1 -> 1Q 0.25
