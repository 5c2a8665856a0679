"""Fixtures for the team-server tests: real PostgreSQL and MLflow server processes on free 127.0.0.1 ports.

Every process a fixture starts is stopped in its finalizer, also when the test (or the start itself) fails, and the
finalizer checks that none is left. Server folders live in a fresh folder under /tmp that others may enter: run as
root, PostgreSQL runs as an unprivileged account, which cannot enter pytest's private tmp folders.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from train.conftest import TINY_MODEL, tiny_overrides, tiny_sim  # noqa: F401  (fixtures re-exported)

from no2hotspots.config import compose
from no2hotspots.errors import UserError


def compose_server(overrides: list[str]):
    """``compose`` with the ``server`` group, whether or not conf/config.yaml lists it yet."""
    if "server" in compose([]):
        return compose(overrides)
    return compose(["+server=default", *overrides])


def require_postgres() -> None:
    from no2hotspots.server.postgres import find_bin_dir

    try:
        find_bin_dir()
    except UserError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(e))


def alive(pid: int | None) -> bool:
    """``pid`` runs (a zombie, exited but not yet reaped by its parent, does not count)."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def group_members(pgid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != "Z" and int(fields[2]) == pgid:
                out.append(int(d.name))
    return out


@pytest.fixture
def open_dir():
    """A fresh folder under /tmp that PostgreSQL's account may enter; removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="no2hs-test-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def server_cfg(root: Path, *extra: str):
    from no2hotspots.server.postgres import free_port

    return compose_server(
        [
            f"paths.mlruns={root}/mlruns",
            f"server.dir={root}/server",
            f"server.postgres.port={free_port()}",
            f"server.mlflow.port={free_port()}",
            *extra,
        ]
    )


@dataclass
class TeamServer:
    cfg: object
    state: dict
    root: Path

    @property
    def url(self) -> str:
        return self.state["tracking_uri"]

    @property
    def storage(self) -> str:
        return self.state["optuna_storage"]


def _stop_and_check(cfg) -> None:
    from no2hotspots.server import run as server

    state = server.read_state(cfg)
    server.stop(cfg)
    left = [p for p in (state.get("mlflow_pid"), state.get("postgres_pid")) if alive(p)]
    if state.get("mlflow_pid"):
        left += group_members(state["mlflow_pid"])
    assert not left, f"processes left behind: {left}"


@pytest.fixture(scope="session")
def team_server(request):
    """PostgreSQL + MLflow server for the session (tests use their own experiments, models and studies)."""
    require_postgres()
    from no2hotspots.server import run as server

    root = Path(tempfile.mkdtemp(prefix="no2hs-server-", dir="/tmp"))
    root.chmod(0o755)
    made = {}

    def finish():
        try:
            if "cfg" in made:
                _stop_and_check(made["cfg"])
        finally:
            shutil.rmtree(root, ignore_errors=True)

    request.addfinalizer(finish)
    cfg = made["cfg"] = server_cfg(root)
    state = server.start(cfg)
    return TeamServer(cfg, state, root)


@pytest.fixture(autouse=True)
def _no_ambient_tracking_uri(monkeypatch):
    """A developer's exported MLFLOW_TRACKING_URI must not send test runs to their server."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
