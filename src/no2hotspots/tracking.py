"""MLflow set-up shared by every stage that logs: SQLite store in ``mlruns/``, artifacts beside it.

MLflow is imported lazily (it is a heavy import) by the functions that need it.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig


def setup(cfg: DictConfig, experiment: str | None = None) -> str:
    """Point MLflow at ``cfg.tracking.uri`` and return the id of the experiment (created if missing)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    uri = str(cfg.tracking.uri)
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    name = experiment or str(cfg.tracking.experiment)
    exp = mlflow.get_experiment_by_name(name)
    if exp is None:
        root = Path(str(cfg.tracking.artifact_root)).resolve()
        root.mkdir(parents=True, exist_ok=True)
        exp_id = mlflow.create_experiment(name, artifact_location=root.as_uri())
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id
