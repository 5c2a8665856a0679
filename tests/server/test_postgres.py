"""The project's own PostgreSQL cluster: initialised in a folder it owns, password-only TCP, restartable, stoppable."""

from __future__ import annotations

import os

import pytest

from no2hotspots.errors import ConfigError
from no2hotspots.server.postgres import Cluster, free_port

from .conftest import alive, require_postgres


@pytest.fixture
def cluster(open_dir):
    require_postgres()
    c = Cluster(open_dir / "pg", port=free_port(), timeout_s=60)
    yield c
    c.stop()
    assert not alive(c.pid())


def test_cluster_starts_keeps_its_data_across_restarts_and_stops(cluster):
    import psycopg

    cluster.start()
    cluster.ensure_databases()
    pid = cluster.pid()
    assert cluster.running() and alive(pid)
    assert oct(cluster.secret_file.stat().st_mode & 0o777) == "0o600"  # the password is its owner's only
    with psycopg.connect(cluster._conninfo("optuna"), autocommit=True) as con:
        con.execute("CREATE TABLE kept (x int)")
        con.execute("INSERT INTO kept VALUES (7)")
    bad = cluster._conninfo("optuna").replace(cluster.password(), "wrong")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(bad)

    cluster.start()  # already running: nothing happens
    assert cluster.pid() == pid
    assert cluster.stop() is True
    assert not cluster.running() and not alive(pid)
    assert cluster.stop() is False  # idempotent

    cluster.start()  # the same cluster, the same password, the same rows
    with psycopg.connect(cluster._conninfo("optuna")) as con:
        assert con.execute("SELECT x FROM kept").fetchall() == [(7,)]
    assert cluster.url("mlflow").startswith(f"postgresql+psycopg://no2hotspots:{cluster.password()}@127.0.0.1:")


def test_a_busy_port_is_refused_naming_the_key(cluster):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", cluster.port))
        s.listen(1)
        with pytest.raises(ConfigError, match=r"server\.postgres\.port: 127\.0\.0\.1:\d+ is in use"):
            cluster.start()
    assert not cluster.running()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to another account")
def test_run_as_root_a_folder_the_database_account_cannot_enter_is_named(tmp_path):
    require_postgres()
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    c = Cluster(private / "pg", port=free_port())
    with pytest.raises(ConfigError, match=r"server\.dir: the account '\w+' that runs PostgreSQL cannot enter"):
        c.start()
    assert not c.running()
