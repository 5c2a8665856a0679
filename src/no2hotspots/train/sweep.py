"""Hydra callback that groups an Optuna study in MLflow: one parent run per study, every trial a child run.

Registered by ``conf/hparams_search/optuna.yaml`` under ``hydra.callbacks``. Several worker processes (on one or
several machines: the same command with the same ``hydra.sweeper.storage``) may run trials of one study at once;
they all find the same parent run:

- ``on_multirun_start`` takes a lock held in the study's own storage (a PostgreSQL advisory lock, MySQL's
  ``GET_LOCK``, or a file lock beside a SQLite file), reads the parent run id that the study records in its user
  attribute ``mlflow_parent_run_id``, and creates the parent (and records it) only when there is none yet in this
  tracking store. It registers the worker on the parent (tag ``sweep.worker.<host>-<pid>`` = ``running``), reopens
  a finished parent, and exports the id in ``NO2HOTSPOTS_PARENT_RUN_ID``: the trials run in this process with
  Hydra's basic launcher, and ``train.run`` starts each one as a child of it.
- ``on_multirun_end`` (same lock) logs the best trial so far over every worker (``best_<objective>``, tag
  ``best_run_id``) and ``n_trials_done``, marks the worker ``done``, and finishes the parent when no worker is
  still running.

Without a storage (an in-memory study, private to one process) each sweep gets a parent of its own, as before.
A worker killed before its end leaves its tag at ``running``, so the parent stays RUNNING after the others end;
set that tag to ``done`` in the UI (the next worker to end then finishes the parent), or finish the run by hand.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
from collections.abc import Iterator
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf

from .run import PARENT_ENV

log = logging.getLogger(__name__)

#: study user attribute holding the id of the study's parent MLflow run
STUDY_ATTR = "mlflow_parent_run_id"
WORKER_TAG = "sweep.worker."


def worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _lock_key(study_name: str) -> int:
    digest = hashlib.blake2b(f"no2hotspots.sweep:{study_name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextlib.contextmanager
def storage_lock(storage: str | None, study_name: str) -> Iterator[None]:
    """Exclusive lock shared by every worker of ``study_name`` on ``storage`` (a no-op without a storage)."""
    if not storage:
        yield
        return
    url = str(storage)
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme == "sqlite":
        from ..tracking import sqlite_path, store_lock

        db = sqlite_path(url)
        if db is None:
            yield
            return
        with store_lock(db.with_name(db.name + ".sweep")):
            yield
        return
    if scheme in ("postgresql", "postgres", "mysql", "mariadb"):
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        engine = sa.create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as con:
                if scheme.startswith("postgres"):
                    con.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _lock_key(study_name)})
                    con.commit()
                    try:
                        yield
                    finally:
                        con.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _lock_key(study_name)})
                        con.commit()
                else:
                    name = f"no2hotspots.sweep.{_lock_key(study_name) & 0xFFFFFFFF:08x}"
                    con.execute(sa.text("SELECT GET_LOCK(:n, 600)"), {"n": name})
                    try:
                        yield
                    finally:
                        con.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": name})
        finally:
            engine.dispose()
        return
    log.warning("sweep: no lock for storage scheme %r; workers that start together may open two parent runs", scheme)
    yield


def _directions(sweeper) -> list[str]:
    d = sweeper.get("direction", "minimize")
    if isinstance(d, (list, tuple, ListConfig)):
        return [str(x) for x in d]
    return [str(d)]


def _load_study(sweeper, storage: str):
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return optuna.create_study(
            study_name=str(sweeper.get("study_name")),
            storage=storage,
            directions=_directions(sweeper),
            load_if_exists=True,
        )


class MlflowSweepParent(Callback):
    def __init__(self, run_name: str | None = None, objective: str = "objective") -> None:
        self.run_name = run_name
        self.objective = objective
        self.parent_id: str | None = None
        self.worker = worker_id()

    # -- helpers ---------------------------------------------------------------------------------------------------
    @staticmethod
    def _sweeper(config: DictConfig):
        return OmegaConf.select(config, "hydra.sweeper", default=None) or {}

    def _create_parent(self, client, exp_id: str, sweeper, storage: str | None) -> str:
        import mlflow

        from .. import tracking

        study = str(sweeper.get("study_name", "") or "")
        run = client.create_run(
            exp_id,
            run_name=self.run_name or f"sweep {study}".strip(),
            tags={
                "stage": "sweep",
                "git_commit": tracking.git_commit(),
                "study_name": study,
                "direction": ",".join(_directions(sweeper)),
                "sweep_storage": tracking.mask_password(str(storage)) if storage else "in-memory",
            },
        )
        params = {"sweep.study_name": study, "sweep.storage": tracking.mask_password(str(storage or "in-memory"))}
        for k, v in (sweeper.get("params") or {}).items():
            params[f"sweep.space.{k}"] = str(v)
        client.log_batch(run.info.run_id, params=[mlflow.entities.Param(k, str(v)) for k, v in params.items()])
        return run.info.run_id

    def _usable(self, client, run_id: str | None, exp_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        if not run_id:
            return False
        try:
            run = client.get_run(run_id)
        except MlflowException:
            return False
        return run.info.lifecycle_stage == "active" and run.info.experiment_id == exp_id

    # -- Hydra callback --------------------------------------------------------------------------------------------
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Open (or join) the study's parent MLflow run before any trial. Hydra turns an exception raised in a
        callback into a warning and runs the trials anyway, which would leave them without their parent (a CI run
        saw a second worker's trials orphaned so): a failure here ends the worker with one line instead."""
        try:
            self._open_parent(config)
        except Exception as e:
            raise SystemExit(
                f"sweep: could not open the study's parent MLflow run ({type(e).__name__}: {str(e).splitlines()[0]}); "
                "no trial was run"
            ) from e

    def _open_parent(self, config: DictConfig) -> None:
        import mlflow

        from .. import tracking

        exp_id = tracking.setup(config)
        client = mlflow.MlflowClient()
        sweeper = self._sweeper(config)
        storage = sweeper.get("storage")
        study_name = str(sweeper.get("study_name", "") or "")
        with storage_lock(storage, study_name):
            if storage:
                study = _load_study(sweeper, str(storage))
                parent = study.user_attrs.get(STUDY_ATTR)
                if self._usable(client, parent, exp_id):
                    log.info("sweep: joining study %s under its parent MLflow run %s", study_name, parent)
                else:
                    parent = self._create_parent(client, exp_id, sweeper, storage)
                    study.set_user_attr(STUDY_ATTR, parent)
                    log.info("sweep: study %s gets the parent MLflow run %s", study_name, parent)
            else:
                parent = self._create_parent(client, exp_id, sweeper, None)
            client.set_tag(parent, WORKER_TAG + self.worker, "running")
            if client.get_run(parent).info.status != "RUNNING":
                client.update_run(parent, status="RUNNING")
        self.parent_id = parent
        os.environ[PARENT_ENV] = parent
        log.info("sweep parent MLflow run %s (worker %s)", parent, self.worker)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        import mlflow

        if self.parent_id is None:
            return
        client = mlflow.MlflowClient()
        sweeper = self._sweeper(config)
        maximize = _directions(sweeper)[0].lower().startswith("max")
        with storage_lock(sweeper.get("storage"), str(sweeper.get("study_name", "") or "")):
            exp_id = client.get_run(self.parent_id).info.experiment_id
            children = _all_children(client, exp_id, self.parent_id)
            values = [(r.data.metrics[self.objective], r) for r in children if self.objective in r.data.metrics]
            values = [(v, r) for v, r in values if v == v]  # drop NaN
            if values:
                best_value, best = (max if maximize else min)(values, key=lambda v: v[0])
                client.log_metric(self.parent_id, f"best_{self.objective}", best_value, step=len(children))
                client.set_tag(self.parent_id, "best_run_id", best.info.run_id)
            client.log_metric(self.parent_id, "n_trials_done", len(children), step=len(children))
            client.set_tag(self.parent_id, WORKER_TAG + self.worker, "done")
            tags = client.get_run(self.parent_id).data.tags
            running = [k for k, v in tags.items() if k.startswith(WORKER_TAG) and v == "running"]
            if running:
                log.info("sweep: %d other worker(s) still running; the parent run stays open", len(running))
            else:
                client.set_terminated(self.parent_id)
        os.environ.pop(PARENT_ENV, None)


def _all_children(client, exp_id: str, parent_id: str) -> list:
    out, token = [], None
    while True:
        page = client.search_runs(
            [exp_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'", max_results=1000, page_token=token
        )
        out.extend(page)
        token = page.token
        if not token:
            return out
