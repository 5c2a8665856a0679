"""The evaluation in MLflow (``evaluate.log_to``):

* ``model_run`` (the pipeline's setting): added to the run of the model that produced the detections (``run_id`` in
  detect.json), which is resumed and finished again;
* ``new_run``: a new run in the same experiment, tagged ``evaluates_run=<that run id>``, so an evaluation started by
  hand with other settings never overwrites the pipeline's logged evaluation of that model;
* ``none``: nothing.

Metrics are logged as ``eval/<collection>/<table>/<metric>`` (``eval/osse/model/table2_rate_gt5000``), the output
folder as artifacts under ``eval/<collection>/``, and Table 2 side by side as an MLflow table
(``eval/<collection>/table2.json``, shown by the UI's compare view). The settings' digest is the tag
``eval.<collection>.settings``; replacing a logged evaluation made with other settings is logged as a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def log_evaluation(
    cfg: DictConfig,
    collection: str,
    mode: str,
    run_id: str | None,
    metrics: dict,
    out_dir: Path,
    side_by_side: pd.DataFrame,
    settings_digest: str,
) -> str | None:
    """Log to MLflow per ``mode``; returns the run id logged to (None when nothing was logged)."""
    if mode == "none":
        return None
    import mlflow
    from mlflow.exceptions import MlflowException

    from ..tracking import setup

    if mode == "model_run" and not run_id:
        log.warning("evaluate %s: detect.json has no run_id; metrics not logged to MLflow", collection)
        return None
    exp_id = setup(cfg)
    client = mlflow.MlflowClient()
    model_run = None
    if run_id:
        try:
            model_run = client.get_run(run_id)
        except MlflowException:
            log.warning(
                "evaluate %s: run %s (from detect.json) is not in the tracking store; %s",
                collection,
                run_id,
                "metrics not logged to MLflow" if mode == "model_run" else "the new run is not tied to it",
            )
            if mode == "model_run":
                return None
    numeric = {
        f"eval/{collection}/{k}": float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None
    }
    tag = f"eval.{collection}.settings"
    if mode == "model_run":
        old = model_run.data.tags.get(tag)
        if old and old != settings_digest:
            log.warning(
                "evaluate %s: replacing the evaluation logged on run %s with other settings (%s -> %s); use "
                "evaluate.log_to=new_run to keep both",
                collection,
                run_id,
                old,
                settings_digest,
            )
        ctx = mlflow.start_run(run_id=run_id)
    else:
        experiment = model_run.info.experiment_id if model_run is not None else exp_id
        tags = {"evaluates_run": run_id} if run_id else {}
        ctx = mlflow.start_run(experiment_id=experiment, run_name=f"evaluate {collection}", tags=tags)
    with ctx as active:
        mlflow.log_metrics(numeric)
        mlflow.set_tag(tag, settings_digest)
        mlflow.set_tag(f"eval.{collection}.evaluated", "true")
        mlflow.log_artifacts(str(out_dir), artifact_path=f"eval/{collection}")
        text = [c for c in side_by_side.columns if not pd.api.types.is_numeric_dtype(side_by_side[c])]
        mlflow.log_table(
            side_by_side.astype(dict.fromkeys(text, object)), artifact_file=f"eval/{collection}/table2.json"
        )
        logged = active.info.run_id
    log.info(
        "evaluate %s: logged %d metrics and %s to MLflow run %s (%s)", collection, len(numeric), out_dir, logged, mode
    )
    return logged
