"""Copy an MLflow store (the project's SQLite store) into another one (the team server).

MLflow 3.17's own migration tool, ``mlflow migrate-filestore``, only turns a legacy file store into a *SQLite*
database; nothing in MLflow copies a database store into a server. This small copier uses only ``MlflowClient``:

- experiments (by name; tags), active runs with their tags, params, the full history of every metric (steps and
  timestamps), start/end time and status, and all artifacts (uploaded through the server); parent/child links are
  kept (sweep trials stay under their sweep's run);
- logged models (MLflow 3 ``LoggedModel``: name, type, params, tags, artifacts), linked to their copied run;
- registered models (description, tags), their versions in order (tags, description, source remapped to the copied
  logged model or run) and aliases (``champion`` points at the copy of the same version).

It is idempotent: every copy is tagged with what it was copied from (``no2hotspots.migrated_from*``), and a second
call copies only what is new. Not copied: deleted runs/experiments, traces, evaluation datasets, dataset inputs,
the link between a metric and a logged model. Version numbers are kept when the source numbering has no gaps;
each copied version records its source number in the tag ``no2hotspots.migrated_from_version``.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..errors import UserError

log = logging.getLogger(__name__)

RUN_TAG = "no2hotspots.migrated_from"
MODEL_TAG = "no2hotspots.migrated_from_model"
VERSION_TAG = "no2hotspots.migrated_from_version"
_BATCH = 500


def _all(fetch) -> list:
    """Every item of a paged MLflow search: ``fetch(page_token)`` returns a PagedList."""
    out, token = [], None
    while True:
        page = fetch(token)
        out.extend(page)
        token = page.token
        if not token:
            return out


def migrate(source_uri: str, target_uri: str, experiments: list[str] | None = None) -> dict[str, int]:
    """Copy ``source_uri``'s experiments, runs, logged models and registered models into ``target_uri``."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    from .. import tracking

    if source_uri == target_uri:
        raise UserError(f"server.migrate: source and target are the same store ({source_uri})")
    db = tracking.sqlite_path(source_uri)
    if db is not None:
        if not db.exists():
            raise UserError(f"server.migrate.source: {db} does not exist")
        with tracking.store_lock(db):
            tracking.relocate_store(db, db.parent / "artifacts")
    src = MlflowClient(tracking_uri=source_uri, registry_uri=source_uri)
    dst = MlflowClient(tracking_uri=target_uri, registry_uri=target_uri)
    counts = {"experiments": 0, "runs": 0, "logged_models": 0, "registered_models": 0, "versions": 0, "aliases": 0}
    run_map: dict[str, str] = {}
    model_map: dict[str, str] = {}

    exps = _all(lambda t: src.search_experiments(view_type=ViewType.ACTIVE_ONLY, page_token=t))
    if experiments:
        wanted = set(experiments)
        missing = wanted - {e.name for e in exps}
        if missing:
            raise UserError(f"server.migrate.experiments: not in {source_uri}: {', '.join(sorted(missing))}")
        exps = [e for e in exps if e.name in wanted]
    for exp in exps:
        runs = _all(
            lambda t, e=exp: src.search_runs([e.experiment_id], run_view_type=ViewType.ACTIVE_ONLY, page_token=t)
        )
        if not runs and exp.name == "Default":
            continue
        dst_exp = _experiment(dst, exp, counts)
        done = {
            r.data.tags[RUN_TAG]: r.info.run_id
            for r in _all(
                lambda t, e=dst_exp: dst.search_runs(
                    [e], filter_string=f"tags.`{RUN_TAG}` LIKE '%'", run_view_type=ViewType.ALL, page_token=t
                )
            )
        }
        run_map.update(done)
        for run in _parents_first(runs):
            if run.info.run_id in run_map:
                continue
            run_map[run.info.run_id] = _copy_run(src, dst, run, dst_exp, run_map, source_uri)
            counts["runs"] += 1
        _copy_logged_models(src, dst, exp.experiment_id, dst_exp, run_map, model_map, counts)
    _copy_registry(src, dst, run_map, model_map, counts)
    log.info(
        "migrated %s from %s to %s", counts, tracking.mask_password(source_uri), tracking.mask_password(target_uri)
    )
    return counts


