"""Fixtures for the detect tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def detect_cfg(tmp_path):
    from no2hotspots.config import compose

    return compose(
        [
            f"paths.outputs={tmp_path}/outputs",
            f"paths.mlruns={tmp_path}/mlruns",
            "detect.collections=[test]",
            "parallel.scheduler=sync",
        ]
    )
