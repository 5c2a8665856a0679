"""The headline stage: picks the figures from the stages' metrics files, leaves out what is missing."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from omegaconf import OmegaConf

from no2hotspots.headline import f1, f1_by_bin, run


def _cfg(tmp_path):
    return OmegaConf.create(
        {"paths": {"metrics": str(tmp_path / "metrics")}, "evaluate": {"out_dir": str(tmp_path / "ev")}}
    )


def test_headline_from_metrics_files(tmp_path):
    m = tmp_path / "metrics"
    m.mkdir()
    score = {
        "test": {"mark": {"every": {"pixel_recall_q2_all": 0.5, "pixel_recall_q1_all": 0.25}}},
        "val": {"detect": {"every": {"source_f1": 0.4}}},
    }
    (m / "score.json").write_text(json.dumps(score))
    osse = {
        "model/site_precision": 0.8,
        "model/source_recall_nearest": 0.6,
        "model/table2_strict_rate_gt5000": 0.9,
        "model/table2_strict_rate_2000_4000": None,  # no observed cell in the bin: undefined
        "composite/site_precision": None,  # no composite site
        "composite/source_recall_nearest": 0.0,
    }
    (m / "evaluate_osse.json").write_text(json.dumps(osse))
    (m / "evaluate_matimba.json").write_text(json.dumps({"model/hotspot_precision": 1.0}))
    src = tmp_path / "ev" / "matimba" / "model"
    src.mkdir(parents=True)
    pd.DataFrame(
        {
            "nox_t_per_yr": [19000, 11400, 6000, 2000],
            "observed": [True, True, False, True],
            "found_distance": [1, 0, 1, 1],
        }
    ).to_csv(src / "sources.csv", index=False)
    head = run(_cfg(tmp_path))
    written = json.loads((m / "headline.json").read_text())["headline"]
    assert written == head
    assert head["table1.test_median_every"] == 0.5 and head["sim.val_source_f1"] == 0.4
    assert "sim.pair_recall_ge3px" not in head  # pairs not scored (no split in score.json): left out
    assert "table1.paper_world_median_visible" not in head
    # the test split was scored, its F1 is absent (the stage writes no NaN): undefined, the key stays as null
    assert "sim.test_source_f1" in head and head["sim.test_source_f1"] is None
    assert head["osse.model.f1"] == pytest.approx(round(2 * 0.8 * 0.6 / 1.4, 4))
    assert f1_by_bin(osse)["model"]["gt5000"] == pytest.approx(2 * 0.8 * 0.9 / 1.7)
    assert head["osse.model.table2_strict_lt2000"] is None  # the table is there without it: null, the key stays
    assert "osse.baseline.f1" not in head  # no baseline table in this evaluation
    assert head["osse.model.table2_strict_2000_4000"] is None and head["osse.composite.site_precision"] is None
    assert head["osse.composite.f1"] is None  # undefined precision: undefined F1, the key stays
    # >= 5 kt with valid pixels: 19000 (found) and 11400 (missed); 6000 unobserved, 2000 too weak
    assert head["matimba.sites_observed_ge5kt"] == 2 and head["matimba.sites_found_ge5kt"] == 1


def test_f1_edge_cases():
    assert f1(0.0, 0.0) == 0.0
    assert f1(None, 0.5) is None and f1(float("nan"), 0.5) is None
