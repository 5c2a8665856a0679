"""EmissionMetrics on hand-made cases: the paper's worked example, quartiles by class, source-level rates, and the
two conventions (every source counted; visible sources only) exactly as no2hotspots.metrics.scores defines them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from no2hotspots.metrics import EmissionMetrics, Scoring, table1


def _blank(n=1):
    return torch.zeros(n, 64, 64), torch.zeros(n, 64, 64)


def _compute(pred, target, valid=None, **kw):
    kw.setdefault("threshold", 0.05)
    m = EmissionMetrics(**kw)
    m.update(pred, target, valid)
    return m.compute()


def test_worked_example_4x4_true_3x4_found_is_75_percent():
    pred, target = _blank()
    target[0, 10:14, 20:24] = 0.5  # 16 true pixels
    pred[0, 10:13, 20:24] = 0.4  # 12 of them found
    r = _compute(pred, target)
    for conv in ("every", "visible"):
        assert r[f"{conv}/pixel_recall_q2_all"] == pytest.approx(0.75)
        assert r[f"{conv}/pixel_recall_q2_mid"] == pytest.approx(0.75)
        assert r[f"{conv}/pixel_precision_q2_all"] == pytest.approx(1.0)
        assert r[f"{conv}/pixel_iou_q2_all"] == pytest.approx(0.75)
    assert r["every/n_samples"] == 1 and r["every/n_samples_mid"] == 1 and r["every/n_samples_low"] == 0
    assert math.isnan(r["every/pixel_recall_q2_low"])  # a class without samples
    assert r["every/mae_at_sources"] == pytest.approx(0.1)  # max pred 0.4 on the footprint vs r 0.5
    t = table1(r, prefix="every/")
    assert list(t.index) == ["all", "low", "mid", "high"] and list(t.columns) == ["1Q", "2Q", "3Q", "n"]
    assert t.loc["all", "2Q"] == pytest.approx(75.0) and t.loc["mid", "n"] == 1


def test_quartiles_and_emission_classes():
    # 4 samples with 3x3 footprints (9 px); found 9, 6, 3, 0 px -> recall 1, 2/3, 1/3, 0
    # classes by r: 0.2 low, 0.5 mid, 0.9 high, 0.1 low; sample 5 empty
    pred, target = _blank(5)
    for i, (rr, k) in enumerate(zip([0.2, 0.5, 0.9, 0.1], [3, 2, 1, 0])):
        target[i, 30:33, 30:33] = rr
        pred[i, 30 : 30 + k, 30:33] = 0.5
    r = _compute(pred, target)
    recall = np.array([1, 2 / 3, 1 / 3, 0])
    for q, p in (("q1", 25), ("q2", 50), ("q3", 75)):
        assert r[f"every/pixel_recall_{q}_all"] == pytest.approx(np.percentile(recall, p))
    assert r["every/pixel_recall_q2_low"] == pytest.approx(0.5)  # samples 0 (1.0) and 3 (0.0)
    assert r["every/pixel_recall_q2_mid"] == pytest.approx(2 / 3)
    assert r["every/pixel_recall_q2_high"] == pytest.approx(1 / 3)
    counts = [r[f"every/n_samples{s}"] for s in ("", "_low", "_mid", "_high", "_without_source")]
    assert counts == [4, 2, 1, 1, 1]
    # precision: 1, 1, 1, 0 (nothing predicted where there are sources)
    assert r["every/pixel_precision_q1_all"] == pytest.approx(0.75)


def test_source_recall_precision_false_alarm_and_localisation():
    pred, target = _blank(4)
    # scene 0: two sources; one found exactly, one missed
    target[0, 10:13, 10:13] = 0.5
    target[0, 40:43, 40:43] = 0.3
    pred[0, 10:13, 10:13] = 0.6
    # scene 1: the peak (22, 23) is sqrt(5) > 2 px from the footprint centre (21, 21): not found; one false blob
    target[1, 20:23, 20:23] = 0.8
    pred[1, 20:23, 21:24] = 0.3
    pred[1, 22, 23] = 0.7
    pred[1, 50:52, 50:52] = 0.2
    # scene 2: empty, one false alarm; scene 3: empty, quiet (below threshold)
    pred[2, 5:7, 5:7] = 0.1
    pred[3] = 0.01
    r = _compute(pred, target, match_distance_px=2.0)
    assert r["every/n_sources"] == 3 and r["every/n_blobs"] == 4 and r["every/n_sources_found"] == 1
    assert r["every/source_recall"] == pytest.approx(1 / 3)
    assert r["every/source_precision"] == pytest.approx(1 / 4)
    assert r["every/source_f1"] == pytest.approx(2 * (1 / 3) * (1 / 4) / (1 / 3 + 1 / 4))
    assert r["every/false_alarm_rate"] == pytest.approx(0.5)
    assert r["every/loc_error_px_median"] == pytest.approx(0.0)
    r2 = _compute(pred, target, match_distance_px=2.5)  # a looser match finds scene 1's source at sqrt(5) px
    assert r2["every/n_sources_found"] == 2
    fp_max = float(pred[1, 20:23, 20:23].max())  # MAE: |0.6-0.5|, |0-0.3| (missed), |max on scene 1 - 0.8|
    assert r["every/mae_at_sources"] == pytest.approx((0.1 + 0.3 + abs(fp_max - 0.8)) / 3)


def test_accumulating_two_updates_equals_one():
    g = torch.Generator().manual_seed(1)
    target = torch.zeros(10, 64, 64)
    for i in range(8):
        r0, c0 = torch.randint(2, 60, (2,), generator=g).tolist()
        target[i, r0 - 1 : r0 + 2, c0 - 1 : c0 + 2] = float(torch.rand(1, generator=g))
    pred = (target + 0.1 * torch.rand(10, 64, 64, generator=g) - 0.06).clamp(0, 1)
    one, two = EmissionMetrics(0.05), EmissionMetrics(0.05)
    one.update(pred, target)
    two.update(pred[:4], target[:4])
    two.update(pred[4:], target[4:])
    a, b = one.compute(), two.compute()
    assert a.keys() == b.keys()
    for k in a:
        assert (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == pytest.approx(b[k]), k
    assert all(isinstance(v, float) for v in a.values())


def test_every_source_counts_a_sub_threshold_source_and_the_visible_variant_leaves_it_out():
    pred, target = _blank()
    target[0, 10:14, 10:14] = 0.5
    target[0, 40:44, 40:44] = 0.01  # true r below the threshold: even a perfect prediction does not mark it
    r = _compute(target.clone(), target, min_scored_r=0.05)
    assert r["every/pixel_recall_q2_all"] == pytest.approx(0.5)  # 16 of the 32 footprint pixels: the headline
    assert r["every/source_recall"] == pytest.approx(0.5)
    assert r["visible/pixel_recall_q1_all"] == 1.0 and r["visible/source_recall"] == 1.0
    assert r["visible/n_sources"] == 1 and r["visible/n_sources_hidden"] == 1


def test_a_blob_on_a_hidden_source_counts_unless_it_stays_inside_the_dilated_footprint():
    """The issue's case: a 6x6 blob over a hidden 4x4 footprint reaches 1 px beyond it (inside the 1-px dilation):
    left out; an 8x8 blob reaches beyond: a false alarm, and its outside pixels cost pixel precision."""
    pred, target = _blank(2)
    for i in range(2):
        target[i, 10:14, 10:14] = 0.5  # scored, found exactly
        target[i, 40:44, 40:44] = 0.01  # hidden (r < min_scored_r)
        pred[i, 10:14, 10:14] = 0.5
    pred[0, 39:45, 39:45] = 0.3  # 6x6: inside the footprint dilated by 1 px
    pred[1, 38:46, 38:46] = 0.3  # 8x8: 2 px beyond
    r = _compute(pred, target, min_scored_r=0.05, dilate_px=1)
    assert r["visible/n_blobs"] == 3 and r["visible/n_sources_found"] == 2  # 2 found + the 8x8 false alarm
    assert r["visible/source_precision"] == pytest.approx(2 / 3)
    # pixel precision: scene 0 marks 16 true px and nothing counted outside; scene 1 adds 64 - 36 = 28 px outside
    per_scene = [1.0, 16 / (16 + 28)]
    assert r["visible/pixel_precision_q1_all"] == pytest.approx(np.percentile(per_scene, 25))
    r0 = _compute(pred, target, min_scored_r=0.05, dilate_px=0)  # without the dilation the 6x6 blob counts too
    assert r0["visible/n_blobs"] == 4


def test_false_alarms_count_on_scenes_whose_sources_are_all_hidden():
    pred, target = _blank(3)
    target[0, 20:24, 20:24] = 0.01  # hidden-only scene with a blob far from its source: a false alarm
    pred[0, 50:53, 50:53] = 0.4
    target[1, 20:24, 20:24] = 0.01  # hidden-only scene, marked only on its (dilated) footprint: no false alarm
    pred[1, 20:24, 20:24] = 0.4
    pred[2, 5:7, 5:7] = 0.2  # empty scene with a false alarm
    r = _compute(pred, target, min_scored_r=0.05)
    assert r["visible/n_samples_without_source"] == 3 and r["visible/false_alarm_rate"] == pytest.approx(2 / 3)
    assert r["every/n_samples_without_source"] == 1 and r["every/false_alarm_rate"] == 1.0


def test_sources_under_cloud_gaps_are_hidden_given_the_valid_mask():
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
    r = _compute(pred, target, valid, min_visible_fraction=0.5)
    assert r["visible/pixel_recall_q1_all"] == 1.0 and r["visible/n_samples"] == 2
    assert r["visible/n_sources"] == 2 and r["visible/n_sources_hidden"] == 2 and r["visible/source_recall"] == 1.0
    # sample 0's class comes from its scored source (r 0.5: mid), not from the hidden 0.7 one
    assert r["visible/n_samples_mid"] == 1 and r["visible/n_samples_high"] == 1
    # every source counted: sample 0: 0.5, sample 1: 0, sample 2: 1 -> 1Q 0.25
    assert r["every/n_samples"] == 3 and r["every/n_sources"] == 4
    assert r["every/pixel_recall_q1_all"] == pytest.approx(0.25)


def test_scoring_version_changes_with_any_definition():
    a, b, c = Scoring(), Scoring(dilate_px=2), Scoring(peak_prominence=0.2)
    assert a.version.startswith("v3-") and a.version == Scoring().version
    assert len({a.version, b.version, c.version}) == 3
    assert set(a.thresholds) == {"mark", "detect"}


def test_listed_sources_keep_touching_footprints_apart():
    """Two sources 3 px apart: their 4x4 footprints touch and are one connected component; from their listed
    positions they are two sources, and one blob finds only one of them."""
    from no2hotspots.metrics.scores import Sources

    pred, target = _blank(1)
    target[0, 20:24, 20:24] = 0.5
    target[0, 20:24, 23:27] = 0.6  # the second footprint overlaps (the target keeps the larger r)
    rows = np.array([[21.5, 21.5]])
    cols = np.array([[21.5, 24.5]])
    r = np.array([[0.5, 0.6]])
    sources = Sources(rows, cols, r, footprint_px=4)
    one_blob = pred.clone()
    one_blob[0, 20:24, 20:27] = 0.5  # a single blob over both
    by_component = _compute(one_blob, target)
    assert by_component["every/n_sources"] == 1 and by_component["every/source_recall"] == 1.0
    m = EmissionMetrics(0.05)
    m.update(one_blob, target, None, sources)
    r1 = m.compute()
    assert r1["every/n_sources"] == 2 and r1["every/source_recall"] == 0.5
    two_blobs = pred.clone()
    two_blobs[0, 20:24, 20:22] = 0.5
    two_blobs[0, 20:24, 25:27] = 0.6
    m2 = EmissionMetrics(0.05)
    m2.update(two_blobs, target, None, sources)
    assert m2.compute()["every/source_recall"] == 1.0


def test_true_pixels_are_the_listed_blocks_whatever_the_target_clears():
    """A target with a zero border between touching footprints (the experiment of fec457d) scores like the merged
    one when the sources are listed: Table 1's true pixels are the sources' whole blocks; a prediction
    that leaves the border unmarked loses those pixels' recall under both targets alike."""
    from no2hotspots.metrics.scores import Sources

    pred, merged = _blank(1)
    merged[0, 20:24, 20:24] = 0.6
    merged[0, 20:24, 24:28] = 0.3  # 4 px apart: the blocks touch
    gapped = merged.clone()
    gapped[0, 20:24, 24] = 0.0  # the weaker block's column next to the stronger one
    sources = Sources(np.array([[21.5, 21.5]]), np.array([[21.5, 25.5]]), np.array([[0.6, 0.3]]), footprint_px=4)
    pred[0] = gapped[0]  # a model that learnt the border
    out = []
    for target in (merged, gapped):
        m = EmissionMetrics(0.05)
        m.update(pred, target, None, sources)
        out.append(m.compute())
    np.testing.assert_equal(out[0], out[1])  # NaN == NaN for the empty classes
    assert out[0]["every/pixel_recall_q2_all"] == pytest.approx(28 / 32)
    assert out[0]["every/source_recall"] == 1.0  # the border splits the blob: both sources found
