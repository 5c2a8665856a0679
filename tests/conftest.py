"""Shared fixtures. Tests use real behaviour: real files, real DVC, a real MLflow store in a temp dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("NO2HOTSPOTS_PROGRESS", "0")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
os.environ.pop("MLFLOW_TRACKING_URI", None)  # a developer's team-server export must not receive test runs

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"


def pytest_collection_modifyitems(config, items):
    """tests/e2e first (stable otherwise): its tiny `dvc repro` is the longest group, and xdist hands out the folders
    in collection order (measured: started last, it alone ran ~10 min after the other worker was done)."""
    items.sort(key=lambda item: not str(item.nodeid).startswith("tests/e2e/"))


def pytest_xdist_make_scheduler(config, log):
    """Under pytest-xdist, ``--dist loadgroup`` (what ``make test`` runs, ``-n 2``) groups by folder: the tests of one
    folder of tests/ (or one top-level test file) run on one worker, in their order, so a folder's session fixtures
    (the tiny `dvc repro` of tests/e2e, the team server of tests/server, simulated datasets) are built once. Done by
    the scheduler: xdist's own groups (``xdist_group`` marks) do not reach it under pytest 9 (it rewrites
    ``item._nodeid``, which pytest 9 no longer reads)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    config.option.loadscopereorder = False  # folders in collection order (tests/e2e first), not by test count
    from xdist.scheduler import LoadScopeScheduling

    class FolderScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "/".join(nodeid.split("::")[0].split("/")[:2])  # tests/<folder> or tests/<file>.py

    return FolderScheduling(config, log)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def benchmark_script():
    """``load(name)``: the module of ``benchmarks/<name>.py`` (the scripts are not a package), for tests of the
    analysis functions some of them define."""
    import importlib.util

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only ../shared folder beside the checkout (development/CI only; the product never needs it)."""
    for cand in (REPO.parent / "shared", REPO / "shared", Path("/work/shared")):
        if (cand / "realdata").is_dir():
            return cand
    pytest.skip("../shared/realdata is not available")


@pytest.fixture(scope="session")
def ddeq_data() -> Path:
    """The embedded default inputs (real Matimba TROPOMI crop, ERA5, CoCO2), fetched once into .cache/test-data.

    Returns a folder laid out like ``data/`` (tropomi/, era5/, inventory/).
    """
    from no2hotspots.config import compose
    from no2hotspots.data.fetch import CACHE_DIR, download_wheel, extract

    cfg = compose()
    dest = REPO / ".cache" / "test-data"
    wheel = download_wheel(cfg.data.package, REPO / CACHE_DIR, cfg.data.wheel_sha256)
    extract(wheel, cfg.data.files, dest)
    return dest


@pytest.fixture(scope="session")
def matimba_l2(ddeq_data) -> Path:
    return ddeq_data / "tropomi" / "Matimba_S5P_RPRO_L2__NO2____20210725T110715.nc"


@pytest.fixture(scope="session")
def coco2_csv(ddeq_data) -> Path:
    return ddeq_data / "inventory" / "coco2_ps_catalogue_v1.1.csv"
