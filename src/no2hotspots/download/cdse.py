"""A hardened CDSE OData client on the standard library (urllib): token, catalogue search, resumable download.

- token: ``POST token_url`` (grant_type=password, client_id=cdse-public) -> ``access_token`` (JSON), renewed before
  it expires and once per request after a 401;
- search: ``GET {catalogue_url}/Products?$filter=...&$orderby=ContentDate/Start&$top=N``, following
  ``@odata.nextLink`` (only on the catalogue's own origin); each product has ``Id``, ``Name``, ``ContentLength``,
  ``ContentDate`` and ``Checksum`` (a list of ``{"Algorithm": "MD5"|"BLAKE3", "Value": ...}``);
- download: ``GET {download_url}/Products(<Id>)/$value`` with ``Authorization: Bearer``; bytes go to a hidden
  ``.<name>.part`` file next to the target, resumed with ``Range: bytes=<size>-``, checked against the catalogue's
  size, MD5 and BLAKE3, then renamed onto the target (atomic).

Hardening (see docs/download.md):

- a product's ``Name`` becomes a file name only if it is a plain basename (letters, digits, ``._-``, not starting with
  a dot, at most 200 bytes); any other Name is refused before anything is downloaded;
- the password goes only to ``token_url`` (no redirect followed for it); the bearer token only to the origins
  (scheme, host, port) of ``catalogue_url``, ``download_url`` and ``token_url``. Redirects are followed by hand (at most
  ``max_redirects``) and the token is dropped on a hop to any other origin;
- 429, 5xx, timeouts and dropped connections are retried ``retries`` times with exponential backoff (``backoff_s``,
  doubling, capped at ``max_backoff_s``); a ``Retry-After`` from the server replaces the computed wait (same cap);
- errors are one line, with the password and tokens scrubbed from anything a server sends back; nothing secret is
  logged.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import http.client
import ipaddress
import json
import logging
import netrc
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputFileError, UserError

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
#: a product Name usable as a file name: a plain basename, no path, no leading dot, no odd characters
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_NAME_BYTES = 200  # ".<name>.part" stays under the usual 255-byte limit
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SAFE_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{1,8192}")


class DownloadError(UserError):
    """A failed request or download (one line, no credentials)."""


@dataclass
class Product:
    id: str
    name: str
    size: int | None
    md5: str | None
    start: str
    checksums: dict[str, str] = field(default_factory=dict)  # algorithm (upper case) -> hex digest (lower case)


def credentials(token_url: str, netrc_file: str | None = None) -> tuple[str, str]:
    """(username, password) from CDSE_USERNAME/CDSE_PASSWORD or the netrc entry for the token host."""
    user, pw = os.environ.get("CDSE_USERNAME"), os.environ.get("CDSE_PASSWORD")
    if user and pw:
        return user, pw
    host = urllib.parse.urlparse(token_url).hostname or ""
    path = netrc_file or os.environ.get("NETRC") or str(Path.home() / ".netrc")
    if Path(path).is_file():
        try:
            auth = netrc.netrc(path).authenticators(host)
        except (netrc.NetrcParseError, OSError) as e:
            raise InputFileError(path, f"unreadable netrc ({type(e).__name__})") from None
        if auth and auth[0] and auth[2]:
            return auth[0], auth[2]
    raise UserError(
        f"CDSE credentials missing: set CDSE_USERNAME and CDSE_PASSWORD, or add 'machine {host} login ... "
        f"password ...' to {path}"
    )


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of ``url``: credentials are sent to a URL only if its origin is a configured one."""
    u = urllib.parse.urlsplit(url)
    scheme = (u.scheme or "").lower()
    try:
        port = u.port
    except ValueError:
        port = -1
    return scheme, (u.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme, -1)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def safe_name(name, pid: str = "?") -> str:
    """The product Name as a file name inside ``out_dir``, or a one-line :class:`DownloadError` saying why not."""
    shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
    if not isinstance(name, str) or not name:
        raise DownloadError(f"catalogue product {pid}: empty or missing Name {shown}; nothing downloaded")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise DownloadError(f"catalogue product {pid}: Name longer than {MAX_NAME_BYTES} bytes; nothing downloaded")
    if not SAFE_NAME.fullmatch(name) or name in (".", ".."):
        raise DownloadError(
            f"catalogue product {pid}: Name {shown} is not a plain file name (letters, digits, '._-', no path, "
            "no leading dot); nothing downloaded"
        )
    return name


class _Transient(Exception):
    """A failure worth retrying (429, 5xx, timeout, dropped connection); ``retry_after`` from the server if any."""

    def __init__(self, what: str, retry_after: float | None = None):
        super().__init__(what)
        self.retry_after = retry_after


