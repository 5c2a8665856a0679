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
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
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
