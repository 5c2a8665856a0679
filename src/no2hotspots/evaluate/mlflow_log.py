"""Add the evaluation to the MLflow run of the model that produced the detections.

Metrics are logged as ``eval/<collection>/<metric>`` (e.g. ``eval/osse/table2_rate_gt5000``), which the MLflow UI
groups under ``eval`` and the collection; tables and maps go to the artifact folder ``evaluate/<collection>/``.
The finished run is resumed (``mlflow.start_run(run_id=...)``) and finished again.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

log = logging.getLogger(__name__)


def log_to_run(cfg: DictConfig, collection: str, run_id: str | None, metrics: dict, out_dir: Path) -> bool:
    """Log ``metrics`` and the files of ``out_dir`` to run ``run_id``; warn and return False when there is none."""
    if not run_id:
        log.warning("evaluate %s: detect.json has no run_id; metrics not logged to MLflow", collection)
        return False
    import mlflow
    from mlflow.exceptions import MlflowException

    from ..tracking import setup

    setup(cfg)
    client = mlflow.MlflowClient()
    try:
        client.get_run(run_id)
    except MlflowException:
        log.warning(
            "evaluate %s: run %s (from detect.json) is not in %s; metrics not logged to MLflow",
            collection,
            run_id,
            cfg.tracking.uri,
        )
        return False
    numeric = {
        f"eval/{collection}/{k}": float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None
    }
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics(numeric)
        mlflow.set_tag(f"eval.{collection}.evaluated", "true")
        mlflow.log_artifacts(str(out_dir), artifact_path=f"evaluate/{collection}")
    log.info("evaluate %s: logged %d metrics and %s to MLflow run %s", collection, len(numeric), out_dir, run_id)
    return True
