"""The ``register`` stage: put the trained run's model in the MLflow Model Registry.

The new version gets the alias ``champion`` only if it beats the current champion on ``register.compare_metric`` (a
validation score the score stage logged to the training run; never a test metric) and both were scored on the same
data with the same scoring definitions; otherwise it gets ``challenger``. Writes ``<register.out_dir>/model.json``.
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


#: tags of a training run that say what its compared metric was measured on; versions are compared only when equal
VERSION_TAGS = ("score_data_version", "scoring_version")


def _is_number(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _better(a, b, greater_is_better: bool) -> bool:
    if not _is_number(a):
        return False
    if not _is_number(b):
        return True
    return a > b if greater_is_better else a < b


def _existing_version(client, model_name: str, run_id: str) -> int | None:
    import mlflow

    try:
        found = client.search_model_versions(f"name='{model_name}' and run_id='{run_id}'")
    except mlflow.exceptions.MlflowException:
        return None
    return min((int(v.version) for v in found), default=None)


def _versions(tags: dict) -> dict[str, str]:
    return {k: tags.get(k, "unknown") for k in VERSION_TAGS}


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
    on_version_mismatch: str = "keep",
) -> dict[str, Any]:
    """Register the model logged by ``run_id`` and set its alias; return what happened (for model.json).

    Uses MLflow's current tracking/registry URI. The compared value is the training run's metric
    ``compare_metric`` (a validation score from the score stage). Models are compared only when both were scored
    on the same data with the same scoring definitions (run tags :data:`VERSION_TAGS`, copied onto every model
    version); otherwise the champion stays (``on_version_mismatch: keep``, the new version becomes challenger) or
    the new version takes the alias (``replace``). A version without the metric never beats one that has it.
    """
    import mlflow

    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    if model_uri is None:
        from .load import _run_model_uri

        model_uri = _run_model_uri(client, run_id, "model")
    new_value = run.data.metrics.get(compare_metric)
    versions = _versions(run.data.tags)
    version = _register_version(client, run, model_name, model_uri, compare_metric, versions, tag_metrics)
    champ = _champion(client, model_name, champion_alias, compare_metric)
    wins, reason = _decide(version, new_value, versions, champ, compare_metric, greater_is_better, on_version_mismatch)
    alias = champion_alias if wins else challenger_alias
    client.set_registered_model_alias(model_name, alias, str(version))
    client.set_model_version_tag(model_name, str(version), "alias_given", alias)
    client.set_model_version_tag(model_name, str(version), "alias_reason", reason)
    log.info("%s version %d is %s (%s)", model_name, version, alias, reason)
    return {
        "name": model_name,
        "version": version,
        "alias": alias,
        "champion_version": version if wins else champ["version"],
        "previous_champion_version": champ["version"],
        "compare_metric": compare_metric,
        "greater_is_better": bool(greater_is_better),
        "new_value": new_value,
        "champion_value": champ["value"],
        "compared": reason.startswith(compare_metric),
        "reason": reason,
        **versions,
        "run_id": run_id,
        "model_uri": model_uri,
        "registered_uri": f"models:/{model_name}/{version}",
        "champion_uri": f"models:/{model_name}@{champion_alias}",
    }


def _register_version(client, run, model_name, model_uri, compare_metric, versions, tag_metrics) -> int:
    """Register the run's model (or, for a run registered before, update that version's tags); its number."""
    import mlflow

    from .. import tracking

    tags = {
        "data_version": run.data.tags.get("data_version", "unknown"),
        "git_commit": run.data.tags.get("git_commit", tracking.git_commit()),
        "compare_metric": compare_metric,
        **versions,
        **{k: f"{run.data.metrics[k]:.6g}" for k in tag_metrics if k in run.data.metrics},
    }
    try:
        client.get_registered_model(model_name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(
            model_name, description="no2hotspots CNN: 64x64 NO2 field -> relative emission map (see the training run)"
        )
    version = _existing_version(client, model_name, run.info.run_id)
    if version is None:
        return int(mlflow.register_model(model_uri, model_name, tags=tags).version)
    for k, v in tags.items():  # the same training run again (e.g. re-scored): no duplicate version
        client.set_model_version_tag(model_name, str(version), k, v)
    return version


def _champion(client, model_name: str, alias: str, compare_metric: str) -> dict:
    """The current champion's version, compared value and version tags (all None without a champion)."""
    import mlflow

    try:
        mv = client.get_model_version_by_alias(model_name, alias)
    except mlflow.exceptions.MlflowException:
        return {"version": None, "value": None, "versions": None}
    value = client.get_run(mv.run_id).data.metrics.get(compare_metric)
    return {"version": int(mv.version), "value": value, "versions": _versions(mv.tags)}


def _decide(version, new_value, versions, champ, compare_metric, greater_is_better, on_mismatch) -> tuple[bool, str]:
    """Does the new version take the champion alias, and why."""
    if champ["version"] is None:
        return True, "no champion yet"
    if champ["version"] == version:
        return True, "already the champion (re-registered run)"
    if champ["versions"] != versions:
        differ = [k for k in VERSION_TAGS if champ["versions"][k] != versions[k]]
        return (
            on_mismatch == "replace",
            f"not compared: {', '.join(differ)} differ from the champion's (v{champ['version']})",
        )
    wins = _better(new_value, champ["value"], greater_is_better)
    return wins, f"{compare_metric} {new_value} vs the champion's {champ['value']}"


def run(cfg: DictConfig) -> dict[str, Any]:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    r = cfg.register
    name = require(cfg, "register.model_name", lambda v: isinstance(v, str) and v.strip(), "must be a non-empty name")
    metric = require(cfg, "register.compare_metric", lambda v: isinstance(v, str) and v, "must name a metric")
    require(
        cfg,
        "register.compare_metric",
        lambda v: (
            not str(v).startswith(
                ("test/", "score/test/", "paper_world/", "score/paper_world/", "pairs/", "score/pairs/")
            )
        ),
        "must be a validation metric (score/val/...): models are never chosen on held-out splits (test, paper_world, "
        "pairs)",
    )
    mismatch = require(
        cfg, "register.on_version_mismatch", lambda v: v in ("keep", "replace"), "must be keep or replace"
    )
    run_json = Path(str(r.train_dir)) / "run.json"
    if not run_json.exists():
        raise InputFileError(run_json, "not found; run the train stage first")
    try:
        info = json.loads(run_json.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputFileError(run_json, f"not valid JSON ({e})") from None
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
        on_version_mismatch=str(mismatch),
    )
    result["tracking_uri"] = tracking.resolve_uri(cfg)
    write_json(Path(str(r.out_dir)) / "model.json", result)
    return result
