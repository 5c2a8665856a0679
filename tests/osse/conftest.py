"""Fixtures for the osse tests (see helpers.py for the tiny configuration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import osse_cfg


@pytest.fixture(scope="session")
def data_dir(coco2_csv) -> Path:
    return coco2_csv.parent.parent


@pytest.fixture(scope="session")
def osse_base(data_dir, tmp_path_factory):
    """One uninterrupted in-process run of the tiny OSSE (3 days): (cfg, summary, out folder)."""
    from no2hotspots.osse.run import run

    out = tmp_path_factory.mktemp("osse_base")
    cfg = osse_cfg(data_dir, out)
    summary = run(cfg)
    return cfg, summary, out / "osse"
