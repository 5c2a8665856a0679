"""``python -m no2hotspots download``: search CDSE for S5P L2 NO2 granules over ``download.bbox`` between
``download.start`` and ``download.end`` and download them into ``download.out_dir`` (default data/tropomi/)."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig
from tqdm import tqdm

from ..config import require
from ..logs import progress_disabled
from .cdse import CDSEClient

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> list[Path]:
    d = cfg.download
    require(
        cfg,
        "download.bbox",
        lambda b: len(b) == 4 and float(b[0]) < float(b[2]) and float(b[1]) < float(b[3]),
        "must be [west, south, east, north] with west < east and south < north",
    )
    require(cfg, "download.page_size", lambda v: 1 <= int(v) <= 1000, "must be in 1..1000")
    require(cfg, "download.max_products", lambda v: int(v) >= 1, "must be >= 1")
    client = CDSEClient(d)
    client.token()  # fail early (one line) when credentials are missing or wrong
    products = client.search()
    log.info("CDSE: %d %s products over %s from %s to %s", len(products), d.product_type, list(d.bbox), d.start, d.end)
    out_dir = Path(d.out_dir)
    written = []
    for p in tqdm(products, desc="download", unit="file", disable=progress_disabled()):
        written.append(client.download(p, out_dir))
    return written
