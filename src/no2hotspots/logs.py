"""Logging set-up shared by the entry points (library code only uses ``logging.getLogger(__name__)``)."""

from __future__ import annotations

import logging
import os
import sys
import warnings


def setup(level: str | int | None = None) -> None:
    level = level or os.environ.get("NO2HOTSPOTS_LOG", "INFO")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    # Telemetry/analytics off for the libraries we drive (no network beyond what the user asks for).
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    for noisy in ("alembic", "urllib3", "matplotlib", "h5py", "git", "great_expectations", "distributed"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def progress_disabled() -> bool:
    """Progress bars show in a terminal and nowhere else (a log file, CI, `dvc exp run`); NO2HOTSPOTS_PROGRESS=1
    forces them on, =0 off."""
    forced = os.environ.get("NO2HOTSPOTS_PROGRESS")
    if forced in ("0", "1"):
        return forced == "0"
    return not sys.stderr.isatty()
