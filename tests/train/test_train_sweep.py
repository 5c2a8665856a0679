"""A 2-trial Optuna sweep through the Hydra entry point: one MLflow parent run, two child runs, a stored study."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import TINY_MODEL


@pytest.mark.slow
def test_two_trial_sweep_groups_trials_under_one_parent_run(tmp_path, tiny_sim):
    import mlflow
    import optuna

    out = tmp_path
    cmd = [
        sys.executable,
        "-m",
        "no2hotspots.train",
        "--multirun",
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=2",
        f"hydra.sweep.dir={out}/sweep",
        f"paths.mlruns={out}/mlruns",
        f"paths.simulated={tiny_sim}",
        f"paths.outputs={out}/outputs",
        "train.epochs=1",
        "train.num_threads=1",
        *[o for o in TINY_MODEL if "widths" not in o and "stem.width" not in o],
    ]
    env = {**os.environ, "NO2HOTSPOTS_PROGRESS": "0"}
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Traceback" not in p.stderr and "FutureWarning" not in p.stderr

    mlflow.set_tracking_uri(f"sqlite:///{out}/mlruns/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["no2hotspots"], output_format="list")
    parents = [r for r in runs if r.data.tags.get("stage") == "sweep"]
    children = [r for r in runs if r.data.tags.get("stage") == "train"]
    assert len(parents) == 1 and len(children) == 2
    pid = parents[0].info.run_id
    assert all(c.data.tags["mlflow.parentRunId"] == pid for c in children)
    assert parents[0].info.status == "FINISHED"
    assert parents[0].data.metrics["n_trials_done"] == 2
    assert "best_objective" in parents[0].data.metrics
    # trials log no model and leave the DVC stage outputs alone
    assert not (out / "outputs" / "train").exists()
    assert not mlflow.MlflowClient().search_logged_models(experiment_ids=[children[0].info.experiment_id])
    # the study is persisted (a second sweep would resume it)
    study = optuna.load_study(study_name="no2hotspots-demo", storage=f"sqlite:///{out}/mlruns/optuna.db")
    assert len(study.trials) == 2 and {"train.lr", "model.dropout"} <= set(study.trials[0].params)


def test_a_parent_run_that_cannot_be_opened_ends_the_worker_in_one_line(tmp_path):
    """Hydra would turn the callback's exception into a warning and run the trials without their parent; the
    callback ends the worker instead (here: a study storage nobody listens on)."""
    from omegaconf import OmegaConf

    from no2hotspots.config import compose
    from no2hotspots.train.sweep import MlflowSweepParent

    cfg = compose([f"paths.mlruns={tmp_path}/mlruns"])
    storage = "postgresql+psycopg://nobody@127.0.0.1:9/optuna"  # port 9 (discard): connection refused
    OmegaConf.set_struct(cfg, False)
    cfg.hydra = {"sweeper": {"storage": storage, "study_name": "s"}}
    with pytest.raises(SystemExit) as e:
        MlflowSweepParent().on_multirun_start(cfg)
    msg = str(e.value)
    assert msg.startswith("sweep: could not open the study's parent MLflow run (") and "\n" not in msg
    assert os.environ.get("NO2HOTSPOTS_PARENT_RUN_ID") is None  # no parent handed to trials