def _experiment(dst, exp, counts) -> str:
    from .. import tracking

    found = dst.get_experiment_by_name(exp.name)
    if found is not None:
        return found.experiment_id
    tags = {k: v for k, v in (exp.tags or {}).items() if k != tracking.STORE_TAG}
    counts["experiments"] += 1
    return dst.create_experiment(exp.name, tags=tags)


def _parents_first(runs) -> list:
    by_id = {r.info.run_id: r for r in runs}

    def depth(r, seen=()):
        parent = r.data.tags.get("mlflow.parentRunId")
        if not parent or parent not in by_id or parent in seen:
            return 0
        return 1 + depth(by_id[parent], (*seen, r.info.run_id))

    return sorted(runs, key=lambda r: (depth(r), r.info.start_time or 0))


def _copy_run(src, dst, run, dst_exp: str, run_map: dict[str, str], source_uri: str) -> str:
    import mlflow
    from mlflow.entities import Metric, Param, RunStatus

    tags = dict(run.data.tags)
    parent = tags.pop("mlflow.parentRunId", None)
    if parent:
        if parent in run_map:
            tags["mlflow.parentRunId"] = run_map[parent]
        else:
            log.warning("run %s: its parent %s is not copied; the copy has no parent", run.info.run_id, parent)
    if "sweep_parent" in tags and tags["sweep_parent"] in run_map:
        tags["sweep_parent"] = run_map[tags["sweep_parent"]]
    tags[RUN_TAG] = run.info.run_id
    new = dst.create_run(dst_exp, start_time=run.info.start_time, tags=tags, run_name=run.info.run_name)
    rid = new.info.run_id
    params = [Param(k, v) for k, v in run.data.params.items()]
    for i in range(0, len(params), 100):
        dst.log_batch(rid, params=params[i : i + 100])
    metrics = []
    for key in run.data.metrics:
        metrics += [Metric(m.key, m.value, m.timestamp, m.step) for m in src.get_metric_history(run.info.run_id, key)]
    for i in range(0, len(metrics), _BATCH):
        dst.log_batch(rid, metrics=metrics[i : i + _BATCH])
    if src.list_artifacts(run.info.run_id):
        with tempfile.TemporaryDirectory() as d:
            local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=d, tracking_uri=source_uri)
            dst.log_artifacts(rid, local)
    if RunStatus.is_terminated(RunStatus.from_string(run.info.status)):
        dst.set_terminated(rid, status=run.info.status, end_time=run.info.end_time)
    else:
        log.warning("run %s is still %s in the source; its copy stays RUNNING", run.info.run_id, run.info.status)
    return rid


def _copy_logged_models(src, dst, src_exp: str, dst_exp: str, run_map, model_map, counts) -> None:
    import mlflow
    from mlflow.entities import LoggedModelStatus

    copied = {
        m.tags[MODEL_TAG]: m.model_id
        for m in _all(lambda t: dst.search_logged_models(experiment_ids=[dst_exp], page_token=t))
        if MODEL_TAG in (m.tags or {})
    }
    model_map.update(copied)
    for lm in _all(lambda t: src.search_logged_models(experiment_ids=[src_exp], page_token=t)):
        if lm.model_id in model_map:
            continue
        if lm.status != LoggedModelStatus.READY:
            log.warning("logged model %s is %s in the source: not copied", lm.model_id, lm.status)
            continue
        new = dst.create_logged_model(
            experiment_id=dst_exp,
            name=lm.name,
            source_run_id=run_map.get(lm.source_run_id) if lm.source_run_id else None,
            tags={**(lm.tags or {}), MODEL_TAG: lm.model_id},
            params=dict(lm.params or {}),
            model_type=lm.model_type,
        )
        with tempfile.TemporaryDirectory() as d:
            local = mlflow.artifacts.download_artifacts(artifact_uri=lm.artifact_location, dst_path=d)
            dst.log_model_artifacts(new.model_id, local)
        dst.finalize_logged_model(new.model_id, LoggedModelStatus.READY)
        model_map[lm.model_id] = new.model_id
        counts["logged_models"] += 1


