"""Fixtures for the downloader tests: a CDSE mimic on 127.0.0.1, a second server on another host (127.0.0.2),
credentials in the environment, a composed config pointing at the mimic, and checksums of a folder tree."""

from __future__ import annotations

import copy
import functools
import hashlib
import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from no2hotspots.cli import main
from no2hotspots.config import compose

from .mimic import PASSWORD, USER, Mimic, s5p_name

NAMES = [s5p_name(i) for i in range(3)] + [s5p_name(4, "NRTI")]


def payload(i: int) -> bytes:
    """Deterministic, incompressible-looking bytes (50-53 kB)."""
    out = bytearray()
    seed = hashlib.sha256(f"product-{i}".encode()).digest()
    while len(out) < 50_000 + 1000 * i:
        seed = hashlib.sha256(seed).digest()
        out += seed
    return bytes(out[: 50_000 + 1000 * i])


@pytest.fixture()
def mimic():
    m = Mimic()
    for i, name in enumerate(NAMES):
        m.add(f"id-{i}", name, payload(i))
    yield m
    m.close()


def other_host_mimic() -> Mimic:
    """A mimic on 127.0.0.2 (Linux routes all of 127/8 to loopback; macOS needs an alias, else the test skips)."""
    try:
        return Mimic(host="127.0.0.2")
    except OSError as e:
        pytest.skip(f"cannot bind 127.0.0.2 ({e}); on macOS: sudo ifconfig lo0 alias 127.0.0.2")


@pytest.fixture()
def other():
    """Another host (127.0.0.2, another port): a redirect target that must never see a credential."""
    m = other_host_mimic()
    for i, name in enumerate(NAMES):
        m.add(f"id-{i}", name, payload(i))
    yield m
    m.close()


@pytest.fixture()
def creds(monkeypatch):
    monkeypatch.setenv("CDSE_USERNAME", USER)
    monkeypatch.setenv("CDSE_PASSWORD", PASSWORD)


@functools.lru_cache(maxsize=1)
def _base_cfg():
    return compose(["paths.data=/nonexistent"])


def make_cfg(mimic: Mimic, tmp_path: Path, **extra):
    """The composed config (composed once per session) pointing at ``mimic``, fast retries, ``extra`` keys."""
    cfg = copy.deepcopy(_base_cfg())
    values = {
        "catalogue_url": f"{mimic.url}/odata/v1",
        "download_url": f"{mimic.url}/odata/v1",
        "token_url": f"{mimic.url}/auth/token",
        "netrc_file": f"{tmp_path}/no-netrc",
        "page_size": 2,
        "backoff_s": 0.01,
        "max_backoff_s": 2.0,
        "retries": 3,
        "timeout_s": 10,
        **extra,
    }
    cfg.paths.data = f"{tmp_path}/data"
    for k, v in values.items():
        cfg.download[k] = v
    return cfg


def run_cli(cfg, tmp_path: Path, capsys) -> tuple[int, list[str]]:
    """Run ``python -m no2hotspots download --params FILE`` in-process: (exit code, stderr lines)."""
    params = tmp_path / "params.yaml"
    params.write_text(OmegaConf.to_yaml(cfg))
    capsys.readouterr()
    code = main(["download", "--params", str(params)])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


def tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (hidden files included; the run's own ``params.yaml``
    at the root left out); symlinks by their target."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            rel = str(p.relative_to(root))
            if rel == "params.yaml":
                continue
            out[rel] = f"-> {os.readlink(p)}" if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out
