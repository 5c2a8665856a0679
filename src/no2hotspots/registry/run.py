"""The ``register`` stage: put the trained run's model in the MLflow Model Registry.

The new version gets the alias ``champion`` only if it beats the current champion on ``register.compare_metric``
(a test metric of the training run); otherwise it gets ``challenger``. Writes ``<register.out_dir>/model.json``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ..atomic import write_json
from ..config import require
from ..errors import InputFileError

log = logging.getLogger(__name__)


def register_run(
    run_id: str,
    *,
    model_name: str,
    compare_metric: str,
    greater_is_better: bool = True,
    champion_alias: str = "champion",
    challenger_alias: str = "challenger",
    model_uri: str | None = None,
    tag_metrics: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """Register the model logged by ``run_id`` and set its alias; return what happened (for model.json).

    Uses MLflow's current tracking/registry URI. The compared value is the training run's metric
    ``compare_metric``; a version without it never becomes champion over one that has it.
    """
    import mlflow

    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    if model_uri is None:
        from .load import _run_model_uri

        model_uri = _run_model_uri(client, run_id, "model")
    new_value = run.data.metrics.get(compare_metric)
    from .. import tracking

    tags = {
        "data_version": run.data.tags.get("data_version", "unknown"),
        "git_commit": run.data.tags.get("git_commit", tracking.git_commit()),
        "compare_metric": compare_metric,
    }
    for k in tag_metrics:
        if k in run.data.metrics:
            tags[k] = f"{run.data.metrics[k]:.6g}"
    try:
        client.get_registered_model(model_name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(
            model_name,
            description="no2hotspots CNN: 64x64 NO2 field -> relative emission map (see the training run for details)",
        )
    mv = mlflow.register_model(model_uri, model_name, tags=tags)
    version = int(mv.version)

    champ_version, champ_value = None, None
    try:
        champ = client.get_model_version_by_alias(model_name, champion_alias)
        champ_version = int(champ.version)
        champ_value = client.get_run(champ.run_id).data.metrics.get(compare_metric)
    except mlflow.exceptions.MlflowException:
        champ = None

    def better(a, b) -> bool:
        if a is None or (isinstance(a, float) and math.isnan(a)):
            return False
        if b is None or (isinstance(b, float) and math.isnan(b)):
            return True
        return a > b if greater_is_better else a < b

    if champ is None or better(new_value, champ_value):
        client.set_registered_model_alias(model_name, champion_alias, str(version))
        alias = champion_alias
        new_champion = version
        log.info(
            "%s version %d is the new %s (%s %s vs %s)",
            model_name,
            version,
            champion_alias,
            compare_metric,
            new_value,
            champ_value,
        )
    else:
        client.set_registered_model_alias(model_name, challenger_alias, str(version))
        alias = challenger_alias
        new_champion = champ_version
        log.info(
            "%s version %d is a %s: %s %s does not beat %s's %s",
            model_name,
            version,
            challenger_alias,
            compare_metric,
            new_value,
            champion_alias,
            champ_value,
        )
    client.set_model_version_tag(model_name, str(version), "alias_given", alias)
    return {
        "name": model_name,
        "version": version,
        "alias": alias,
        "champion_version": new_champion,
        "previous_champion_version": champ_version,
        "compare_metric": compare_metric,
        "greater_is_better": bool(greater_is_better),
        "new_value": new_value,
        "champion_value": champ_value,
        "run_id": run_id,
        "model_uri": model_uri,
        "registered_uri": f"models:/{model_name}/{version}",
        "champion_uri": f"models:/{model_name}@{champion_alias}",
    }


def run(cfg: DictConfig) -> dict[str, Any]:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    r = cfg.register
    name = require(cfg, "register.model_name", lambda v: isinstance(v, str) and v.strip(), "must be a non-empty name")
    metric = require(cfg, "register.compare_metric", lambda v: isinstance(v, str) and v, "must name a metric")
    run_json = Path(str(r.train_dir)) / "run.json"
    if not run_json.exists():
        raise InputFileError(run_json, "not found; run the train stage first")
    info = json.loads(run_json.read_text())
    if not info.get("run_id"):
        raise InputFileError(run_json, "has no run_id")
    if not info.get("model_uri"):
        raise InputFileError(run_json, "the training run logged no model (train.log_model=false?)")
    from .. import tracking

    tracking.setup(cfg)
    result = register_run(
        info["run_id"],
        model_name=name,
        compare_metric=metric,
        greater_is_better=bool(r.greater_is_better),
        champion_alias=str(r.champion_alias),
        challenger_alias=str(r.challenger_alias),
        model_uri=info["model_uri"],
        tag_metrics=list(r.tag_metrics or []),
    )
    result["tracking_uri"] = str(cfg.tracking.uri)
    write_json(Path(str(r.out_dir)) / "model.json", result)
    return result
