"""The train stage end to end on a tiny dataset: outputs, MLflow run contents, streaming, determinism."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from no2hotspots.config import compose
from no2hotspots.train.data import ShardStream, split_shards
from no2hotspots.train.run import run

from .conftest import tiny_overrides


def test_stream_is_a_seeded_permutation_of_all_scenes(tiny_sim):
    shards = split_shards(tiny_sim, "train")
    assert len(shards) == 3
    s = ShardStream(shards, 16, shuffle=True, seed=5, drop_last=True)

    def ids(epoch):
        return np.concatenate([b.no2.reshape(len(b.no2), -1)[:, :1].ravel() for b in s.batches(epoch)])

    a0, a0b, a1 = ids(0), ids(0), ids(1)
    assert len(a0) == 64 and all(len(b.no2) == 16 for b in s.batches(0))
    np.testing.assert_array_equal(a0, a0b)  # same (seed, epoch) -> same order
    assert not np.array_equal(a0, a1)  # another epoch -> another order
    np.testing.assert_array_equal(np.sort(a0), np.sort(a1))  # ... of the same scenes


def test_trains_and_logs_an_mlflow_run(tmp_path, tiny_sim):
    import mlflow

    cfg = compose(tiny_overrides(tmp_path, tiny_sim, "train.epochs=3", "train.lr=3e-3"))
    objective = run(cfg)
    out = tmp_path / "outputs" / "train"
    info = json.loads((out / "run.json").read_text())
    assert info["objective"] == objective and info["model_uri"].startswith("models:/")
    meta = json.loads((out / "model" / "model.json").read_text())
    assert meta["input_scale"] == 1e5 and meta["tile_size"] == 64 and meta["model"]["stem"]["width"] == 8
    assert set(torch.load(out / "model" / "state_dict.pt", weights_only=True)) == set(
        torch.load(out / "checkpoints" / "last.pt", weights_only=True)["model"]
    )
    curve = pd.read_csv(tmp_path / "plots" / "train" / "learning_curve.csv")
    assert list(curve.epoch) == [0, 1, 2] and {"train_loss", "val_loss", "lr", "val_acc_q2_all"} <= set(curve)
    assert curve.train_loss.iloc[-1] < curve.train_loss.iloc[0]  # it learns
    t1 = pd.read_csv(tmp_path / "plots" / "train" / "table1.csv")
    assert list(t1["emission class"]) == ["all", "low", "mid", "high"]
    metrics = json.loads((tmp_path / "metrics" / "train.json").read_text())
    assert 0 <= metrics["test/acc_q2_all"] <= 1

    mlflow.set_tracking_uri(str(cfg.tracking.uri))
    client = mlflow.MlflowClient()
    r = client.get_run(info["run_id"])
    assert r.data.params["train.lr"] == "0.003" and r.data.params["model.stem.width"] == "8"
    assert r.data.tags["data_version"].startswith("md5:") and r.data.tags["git_commit"]
    assert r.info.run_name.startswith("train model=demo")
    assert [m.step for m in client.get_metric_history(r.info.run_id, "train/loss")] == [0, 1, 2]
    for k in (
        "val/loss",
        "val/acc_q2_all",
        "val/source_f1",
        "lr",
        "test/acc_q1_all",
        "test/acc_q2_high",
        "test/precision_q2_all",
    ):
        assert k in r.data.metrics, k
    assert r.data.metrics["test/acc_q2_all"] == pytest.approx(metrics["test/acc_q2_all"])
    arts = {a.path for a in client.list_artifacts(r.info.run_id, "figures")}
    assert {"figures/test_panel.png", "figures/learning_curve.png", "figures/table1.csv"} <= arts
    assert client.list_artifacts(r.info.run_id, "config")[0].path == "config/resolved.yaml"
    lm = client.get_logged_model(info["model_uri"].split("/")[-1])
    assert lm.source_run_id == r.info.run_id
