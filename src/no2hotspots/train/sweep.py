"""Hydra callback that groups an Optuna sweep in MLflow: one parent run, every trial a child run.

Registered by ``conf/hparams_search/optuna.yaml`` under ``hydra.callbacks``. ``on_multirun_start`` opens the parent
run and exports its id in ``NO2HOTSPOTS_PARENT_RUN_ID`` (the trials run in this process with Hydra's basic launcher,
and ``train.run`` starts its run as a child of it); ``on_multirun_end`` logs the best trial and closes the parent.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from .run import PARENT_ENV

log = logging.getLogger(__name__)


class MlflowSweepParent(Callback):
    def __init__(self, run_name: str | None = None, objective: str = "objective") -> None:
        self.run_name = run_name
        self.objective = objective
        self.parent_id: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        import mlflow

        from .. import tracking

        exp_id = tracking.setup(config)
        client = mlflow.MlflowClient()
        sweeper = config.hydra.sweeper
        name = self.run_name or f"sweep {sweeper.get('study_name', '')} n_trials={sweeper.get('n_trials')}"
        run = client.create_run(
            exp_id,
            run_name=name,
            tags={
                "stage": "sweep",
                "git_commit": tracking.git_commit(),
                "study_name": str(sweeper.get("study_name", "")),
                "direction": str(sweeper.get("direction", "")),
            },
        )
        self.parent_id = run.info.run_id
        params = {"sweep.n_trials": sweeper.get("n_trials"), "sweep.storage": sweeper.get("storage")}
        for k, v in (sweeper.get("params") or {}).items():
            params[f"sweep.space.{k}"] = str(v)
        client.log_batch(self.parent_id, params=[mlflow.entities.Param(k, str(v)) for k, v in params.items()])
        os.environ[PARENT_ENV] = self.parent_id
        log.info("sweep parent MLflow run %s", self.parent_id)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        import mlflow

        if self.parent_id is None:
            return
        client = mlflow.MlflowClient()
        exp_id = client.get_run(self.parent_id).info.experiment_id
        children = client.search_runs([exp_id], filter_string=f"tags.mlflow.parentRunId = '{self.parent_id}'")
        values = [(r.data.metrics[self.objective], r) for r in children if self.objective in r.data.metrics]
        if values:
            best_value, best = max(values, key=lambda v: v[0])
            client.log_metric(self.parent_id, f"best_{self.objective}", best_value)
            client.set_tag(self.parent_id, "best_run_id", best.info.run_id)
        client.log_metric(self.parent_id, "n_trials_done", len(children))
        client.set_terminated(self.parent_id)
        os.environ.pop(PARENT_ENV, None)
