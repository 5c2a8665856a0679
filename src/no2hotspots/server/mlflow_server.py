"""The MLflow tracking server process: ``mlflow server`` on a PostgreSQL backend with proxied artifacts.

Started detached (its own session, so stopping it ends its uvicorn worker too) with ``--serve-artifacts``: clients
need only the URL, artifacts land in ``--artifacts-destination`` on the server's machine, and runs record
``mlflow-artifacts:/...`` locations that name no client's folder. The database URL (it holds the password) goes to
the server in its environment (``MLFLOW_BACKEND_STORE_URI``), not on its command line, where any local user could
read it. ``--workers 1`` and ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`` keep it to two processes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import ConfigError, UserError

log = logging.getLogger(__name__)


def health(url: str, timeout: float = 2.0) -> bool:
    """True when ``<url>/health`` answers 200."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout) as r:  # noqa: S310 (http only)
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def is_mlflow_server(pid: int | None) -> bool:
    """``pid`` is alive and is an ``mlflow server`` (guards against a recycled pid)."""
    if not pid:
        return False
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}/stat").exists() else ""
    if ") Z " in stat:  # a zombie is not a server
        return False
    args = [c.decode(errors="replace") for c in cmd]
    return any(a.endswith("mlflow") or a == "mlflow" for a in args) and "server" in args


def start(
    *,
    backend_uri: str,
    artifacts_dir: Path,
    log_file: Path,
    host: str = "127.0.0.1",
    port: int = 5050,
    workers: int = 1,
    allowed_hosts: str | None = None,
    cors_allowed_origins: str | None = None,
    timeout_s: float = 120.0,
) -> int:
    """Start the server and wait until ``/health`` answers; return its pid."""
    from .postgres import port_free

    if not port_free(host, int(port)):
        raise ConfigError("server.mlflow.port", f"{host}:{port} is in use; choose another port")
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--serve-artifacts",
        "--artifacts-destination",
        str(artifacts_dir.absolute()),
        "--host",
        str(host),
        "--port",
        str(int(port)),
        "--workers",
        str(int(workers)),
    ]
    if allowed_hosts:
        cmd += ["--allowed-hosts", str(allowed_hosts)]
    if cors_allowed_origins:
        cmd += ["--cors-allowed-origins", str(cors_allowed_origins)]
    env = {
        **os.environ,
        "MLFLOW_BACKEND_STORE_URI": backend_uri,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PYTHONUNBUFFERED": "1",
    }
    for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):  # the server's own store comes from the URI above
        env.pop(k, None)
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(artifacts_dir.parent),
            start_new_session=True,
        )
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '', '*') else host}:{int(port)}"
    deadline = time.monotonic() + float(timeout_s)
    while not health(url):
        if proc.poll() is not None:
            raise UserError(
                f"server: mlflow server exited with status {proc.returncode}; see {log_file}: {_tail(log_file)}"
            )
        if time.monotonic() > deadline:
            stop(proc.pid)
            raise UserError(f"server: mlflow server did not answer on {url} within {timeout_s:g} s; see {log_file}")
        time.sleep(0.5)
    log.info("MLflow tracking server on %s (pid %d, artifacts in %s, log %s)", url, proc.pid, artifacts_dir, log_file)
    return proc.pid


def stop(pid: int | None, timeout_s: float = 20.0) -> bool:
    """Terminate the server's process group (SIGTERM, then SIGKILL); False if it was not running."""
    if not is_mlflow_server(pid):
        return False
    assert pid is not None
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return False
    target = pgid if pgid == pid else None  # started with start_new_session: the group is the server's own
    _signal(pid, target, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _group_alive(pid, target):
            break
        _reap(pid)
        time.sleep(0.2)
    else:
        _signal(pid, target, signal.SIGKILL)
        time.sleep(0.5)
    _reap(pid)
    log.info("MLflow tracking server (pid %d) stopped", pid)
    return True


def _signal(pid: int, pgid: int | None, sig: int) -> None:
    try:
        if pgid is not None:
            os.killpg(pgid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pid: int, pgid: int | None) -> bool:
    if pgid is None:
        return is_mlflow_server(pid)
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields and fields[0] != "Z" and len(fields) > 2 and int(fields[2]) == pgid:
            return True
    return False


def _reap(pid: int) -> None:
    """Collect the exit status when the server is our own child (no zombie left behind)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _tail(path: Path, n: int = 1) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])
