"""``python -m no2hotspots download``: search CDSE for S5P L2 NO2 granules over ``download.bbox`` between
``download.start`` and ``download.end`` and download them into ``download.out_dir`` (default data/tropomi/).

Every product the catalogue returns is checked (plain file name, plain Id, byte count) before the first byte is
downloaded; see :mod:`no2hotspots.download.cdse` and docs/download.md for what is hardened."""

from __future__ import annotations

import logging
import urllib.parse
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from ..config import require
from ..errors import ConfigError
from ..logs import progress_disabled
from .cdse import CDSEClient, is_loopback

log = logging.getLogger(__name__)


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _url_ok(url) -> bool:
    if not isinstance(url, str):
        return False
    u = urllib.parse.urlsplit(str(url))
    if not u.hostname or u.username or u.password or u.query or u.fragment:
        return False
    return u.scheme == "https" or (u.scheme == "http" and is_loopback(u.hostname))


def check_config(cfg: DictConfig) -> None:
    """One-line ConfigError naming the first bad ``download.*`` key."""
    for key in ("catalogue_url", "download_url", "token_url"):
        value = OmegaConf.select(cfg, f"download.{key}")
        if not _url_ok(value):  # the value is not echoed: it may hold a password
            raise ConfigError(
                f"download.{key}",
                "must be an https:// URL without user, password, query or fragment (http:// only for localhost/127.x)",
            )
    require(
        cfg,
        "download.bbox",
        lambda b: len(b) == 4 and float(b[0]) < float(b[2]) and float(b[1]) < float(b[3]),
        "must be [west, south, east, north] with west < east and south < north",
    )
    for key, lo, hi in (
        ("page_size", 1, 1000),
        ("max_products", 1, 1_000_000),
        ("chunk_bytes", 1024, 1 << 28),
        ("retries", 0, 20),
        ("max_redirects", 0, 20),
    ):
        require(
            cfg,
            f"download.{key}",
            lambda v, lo=lo, hi=hi: _int(v) and lo <= v <= hi,
            f"must be an integer in {lo}..{hi}",
        )
    require(cfg, "download.timeout_s", lambda v: 0 < float(v) <= 3600, "must be in (0, 3600] seconds")
    require(cfg, "download.backoff_s", lambda v: 0 <= float(v) <= 600, "must be in 0..600 seconds")
    require(
        cfg,
        "download.max_backoff_s",
        lambda v: float(cfg.download.backoff_s) <= float(v) <= 3600,
        "must be >= download.backoff_s and <= 3600 seconds",
    )


def run(cfg: DictConfig) -> list[Path]:
    d = cfg.download
    check_config(cfg)
    client = CDSEClient(d)
    client.token()  # fail early (one line) when credentials are missing or wrong
    products = client.search()  # every Name/Id checked here, before anything is written
    log.info("CDSE: %d %s products over %s from %s to %s", len(products), d.product_type, list(d.bbox), d.start, d.end)
    out_dir = Path(d.out_dir)
    written = []
    for p in tqdm(products, desc="download", unit="file", disable=progress_disabled()):
        written.append(client.download(p, out_dir))
    return written
