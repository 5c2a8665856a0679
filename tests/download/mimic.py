"""A local mimic of the Copernicus Data Space (CDSE) identity and OData APIs, with scripted faults (stdlib only).

It answers what the real services answer for the downloader's requests:

- ``POST /auth/token``: password and refresh-token grants -> ``access_token``, ``expires_in``, ``refresh_token``;
- ``GET /auth/.well-known/openid-configuration`` and ``/auth/certs`` (the JWKS; set :attr:`Mimic.jwks`) for clients
  that discover the token endpoint and verify JWT signatures (cdsetool, eodag);
- ``GET /odata/v1/Products?$filter=...&$top=N&$skip=K``: pages of products with ``@odata.nextLink``;
- ``GET|HEAD /odata/v1/Products(<Id>)/$value``: the bytes, bearer token (header, or ``?token=`` as eodag sends it),
  ``Range: bytes=N-`` answered with 206;
- ``GET /files/<Id>``: the bytes without authentication (a redirect target on "another host").

Faults are scripted per request kind and consumed in order: ``mimic.script["download:id-0"] = [("status", 503, {}),
("cut", 1000)]``; kinds are ``token``, ``search``, ``download:<Id>``. Actions: ``("status", code, headers)``,
``("cut", nbytes)`` (send the headers and ``nbytes`` of the body, then drop the connection), ``("expire",)`` (forget
every issued token and answer 401), ``("redirect", url[, code])``. ``mimic.redirects[Id] = url`` makes every
download of ``Id`` answer 302 there.
Every request is recorded in :attr:`Mimic.requests` (method, path with query, headers) so tests can assert what a
server received. The tests and ``probe_libraries.py`` (which drives cdsetool and eodag) share it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import urllib.parse
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USER, PASSWORD = "alice@example.org", "s3cret-Pa55"

try:  # the catalogue lists BLAKE3 beside MD5; give a real one when the package is there
    import blake3 as _blake3
except ImportError:  # pragma: no cover - blake3 is pinned in requirements.txt
    _blake3 = None


def s5p_name(i: int, stream: str = "OFFL") -> str:
    return f"S5P_{stream}_L2__NO2____2021072{i}T110715_2021072{i}T124844_1959{i}_03_020400_20221104T141836.nc"


class Mimic:
    def __init__(self, host: str = "127.0.0.1"):
        self.products: dict[str, dict] = {}  # Id -> {"name", "data", "md5" (override), "blake3" (override)}
        self.script: dict[str, list] = defaultdict(list)
        self.redirects: dict[str, str] = {}
        self.requests: list[dict] = []
        self.users = {USER: PASSWORD}
        self.valid_tokens: set[str] = set()
        self.issued: list[str] = []
        self.token_factory = None  # callable(n) -> token string (cdsetool/eodag need signed JWTs)
        self.jwks: dict | None = None
        self.expires_in = 600
        self.next_link_base: str | None = None  # where @odata.nextLink points (default: this server)
        self._n = itertools.count(1)
        self._lock = threading.Lock()
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _record(self, body: bytes = b""):
                with srv._lock:
                    srv.requests.append(
                        {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
                    )

            def _send(self, code, body: bytes = b"", headers=None, ctype="application/json"):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _json(self, obj, code=200, headers=None):
                self._send(code, json.dumps(obj).encode(), headers)

            def _fault(self, kind: str) -> bool:
                """Play the next scripted action for ``kind``; True if it answered the request."""
                with srv._lock:
                    queue = srv.script.get(kind)
                    action = queue.pop(0) if queue and self.command != "HEAD" else None
                if action is None:
                    return False
                if action[0] == "status":
                    code, headers = action[1], (action[2] if len(action) > 2 else {})
                    self._json({"detail": f"scripted {code}"}, code, headers)
                    return True
                if action[0] == "expire":
                    with srv._lock:
                        srv.valid_tokens.clear()
                    self._json({"detail": "Expired signature!"}, 401)
                    return True
                if action[0] == "redirect":
                    self._send(action[2] if len(action) > 2 else 302, b"", {"Location": action[1]})
                    return True
                if action[0] == "cut":
                    self._cut = int(action[1])
                    return False
                raise AssertionError(f"unknown scripted action {action!r}")

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                self._record(raw)
                if urllib.parse.urlparse(self.path).path != "/auth/token":
                    return self._json({"detail": "not found"}, 404)
                if self._fault("token"):
                    return None
                body = urllib.parse.parse_qs(raw.decode())
                grant = body.get("grant_type", [""])[0]
                if body.get("client_id") != ["cdse-public"]:
                    return self._json({"error": "invalid_client"}, 401)
                if grant == "password":
                    user = body.get("username", [""])[0]
                    if srv.users.get(user) != body.get("password", [None])[0]:
                        return self._json({"error": "invalid_grant", "error_description": "bad credentials"}, 401)
                elif grant != "refresh_token" or not body.get("refresh_token"):
                    return self._json({"error": "unsupported_grant_type"}, 400)
                k = next(srv._n)
                tok = srv.token_factory(k) if srv.token_factory else f"tok-{k}-abcdef123456"
                with srv._lock:
                    srv.issued.append(tok)
                    srv.valid_tokens.add(tok)
                return self._json(
                    {
                        "access_token": tok,
                        "expires_in": srv.expires_in,
                        "refresh_token": f"refresh-{k}-zyxw9876",
                        "refresh_expires_in": 3600,
                        "token_type": "Bearer",
                    }
                )

            def _authorised(self, query: dict) -> bool:
                auth = self.headers.get("Authorization", "")
                tok = auth[len("Bearer ") :] if auth.startswith("Bearer ") else query.get("token", [None])[0]
                with srv._lock:
                    return tok in srv.valid_tokens

            def do_HEAD(self):
                return self.do_GET()

            def do_GET(self):
                self._record()
                self._cut = None
                u = urllib.parse.urlparse(self.path)
                q = urllib.parse.parse_qs(u.query)
                if u.path == "/auth/.well-known/openid-configuration":
                    base = f"http://{self.headers['Host']}/auth"
                    return self._json(
                        {
                            "issuer": base,
                            "token_endpoint": f"{base}/token",
                            "authorization_endpoint": f"{base}/auth",
                            "jwks_uri": f"{base}/certs",
                            "id_token_signing_alg_values_supported": ["RS256"],
                        }
                    )
                if u.path == "/auth/certs":
                    return self._json(srv.jwks or {"keys": []})
                if u.path == "/odata/v1/Products":
                    if self._fault("search"):
                        return None
                    return self._search(u, q)
                if u.path.startswith("/odata/v1/Products(") and u.path.endswith("/$value"):
                    pid = urllib.parse.unquote(u.path[len("/odata/v1/Products(") : -len(")/$value")])
                    if pid not in srv.products:
                        return self._json({"detail": "no such product"}, 404)
                    if self._fault(f"download:{pid}"):
                        return None
                    if not self._authorised(q):
                        return self._json({"detail": "Could not validate credentials"}, 401)
                    if pid in srv.redirects:
                        return self._send(302, b"", {"Location": srv.redirects[pid]})
                    return self._bytes(srv.products[pid])
                if u.path.startswith("/files/"):
                    pid = urllib.parse.unquote(u.path[len("/files/") :])
                    if pid not in srv.products:
                        return self._json({"detail": "no such file"}, 404)
                    return self._bytes(srv.products[pid])
                return self._json({"detail": "not found"}, 404)

            def _search(self, u, q):
                srv.filters.append(q.get("$filter", [""])[0])
                skip, top = int(q.get("$skip", ["0"])[0]), int(q.get("$top", ["20"])[0])
                items = list(srv.products.items())
                page = [srv.item(pid, p) for pid, p in items[skip : skip + top]]
                out = {"@odata.context": "$metadata#Products", "value": page}
                if skip + top < len(items):
                    q2 = {k: v[0] for k, v in q.items()}
                    q2["$skip"] = str(skip + top)
                    base = srv.next_link_base or f"http://{self.headers['Host']}"
                    out["@odata.nextLink"] = f"{base}{u.path}?{urllib.parse.urlencode(q2)}"
                return self._json(out)

            def _bytes(self, product):
                data = product["data"]
                rng = self.headers.get("Range")
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                body = data[start:]
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Type", "application/octet-stream")
                name = str(product["name"])
                if all(" " <= ch < "\x7f" and ch not in '"\\' for ch in name):  # as CDSE sends it
                    self.send_header("Content-Disposition", f'attachment; filename="{name}"')
                else:  # a hostile Name must not break the header
                    quoted = urllib.parse.quote(name, safe="")
                    self.send_header("Content-Disposition", f"attachment; filename*=UTF-8''{quoted}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                if self._cut is not None:
                    self.wfile.write(body[: self._cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)  # the client sees the connection drop mid-body
                    return
                self.wfile.write(body)

        self.filters: list[str] = []
        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.host = host
        self.port = self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    # -- catalogue content ----------------------------------------------------------------------------------------
    def add(self, pid: str, name: str, data: bytes, *, md5: str | None = None, blake3: str | None = None) -> None:
        self.products[pid] = {"name": name, "data": data, "md5": md5, "blake3": blake3}

    def item(self, pid: str, p: dict) -> dict:
        md5 = p["md5"] or hashlib.md5(p["data"]).hexdigest()
        checks = [{"Value": md5, "Algorithm": "MD5", "ChecksumDate": "2022-11-04T14:32:12.000Z"}]
        b3 = p["blake3"] or (_blake3.blake3(p["data"]).hexdigest() if _blake3 else None)
        if b3:
            checks.append({"Value": b3, "Algorithm": "BLAKE3", "ChecksumDate": "2022-11-04T14:32:12.000Z"})
        return {
            "@odata.mediaContentType": "application/octet-stream",
            "Id": pid,
            "Name": p["name"],
            "ContentType": "application/octet-stream",
            "ContentLength": p.get("size", len(p["data"])),
            "OriginDate": "2022-11-04T14:32:12.000Z",
            "PublicationDate": "2022-11-04T14:40:00.000Z",
            "ModificationDate": "2022-11-04T14:40:00.000Z",
            "Online": True,
            "EvictionDate": "",
            "S3Path": f"/eodata/Sentinel-5P/TROPOMI/L2__NO2___/2021/07/25/{pid}",
            "Checksum": checks,
            "ContentDate": {"Start": "2021-07-25T11:07:15.000Z", "End": "2021-07-25T12:48:44.000Z"},
            "Footprint": "geography'SRID=4326;POLYGON ((26 -26, 30 -26, 30 -22, 26 -22, 26 -26))'",
            "GeoFootprint": {
                "type": "Polygon",
                "coordinates": [[[26.0, -26.0], [30.0, -26.0], [30.0, -22.0], [26.0, -22.0], [26.0, -26.0]]],
            },
            "Collection": "SENTINEL-5P",
            "Attributes": [],
        }

    # -- what arrived -----------------------------------------------------------------------------------------------
    def received(self, needle: str) -> list[dict]:
        """Requests whose request line or any header value contains ``needle``."""
        return [r for r in self.requests if needle in r["path"] or any(needle in str(v) for v in r["headers"].values())]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
