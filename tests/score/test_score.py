"""The score stage: Table 1 at both thresholds, every source and visible sources, on val and test; DVC metrics;
MLflow metrics, table and version tags; a scoring change gives another version and other numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from no2hotspots.metrics import Scoring
from no2hotspots.score.run import run
from no2hotspots.tracking import resolve_uri


def test_score_writes_table1_at_both_thresholds_and_logs_to_the_model_run(trained_cfg):
    import mlflow

    cfg = trained_cfg
    run(cfg)
    full = json.loads((Path(cfg.score.out_dir) / "score.json").read_text())
    assert full["scoring_version"] == Scoring.from_config(cfg.score).version
    assert set(full["splits"]) == {"val", "test"}
    metrics = json.loads((Path(cfg.paths.metrics) / "score.json").read_text())
    for thr in ("mark", "detect"):
        for conv in ("every", "visible"):
            t = metrics["test"][thr][conv]
            for g in ("all", "low", "mid", "high"):
                assert {f"pixel_recall_{q}_{g}" for q in ("q1", "q2", "q3")} <= set(t)
            assert 0 <= t["pixel_recall_q2_all"] <= 1 and "false_alarm_rate" in t and "source_f1" in t
    assert set(metrics["val"]) == {"detect", "mark"} and "source_f1" in metrics["val"]["detect"]["every"]
    # a higher threshold marks fewer pixels: recall at detect <= recall at mark
    assert (
        metrics["test"]["detect"]["every"]["pixel_recall_q3_all"]
        <= metrics["test"]["mark"]["every"]["pixel_recall_q3_all"]
    )
    rows = pd.read_csv(Path(cfg.paths.plots) / "score" / "table1.csv")
    assert len(rows) == 16 and set(rows["threshold"]) == {"mark", "detect"}
    curve = pd.read_csv(Path(cfg.paths.plots) / "score" / "threshold_curve.csv")
    assert list(curve.threshold) == sorted(cfg.score.curve_thresholds)
    assert curve[["recall", "precision", "f1"]].apply(lambda c: c.between(0, 1)).all().all()
    at_detect = curve[curve.threshold == cfg.score.detect_threshold].f1.iloc[0]
    assert at_detect == pytest.approx(metrics["val"]["detect"]["every"]["source_f1"])

    mlflow.set_tracking_uri(resolve_uri(cfg))
    client = mlflow.MlflowClient()
    run_id = json.loads((Path(cfg.train.out_dir) / "run.json").read_text())["run_id"]
    r = client.get_run(run_id)
    assert r.data.tags["scoring_version"] == full["scoring_version"] and r.data.tags["score_data_version"]
    assert r.data.metrics["score/val/detect/every/source_f1"] == pytest.approx(
        metrics["val"]["detect"]["every"]["source_f1"]
    )
    arts = {a.path for a in client.list_artifacts(run_id, "score")} | {
        a.path for a in client.list_artifacts(run_id, "tables")
    }
    assert {"score/test_panel.png", "tables/table1.json"} <= arts


def test_another_scoring_is_another_version_with_other_numbers(trained_cfg, tmp_path):
    cfg = OmegaConf.merge(
        trained_cfg,
        {
            "score": {"mark_threshold": 0.6, "log_to_mlflow": False, "out_dir": str(tmp_path / "score")},
            "paths": {"metrics": str(tmp_path / "m"), "plots": str(tmp_path / "p")},
        },
    )
    a = json.loads((Path(trained_cfg.score.out_dir) / "score.json").read_text())
    b = run(cfg)
    assert b["scoring_version"] != a["scoring_version"]
    hi, lo = b["splits"]["test"]["metrics"], a["splits"]["test"]["metrics"]
    assert hi["mark/every/pixel_recall_q3_all"] <= lo["mark/every/pixel_recall_q3_all"]
    assert hi["detect/every/source_f1"] == lo["detect/every/source_f1"]  # the detect threshold did not change


def test_cli_without_a_trained_model_is_one_line(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "no2hotspots", "score", f"paths.outputs={tmp_path}/out"],
        env={**os.environ, "NO2HOTSPOTS_PROGRESS": "0"},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert p.returncode == 2 and "Traceback" not in p.stderr
    err = [ln for ln in p.stderr.splitlines() if "error" in ln]
    assert len(err) == 1 and "train/model" in err[0] and "run the train stage first" in err[0]


def _keys(tree: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in tree.items():
        out |= _keys(v, f"{prefix}{k}/") if isinstance(v, dict) else {prefix + k}
    return out


@pytest.mark.slow  # a real simulation and one training epoch (~15 s), two scorings (~20 s on a busy 2-core box)
def test_paper_world_is_scored_like_test_and_never_for_a_choice(paper_world_cfg, tmp_path):
    import mlflow

    cfg = paper_world_cfg
    assert "paper_world" in cfg.score.splits  # the default
    full = run(cfg)
    assert set(full["splits"]) == {"val", "test", "paper_world"}  # pairs not simulated: skipped
    metrics = json.loads((Path(cfg.paths.metrics) / "score.json").read_text())
    # the same figures as the test split: Table 1 at both thresholds, every source and visible, source scores
    assert _keys(metrics["paper_world"]) == _keys(metrics["test"])
    pw = metrics["paper_world"]
    assert {f"pixel_recall_{q}_{g}" for q in ("q1", "q2", "q3") for g in ("all", "low", "mid", "high")} <= set(
        pw["mark"]["every"]
    )
    assert 0 < pw["mark"]["every"]["n_samples"] <= 24 and "n_sources_hidden" in pw["visible"]
    assert pw["detect"]["every"]["pixel_recall_q3_all"] <= pw["mark"]["every"]["pixel_recall_q3_all"]
    scored = full["splits"]["paper_world"]["metrics"]
    assert scored["mark/every/pixel_recall_q2_all"] == pytest.approx(pw["mark"]["every"]["pixel_recall_q2_all"])
    rows = pd.read_csv(Path(cfg.score.out_dir) / "table1_paper_world.csv")
    assert len(rows) == 16 and set(rows["threshold"]) == {"mark", "detect"}
    # MLflow: score/paper_world/... metrics and its own Table 1
    mlflow.set_tracking_uri(resolve_uri(cfg))
    client = mlflow.MlflowClient()
    run_id = json.loads((Path(cfg.train.out_dir) / "run.json").read_text())["run_id"]
    logged = client.get_run(run_id).data.metrics
    assert logged["score/paper_world/mark/every/pixel_recall_q2_all"] == pytest.approx(
        pw["mark"]["every"]["pixel_recall_q2_all"]
    )
    assert "tables/table1_paper_world.json" in {a.path for a in client.list_artifacts(run_id, "tables")}
    # never used for a choice: what the registry compares (validation) is the same without the paper_world split
    assert not [k for k in cfg.register.tag_metrics if "paper_world" in k]
    assert cfg.register.compare_metric.startswith("score/val/")
    alone = OmegaConf.merge(
        cfg,
        {
            "score": {"splits": ["val", "test"], "log_to_mlflow": False, "out_dir": str(tmp_path / "score")},
            "paths": {"metrics": str(tmp_path / "m"), "plots": str(tmp_path / "p")},
        },
    )
    without = json.loads(json.dumps(run(alone)))
    assert "paper_world" not in without["splits"]
    assert without["splits"]["val"] == json.loads(json.dumps(full))["splits"]["val"]
    assert json.loads((tmp_path / "m" / "score.json").read_text())["val"] == metrics["val"]


def _digests(root: Path) -> dict[str, str]:
    import hashlib

    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*")
            if p.is_file()}  # fmt: skip


def test_folder_metrics_and_plots_are_replaced_together(trained_cfg, tmp_path):
    """The score folder, metrics/score.json and plots/score/ are one atomic group: a run that cannot write its plot
    files (their folder is a file) leaves all of them as the last good run wrote them, not a new folder beside old
    metrics."""
    own = {"score": {"log_to_mlflow": False, "out_dir": str(tmp_path / "score")},
           "paths": {"metrics": str(tmp_path / "metrics"), "plots": str(tmp_path / "plots")}}  # fmt: skip
    run(OmegaConf.merge(trained_cfg, own))
    (tmp_path / "blocked").write_text("a file where the plots folder should be")
    before = _digests(tmp_path)
    other = {"score": {"mark_threshold": 0.6}, "paths": {"plots": str(tmp_path / "blocked" / "plots")}}
    with pytest.raises(OSError):
        run(OmegaConf.merge(trained_cfg, own, other))
    assert _digests(tmp_path) == before
