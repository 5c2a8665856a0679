"""A small CDSE OData client on the standard library (urllib): token, catalogue search, resumable download.

- token: ``POST token_url`` (grant_type=password, client_id=cdse-public) -> ``access_token`` (JSON);
- search: ``GET {catalogue_url}/Products?$filter=...&$orderby=ContentDate/Start&$top=N``, following
  ``@odata.nextLink``; each product has ``Id``, ``Name``, ``ContentLength``, ``ContentDate`` and ``Checksum``
  (a list of ``{"Algorithm": "MD5"|"BLAKE3", "Value": ...}``);
- download: ``GET {download_url}/Products(<Id>)/$value`` with ``Authorization: Bearer``; bytes go to a hidden
  ``.<name>.part`` file next to the target, resumed with ``Range: bytes=<size>-``, MD5-verified where the
  catalogue gives one, then renamed onto the target (atomic).

Credentials and tokens are never logged or put in exception messages.
"""

from __future__ import annotations

import hashlib
import json
import logging
import netrc
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputFileError, UserError

log = logging.getLogger(__name__)


class DownloadError(UserError):
    """A failed request or download (one line, no credentials)."""


@dataclass
class Product:
    id: str
    name: str
    size: int | None
    md5: str | None
    start: str


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


def _open(req: urllib.request.Request, timeout: float, what: str):
    try:
        return urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        raise DownloadError(f"{what}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"{what}: cannot connect ({reason})") from None


class CDSEClient:
    def __init__(self, cfg):
        self.cfg = cfg
        self.timeout = float(cfg.timeout_s)
        self._token: str | None = None
        self._token_expiry = 0.0

    # -- auth ---------------------------------------------------------------------------------------------------
    def token(self) -> str:
        if self._token and time.monotonic() < self._token_expiry:
            return self._token
        user, pw = credentials(self.cfg.token_url, self.cfg.get("netrc_file"))
        body = urllib.parse.urlencode(
            {"grant_type": "password", "client_id": self.cfg.client_id, "username": user, "password": pw}
        ).encode()
        req = urllib.request.Request(
            self.cfg.token_url, data=body, method="POST", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        with _open(req, self.timeout, f"token request to {self.cfg.token_url}") as r:
            data = json.load(r)
        if "access_token" not in data:
            raise DownloadError(f"token request to {self.cfg.token_url}: no access_token in the answer")
        self._token = data["access_token"]
        self._token_expiry = time.monotonic() + max(30.0, float(data.get("expires_in", 600)) - 60.0)
        log.info("CDSE token obtained")
        return self._token

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
        query = urllib.parse.urlencode(
            {"$filter": self.search_filter(), "$orderby": "ContentDate/Start asc", "$top": int(self.cfg.page_size)},
            quote_via=urllib.parse.quote,
        )
        url = f"{self.cfg.catalogue_url}/Products?{query}"
        keep = [str(t) for t in (self.cfg.get("timeliness") or [])]
        out: list[Product] = []
        while url and len(out) < int(self.cfg.max_products):
            with _open(urllib.request.Request(url), self.timeout, "catalogue search") as r:
                page = json.load(r)
            for item in page.get("value", []):
                name = item["Name"]
                if keep and not any(f"_{t}_" in name for t in keep):
                    continue
                md5 = next(
                    (
                        c.get("Value")
                        for c in item.get("Checksum") or []
                        if str(c.get("Algorithm", "")).upper() == "MD5" and c.get("Value")
                    ),
                    None,
                )
                out.append(
                    Product(
                        str(item["Id"]),
                        name,
                        item.get("ContentLength"),
                        md5,
                        (item.get("ContentDate") or {}).get("Start", ""),
                    )
                )
            url = page.get("@odata.nextLink")
        return out[: int(self.cfg.max_products)]

    # -- download -----------------------------------------------------------------------------------------------
    def download(self, product: Product, out_dir: Path) -> Path:
        """Download one product into ``out_dir`` (resuming a .part file), verify it and rename it into place."""
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / product.name
        if target.exists() and (product.md5 is None or _md5(target) == product.md5.lower()):
            log.info("ok       %s (already here)", target.name)
            return target
        part = out_dir / f".{product.name}.part"
        have = part.stat().st_size if part.exists() else 0
        if product.size is not None and have > int(product.size):
            part.unlink()
            have = 0
        url = f"{self.cfg.download_url}/Products({product.id})/$value"
        headers = {"Authorization": f"Bearer {self.token()}"}
        if have:
            headers["Range"] = f"bytes={have}-"
        if not (product.size is not None and have == int(product.size)):
            with _open(urllib.request.Request(url, headers=headers), self.timeout, f"download of {product.name}") as r:
                mode = "ab" if (have and r.status == 206) else "wb"
                if have and mode == "wb":
                    log.info("server ignored the Range request; restarting %s", product.name)
                elif have:
                    log.info("resuming %s at byte %d", product.name, have)
                with open(part, mode) as f:
                    while chunk := r.read(int(self.cfg.chunk_bytes)):
                        f.write(chunk)
        size = part.stat().st_size
        if product.size is not None and size != int(product.size):
            raise DownloadError(f"{product.name}: got {size} bytes, catalogue says {product.size}; run again to resume")
        if product.md5:
            digest = _md5(part)
            if digest != product.md5.lower():
                part.unlink()
                raise InputFileError(
                    target,
                    f"MD5 {digest} differs from the catalogue's {product.md5}; the partial "
                    "download was removed, run again",
                )
        else:
            log.warning("%s: the catalogue gives no MD5; size checked only", product.name)
        os.replace(part, target)
        log.info("written  %s (%d bytes)", target, size)
        return target


def _md5(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