class _Unauthorized(Exception):
    pass


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib would follow redirects and carry every header (the bearer token too) to any host: we do it by hand."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


class CDSEClient:
    def __init__(self, cfg):
        self.cfg = cfg
        self.timeout = float(cfg.timeout_s)
        self.retries = int(cfg.get("retries", 5))
        self.backoff_s = float(cfg.get("backoff_s", 2.0))
        self.max_backoff_s = float(cfg.get("max_backoff_s", 120.0))
        self.max_redirects = int(cfg.get("max_redirects", 5))
        self._token: str | None = None
        self._token_expiry = 0.0
        self._secrets: set[str] = set()
        self._trusted = {origin(str(cfg[k])) for k in ("catalogue_url", "download_url", "token_url")}
        self._opener = urllib.request.build_opener(_NoRedirect)

    # -- messages -----------------------------------------------------------------------------------------------
    def _clean(self, text) -> str:
        """One line, short, with every secret this client knows replaced by ***."""
        text = str(text)
        for s in sorted(self._secrets, key=len, reverse=True):
            if len(s) >= 3:
                text = text.replace(s, "***")
        text = re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()
        return text if len(text) <= 300 else text[:297] + "..."

    def _error(self, msg: str) -> DownloadError:
        return DownloadError(self._clean(msg))

    # -- HTTP ---------------------------------------------------------------------------------------------------
    def _open(self, method: str, url: str, what: str, *, auth: bool, headers=None, data=None, redirects: bool = True):
        """Send one request, following redirects by hand; the token goes only to trusted origins.

        Returns the open response (2xx). Raises :class:`_Transient` (retry), :class:`_Unauthorized` (401 sent with a
        token) or :class:`DownloadError` (anything else).
        """
        hops = 0
        while True:
            h = dict(headers or {})
            sent_token = auth and origin(url) in self._trusted
            if sent_token:
                h["Authorization"] = f"Bearer {self.token()}"
            req = urllib.request.Request(url, data=data, method=method, headers=h)
            try:
                return self._opener.open(req, timeout=self.timeout)
            except urllib.error.HTTPError as e:
                code, reason, hdrs = e.code, e.reason, e.headers
                e.close()
            except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as e:
                raise _Transient(f"cannot connect ({getattr(e, 'reason', e)})") from None
            if code in REDIRECT_STATUS and redirects and hdrs.get("Location"):
                hops += 1
                new = urllib.parse.urljoin(url, hdrs["Location"])
                if hops > self.max_redirects:
                    raise self._error(f"{what}: more than {self.max_redirects} redirects (download.max_redirects)")
                if origin(new)[0] not in ("http", "https"):
                    raise self._error(f"{what}: redirected to a non-HTTP URL; not followed")
                if auth and origin(new) not in self._trusted:
                    log.info("%s: redirected to %s; the token is not sent there", what, origin(new)[1])
                if method == "POST" and code in (301, 302, 303):
                    method, data = "GET", None
                url = new
                continue
            if code in REDIRECT_STATUS:
                raise self._error(f"{what}: HTTP {code} redirect not followed; configure the final URL")
            if code == 401 and sent_token:
                raise _Unauthorized()
            if code in RETRY_STATUS:
                raise _Transient(f"HTTP {code} {reason}", _retry_after(hdrs.get("Retry-After")))
            raise self._error(f"{what}: HTTP {code} {reason}")

    def _wait(self, what: str, attempt: int, err: _Transient) -> None:
        """Sleep before retry ``attempt`` (1-based) or raise the one-line error when retries are used up."""
        if attempt > self.retries:
            raise self._error(f"{what}: {err} (gave up after {self.retries} retries, download.retries)")
        if err.retry_after is not None:
            delay, why = min(err.retry_after, self.max_backoff_s), "Retry-After"
        else:
            delay, why = min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s), "backoff"
        log.warning("%s: %s; retry %d/%d in %.1f s (%s)", what, self._clean(err), attempt, self.retries, delay, why)
        time.sleep(delay)

    def _request_json(self, method: str, url: str, what: str, *, auth: bool = False, data=None, headers=None):
        attempt, refreshed = 0, False
        while True:
            try:
                with self._open(
                    method, url, what, auth=auth, headers=headers, data=data, redirects=(data is None)
                ) as r:
                    raw = r.read()
                break
            except _Transient as e:
                attempt += 1
                self._wait(what, attempt, e)
            except _Unauthorized:
                if refreshed:
                    raise self._error(f"{what}: HTTP 401 even with a fresh token") from None
                refreshed = True
                self._token = None
        try:
            return json.loads(raw)
        except ValueError:
            raise self._error(f"{what}: the answer is not JSON") from None

    # -- auth ---------------------------------------------------------------------------------------------------
    def token(self) -> str:
        if self._token and time.monotonic() < self._token_expiry:
            return self._token
        url = str(self.cfg.token_url)
        user, pw = credentials(url, self.cfg.get("netrc_file"))
        self._secrets.add(pw)
        body = urllib.parse.urlencode(
            {"grant_type": "password", "client_id": self.cfg.client_id, "username": user, "password": pw}
        ).encode()
        what = f"token request to {url}"
        attempt = 0
        while True:
            try:
                with self._open(
                    "POST",
                    url,
                    what,
                    auth=False,
                    data=body,
                    redirects=False,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                ) as r:
                    raw = r.read()
                break
            except _Transient as e:
                attempt += 1
                self._wait(what, attempt, e)
            except DownloadError as e:
                if " HTTP 401" in str(e) or " HTTP 400" in str(e):
                    raise self._error(f"{e} (check CDSE_USERNAME/CDSE_PASSWORD or the netrc entry)") from None
                raise
        try:
            data = json.loads(raw)
            tok = data["access_token"]
            expires = float(data.get("expires_in", 600))
        except (ValueError, KeyError, TypeError):
            raise self._error(f"{what}: no access_token in the answer") from None
        if not isinstance(tok, str) or not SAFE_TOKEN.fullmatch(tok):
            raise self._error(f"{what}: the access_token is not a plain token string")
        self._secrets.add(tok)
        self._token = tok
        self._token_expiry = time.monotonic() + max(30.0, expires - 60.0)
        log.info("CDSE token obtained")
        return tok

    # -- search -------------------------------------------------------------------------------------------------
    def search_filter(self) -> str:
        w, s, e, n = (float(x) for x in self.cfg.bbox)
        poly = f"POLYGON(({w} {s},{e} {s},{e} {n},{w} {n},{w} {s}))"
        return (
            f"Collection/Name eq '{self.cfg.collection}' and contains(Name,'{self.cfg.product_type}') and "
            f"OData.CSC.Intersects(area=geography'SRID=4326;{poly}') and "
            f"ContentDate/Start ge {self.cfg.start} and ContentDate/Start lt {self.cfg.end}"
        )

    def search(self) -> list[Product]:
        """All matching products (at most ``max_products``), each checked before anything is downloaded."""
        query = urllib.parse.urlencode(
            {"$filter": self.search_filter(), "$orderby": "ContentDate/Start asc", "$top": int(self.cfg.page_size)},
            quote_via=urllib.parse.quote,
        )
        base = str(self.cfg.catalogue_url)
        url = f"{base}/Products?{query}"
        keep = [str(t) for t in (self.cfg.get("timeliness") or [])]
        out: list[Product] = []
        pages = 0
        while url and len(out) < int(self.cfg.max_products):
            pages += 1
            page = self._request_json("GET", url, "catalogue search")
            if not isinstance(page, dict) or not isinstance(page.get("value", []), list):
                raise self._error("catalogue search: the answer has no product list ('value')")
            for k, item in enumerate(page.get("value", [])):
                p = self._product(item, f"page {pages} item {k}")
                if keep and not any(f"_{t}_" in p.name for t in keep):
                    continue
                out.append(p)
            url = page.get("@odata.nextLink")
            if url is not None and (not isinstance(url, str) or origin(url) != origin(base)):
                raise self._error(f"catalogue search: @odata.nextLink leaves the catalogue ({base}); not followed")
        out = out[: int(self.cfg.max_products)]
        seen: dict[str, str] = {}
        for p in out:
            if p.name in seen:
                raise self._error(f"catalogue products {seen[p.name]} and {p.id} share the Name {p.name}")
            seen[p.name] = p.id
        return out

    def _product(self, item, where: str) -> Product:
        if not isinstance(item, dict):
            raise self._error(f"catalogue search: {where} is not an object")
        pid = item.get("Id")
        if not isinstance(pid, str) or not SAFE_ID.fullmatch(pid):
            raise self._error(f"catalogue search: {where} has an odd Id {str(pid)[:60]!r}; nothing downloaded")
        name = safe_name(item.get("Name"), pid)
        size = item.get("ContentLength")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise self._error(f"catalogue product {pid}: ContentLength {str(size)[:30]!r} is not a byte count")
        checksums = {}
        for c in item.get("Checksum") or []:
            value = c.get("Value") if isinstance(c, dict) else None
            if isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]{32,128}", value):
                checksums[str(c.get("Algorithm", "")).upper()] = value.lower()
        dates = item.get("ContentDate")
        start = dates.get("Start", "") if isinstance(dates, dict) else ""
        return Product(pid, name, size, checksums.get("MD5"), str(start), checksums)

    # -- download -----------------------------------------------------------------------------------------------
    def download(self, product: Product, out_dir: Path) -> Path:
        """Download one product into ``out_dir`` (resuming a .part file), verify it and rename it into place."""
        out_dir = Path(out_dir)
        name = safe_name(product.name, product.id)  # again: a Product may be built by hand
        if not SAFE_ID.fullmatch(product.id):
            raise self._error(f"product Id {product.id[:60]!r} is not a plain identifier")
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / name
        part = out_dir / f".{name}.part"
        if target.parent != out_dir or part.parent != out_dir:  # cannot happen with a safe name; belt and braces
            raise self._error(f"{name}: resolves outside {out_dir}")
        if target.is_file() and not target.is_symlink():
            problem = self._verify(target, product)
            if problem is None:
                log.info("ok       %s (already here)", target.name)
                return target
            log.warning("%s exists but %s; downloading it again", target, problem)
        if part.is_symlink() or (part.exists() and not part.is_file()):
            raise self._error(f"{part}: not a regular file; remove it")
        have = part.stat().st_size if part.exists() else 0
        if product.size is not None and have > product.size:
            part.unlink()
            have = 0
        url = f"{self.cfg.download_url}/Products({urllib.parse.quote(product.id)})/$value"
        what = f"download of {name}"
        attempt, refreshed = 0, False
        while product.size is None or have < product.size:
            headers = {"Range": f"bytes={have}-"} if have else {}
            try:
                with self._open("GET", url, what, auth=True, headers=headers) as r:
                    have = self._receive(r, part, have, product, name)
                if product.size is None:
                    break
                if have < product.size:
                    raise _Transient(f"connection closed at byte {have} of {product.size}")
            except _Transient as e:
                attempt += 1
                try:
                    self._wait(what, attempt, e)
                except DownloadError:
                    with contextlib.suppress(FileNotFoundError):
                        if part.stat().st_size == 0:
                            part.unlink()
                    raise
                have = part.stat().st_size if part.exists() else 0
            except _Unauthorized:
                if refreshed:
                    raise self._error(f"{what}: HTTP 401 even with a fresh token") from None
                refreshed = True
                self._token = None
                log.info("%s: token refused (401); requesting a new one", name)
        if not part.exists():  # a zero-byte product: nothing was requested
            part.touch()
        problem = self._verify(part, product)
        if problem is not None:
            part.unlink()
            raise InputFileError(target, f"{problem}; the partial download was removed, run again")
        os.replace(part, target)
        log.info("written  %s (%d bytes)", target, target.stat().st_size)
        return target

    def _receive(self, r, part: Path, have: int, product: Product, name: str) -> int:
        """Write the response body to ``part`` (appending after a 206 for our range); return the size on disk."""
        if have and r.status == 206:
            m = re.match(r"bytes (\d+)-", r.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != have:
                log.info("%s: the server answered another range; restarting", name)
                r.close()
                part.unlink()
                raise _Transient("range mismatch")
            mode = "ab"
        else:
            if have:
                log.info("%s: the server ignored the Range request; restarting", name)
            mode, have = "wb", 0
        if have:
            log.info("resuming %s at byte %d", name, have)
        limit = product.size
        with open(part, mode) as f:
            while True:
                try:
                    chunk = r.read(int(self.cfg.chunk_bytes))
                except (http.client.HTTPException, ConnectionError, TimeoutError) as e:
                    raise _Transient(f"connection dropped at byte {have} ({type(e).__name__})") from None
                if not chunk:
                    break
                if limit is not None and have + len(chunk) > limit:
                    raise self._error(f"download of {name}: the server sent more than the catalogue's {limit} bytes")
                f.write(chunk)
                have += len(chunk)
        return part.stat().st_size

    def _verify(self, path: Path, product: Product) -> str | None:
        """None if ``path`` has the catalogue's size and checksums, else what differs."""
        size = path.stat().st_size
        if product.size is not None and size != product.size:
            return f"size {size} differs from the catalogue's {product.size}"
        sums = dict(product.checksums or ({"MD5": product.md5.lower()} if product.md5 else {}))
        hashers = {}
        if "MD5" in sums:
            hashers["MD5"] = hashlib.md5(usedforsecurity=False)
        if "BLAKE3" in sums:
            try:
                import blake3

                hashers["BLAKE3"] = blake3.blake3()
            except ImportError:
                log.warning("%s: the blake3 package is missing; BLAKE3 not checked", path.name)
        if not hashers:
            log.warning("%s: the catalogue gives no MD5/BLAKE3 checksum; size checked only", path.name)
            return None
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                for h in hashers.values():
                    h.update(block)
        for alg, h in hashers.items():
            digest = h.hexdigest()
            if digest != sums[alg]:
                return f"{alg} {digest} differs from the catalogue's {sums[alg]}"
        return None
