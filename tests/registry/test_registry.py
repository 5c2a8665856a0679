"""Model Registry: the champion alias moves only to a better model; load_model reproduces the logged metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from no2hotspots.errors import UserError
from no2hotspots.registry.load import LoadedModel, load_model
from no2hotspots.registry.run import register_run
from no2hotspots.registry.run import run as register


def test_register_stage_and_load_by_alias_reproduce_the_scores(trained):
    import mlflow

    from no2hotspots.metrics import Scoring
    from no2hotspots.train.data import ShardStream, split_shards

    cfg, root = trained
    result = register(cfg)
    assert result["version"] == 1 and result["alias"] == "champion" and result["champion_version"] == 1
    assert result["compare_metric"] == "score/val/detect/every/source_f1" and result["reason"] == "no champion yet"
    written = json.loads((root / "outputs" / "register" / "model.json").read_text())
    assert written["name"] == "test-cnn" and written["scoring_version"] == Scoring.from_config(cfg.score).version

    m = load_model("models:/test-cnn@champion", cfg.tracking)
    assert isinstance(m, LoadedModel) and not m.net.training
    assert m.meta["name"] == "test-cnn" and m.meta["version"] == 1 and m.meta["input_scale"] == 1e5
    assert m.meta["tile_size"] == 64 and m.meta["emission_max_t_per_yr"] == 50000
    run_info = json.loads((root / "outputs" / "train" / "run.json").read_text())
    assert m.meta["run_id"] == run_info["run_id"]

    # the loaded model's predictions reproduce the scores the score stage logged, to float precision
    metric = Scoring.from_config(cfg.score).metrics("mark")
    for b in ShardStream(split_shards(cfg.paths.simulated, "test"), 7, shuffle=False).batches():
        pred = m.predict(b.no2, b.valid, batch_size=5)
        assert pred.shape == b.no2.shape and pred.dtype == np.float32
        metric.update(pred, b.emission, b.valid)
    got = metric.compute()
    logged = mlflow.MlflowClient().get_run(run_info["run_id"]).data.metrics
    for k in ("every/pixel_recall_q1_all", "every/pixel_recall_q2_all", "visible/pixel_precision_q2_all"):
        assert float(got[k]) == pytest.approx(logged[f"score/test/mark/{k}"], abs=1e-6, nan_ok=True), k

    by_version = load_model("models:/test-cnn/1", cfg.tracking)
    by_run = load_model(f"runs:/{run_info['run_id']}/model", cfg.tracking)
    for other in (by_version, by_run):
        for k, v in m.net.state_dict().items():
            assert torch.equal(other.net.state_dict()[k], v)


def test_alias_moves_only_to_a_better_model(trained):
    """Three versions with validation scores 0.5, 0.7, 0.6: champion v1 -> v2; v3 is a challenger. A fourth, scored
    with other scoring definitions, is not compared: it stays a challenger however good."""
    import mlflow

    from no2hotspots.registry.log import log_model

    cfg, root = trained
    model_dir = root / "outputs" / "train" / "model"
    x = np.zeros((1, 2, 64, 64), np.float32)
    y = np.zeros((1, 64, 64), np.float32)
    outcomes = []
    key = "score/val/detect/every/source_f1"
    for value, scoring in ((0.5, "v2-a"), (0.7, "v2-a"), (0.6, "v2-a"), (0.9, "v2-b")):
        with mlflow.start_run(run_name=f"controlled {value}") as r:
            mlflow.log_metric(key, value)
            mlflow.set_tags({"scoring_version": scoring, "score_data_version": "md5:same"})
            info = log_model(model_dir, x, y)
        res = register_run(
            r.info.run_id, model_name="alias-test", compare_metric=key, model_uri=info.model_uri, tag_metrics=[key]
        )
        outcomes.append((res["version"], res["alias"], res["champion_version"], res["compared"]))
    assert outcomes == [
        (1, "champion", 1, False),
        (2, "champion", 2, True),
        (3, "challenger", 2, True),
        (4, "challenger", 2, False),
    ]
    client = mlflow.MlflowClient()
    assert int(client.get_model_version_by_alias("alias-test", "champion").version) == 2
    assert int(client.get_model_version_by_alias("alias-test", "challenger").version) == 4  # the latest challenger
    tags = client.get_model_version("alias-test", "3").tags
    assert tags[key] == "0.6" and tags["scoring_version"] == "v2-a" and tags["git_commit"]
    assert "scoring_version differ" in client.get_model_version("alias-test", "4").tags["alias_reason"]


def test_register_refuses_a_test_split_metric(trained):
    from omegaconf import OmegaConf

    from no2hotspots.errors import ConfigError

    cfg, _ = trained
    bad = OmegaConf.merge(cfg, {"register": {"compare_metric": "score/test/detect/every/source_f1"}})
    with pytest.raises(ConfigError, match="register.compare_metric"):
        register(bad)


def test_loaded_model_can_be_built_directly_and_bad_uris_are_one_line(trained):
    from no2hotspots.model.net import build_model

    cfg, _ = trained
    lm = LoadedModel(build_model(cfg.model), {"input_scale": 1e5})
    no2 = np.full((3, 64, 64), 3e-5, np.float32)
    assert lm.predict(no2, np.ones_like(no2, dtype=np.uint8)).shape == (3, 64, 64)
    with pytest.raises(UserError) as e:
        load_model("models:/no-such-model@champion", cfg.tracking)
    assert "\n" not in str(e.value) and "no-such-model" in str(e.value)
