"""A PostgreSQL cluster the project initialises and runs itself, in a folder it owns.

Debian's ``postgresql`` binaries (``initdb``, ``pg_ctl``, ``postgres``) run the cluster in ``<dir>/data`` with its
log in ``<dir>/postgres.log``: TCP only (no Unix socket, so no path outside ``<dir>``), listening on
``server.postgres.host`` (127.0.0.1 by default), password authentication (SCRAM) for one database role whose
password is generated at initialisation and kept, readable by its owner only, in ``<dir>/secret.json``.

PostgreSQL refuses to run as root. Run by root (CI, containers), the cluster belongs to an unprivileged account:
``server.postgres.os_user``, else ``postgres`` (the account Debian's package creates), else ``nobody``; that account
must be able to reach ``<dir>`` (every folder above it searchable by others), which is checked first.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, UserError

log = logging.getLogger(__name__)

#: databases created in the cluster: MLflow's tracking + registry store, and Optuna's studies
DATABASES = ("mlflow", "optuna")


def find_bin_dir(configured: str | None = None) -> Path:
    """Folder holding ``initdb``/``pg_ctl``/``postgres``: the configured one, else PATH, else Debian's newest."""
    if configured:
        d = Path(configured)
        if not (d / "pg_ctl").exists():
            raise ConfigError("server.postgres.bin_dir", f"{d} has no pg_ctl")
        return d
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    raise UserError(
        "server: PostgreSQL is not installed (no pg_ctl on PATH or in /usr/lib/postgresql/*/bin); "
        "install it, e.g. `apt-get install -y postgresql`, or set server.postgres.bin_dir"
    )


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host if host not in ("", "*") else "0.0.0.0", port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now (tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Account:
    """Who runs the PostgreSQL processes: ``uid is None`` means this process's own user."""

    name: str
    uid: int | None = None
    gid: int | None = None

    def run_kwargs(self) -> dict:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def account(os_user: str | None) -> Account:
    """The account for the cluster: ourselves unless we are root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return Account(pwd.getpwuid(os.geteuid()).pw_name)
    names = [os_user] if os_user else ["postgres", "nobody"]
    for name in names:
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        if pw.pw_uid == 0:
            raise ConfigError("server.postgres.os_user", f"{name!r} is root; PostgreSQL refuses to run as root")
        return Account(name, pw.pw_uid, pw.pw_gid)
    key = "server.postgres.os_user"
    raise ConfigError(key, f"no such account: {', '.join(names)} (running as root needs an unprivileged account)")


class Cluster:
    """One PostgreSQL cluster in ``<dir>/data``; ``start()`` initialises it on first use."""

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        host: str = "127.0.0.1",
        port: int = 5433,
        role: str = "no2hotspots",
        allow: list[str] | tuple[str, ...] = (),
        os_user: str | None = None,
        bin_dir: str | None = None,
        timeout_s: float = 60.0,
    ):
        self.dir = Path(directory).absolute()
        self.data = self.dir / "data"
        self.logfile = self.dir / "postgres.log"
        self.secret_file = self.dir / "secret.json"
        self.host = str(host)
        self.port = int(port)
        self.role = str(role)
        self.allow = [str(a) for a in (allow or [])]
        self.os_user = os_user
        self.bin_dir_cfg = bin_dir
        self.timeout_s = float(timeout_s)

    # -- paths, accounts, commands -------------------------------------------------------------------------------
    @property
    def bin_dir(self) -> Path:
        return find_bin_dir(self.bin_dir_cfg)

    @property
    def account(self) -> Account:
        return account(self.os_user)

    def _run(self, args: list[str], check: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess:
        """Run a PostgreSQL program as the cluster's account (never root)."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}
        p = subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            cwd=str(self.dir),
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout or self.timeout_s + 30,
            umask=0o077,
            **self.account.run_kwargs(),
        )
        if check and p.returncode != 0:
            msg = (p.stderr or p.stdout).strip().splitlines()
            raise UserError(f"server: {args[0]} failed in {self.data}: {msg[-1] if msg else f'exit {p.returncode}'}")
        return p

    def _check_reachable(self) -> None:
        """The cluster's account must be able to enter ``dir``: name the first folder above it that it cannot."""
        acct = self.account
        if acct.uid is None:
            return
        for d in [*reversed(self.dir.parents), self.dir]:
            st = d.stat()
            if st.st_uid == acct.uid:
                ok = bool(st.st_mode & stat.S_IXUSR)
            elif st.st_gid == acct.gid:
                ok = bool(st.st_mode & stat.S_IXGRP)
            else:
                ok = bool(st.st_mode & stat.S_IXOTH)
            if not ok:
                raise ConfigError(
                    "server.dir",
                    f"the account {acct.name!r} that runs PostgreSQL cannot enter {d} "
                    f"(mode {stat.filemode(st.st_mode)}); put server.dir below folders others may enter, "
                    "or run as a non-root user",
                )

    # -- secret ----------------------------------------------------------------------------------------------------
    def password(self) -> str:
        try:
            return str(json.loads(self.secret_file.read_text())["password"])
        except (OSError, ValueError, KeyError):
            raise UserError(
                f"server: {self.secret_file} is missing or unreadable; the cluster cannot be reached"
            ) from None

    def url(self, database: str, driver: str = "postgresql+psycopg", host: str | None = None) -> str:
        """SQLAlchemy URL of one database (with the password)."""
        h = host or (self.host if self.host not in ("0.0.0.0", "", "*") else "127.0.0.1")
        return f"{driver}://{self.role}:{self.password()}@{h}:{self.port}/{database}"

    # -- life cycle ------------------------------------------------------------------------------------------------
    @property
    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def init(self) -> None:
        """``initdb`` into ``<dir>/data`` with a fresh password for ``role`` (no-op if already initialised)."""
        if self.initialised:
            return
        acct = self.account
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o711)  # the database account may enter (not list); data/ and the log are its own
        self._check_reachable()
        self.data.mkdir(mode=0o700, exist_ok=True)
        if any(self.data.iterdir()):
            raise ConfigError("server.dir", f"{self.data} is not empty but holds no PostgreSQL cluster")
        self.logfile.touch(mode=0o600, exist_ok=True)
        if acct.uid is not None:
            os.chown(self.data, acct.uid, acct.gid)
            os.chown(self.logfile, acct.uid, acct.gid)
        password = secrets.token_urlsafe(24)
        fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"role": self.role, "password": password}, f)
        pwfile = self.dir / ".initdb-pw"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        if acct.uid is not None:
            os.chown(pwfile, acct.uid, acct.gid)
        try:
            self._run(
                [
                    "initdb",
                    "-D",
                    str(self.data),
                    "-U",
                    self.role,
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                ],
                timeout=300,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        log.info("initialised a PostgreSQL cluster in %s (role %s)", self.data, self.role)

    def _write_hba(self) -> None:
        lines = [
            "# written by no2hotspots.server.postgres at every start (server.postgres.allow); TCP + password only",
            f"host all {self.role} 127.0.0.1/32 scram-sha-256",
            f"host all {self.role} ::1/128 scram-sha-256",
            *[f"host all {self.role} {cidr} scram-sha-256" for cidr in self.allow],
        ]
        hba = self.data / "pg_hba.conf"
        hba.write_text("\n".join(lines) + "\n")
        acct = self.account
        if acct.uid is not None:
            os.chown(hba, acct.uid, acct.gid)
        hba.chmod(0o600)

    def running(self) -> bool:
        if not self.initialised:
            return False
        return self._run(["pg_ctl", "status", "-D", str(self.data)], check=False).returncode == 0

    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def start(self) -> None:
        """Initialise if needed, then start (no-op when running); wait until it accepts connections."""
        self.init()
        self._check_reachable()
        if self.running():
            log.info("PostgreSQL already running in %s (port %d)", self.data, self.port)
            return
        if not port_free(self.host, self.port):
            raise ConfigError("server.postgres.port", f"{self.host}:{self.port} is in use; choose another port")
        self._write_hba()
        opts = f"-p {self.port} -c listen_addresses='{self.host}' -c unix_socket_directories=''"
        t = int(self.timeout_s)
        self._run(
            ["pg_ctl", "start", "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", str(t), "-o", opts],
            timeout=t + 30,
        )
        self._wait_connectable()
        log.info("PostgreSQL started: %s:%d (data %s, log %s)", self.host, self.port, self.data, self.logfile)

    def _wait_connectable(self) -> None:
        import psycopg

        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                with psycopg.connect(self._conninfo("postgres"), connect_timeout=5):
                    return
            except psycopg.OperationalError as e:
                if time.monotonic() > deadline:
                    raise UserError(f"server: PostgreSQL in {self.data} does not accept connections: {e}") from None
                time.sleep(0.3)

    def _conninfo(self, database: str) -> str:
        h = self.host if self.host not in ("0.0.0.0", "", "*") else "127.0.0.1"
        return f"host={h} port={self.port} dbname={database} user={self.role} password={self.password()}"

    def ensure_databases(self, names=DATABASES) -> None:
        import psycopg

        with psycopg.connect(self._conninfo("postgres"), autocommit=True) as con:
            have = {r[0] for r in con.execute("SELECT datname FROM pg_database")}
            for name in names:
                if name not in have:
                    con.execute(f'CREATE DATABASE "{name}"')
                    log.info("created database %s", name)

    def stop(self) -> bool:
        """Fast shutdown (waits until stopped); False if it was not running."""
        if not self.running():
            return False
        self._run(["pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", str(int(self.timeout_s))])
        log.info("PostgreSQL in %s stopped", self.data)
        return True
