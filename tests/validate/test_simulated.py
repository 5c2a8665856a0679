"""The simulated-dataset suite on a good sample dataset and on corrupted ones; the stage's run(cfg)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from no2hotspots.errors import InputFileError, ValidationFailed
from no2hotspots.validate.simulated import validate_simulated

from .sample_data import SPLIT_OVERRIDES, write_dataset


def test_good_dataset_passes_stage_writes_report_and_table(tmp_path, gx_warm):
    from no2hotspots.config import compose
    from no2hotspots.validate.run import run

    write_dataset(tmp_path / "sim")
    cfg = compose([f"paths.outputs={tmp_path}/out", f"paths.simulated={tmp_path}/sim", *SPLIT_OVERRIDES])
    res = run(cfg)
    assert res.success, [o.short for o in res.failures]
    assert res.tables == {"scenes": 42, "dataset": 1} and len(res.outcomes) >= 30
    out = tmp_path / "out" / "validate"
    assert {p.name for p in out.iterdir()} == {"simulated_report.json", "simulated_report.md", "simulated_scenes.csv"}
    scenes = pd.read_csv(out / "simulated_scenes.csv")
    assert len(scenes) == 42 and scenes["n_emission_pixels"].max() > 0
    assert (scenes["n_nonfinite_valid"] == 0).all() and (scenes["n_sources"] > 0).sum() == 32
    assert scenes["n_distractors"].sum() == 10 and (scenes["n_target_pixels_off_footprints"] == 0).all()
    pairs = scenes[scenes["split"] == "pairs"]
    assert sorted(pairs["source_min_separation"]) == [2.0, 5.0]
    doc = json.loads((out / "simulated_report.json").read_text())
    assert doc["success"] and doc["extra"]["fraction_empty"] == pytest.approx(0.25)
    assert "PASSED" in (out / "simulated_report.md").read_text()


def _nan_in_valid(split, shard, a):
    if split == "train" and shard == 0:
        a["valid"][1, 30, 30] = 1
        a["no2"][1, 30, 30] = np.nan


def _emission_13(split, shard, a):
    if split == "train" and shard == 0:
        em = a["emission"][3]
        em[em == em.max()] = 1.3


def _emission_without_source(split, shard, a):
    if split == "val" and shard == 0:
        a["emission"][1, 55:58, 5:8] = 0.05  # a low scene gets a second blob far from its listed sources


def _source_without_emission(split, shard, a):
    if split == "test" and shard == 0:
        r, c = int(round(a["srow"][2, 0])), int(round(a["scol"][2, 0]))
        a["emission"][2, r - 1 : r + 2, c - 1 : c + 2] = 0.0  # the mid source's footprint emptied


def _mark_distractor(split, shard, a):
    if split == "train" and shard == 1:  # scene 15 (the first of shard 1 with an area source)
        a["emission"][3, 55:58, 7:10] = 0.3


def _pair_too_close(split, shard, a):
    if split == "pairs":
        a["scol"][1, 1] = a["scol"][1, 0] + 3.5  # the 5 px pair moved to 3.5 px, not a configured separation


def _duplicate_ids(split, shard, a):
    if split == "test":
        a["scene_id"][:] = np.arange(len(a["scene_id"]))  # ids 0.. also used in train


@pytest.mark.parametrize(
    "corrupt, expected, where",
    [
        (
            _nan_in_valid,
            "expect_column_values_to_be_between(n_nonfinite_valid == 0): 1 of 42 rows unexpected",
            "train:1",
        ),
        (_emission_13, "expect_column_max_to_be_between(emission_max <= 1): observed 1.3", None),
        (
            _emission_without_source,
            "expect_column_values_to_be_between(n_emission_blobs_without_source == 0)",
            "val:33",
        ),
        (_source_without_emission, "expect_column_values_to_be_between(n_sources_without_emission == 0)", "test:38"),
        (_mark_distractor, "expect_column_values_to_be_between(n_distractors_marked == 0): 1 of 42", "train:15"),
        (_mark_distractor, "expect_column_values_to_be_between(n_target_pixels_off_footprints == 0)", "train:15"),
        (_pair_too_close, "expect_column_values_to_be_between(separation_violation == 0): 1 of 42", "pairs:41"),
        (_pair_too_close, "expect_column_values_to_be_between(pairs_separations_missing == 0)", None),
    ],
)
def test_corrupted_dataset_fails_naming_expectation(tmp_path, cfg_validate, gx_warm, corrupt, expected, where):
    root = write_dataset(tmp_path / "simulated", corrupt=corrupt)
    with pytest.raises(ValidationFailed) as ei:
        validate_simulated(root, cfg_validate, tmp_path / "rep.json")
    msg = str(ei.value)
    assert "\n" not in msg and expected in msg, msg
    if where:
        assert where in msg
    assert str(tmp_path / "rep.md") in msg
    md = (tmp_path / "rep.md").read_text()
    assert "FAILED" in md and expected in md
    assert any(expected in s for s in json.loads((tmp_path / "rep.json").read_text())["failed"])


def test_split_sizes_class_balance_and_unique_ids_checked(tmp_path, gx_warm):
    from no2hotspots.config import compose

    root = write_dataset(tmp_path / "simulated", counts={"train": 20, "val": 10, "test": 10}, corrupt=_duplicate_ids)
    cfg = compose(
        ["validate.simulated.class_fraction_min=0.4", *SPLIT_OVERRIDES]
    ).validate  # tolerances interpolate into the suite
    with pytest.raises(ValidationFailed) as ei:
        validate_simulated(root, cfg, tmp_path / "rep.json")
    msg = str(ei.value)
    assert "split_fraction_error_max <= 0.02): 1 of 1 rows unexpected e.g. 0.3" in msg
    for cls in ("low", "mid", "high"):
        assert f"0.4 <= fraction_{cls} <= 0.8" in msg
    assert "expect_column_values_to_be_unique(scene_id): 20 of 40 rows unexpected" in msg


def test_missing_dataset_is_a_user_error(tmp_path, cfg_validate):
    with pytest.raises(InputFileError, match="simulate"):
        validate_simulated(tmp_path / "nothing", cfg_validate, tmp_path / "rep.json")
