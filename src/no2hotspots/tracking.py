"""MLflow set-up shared by every stage that logs.

Where runs go (``resolve_uri``), first match wins:

1. ``tracking.uri`` when it is set (config or ``tracking.uri=...`` on the command line);
2. the environment variable ``MLFLOW_TRACKING_URI`` (e.g. the team server, ``http://host:5050``);
3. ``tracking.default_uri``: the zero-setup SQLite store ``sqlite:///mlruns/mlflow.db``.

So an explicit value always means what it says (tests pin their own store), and one ``export`` points every stage,
DVC's included, at a server without changing ``params.yaml`` (where runs are logged is not a parameter of a result).

Artifact locations never name another clone: on a tracking server the server stores them (``mlflow-artifacts:/``,
proxied, under its ``--artifacts-destination``); in a SQLite store they are taken as relative to the store's folder.
MLflow records absolute paths, so each experiment created here carries the store's folder in the tag
``no2hotspots.store_dir``, and when a store is opened from another folder (a copied or moved clone), every local
artifact path under the old folder is rebased onto the new one before anything is logged: a copy never writes into
the original's folder.

Concurrent first use of a fresh SQLite store (two trainings at once) is safe: creating the schema (MLflow's alembic
migrations), the rebase and the experiment are done under an exclusive lock on ``<store>.lock``.

MLflow is imported lazily (it is a heavy import) by the functions that need it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

ENV_URI = "MLFLOW_TRACKING_URI"
#: the MLflow UI opens an experiment of this kind on its training runs (not on the GenAI views: traces, judges)
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"
#: experiment tag holding the absolute folder of the SQLite store the experiment was created in
STORE_TAG = "no2hotspots.store_dir"
#: (table, column, extra WHERE) of MLflow 3.x's schema that hold artifact locations
_LOCATION_COLUMNS = (
    ("experiments", "artifact_location", ""),
    ("runs", "artifact_uri", ""),
    ("logged_models", "artifact_location", ""),
    ("model_versions", "source", ""),
    ("model_versions", "storage_location", ""),
    ("trace_tags", "value", "AND key = 'mlflow.artifactLocation'"),
)


def _group(cfg) -> DictConfig | dict:
    """The ``tracking`` group of a whole config, or the group itself."""
    if cfg is None:
        return {}
    if hasattr(cfg, "get") and cfg.get("tracking") is not None:
        return cfg["tracking"]
    return cfg


def resolve_uri(cfg) -> str:
    """The tracking URI a stage uses (see the module docstring); ``cfg``: the whole config or its tracking group."""
    group = _group(cfg)
    uri = group.get("uri") if hasattr(group, "get") else None
    if uri not in (None, ""):
        return str(uri)
    env = os.environ.get(ENV_URI, "").strip()
    if env:
        return env
    default = group.get("default_uri") if hasattr(group, "get") else None
    if default in (None, "") and hasattr(cfg, "get"):
        mlruns = OmegaConf.select(cfg, "paths.mlruns", default=None) if isinstance(cfg, DictConfig) else None
        default = f"sqlite:///{mlruns or 'mlruns'}/mlflow.db"
    return str(default)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working folder if relative), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    path = urllib.parse.urlsplit(uri).path[1:]  # sqlite:///rel/x.db -> rel/x.db; sqlite:////abs/x.db -> /abs/x.db
    return Path(urllib.request.url2pathname(path))


def is_server(uri: str) -> bool:
    return urllib.parse.urlsplit(uri).scheme in ("http", "https")


def mask_password(url: str) -> str:
    """``scheme://user:secret@host/db`` -> ``scheme://user:***@host/db`` (for logs, params and tags)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def setup(cfg: DictConfig, experiment: str | None = None) -> str:
    """Point MLflow at the tracking URI (``resolve_uri``) and return the id of the experiment (created if missing)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    uri = resolve_uri(cfg)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    name = experiment or str(_group(cfg).get("experiment") or "no2hotspots")
    db = sqlite_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
        root = Path(str(_group(cfg).get("artifact_root") or db.parent / "artifacts"))
        with store_lock(db):
            _open_stores(uri)
            relocate_store(db, root)
            exp_id = _get_or_create_experiment(name, root, store_dir=db.parent.resolve())
            if STORE_TAG not in (mlflow.get_experiment(exp_id).tags or {}):  # made before the tag: adopt it
                _tag_experiment(exp_id, STORE_TAG, str(db.parent.resolve()))
    elif is_server(uri):
        exp_id = _get_or_create_experiment(name, None)
    else:
        root = Path(str(_group(cfg).get("artifact_root") or "mlruns/artifacts"))
        log.warning(
            "tracking URI %s is a database, not a server: artifacts go to %s on this machine; point clients at the "
            "tracking server's http:// URL to share them",
            mask_password(uri),
            root.resolve(),
        )
        exp_id = _get_or_create_experiment(name, root)
    if (mlflow.get_experiment(exp_id).tags or {}).get(KIND_TAG) != KIND:
        _tag_experiment(exp_id, KIND_TAG, KIND)
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def _tag_experiment(exp_id: str, key: str, value: str) -> None:
    """Set an experiment tag; two processes setting the same tag at once (sweep workers on one server) may make the
    server refuse the second insert (PostgreSQL: a unique violation on the tag's key): then the tag already holds the
    value, which is all that was asked, and anything else is raised."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        mlflow.MlflowClient().set_experiment_tag(exp_id, key, value)
    except MlflowException:
        if (mlflow.get_experiment(exp_id).tags or {}).get(key) != value:
            raise


def _get_or_create_experiment(name: str, root: Path | None, store_dir: Path | None = None) -> str:
    """Experiment id by name; create it (artifacts under ``root``, or where the server decides) if missing.

    Two processes creating the same experiment at once both get its id (the loser of the race re-reads it)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    kwargs = {}
    if root is not None:
        root = root.resolve()
        root.mkdir(parents=True, exist_ok=True)
        kwargs["artifact_location"] = root.as_uri()
    if store_dir is not None:
        kwargs["tags"] = {STORE_TAG: str(store_dir)}
    try:
        return mlflow.create_experiment(name, **kwargs)
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        exp = mlflow.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


@contextlib.contextmanager
def store_lock(db: Path) -> Iterator[None]:
    """Exclusive lock on ``<db>.lock`` (released when the block ends or the process dies)."""
    import fcntl

    db.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{db}.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _open_stores(uri: str) -> None:
    """Open the tracking and registry stores once (on a fresh SQLite file this runs MLflow's schema migrations)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.search_experiments(max_results=1)
    client.search_registered_models(max_results=1)


def _rebase(value: str | None, old: Path, new: Path) -> str | None:
    """``value`` (a ``file:`` URI or an absolute path) with the folder ``old`` replaced by ``new``; else None."""
    if not value:
        return None
    is_uri = value.startswith("file:")
    if is_uri:
        path = urllib.request.url2pathname(urllib.parse.urlsplit(value).path)
    elif value.startswith("/"):
        path = value
    else:
        return None
    p = Path(path)
    if p != old and old not in p.parents:
        return None
    moved = new / p.relative_to(old)
    return moved.as_uri() if is_uri else str(moved)


def relocate_store(db: Path, artifact_root: Path | None = None) -> int:
    """Rebase the store's local artifact locations when it is opened from another folder; return the rows changed.

    The store's previous folder comes from the ``no2hotspots.store_dir`` tag of its experiments. An experiment
    without the tag (a store made before the tag existed) whose artifact location is ``<folder>/<artifact_root
    relative to the store>`` is taken to belong to a store that lived in ``<folder>``. Locations outside the old
    folder (an artifact root configured elsewhere, a server) are left alone. Call it under ``store_lock``.
    """
    if not db.exists():
        return 0
    new = db.parent.resolve()
    con = sqlite3.connect(str(db), timeout=60, isolation_level=None)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "experiments" not in tables:
            return 0
        olds: set[Path] = set()
        if "experiment_tags" in tables:
            olds |= {Path(v) for (v,) in con.execute("SELECT value FROM experiment_tags WHERE key = ?", (STORE_TAG,))}
        untagged = con.execute(
            "SELECT artifact_location FROM experiments WHERE experiment_id NOT IN "
            "(SELECT experiment_id FROM experiment_tags WHERE key = ?)"
            if "experiment_tags" in tables
            else "SELECT artifact_location FROM experiments",
            (STORE_TAG,) if "experiment_tags" in tables else (),
        ).fetchall()
        rel = None
        if artifact_root is not None:
            try:
                rel = Path(artifact_root).resolve().relative_to(new)
            except ValueError:
                rel = None
        for (loc,) in untagged:
            guess = _legacy_store_dir(loc, rel)
            if guess is not None:
                olds.add(guess)
        olds.discard(new)
        changed = 0
        if not olds:
            return 0
        con.execute("BEGIN IMMEDIATE")
        try:
            for old in sorted(olds):
                con.create_function("no2hs_rebase", 1, lambda v, o=old: _rebase(v, o, new), deterministic=True)
                for table, column, extra in _LOCATION_COLUMNS:
                    if table not in tables:
                        continue
                    cols = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
                    if column not in cols:
                        continue
                    cur = con.execute(
                        f"UPDATE {table} SET {column} = no2hs_rebase({column}) "
                        f"WHERE no2hs_rebase({column}) IS NOT NULL {extra}"
                    )
                    changed += cur.rowcount
            if "experiment_tags" in tables:
                con.execute("UPDATE experiment_tags SET value = ? WHERE key = ?", (str(new), STORE_TAG))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        if changed:
            log.warning(
                "MLflow store %s was opened from a new folder: %d artifact locations rebased from %s to %s",
                db,
                changed,
                ", ".join(str(o) for o in sorted(olds)),
                new,
            )
        return changed
    finally:
        con.close()


def _legacy_store_dir(location: str | None, rel: Path | None) -> Path | None:
    """For an untagged experiment at ``<folder>/<rel>``: ``<folder>``; else None."""
    if not location or rel is None or str(rel) in ("", "."):
        return None
    path = (
        urllib.request.url2pathname(urllib.parse.urlsplit(location).path) if location.startswith("file:") else location
    )
    if not path.startswith("/"):
        return None
    p = Path(path)
    if len(p.parts) <= len(rel.parts) or Path(*p.parts[-len(rel.parts) :]) != rel:
        return None
    return Path(*p.parts[: -len(rel.parts)])


def git_commit(repo: str | os.PathLike | None = None) -> str:
    """The checked-out commit (``git rev-parse HEAD``), with ``-dirty`` appended for uncommitted changes to
    tracked files; ``"unknown"`` when git or the repository is unavailable."""
    import subprocess

    cwd = str(repo) if repo is not None else None
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        commit = head.stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return commit + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def data_version(data_dir: str | os.PathLike, dvc_lock: str | os.PathLike = "dvc.lock") -> str:
    """Version of a DVC-tracked output folder: the md5 that ``dvc.lock`` records for it, else an md5 computed here.

    The fallback hashes the folder's ``manifest.json`` and every ``*.nc`` file (relative path + content), so equal
    data give equal versions; it is prefixed ``md5:`` to tell it apart from DVC's ``<md5>.dir`` hashes.
    """
    import hashlib

    import yaml

    data_dir = Path(data_dir)
    lock = Path(dvc_lock)
    if lock.exists():
        try:
            stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        except yaml.YAMLError:
            stages = {}
        want = os.path.normpath(str(data_dir))
        for stage in stages.values():
            for out in stage.get("outs", []) or []:
                if os.path.normpath(str(out.get("path", ""))) == want and out.get("md5"):
                    return str(out["md5"])
    h = hashlib.md5()
    files = sorted(p for p in data_dir.rglob("*") if p.is_file() and (p.suffix == ".nc" or p.name == "manifest.json"))
    for p in files:
        h.update(str(p.relative_to(data_dir)).encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return "md5:" + h.hexdigest()
