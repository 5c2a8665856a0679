"""``python -m no2hotspots server server.action=start|stop|status|run|migrate``: the team tracking server.

- ``start``: initialise (first time) and start PostgreSQL, create its ``mlflow`` and ``optuna`` databases and
  Optuna's tables, start ``mlflow server`` on it (detached), print the URLs. Idempotent: what runs is kept.
- ``stop``: stop the MLflow server, then PostgreSQL. Idempotent.
- ``status``: what runs, where, and the URLs to use.
- ``run``: ``start`` in the foreground; Ctrl-C (or SIGTERM) stops both.
- ``migrate``: copy a SQLite store (``server.migrate.source``) into the server (see ``migrate.py``).

Everything lives in ``server.dir`` (``mlruns/server/`` by default, git-ignored): ``postgres/`` (the cluster, its
log and password), ``artifacts/`` (what the server stores for clients), ``mlflow.log`` and ``server.json`` (ports,
pids, the URLs; readable by its owner only, as it holds the database password).
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..config import require
from ..errors import ConfigError
from . import mlflow_server
from .postgres import Cluster

log = logging.getLogger(__name__)

ACTIONS = ("start", "stop", "status", "run", "migrate")
STATE = "server.json"


def _s(cfg: DictConfig, key: str, default=None):
    return OmegaConf.select(cfg, f"server.{key}", default=default)


def server_dir(cfg: DictConfig) -> Path:
    return Path(str(require(cfg, "server.dir", lambda v: bool(str(v).strip()), "must name a folder"))).absolute()


def cluster(cfg: DictConfig) -> Cluster:
    require(cfg, "server.postgres.port", lambda v: 0 < int(v) < 65536, "must be a TCP port")
    allow = _s(cfg, "postgres.allow") or []
    if isinstance(allow, str):
        allow = [allow]
    return Cluster(
        server_dir(cfg) / "postgres",
        host=str(_s(cfg, "postgres.host", "127.0.0.1")),
        port=int(_s(cfg, "postgres.port")),
        role=str(_s(cfg, "postgres.role", "no2hotspots")),
        allow=list(allow),
        os_user=_s(cfg, "postgres.os_user"),
        bin_dir=_s(cfg, "postgres.bin_dir"),
        timeout_s=float(_s(cfg, "postgres.timeout_s", 60)),
    )


def _client_host(host: str) -> str:
    """The host name clients use for a listen address (a wildcard is reached as this machine's name)."""
    return socket.getfqdn() if host in ("0.0.0.0", "", "*", "::") else host


def tracking_url(cfg: DictConfig, public: bool = False) -> str:
    host = str(_s(cfg, "mlflow.host", "127.0.0.1"))
    h = _client_host(host) if public else ("127.0.0.1" if host in ("0.0.0.0", "", "*", "::") else host)
    return f"http://{h}:{int(_s(cfg, 'mlflow.port'))}"


def read_state(cfg: DictConfig) -> dict[str, Any]:
    try:
        return json.loads((server_dir(cfg) / STATE).read_text())
    except (OSError, ValueError):
        return {}


def start(cfg: DictConfig) -> dict[str, Any]:
    """Start PostgreSQL and the MLflow server (each only if not running); return the state (URLs, pids)."""
    require(cfg, "server.mlflow.port", lambda v: 0 < int(v) < 65536, "must be a TCP port")
    require(cfg, "server.mlflow.workers", lambda v: int(v) >= 1, "must be an integer >= 1")
    d = server_dir(cfg)
    d.mkdir(parents=True, exist_ok=True)
    pg = cluster(cfg)
    pg.start()
    pg.ensure_databases()
    optuna_url = pg.url("optuna")
    _init_optuna_schema(optuna_url)
    state = read_state(cfg)
    url = tracking_url(cfg)
    pid = state.get("mlflow_pid")
    if mlflow_server.is_mlflow_server(pid) and mlflow_server.health(url):
        log.info("MLflow tracking server already running on %s (pid %s)", url, pid)
    else:
        pid = mlflow_server.start(
            backend_uri=pg.url("mlflow"),
            artifacts_dir=d / "artifacts",
            log_file=d / "mlflow.log",
            host=str(_s(cfg, "mlflow.host", "127.0.0.1")),
            port=int(_s(cfg, "mlflow.port")),
            workers=int(_s(cfg, "mlflow.workers", 1)),
            allowed_hosts=_s(cfg, "mlflow.allowed_hosts"),
            cors_allowed_origins=_s(cfg, "mlflow.cors_allowed_origins"),
            timeout_s=float(_s(cfg, "mlflow.timeout_s", 120)),
        )
    state = {
        "tracking_uri": url,
        "tracking_uri_public": tracking_url(cfg, public=True),
        "optuna_storage": optuna_url,
        "optuna_storage_public": pg.url("optuna", host=_client_host(pg.host)),
        "mlflow_pid": pid,
        "postgres_pid": pg.pid(),
        "postgres": {"host": pg.host, "port": pg.port, "role": pg.role, "data": str(pg.data)},
        "mlflow": {"host": str(_s(cfg, "mlflow.host")), "port": int(_s(cfg, "mlflow.port"))},
        "artifacts": str(d / "artifacts"),
    }
    _write_private(d / STATE, state)
    return state


def _write_private(path: Path, obj: dict) -> None:
    """Write JSON readable by its owner only (it holds the database password), atomically."""
    import os

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _init_optuna_schema(url: str) -> None:
    """Create Optuna's tables once here, so concurrent sweep workers never race to create them."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        storage = optuna.storages.RDBStorage(url)
    storage.engine.dispose()


def stop(cfg: DictConfig) -> dict[str, bool]:
    """Stop the MLflow server, then PostgreSQL; report which of them was running."""
    d = server_dir(cfg)
    state = read_state(cfg)
    stopped_mlflow = mlflow_server.stop(state.get("mlflow_pid"))
    pg = cluster(cfg)
    stopped_pg = pg.stop() if pg.initialised else False
    if state:
        state.update(mlflow_pid=None, postgres_pid=None)
        _write_private(d / STATE, state)
    return {"mlflow": stopped_mlflow, "postgres": stopped_pg}


def status(cfg: DictConfig) -> dict[str, Any]:
    state = read_state(cfg)
    pg = cluster(cfg)
    url = tracking_url(cfg)
    ml_pid = state.get("mlflow_pid")
    return {
        "dir": str(server_dir(cfg)),
        "postgres_running": pg.running(),
        "postgres_pid": pg.pid() if pg.running() else None,
        "postgres_address": f"{pg.host}:{pg.port}",
        "mlflow_running": mlflow_server.is_mlflow_server(ml_pid) and mlflow_server.health(url),
        "mlflow_pid": ml_pid if mlflow_server.is_mlflow_server(ml_pid) else None,
        "tracking_uri": state.get("tracking_uri_public") or tracking_url(cfg, public=True),
        "optuna_storage": state.get("optuna_storage_public"),
    }


def status_lines(st: dict[str, Any]) -> list[str]:
    from ..tracking import mask_password

    def running(flag, pid):
        return f"running (pid {pid})" if flag else "stopped"

    lines = [
        f"no2hotspots tracking server ({st['dir']})",
        f"  PostgreSQL  {running(st['postgres_running'], st['postgres_pid'])} on {st['postgres_address']}",
        f"  MLflow      {running(st['mlflow_running'], st['mlflow_pid'])} on {st['tracking_uri']}",
    ]
    if st["mlflow_running"]:
        lines += [
            f"  tracking    export MLFLOW_TRACKING_URI={st['tracking_uri']}   (or tracking.uri=...)",
        ]
    if st.get("optuna_storage") and st["postgres_running"]:
        lines += [
            f"  sweeps      hydra.sweeper.storage={without_password(st['optuna_storage'])}",
            f"              with PGPASSWORD set to the password in {Path(st['dir']) / 'postgres' / 'secret.json'}",
            f"              (or the URL with it, masked here: {mask_password(st['optuna_storage'])},",
            f'              "optuna_storage_public" in {Path(st["dir"]) / STATE})',
        ]
    return lines


def without_password(url: str) -> str:
    """``scheme://user:secret@host/db`` -> ``scheme://user@host/db`` (libpq then reads ``PGPASSWORD``)."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", "@", 1)))


def _foreground(cfg: DictConfig) -> None:
    state = start(cfg)

    def _term(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _term)
    try:
        _print(status_lines(status(cfg)) + ["  (Ctrl-C stops both)"])
        while mlflow_server.is_mlflow_server(state["mlflow_pid"]):
            time.sleep(1.0)
        log.error("the MLflow server exited; see %s", server_dir(cfg) / "mlflow.log")
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop(cfg)


def _print(lines: list[str]) -> None:
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def run(cfg: DictConfig) -> dict[str, Any]:
    action = str(_s(cfg, "action", "status"))
    if action not in ACTIONS:
        raise ConfigError("server.action", f"must be one of {', '.join(ACTIONS)} (got {action!r})")
    if action == "start":
        start(cfg)
        st = status(cfg)
        _print(status_lines(st))
        return st
    if action == "stop":
        done = stop(cfg)
        _print([f"stopped: {', '.join(k for k, v in done.items() if v) or 'nothing was running'}"])
        return done
    if action == "status":
        st = status(cfg)
        _print(status_lines(st))
        return st
    if action == "run":
        _foreground(cfg)
        return {}
    from .migrate import migrate_from_config

    return migrate_from_config(cfg)