def _copy_registry(src, dst, run_map, model_map, counts) -> None:
    from mlflow.exceptions import MlflowException

    for rm in _all(lambda t: src.search_registered_models(page_token=t)):
        try:
            dst.get_registered_model(rm.name)
        except MlflowException:
            dst.create_registered_model(rm.name, tags=dict(rm.tags or {}), description=rm.description)
            counts["registered_models"] += 1
        have = {
            mv.tags.get(VERSION_TAG): mv.version
            for mv in _all(lambda t, n=rm.name: dst.search_model_versions(f"name = '{n}'", page_token=t))
            if VERSION_TAG in (mv.tags or {})
        }
        versions = sorted(
            _all(lambda t, n=rm.name: src.search_model_versions(f"name = '{n}'", page_token=t)),
            key=lambda v: int(v.version),
        )
        vmap = {int(k): int(v) for k, v in have.items()}
        for mv in versions:
            if int(mv.version) in vmap:
                continue
            source, model_id = _remap_source(mv, run_map, model_map)
            new = dst.create_model_version(
                rm.name,
                source=source,
                run_id=run_map.get(mv.run_id) if mv.run_id else None,
                tags={**(mv.tags or {}), VERSION_TAG: str(mv.version)},
                description=mv.description,
                model_id=model_id,
            )
            vmap[int(mv.version)] = int(new.version)
            counts["versions"] += 1
        aliases = src.get_registered_model(rm.name).aliases or {}
        current = dst.get_registered_model(rm.name).aliases or {}
        for alias, version in aliases.items():
            target = vmap.get(int(version))
            if target is None:
                log.warning("%s@%s: version %s was not copied; alias left out", rm.name, alias, version)
                continue
            if str(current.get(alias)) != str(target):
                dst.set_registered_model_alias(rm.name, alias, str(target))
                counts["aliases"] += 1


def _remap_source(mv, run_map, model_map) -> tuple[str, str | None]:
    """A version's source in the target: the copied logged model, else the copied run's path."""
    model_id = getattr(mv, "model_id", None)
    src = mv.source or ""
    if model_id and model_id in model_map:
        return f"models:/{model_map[model_id]}", model_map[model_id]
    if src.startswith("models:/") and src[len("models:/") :] in model_map:
        new = model_map[src[len("models:/") :]]
        return f"models:/{new}", new
    if src.startswith("runs:/"):
        rest = src[len("runs:/") :]
        rid, _, path = rest.partition("/")
        if rid in run_map:
            return f"runs:/{run_map[rid]}/{path}", None
    if mv.run_id in run_map and "/artifacts/" in src:
        return f"runs:/{run_map[mv.run_id]}/{src.split('/artifacts/', 1)[1]}", None
    raise UserError(f"server.migrate: cannot map the source {src!r} of {mv.name} version {mv.version} to the target")


def migrate_from_config(cfg: DictConfig) -> dict[str, Any]:
    from .run import tracking_url

    source = str(OmegaConf.select(cfg, "server.migrate.source"))
    target = OmegaConf.select(cfg, "server.migrate.target") or tracking_url(cfg)
    exps = OmegaConf.select(cfg, "server.migrate.experiments", default=None)
    if isinstance(exps, str):
        exps = [exps]
    from .. import tracking
    from .mlflow_server import health

    if tracking.is_server(str(target)) and not health(str(target)):
        raise UserError(
            f"server.migrate.target: no MLflow server answers on {target}; start it (make server) or set the key"
        )
    counts = migrate(source, str(target), list(exps) if exps else None)
    sys.stdout.write(
        f"copied into {target}: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()) + "\n"
    )
    return counts
