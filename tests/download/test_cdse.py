"""The CDSE downloader against a local HTTP server that speaks the same API shape (token, OData search with
paging, $value download with Range)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from omegaconf import OmegaConf

from no2hotspots.config import compose
from no2hotspots.download.cdse import CDSEClient
from no2hotspots.download.run import run
from no2hotspots.errors import InputFileError, UserError

USER, PASSWORD, TOKEN = "alice@example.org", "s3cret-Pa55", "tok-abcdef123456"
NAMES = [
    f"S5P_OFFL_L2__NO2____2021072{i}T110715_2021072{i}T124844_1959{i}_03_020400_20221104T141836.nc" for i in range(3)
]
NAMES.append("S5P_NRTI_L2__NO2____20210725T110715_20210725T111215_19594_03_020400_20210725T120000.nc")


class Server:
    def __init__(self):
        self.files = {f"id-{i}": (n, os.urandom(50_000 + 1000 * i)) for i, n in enumerate(NAMES)}
        self.bad_md5 = set()
        self.ranges = []
        self.filters = []
        srv = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _json(self, obj, code=200):
                b = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(b)))
                self.end_headers()
                self.wfile.write(b)

            def do_POST(self):
                body = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                ok = (
                    body.get("username") == [USER]
                    and body.get("password") == [PASSWORD]
                    and body.get("grant_type") == ["password"]
                    and body.get("client_id") == ["cdse-public"]
                )
                if not ok:
                    return self._json({"error": "invalid_grant"}, 401)
                self._json({"access_token": TOKEN, "expires_in": 600, "token_type": "Bearer"})

            def do_GET(self):
                u = urllib.parse.urlparse(self.path)
                if u.path == "/odata/v1/Products":
                    q = urllib.parse.parse_qs(u.query)
                    srv.filters.append(q["$filter"][0])
                    skip = int(q.get("$skip", ["0"])[0])
                    top = int(q["$top"][0])
                    items = list(srv.files.items())
                    page = []
                    for pid, (name, data) in items[skip : skip + top]:
                        md5 = hashlib.md5(data).hexdigest()
                        if pid in srv.bad_md5:
                            md5 = "0" * 32
                        page.append(
                            {
                                "Id": pid,
                                "Name": name,
                                "ContentLength": len(data),
                                "ContentDate": {"Start": "2021-07-25T11:07:15.000Z", "End": "2021-07-25T12:48:44.000Z"},
                                "Checksum": [
                                    {"Value": md5, "Algorithm": "MD5", "ChecksumDate": "2022-11-04"},
                                    {"Value": "ff" * 32, "Algorithm": "BLAKE3", "ChecksumDate": "2022-11-04"},
                                ],
                            }
                        )
                    out = {"@odata.context": "$metadata#Products", "value": page}
                    if skip + top < len(items):
                        q2 = {k: v[0] for k, v in q.items()}
                        q2["$skip"] = str(skip + top)
                        out["@odata.nextLink"] = f"http://{self.headers['Host']}{u.path}?{urllib.parse.urlencode(q2)}"
                    return self._json(out)
                if u.path.startswith("/odata/v1/Products(") and u.path.endswith("/$value"):
                    if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                        return self._json({"detail": "unauthorised"}, 401)
                    pid = u.path[len("/odata/v1/Products(") : -len(")/$value")]
                    data = srv.files[pid][1]
                    rng = self.headers.get("Range")
                    srv.ranges.append(rng)
                    start = int(rng.split("=")[1].rstrip("-")) if rng else 0
                    self.send_response(206 if rng else 200)
                    if rng:
                        self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                    self.send_header("Content-Length", str(len(data) - start))
                    self.end_headers()
                    self.wfile.write(data[start:])
                    return None
                self._json({"detail": "not found"}, 404)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture()
def server():
    s = Server()
    yield s
    s.httpd.shutdown()


def _cfg(server, tmp_path, **extra):
    over = [
        f"paths.data={tmp_path}/data",
        f"download.catalogue_url={server.url}/odata/v1",
        f"download.download_url={server.url}/odata/v1",
        f"download.token_url={server.url}/auth/token",
        f"download.netrc_file={tmp_path}/no-netrc",
        "download.page_size=2",
    ] + [f"download.{k}={v}" for k, v in extra.items()]
    return compose(over)


@pytest.fixture()
def creds(monkeypatch):
    monkeypatch.setenv("CDSE_USERNAME", USER)
    monkeypatch.setenv("CDSE_PASSWORD", PASSWORD)


def test_search_pages_filters_and_downloads(server, tmp_path, creds):
    cfg = _cfg(server, tmp_path)
    written = run(cfg)
    # 4 products over 2 pages; the NRTI one is dropped by download.timeliness
    assert [p.name for p in written] == NAMES[:3]
    for _pid, (name, data) in list(server.files.items())[:3]:
        assert (tmp_path / "data" / "tropomi" / name).read_bytes() == data
    f = server.filters[0]
    assert "Collection/Name eq 'SENTINEL-5P'" in f and "contains(Name,'L2__NO2___')" in f
    assert "OData.CSC.Intersects(area=geography'SRID=4326;POLYGON((26.5 -25.0,29.5 -25.0" in f
    assert "ContentDate/Start ge 2021-07-25T00:00:00Z" in f
    assert not list((tmp_path / "data" / "tropomi").glob(".*.part"))


def test_resume_partial_file(server, tmp_path, creds):
    cfg = _cfg(server, tmp_path)
    name, data = server.files["id-0"]
    out = tmp_path / "data" / "tropomi"
    out.mkdir(parents=True)
    (out / f".{name}.part").write_bytes(data[:12_345])
    client = CDSEClient(cfg.download)
    prod = [p for p in client.search() if p.id == "id-0"][0]
    path = client.download(prod, out)
    assert server.ranges == ["bytes=12345-"]
    assert path.read_bytes() == data
    assert not (out / f".{name}.part").exists()


def test_checksum_mismatch_leaves_no_file(server, tmp_path, creds):
    server.bad_md5.add("id-1")
    cfg = _cfg(server, tmp_path)
    client = CDSEClient(cfg.download)
    prod = [p for p in client.search() if p.id == "id-1"][0]
    out = tmp_path / "data" / "tropomi"
    with pytest.raises(InputFileError, match="MD5"):
        client.download(prod, out)
    assert list(out.iterdir()) == []


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


def test_missing_credentials_one_line_error(server, tmp_path, monkeypatch):
    cfg = _cfg(server, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDSE_") and k != "NETRC"}
    env["HOME"] = str(tmp_path)
    proc = _cli(tmp_path, cfg, env)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "CDSE credentials missing" in lines[0], proc.stderr
    assert not (tmp_path / "data").exists()


def test_credentials_from_netrc_never_logged(server, tmp_path):
    cfg = _cfg(server, tmp_path)
    host = "127.0.0.1"
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine {host} login {USER} password {PASSWORD}\n")
    netrc.chmod(0o600)
    cfg.download.netrc_file = str(netrc)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDSE_")}
    env["NO2HOTSPOTS_LOG"] = "DEBUG"
    proc = _cli(tmp_path, cfg, env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "written" in out
    for secret in (PASSWORD, TOKEN, USER):
        assert secret not in out
    assert len(list((tmp_path / "data" / "tropomi").glob("*.nc"))) == 3


def test_wrong_password_one_line_without_secret(server, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CDSE_USERNAME", USER)
    monkeypatch.setenv("CDSE_PASSWORD", "wrong-pw-xyz")
    cfg = _cfg(server, tmp_path)
    with caplog.at_level(logging.DEBUG), pytest.raises(UserError) as e:
        run(cfg)
    assert "HTTP 401" in str(e.value) and "wrong-pw-xyz" not in str(e.value) + caplog.text
