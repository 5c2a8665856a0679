"""The CDSE downloader against the local mimic of the identity and OData APIs: search with paging and filters,
download, resume, checksums, credentials (see test_hostile.py for the fault and attack matrix)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from no2hotspots.download.cdse import CDSEClient, safe_name
from no2hotspots.download.run import run
from no2hotspots.errors import ConfigError, InputFileError, UserError

from .conftest import NAMES, make_cfg, payload, run_cli
from .mimic import PASSWORD, USER


def test_search_pages_filters_and_downloads(mimic, tmp_path, creds):
    written = run(make_cfg(mimic, tmp_path))
    # 4 products over 2 pages; the NRTI one is dropped by download.timeliness
    assert [p.name for p in written] == NAMES[:3]
    for i, name in enumerate(NAMES[:3]):
        assert (tmp_path / "data" / "tropomi" / name).read_bytes() == payload(i)
    f = mimic.filters[0]
    assert "Collection/Name eq 'SENTINEL-5P'" in f and "contains(Name,'L2__NO2___')" in f
    assert "OData.CSC.Intersects(area=geography'SRID=4326;POLYGON((26.5 -25.0,29.5 -25.0" in f
    assert "ContentDate/Start ge 2021-07-25T00:00:00Z" in f
    assert len(mimic.filters) == 2  # second page via @odata.nextLink
    assert sorted(os.listdir(tmp_path / "data" / "tropomi")) == sorted(NAMES[:3])  # no .part left
    # the catalogue never gets the token; the download requests do
    for r in mimic.requests:
        if r["path"].startswith("/odata/v1/Products?"):
            assert "Authorization" not in r["headers"]
        elif "$value" in r["path"]:
            assert r["headers"]["Authorization"] == f"Bearer {mimic.issued[0]}"


def test_second_run_downloads_nothing(mimic, tmp_path, creds):
    cfg = make_cfg(mimic, tmp_path)
    run(cfg)
    n = len([r for r in mimic.requests if "$value" in r["path"]])
    assert [p.name for p in run(cfg)] == NAMES[:3]
    assert len([r for r in mimic.requests if "$value" in r["path"]]) == n  # verified by checksum, not fetched


def test_resume_partial_file(mimic, tmp_path, creds):
    cfg = make_cfg(mimic, tmp_path)
    name, data = NAMES[0], payload(0)
    out = tmp_path / "data" / "tropomi"
    out.mkdir(parents=True)
    (out / f".{name}.part").write_bytes(data[:12_345])
    client = CDSEClient(cfg.download)
    prod = [p for p in client.search() if p.id == "id-0"][0]
    assert "MD5" in prod.checksums
    path = client.download(prod, out)
    assert [r["headers"].get("Range") for r in mimic.requests if "$value" in r["path"]] == ["bytes=12345-"]
    assert path.read_bytes() == data
    assert not (out / f".{name}.part").exists()


def test_checksum_mismatch_leaves_no_file(mimic, tmp_path, creds):
    mimic.products["id-1"]["md5"] = "0" * 32
    cfg = make_cfg(mimic, tmp_path)
    client = CDSEClient(cfg.download)
    prod = [p for p in client.search() if p.id == "id-1"][0]
    out = tmp_path / "data" / "tropomi"
    with pytest.raises(InputFileError, match="MD5 [0-9a-f]{32} differs from the catalogue's 0{32}"):
        client.download(prod, out)
    assert list(out.iterdir()) == []


def test_blake3_mismatch_leaves_no_file(mimic, tmp_path, creds):
    pytest.importorskip("blake3")  # pinned in requirements.txt; without it BLAKE3 is skipped with a warning
    mimic.products["id-1"]["blake3"] = "ab" * 32
    client = CDSEClient(make_cfg(mimic, tmp_path).download)
    prod = [p for p in client.search() if p.id == "id-1"][0]
    out = tmp_path / "data" / "tropomi"
    with pytest.raises(InputFileError, match="BLAKE3 [0-9a-f]{64} differs"):
        client.download(prod, out)
    assert list(out.iterdir()) == []


def test_safe_name_accepts_real_names_only():
    assert safe_name(NAMES[0]) == NAMES[0]
    for bad in ("../x.nc", "/abs/x.nc", "..", ".", "", ".hidden.nc", "a/b.nc", "a\\b.nc", "x\x00.nc", "x\n.nc", None):
        with pytest.raises(UserError, match="catalogue product"):
            safe_name(bad)


def _cli(tmp_path, cfg, env):
    params = tmp_path / "params.yaml"
    params.write_text(OmegaConf.to_yaml(cfg))
    return subprocess.run(
        [sys.executable, "-m", "no2hotspots", "download", "--params", str(params)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_missing_credentials_one_line_error(mimic, tmp_path):
    cfg = make_cfg(mimic, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDSE_") and k != "NETRC"}
    env["HOME"] = str(tmp_path)
    proc = _cli(tmp_path, cfg, env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "CDSE credentials missing" in lines[0], proc.stderr
    assert not (tmp_path / "data").exists()


def test_credentials_from_netrc_never_logged(mimic, tmp_path):
    cfg = make_cfg(mimic, tmp_path)
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    netrc.chmod(0o600)
    cfg.download.netrc_file = str(netrc)
    mimic.script["download:id-1"] = [("status", 503, {}), ("expire",)]  # a retry and a token refresh, logged
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDSE_")}
    env["NO2HOTSPOTS_LOG"] = "DEBUG"
    proc = _cli(tmp_path, cfg, env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "written" in out and "retry 1/3" in out and "requesting a new one" in out
    assert len(mimic.issued) == 2
    for secret in (PASSWORD, USER, *mimic.issued):
        assert secret not in out
    assert len(list((tmp_path / "data" / "tropomi").glob("*.nc"))) == 3


def test_wrong_password_one_line_without_secret(mimic, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CDSE_USERNAME", USER)
    monkeypatch.setenv("CDSE_PASSWORD", "wrong-pw-xyz")
    cfg = make_cfg(mimic, tmp_path)
    with caplog.at_level(logging.DEBUG), pytest.raises(UserError) as e:
        run(cfg)
    msg = str(e.value)
    assert "HTTP 401" in msg and "check CDSE_USERNAME" in msg and "\n" not in msg
    assert "wrong-pw-xyz" not in msg + caplog.text
    assert len([r for r in mimic.requests if r["method"] == "POST"]) == 1  # a refused password is not retried


@pytest.mark.parametrize(
    "key,value",
    [
        ("token_url", "https://user:pw@identity.example.org/token"),
        ("catalogue_url", "http://catalogue.example.org/odata/v1"),  # plain http off loopback
        ("download_url", "ftp://127.0.0.1/odata/v1"),
        ("retries", 2.5),
        ("retries", -1),
        ("max_redirects", "many"),
        ("backoff_s", -1),
        ("max_backoff_s", 0.001),
        ("chunk_bytes", 10),
    ],
)
def test_bad_config_one_line_naming_the_key(mimic, tmp_path, creds, capsys, key, value):
    cfg = make_cfg(mimic, tmp_path)
    cfg.download[key] = value
    with pytest.raises(ConfigError, match=f"config download.{key}:"):
        run(cfg)
    code, lines = run_cli(cfg, tmp_path, capsys)
    assert code == 2 and len(lines) == 1 and f"download.{key}" in lines[0]
    assert "pw@" not in lines[0]  # a URL with credentials is not echoed
    assert mimic.requests == []
