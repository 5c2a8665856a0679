"""The whole pipeline under real DVC on a tiny copy of the repository (see conftest.py)."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from omegaconf import OmegaConf

from .conftest import run, tiny_env

pytestmark = pytest.mark.slow

STAGES = {
    "simulate",
    "validate",
    "train",
    "score",
    "register",
    "osse",
    "ingest@matimba",
    "ingest@osse",
    "detect@matimba",
    "detect@osse",
    "evaluate@matimba",
    "evaluate@osse",
    "quantify@matimba",
    "quantify@osse",
    "baseline@matimba",
    "baseline@osse",
    "hybrid@matimba",
    "hybrid@osse",
    "headline",
}


def _would_run(repo) -> set[str]:
    out = run(["dvc", "repro", "--dry"], repo, tiny_env(repo)).stdout
    return set(re.findall(r"Running stage '([^']+)'", out))


def test_repro_ran_every_stage_and_declares_metrics_and_plots(tiny_repo):
    lock = (tiny_repo / "dvc.lock").read_text()
    assert all(f"{s}:" in lock for s in STAGES)
    hot = pd.read_csv(tiny_repo / "outputs/detect/matimba/hotspots.csv")
    assert list(hot.columns)[:5] == ["hotspot_id", "overpass", "overpass_hotspot", "time", "peak_lat"]
    head = json.loads((tiny_repo / "metrics/headline.json").read_text())["headline"]
    assert "table1.test_median_every" in head and "osse.model.site_precision" in head
    for coll in ("matimba", "osse"):
        m = json.loads((tiny_repo / f"metrics/evaluate_{coll}.json").read_text())
        assert "model/co2_overlap_pct" in m and "model/hotspot_precision" in m
        assert any(k.startswith("model/table2_rate") for k in m)
        assert (tiny_repo / f"outputs/evaluate/{coll}/model/map_hotspots.png").stat().st_size > 10_000
    env = tiny_env(tiny_repo)
    shown = run(["dvc", "metrics", "show"], tiny_repo, env).stdout
    assert "metrics/train.json" in shown and "metrics/evaluate_osse.json" in shown
    assert "test.mark.every.pixel_recall_q1_all" in shown and "test.detect.visible.pixel_recall_q2_all" in shown
    run(["dvc", "plots", "show", "-o", str(tiny_repo / "scratch_plots")], tiny_repo, env)
    html = (tiny_repo / "scratch_plots" / "index.html").read_text()
    assert "learning_curves" in html and "table1_median_recall" in html and "table2_detection_rate" in html
    assert "threshold_curve" in html


def test_second_repro_skips_everything(tiny_repo):
    out = run(["dvc", "repro"], tiny_repo, tiny_env(tiny_repo)).stdout
    assert "Running stage" not in out
    assert run(["dvc", "status"], tiny_repo, tiny_env(tiny_repo)).stdout.strip().endswith("up to date.")


def test_a_simulator_parameter_does_not_touch_the_observation_side(tiny_repo):
    params = tiny_repo / "params.yaml"
    original = params.read_text()
    try:
        cfg = OmegaConf.load(params)
        cfg.simulate.noise.std_max = 1.4e-5
        params.write_text(OmegaConf.to_yaml(cfg))
        would = _would_run(tiny_repo)  # --dry lists the stages whose own deps/params changed
        assert "simulate" in would and not {"osse", "ingest@matimba", "ingest@osse"} & would
    finally:
        params.write_text(original)


def test_a_scoring_parameter_rescores_without_retraining(tiny_repo):
    params = tiny_repo / "params.yaml"
    original = params.read_text()
    try:
        cfg = OmegaConf.load(params)
        cfg.score.dilate_px = 2
        params.write_text(OmegaConf.to_yaml(cfg))
        would = _would_run(tiny_repo)
        assert "score" in would and "train" not in would and "simulate" not in would
    finally:
        params.write_text(original)


def test_dvc_exp_run_of_a_training_parameter_reruns_only_train_and_downstream(tiny_repo):
    env = tiny_env(tiny_repo)
    proc = run(["dvc", "exp", "run", "-n", "lr-2e-3", "-S", "train.lr=0.002"], tiny_repo, env)
    ran = set(re.findall(r"Running stage '([^']+)'", proc.stdout + proc.stderr))
    assert ran == {
        "train",
        "score",
        "register",
        "detect@matimba",
        "detect@osse",
        "hybrid@matimba",
        "hybrid@osse",
        "evaluate@matimba",
        "evaluate@osse",
        "quantify@matimba",
        "quantify@osse",
        "headline",
    }
    shown = run(["dvc", "exp", "show", "--json"], tiny_repo, env).stdout
    assert "lr-2e-3" in shown and "0.002" in shown
    # both rows, the committed results and the experiment, carry their own headline figures (no "!"; DVC leaves
    # out a null figure, one the tiny model leaves undefined)
    rows = json.loads(shown)
    base = next(r for r in rows if r["rev"] != "workspace")
    exp = next(e for e in base["experiments"] if e["name"] == "lr-2e-3")["revs"][0]
    for row in (base, exp):
        head = row["data"]["metrics"]["metrics/headline.json"]["data"]["headline"]
        assert "table1.test_median_every" in head and "osse.model.table2_strict_gt5000" in head
    assert exp["data"]["params"]["params.yaml"]["data"]["train"]["lr"] == 0.002
    # params.yaml was composed by Hydra from conf/ with the override (DVC's Hydra integration); conf/ is untouched
    assert run(["git", "status", "--porcelain", "conf"], tiny_repo, env).stdout.strip() == ""
    assert OmegaConf.load(tiny_repo / "params.yaml").train.lr == 0.002
