"""Fixtures of the validate tests (the sample data builders live in sample_data.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def cfg_validate():
    from no2hotspots.config import compose

    from .sample_data import SPLIT_OVERRIDES

    return compose(SPLIT_OVERRIDES).validate


@pytest.fixture(scope="module")
def gx_warm():
    """Import great_expectations once per module (the import costs several seconds)."""
    import great_expectations  # noqa: F401

    from no2hotspots.validate.suite import _context

    _context()
    return True
