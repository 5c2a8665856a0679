"""``python -m no2hotspots server``'s ``run(cfg)``: actions, status of a server that is not running, one-line errors."""

from __future__ import annotations

import pytest

from no2hotspots.errors import ConfigError, UserError
from no2hotspots.server import run as server

from .conftest import server_cfg


def test_status_of_a_server_never_started(open_dir, capsys):
    cfg = server_cfg(open_dir, "server.action=status")
    st = server.run(cfg)
    assert not st["postgres_running"] and not st["mlflow_running"]
    out = capsys.readouterr().out
    assert "PostgreSQL  stopped" in out and "MLflow      stopped" in out
    assert not (open_dir / "server" / "postgres").exists()  # status starts nothing, creates nothing
    assert server.run(server_cfg(open_dir, "server.action=stop")) == {"mlflow": False, "postgres": False}


def test_an_unknown_action_is_named(open_dir):
    with pytest.raises(ConfigError, match=r"server\.action: must be one of start, stop, status, run, migrate"):
        server.run(server_cfg(open_dir, "server.action=launch"))


def test_migrating_into_a_server_that_is_not_running_is_one_line(open_dir):
    cfg = server_cfg(open_dir, "server.action=migrate")
    with pytest.raises(UserError, match=r"server\.migrate\.target: no MLflow server answers on http://127\.0\.0\.1:"):
        server.run(cfg)
