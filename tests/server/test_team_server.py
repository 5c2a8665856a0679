"""The team tracking server end to end: train against it, register, move `champion`, load by alias through it;
two sweep workers on one PostgreSQL study; a SQLite store migrated into it; start/stop leave nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from no2hotspots.config import compose

from .conftest import TINY_MODEL, _stop_and_check, alive, group_members, require_postgres, server_cfg, tiny_overrides


def _model_uri(client, info: dict) -> str:
    if info.get("model_uri"):
        return info["model_uri"]
    run = client.get_run(info["run_id"])
    models = client.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{info['run_id']}'"
    )
    return f"models:/{models[0].model_id}"


def _scenes(sim: Path, n: int = 4):
    import xarray as xr

    shard = sorted((sim / "val").glob("*.nc"))[0]
    with xr.open_dataset(shard) as ds:
        return ds["no2"].values[:n], ds["valid"].values[:n]


def _train(tmp_path: Path, sim: Path, *extra: str) -> dict:
    from no2hotspots.train.run import run

    cfg = compose(tiny_overrides(tmp_path, sim, "train.epochs=1", *extra))
    run(cfg)
    return json.loads((Path(str(cfg.train.out_dir)) / "run.json").read_text())


@pytest.mark.slow
def test_train_register_and_load_the_champion_through_the_server(team_server, tiny_sim, tmp_path):
    import mlflow

    from no2hotspots.registry.load import from_dir, load_model

    url = team_server.url
    info = _train(tmp_path, tiny_sim, f"tracking.uri={url}", "tracking.experiment=server-train")
    assert not (tmp_path / "mlruns").exists()  # nothing was tracked locally
    client = mlflow.MlflowClient(tracking_uri=url, registry_uri=url)
    run = client.get_run(info["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")  # stored by the server, no client path
    served = Path(team_server.state["artifacts"])
    assert list(served.rglob("state_dict.pt")) and list(served.rglob("resolved.yaml"))

    name = "server-test-cnn"
    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)
    mv = mlflow.register_model(_model_uri(client, info), name)
    client.set_registered_model_alias(name, "champion", mv.version)

    loaded = load_model(f"models:/{name}@champion", url)
    assert loaded.meta["run_id"] == info["run_id"] and loaded.meta["version"] == int(mv.version)
    no2, valid = _scenes(tiny_sim)
    local = from_dir(tmp_path / "outputs" / "train" / "model")
    np.testing.assert_array_equal(loaded.predict(no2, valid), local.predict(no2, valid))


def _worker(i: int, tmp_path: Path, sim: Path, storage: str, url: str, study: str) -> subprocess.Popen:
    """One worker as docs/team.md runs it: the storage URL without its password, which libpq reads from PGPASSWORD."""
    from no2hotspots.server.run import without_password

    password = storage.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    storage = without_password(storage)
    cmd = [
        sys.executable,
        "-m",
        "no2hotspots.train",
        "--multirun",
        "hparams_search=optuna_parallel",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.n_trials=2",
        f"hydra.sweeper.study_name={study}",
        f"hydra.sweep.dir={tmp_path}/worker{i}",
        f"tracking.uri={url}",
        "tracking.experiment=server-sweep",
        f"paths.mlruns={tmp_path}/mlruns",
        f"paths.simulated={sim}",
        f"paths.outputs={tmp_path}/outputs",
        "train.epochs=1",
        "train.num_threads=1",
        *[o for o in TINY_MODEL if "widths" not in o and "stem.width" not in o],
    ]
    env = {**os.environ, "NO2HOTSPOTS_PROGRESS": "0", "PGPASSWORD": password}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_two_sweep_workers_share_one_postgres_study_and_one_parent_run(team_server, tiny_sim, tmp_path):
    import mlflow
    import optuna

    study_name = f"team-{uuid.uuid4().hex[:8]}"
    procs = [_worker(i, tmp_path, tiny_sim, team_server.storage, team_server.url, study_name) for i in range(2)]
    try:
        outs = [p.communicate(timeout=540) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
        assert "Traceback" not in err

    study = optuna.load_study(study_name=study_name, storage=team_server.storage)
    trials = study.trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]  # 4 trials, no number twice
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    # both workers ran at once: some trial of one overlaps in time with a trial of the other (a worker's own
    # trials run one after another)
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    assert any(spans[k + 1][0] < spans[k][1] for k in range(len(spans) - 1))

    client = mlflow.MlflowClient(tracking_uri=team_server.url)
    exp = client.get_experiment_by_name("server-sweep")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.study_name = '{study_name}'")
    assert len(runs) == 1  # one parent for the study, whichever worker made it
    parent = runs[0]
    children = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(children) == 4 and all(c.data.tags["stage"] == "train" for c in children)
    assert study.user_attrs["mlflow_parent_run_id"] == parent.info.run_id
    parent = client.get_run(parent.info.run_id)
    assert parent.info.status == "FINISHED"
    workers = {k: v for k, v in parent.data.tags.items() if k.startswith("sweep.worker.")}
    assert len(workers) == 2 and set(workers.values()) == {"done"}
    assert parent.data.metrics["n_trials_done"] == 4
    assert parent.data.tags["best_run_id"] in {c.info.run_id for c in children}
    password = team_server.storage.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert password not in json.dumps(parent.data.params) + json.dumps(parent.data.tags)
    for _, err in outs:
        assert password not in err  # not even in the workers' logs


@pytest.mark.slow
def test_a_sqlite_store_migrates_into_the_server_with_its_champion(team_server, tiny_sim, tmp_path):
    import mlflow

    from no2hotspots.registry.load import load_model
    from no2hotspots.server.migrate import RUN_TAG, migrate

    local = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    first = _train(tmp_path / "one", tiny_sim, f"tracking.uri={local}", "tracking.experiment=to-migrate")
    second = _train(tmp_path / "two", tiny_sim, f"tracking.uri={local}", "tracking.experiment=to-migrate")
    src = mlflow.MlflowClient(tracking_uri=local, registry_uri=local)
    mlflow.set_tracking_uri(local)
    mlflow.set_registry_uri(local)
    name = "migrated-cnn"
    v1 = mlflow.register_model(_model_uri(src, first), name)
    v2 = mlflow.register_model(_model_uri(src, second), name)
    src.set_registered_model_alias(name, "champion", v1.version)
    src.set_registered_model_alias(name, "challenger", v2.version)
    no2, valid = _scenes(tiny_sim)
    want = load_model(f"models:/{name}@champion", local).predict(no2, valid)

    counts = migrate(local, team_server.url)
    assert counts["runs"] == 2 and counts["versions"] == 2 and counts["aliases"] == 2

    url = team_server.url
    dst = mlflow.MlflowClient(tracking_uri=url, registry_uri=url)
    champ = load_model(f"models:/{name}@champion", url)
    np.testing.assert_array_equal(champ.predict(no2, valid), want)
    copied = dst.get_run(champ.meta["run_id"])
    assert copied.data.tags[RUN_TAG] == first["run_id"] and champ.meta["version"] == int(v1.version)
    assert str(dst.get_model_version_by_alias(name, "challenger").version) == str(v2.version)
    original = src.get_run(first["run_id"])
    assert copied.data.params == original.data.params
    assert copied.data.metrics == original.data.metrics
    for key in original.data.metrics:
        hist = [(m.step, m.value) for m in dst.get_metric_history(copied.info.run_id, key)]
        assert sorted(hist) == sorted((m.step, m.value) for m in src.get_metric_history(first["run_id"], key))
    assert {k: v for k, v in copied.data.tags.items() if k != RUN_TAG} == original.data.tags
    assert copied.info.start_time == original.info.start_time and copied.info.status == "FINISHED"
    assert {a.path for a in dst.list_artifacts(copied.info.run_id)} == {
        a.path for a in src.list_artifacts(first["run_id"])
    }
    assert copied.info.artifact_uri.startswith("mlflow-artifacts:/")

    again = migrate(local, url)  # idempotent: nothing new to copy
    assert set(again.values()) == {0}


@pytest.mark.slow
def test_start_is_idempotent_and_stop_ends_every_process(open_dir):
    require_postgres()
    from no2hotspots.server import run as server

    cfg = server_cfg(open_dir)
    try:
        state = server.start(cfg)
        st = server.status(cfg)
        assert st["postgres_running"] and st["mlflow_running"]
        assert len(group_members(state["mlflow_pid"])) >= 1
        again = server.start(cfg)  # both already run: same processes
        assert (again["mlflow_pid"], again["postgres_pid"]) == (state["mlflow_pid"], state["postgres_pid"])
        assert oct((open_dir / "server" / "server.json").stat().st_mode & 0o777) == "0o600"
    finally:
        _stop_and_check(cfg)
    assert not alive(state["mlflow_pid"]) and not alive(state["postgres_pid"])
    st = server.status(cfg)
    assert not st["postgres_running"] and not st["mlflow_running"]
    assert server.stop(cfg) == {"mlflow": False, "postgres": False}
