"""Where stages log: URI precedence, a copied SQLite store never writes into the original, safe first use."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from no2hotspots import tracking
from no2hotspots.config import compose


def test_explicit_uri_wins_then_the_environment_then_the_sqlite_default(monkeypatch, tmp_path):
    from omegaconf import OmegaConf

    cfg = compose([f"paths.mlruns={tmp_path}/mlruns"])
    with_uri = OmegaConf.merge(cfg, {"tracking": {"uri": "http://127.0.0.1:1"}})
    without = OmegaConf.merge(cfg, {"tracking": {"uri": None}})
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://team:5050")
    assert tracking.resolve_uri(with_uri) == "http://127.0.0.1:1"
    assert tracking.resolve_uri(with_uri.tracking) == "http://127.0.0.1:1"
    assert tracking.resolve_uri(without) == "http://team:5050"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking.resolve_uri(without) == f"sqlite:///{tmp_path}/mlruns/mlflow.db"


def test_mask_password():
    assert tracking.mask_password("postgresql+psycopg://u:s3cr%40t@h:5433/optuna") == (
        "postgresql+psycopg://u:***@h:5433/optuna"
    )
    assert tracking.mask_password("sqlite:///x/optuna.db") == "sqlite:///x/optuna.db"


def _cfg(root: Path, experiment: str = "moved"):
    return compose(
        [
            f"paths.mlruns={root}/mlruns",
            f"tracking.uri=sqlite:///{root}/mlruns/mlflow.db",
            f"tracking.artifact_root={root}/mlruns/artifacts",
            f"tracking.experiment={experiment}",
        ]
    )


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("legacy", [False, True], ids=["tagged", "store-made-before-the-tag"])
def test_a_copied_store_logs_into_its_own_folder_never_the_original(tmp_path, legacy):
    import mlflow

    a, b = tmp_path / "a", tmp_path / "b"
    cfg_a = _cfg(a)
    if legacy:  # what tracking.setup did before: an absolute artifact location and no store tag
        (a / "mlruns").mkdir(parents=True)
        mlflow.set_tracking_uri(str(cfg_a.tracking.uri))
        exp_id = mlflow.create_experiment("moved", artifact_location=(a / "mlruns" / "artifacts").as_uri())
        assert tracking.setup(cfg_a) == exp_id
    else:
        exp_id = tracking.setup(cfg_a)
        assert mlflow.get_experiment(exp_id).tags[tracking.STORE_TAG] == str(a.resolve() / "mlruns")
    with mlflow.start_run(experiment_id=exp_id) as run:
        mlflow.log_text("first", "notes/first.txt")
    old_id = run.info.run_id
    shutil.copytree(a, b)
    before = _files(a)

    cfg_b = _cfg(b)
    exp_b = tracking.setup(cfg_b)  # opened from the copy: locations are rebased onto b
    assert exp_b == exp_id
    exp = mlflow.get_experiment(exp_b)
    assert exp.artifact_location == (b / "mlruns" / "artifacts").resolve().as_uri()
    assert exp.tags[tracking.STORE_TAG] == str(b.resolve() / "mlruns")
    old = mlflow.get_run(old_id)
    assert old.info.artifact_uri.startswith((b / "mlruns").resolve().as_uri())
    assert mlflow.artifacts.load_text(f"runs:/{old_id}/notes/first.txt") == "first"
    with mlflow.start_run(experiment_id=exp_b) as run2:
        mlflow.log_text("second", "notes/second.txt")
    new_file = b / "mlruns" / "artifacts" / run2.info.run_id / "artifacts" / "notes" / "second.txt"
    assert new_file.read_text() == "second"
    assert _files(a) == before  # the original is untouched
    assert tracking.setup(cfg_b) == exp_b  # opening it again in place changes nothing
    assert tracking.relocate_store(b / "mlruns" / "mlflow.db", b / "mlruns" / "artifacts") == 0


SETUP_AND_LOG = """
import sys, time
from no2hotspots.config import compose
from no2hotspots import tracking
cfg = compose([f"paths.mlruns={sys.argv[1]}", f"tracking.uri=sqlite:///{sys.argv[1]}/mlflow.db",
               f"tracking.artifact_root={sys.argv[1]}/artifacts", "tracking.experiment=together"])
import mlflow  # imported before the start line, so that the processes reach the store together
while time.time() < float(sys.argv[2]):
    time.sleep(0.005)
exp = tracking.setup(cfg)
with mlflow.start_run(experiment_id=exp):
    mlflow.log_param("worker", sys.argv[3])
print(exp)
"""


@pytest.mark.slow
def test_two_processes_can_open_a_fresh_store_at_once(tmp_path):
    import mlflow

    store = tmp_path / "fresh"
    go = time.time() + 10  # every process has imported mlflow by then, on a busy 2-core machine too
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SETUP_AND_LOG, str(store), str(go), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_out, err) in zip(procs, results):
        assert p.returncode == 0, err[-2000:]
    assert len({out.strip() for out, _ in results}) == 1  # one experiment
    mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["together"], output_format="list")
    assert sorted(r.data.params["worker"] for r in runs) == ["0", "1"]


def test_a_tag_another_process_set_first_is_no_error_a_different_one_is(tmp_path, monkeypatch):
    # two sweep workers on one server tag the new experiment at once; PostgreSQL refuses the second insert of the tag
    # (a CI run: "duplicate key value violates unique constraint experiment_tag_pk"). Played here on a real SQLite
    # store: the other process's insert lands first, then MLflow's refusal reaches this one.
    import mlflow
    from mlflow.exceptions import MlflowException

    exp_id = tracking.setup(_cfg(tmp_path, "race"))
    real = mlflow.MlflowClient.set_experiment_tag

    def raced(self, experiment_id, key, value, other_value):
        real(self, experiment_id, key, other_value)  # the other worker's write
        raise MlflowException("duplicate key value violates unique constraint", error_code="BAD_REQUEST")

    monkeypatch.setattr(mlflow.MlflowClient, "set_experiment_tag", lambda s, e, k, v: raced(s, e, k, v, v))
    tracking._tag_experiment(exp_id, "no2hotspots.race", "same")  # the tag holds what was asked: fine
    assert mlflow.get_experiment(exp_id).tags["no2hotspots.race"] == "same"
    monkeypatch.setattr(mlflow.MlflowClient, "set_experiment_tag", lambda s, e, k, v: raced(s, e, k, v, "other"))
    with pytest.raises(MlflowException, match="duplicate key"):
        tracking._tag_experiment(exp_id, "no2hotspots.race2", "mine")
