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


def test_register_stage_and_load_by_alias_reproduce_test_metrics(trained):
    from no2hotspots.metrics import EmissionMetrics
    from no2hotspots.train.data import ShardStream, split_shards

    cfg, root = trained
    result = register(cfg)
    assert result["version"] == 1 and result["alias"] == "champion" and result["champion_version"] == 1
    written = json.loads((root / "outputs" / "register" / "model.json").read_text())
    assert written["name"] == "test-cnn" and written["compare_metric"] == cfg.register.compare_metric

    m = load_model("models:/test-cnn@champion", cfg.tracking)
    assert isinstance(m, LoadedModel) and not m.net.training
    assert m.meta["name"] == "test-cnn" and m.meta["version"] == 1 and m.meta["input_scale"] == 1e5
    assert (
        m.meta["tile_size"] == 64
        and m.meta["threshold"] == cfg.train.threshold
        and m.meta["emission_max_t_per_yr"] == 50000
    )
    run_info = json.loads((root / "outputs" / "train" / "run.json").read_text())
    assert m.meta["run_id"] == run_info["run_id"]

    metric = EmissionMetrics(
        threshold=m.meta["threshold"],
        match_distance_px=m.meta["match_distance_px"],
        min_visible_fraction=m.meta["min_visible_fraction"],
        min_scored_r=m.meta["min_scored_r"],
    )
    for b in ShardStream(split_shards(cfg.paths.simulated, "test"), 7, shuffle=False).batches():
        pred = m.predict(b.no2, b.valid, batch_size=5)
        assert pred.shape == b.no2.shape and pred.dtype == np.float32
        metric.update(torch.as_tensor(pred), torch.as_tensor(b.emission), torch.as_tensor(b.valid))
    got = metric.compute()
    import mlflow

    logged = mlflow.MlflowClient().get_run(run_info["run_id"]).data.metrics
    for k in ("acc_q1_all", "acc_q2_all", "precision_q2_all", "source_f1"):
        assert float(got[k]) == pytest.approx(logged[f"test/{k}"], abs=1e-6, nan_ok=True), k

    by_version = load_model("models:/test-cnn/1", cfg.tracking)
    by_run = load_model(f"runs:/{run_info['run_id']}/model", cfg.tracking)
    for other in (by_version, by_run):
        for k, v in m.net.state_dict().items():
            assert torch.equal(other.net.state_dict()[k], v)


def test_alias_moves_only_to_a_better_model(trained):
    """Three versions with test metrics 0.5, 0.7, 0.6: champion v1 -> v2; v3 is a challenger."""
    import mlflow

    from no2hotspots.registry.log import log_model

    cfg, root = trained
    model_dir = root / "outputs" / "train" / "model"
    x = np.zeros((1, 2, 64, 64), np.float32)
    y = np.zeros((1, 64, 64), np.float32)
    outcomes = []
    for _i, value in enumerate((0.5, 0.7, 0.6)):
        with mlflow.start_run(run_name=f"controlled {value}") as r:
            mlflow.log_metric("test/acc_q2_all", value)
            info = log_model(model_dir, x, y)
        res = register_run(
            r.info.run_id,
            model_name="alias-test",
            compare_metric="test/acc_q2_all",
            model_uri=info.model_uri,
            tag_metrics=["test/acc_q2_all"],
        )
        outcomes.append((res["version"], res["alias"], res["champion_version"]))
    assert outcomes == [(1, "champion", 1), (2, "champion", 2), (3, "challenger", 2)]
    client = mlflow.MlflowClient()
    assert int(client.get_model_version_by_alias("alias-test", "champion").version) == 2
    assert int(client.get_model_version_by_alias("alias-test", "challenger").version) == 3
    tags = client.get_model_version("alias-test", "3").tags
    assert tags["test/acc_q2_all"] == "0.6" and tags["data_version"] and tags["git_commit"]


def test_loaded_model_can_be_built_directly_and_bad_uris_are_one_line(trained):
    from no2hotspots.model.net import build_model

    cfg, _ = trained
    lm = LoadedModel(build_model(cfg.model), {"input_scale": 1e5})
    no2 = np.full((3, 64, 64), 3e-5, np.float32)
    assert lm.predict(no2, np.ones_like(no2, dtype=np.uint8)).shape == (3, 64, 64)
    with pytest.raises(UserError) as e:
        load_model("models:/no-such-model@champion", cfg.tracking)
    assert "\n" not in str(e.value) and "no-such-model" in str(e.value)
