"""The train stage end to end on a tiny dataset: outputs, MLflow run contents, streaming, determinism."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from no2hotspots.config import compose
from no2hotspots.errors import InputFileError
from no2hotspots.tracking import resolve_uri
from no2hotspots.train.data import ShardStream, split_shards
from no2hotspots.train.loop import NonFiniteLoss
from no2hotspots.train.run import EPOCH_METRICS, run

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


@pytest.mark.parametrize(
    "kw",
    [
        {"shuffle": True, "seed": 5, "drop_last": True},
        {"shuffle": False},  # the last partial batch too
        {"shuffle": True, "seed": 2, "max_scenes": 30},  # stops after the second shard: no third read
        {"shuffle": True, "seed": 1, "drop_last": True, "rank": 1, "world": 2},
    ],
)
def test_prefetching_the_next_shard_gives_the_same_batches(tiny_sim, kw):
    """``prefetch`` (GPU training) reads the next shard in a thread: the batches are those of the plain stream."""
    shards = split_shards(tiny_sim, "train")
    plain = list(ShardStream(shards, 16, **kw).batches(3))
    ahead = list(ShardStream(shards, 16, prefetch=True, **kw).batches(3))
    assert len(plain) == len(ahead) > 0
    for a, b in zip(plain, ahead):
        for name in ("no2", "valid", "emission"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    if "max_scenes" in kw:
        assert sum(len(b.no2) for b in ahead) == kw["max_scenes"]


def test_prefetching_stops_at_a_bad_shard_with_its_own_error(tmp_path, tiny_sim):
    """A bad shard read ahead raises its one-line error when the stream reaches it, after the good batches before it."""
    bad = _copy_with(tiny_sim, tmp_path / "bad_sim", "emission", float("nan"))
    got = []
    with pytest.raises(InputFileError) as e:
        for b in ShardStream(split_shards(bad, "train"), 8, shuffle=False, prefetch=True).batches(0):
            got.append(b)
    assert "shard-00001.nc" in str(e.value) and "\n" not in str(e.value)
    assert sum(len(b.no2) for b in got) == 24  # the first shard's 24 scenes (3 batches of 8) came through


def test_trains_and_logs_an_mlflow_run(tmp_path, tiny_sim):
    import mlflow

    cfg = compose(tiny_overrides(tmp_path, tiny_sim, "train.epochs=3", "train.lr=3e-3"))
    objective = run(cfg)
    out = tmp_path / "outputs" / "train"
    info = json.loads((out / "run.json").read_text())
    assert info["objective"] == objective and info["model_uri"].startswith("models:/")
    assert info["objective_key"] == "val/detect/every/source_f1"
    meta = json.loads((out / "model" / "model.json").read_text())
    assert meta["input_scale"] == 1e5 and meta["tile_size"] == 64 and meta["model"]["stem"]["width"] == 8
    assert meta["model"]["_target_"] == "no2hotspots.model.net.HotspotNet"
    assert set(torch.load(out / "model" / "state_dict.pt", weights_only=True)) == set(
        torch.load(out / "checkpoints" / "last.pt", weights_only=True)["model"]
    )
    curve = pd.read_csv(tmp_path / "plots" / "train" / "learning_curve.csv")
    assert list(curve.epoch) == [0, 1, 2] and {"train_loss", "train_mse", "val_loss", "lr"} <= set(curve)
    assert curve.train_loss.iloc[-1] < curve.train_loss.iloc[0]  # it learns
    assert (curve.train_mse <= curve.train_loss + 1e-12).all()  # the MSE part of a loss that adds a Tversky term
    metrics = json.loads((tmp_path / "metrics" / "train.json").read_text())
    assert metrics["epochs_run"] == 3 and metrics["objective"] == objective

    mlflow.set_tracking_uri(resolve_uri(cfg))
    client = mlflow.MlflowClient()
    r = client.get_run(info["run_id"])
    params = r.data.params
    assert params["train.lr"] == "0.003" and params["model.stem.width"] == "8"
    assert params["model.head"] == "ShuffleHead" and params["train.optimizer"] == "Adam"
    assert len(params) < 80 and not any(k.startswith(("paths.", "data.files", "hydra")) for k in params)
    assert r.data.tags["data_version"].startswith("md5:") and r.data.tags["git_commit"]
    assert r.info.run_name.startswith("demo w8-16 lr0.003")
    assert [m.step for m in client.get_metric_history(r.info.run_id, "train/loss")] == [0, 1, 2]
    for k in ("val/loss", "train/mse", "lr", *(f"val/{m}" for m in EPOCH_METRICS)):
        assert k in r.data.metrics, k
    assert r.data.metrics["objective"] == objective
    arts = {a.path for a in client.list_artifacts(r.info.run_id, "figures")}
    assert {"figures/learning_curve.png", "figures/learning_curve.csv"} <= arts
    assert client.list_artifacts(r.info.run_id, "config")[0].path == "config/resolved.yaml"
    lm = client.get_logged_model(info["model_uri"].split("/")[-1])
    assert lm.source_run_id == r.info.run_id


def _copy_with(tiny_sim, dest, var: str, value: float):
    """A copy of the tiny dataset whose second training shard holds ``value`` at one pixel of ``var``."""
    import shutil

    import xarray as xr

    shutil.copytree(tiny_sim, dest)
    shard = split_shards(dest, "train")[1]
    with xr.open_dataset(shard) as ds:
        ds = ds.load()
    arr = ds[var].values
    arr[3, 10, 10] = value
    ds["valid"].values[3, 10, 10] = 1
    shard.unlink()
    ds.to_netcdf(shard)
    return dest


@pytest.mark.parametrize(
    "var, value, error, message",
    [
        ("emission", float("nan"), InputFileError, "emission (the training target) has 1 value"),
        ("no2", 1e35, NonFiniteLoss, "training loss became"),
    ],
)
def test_bad_data_stops_training_and_keeps_the_previous_model(tmp_path, tiny_sim, var, value, error, message):
    """A NaN target stops training naming the shard; a value that makes the loss NaN stops it before the optimizer
    step; either way model/ and run.json of the previous training stay as they were."""
    cfg = compose(tiny_overrides(tmp_path, tiny_sim, "train.epochs=1", "train.log_model=false"))
    run(cfg)
    out = tmp_path / "outputs" / "train"
    before = {
        p: p.read_bytes() for p in (out / "model" / "state_dict.pt", out / "model" / "model.json", out / "run.json")
    }
    bad_sim = _copy_with(tiny_sim, tmp_path / "bad_sim", var, value)
    bad = compose(tiny_overrides(tmp_path, bad_sim, "train.epochs=1", "train.log_model=false"))
    with pytest.raises(error) as e:
        run(bad)
    assert message in str(e.value) and "\n" not in str(e.value)
    if error is InputFileError:
        assert "shard-00001.nc" in str(e.value)
    assert {p: p.read_bytes() for p in before} == before
