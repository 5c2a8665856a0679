"""The ``validate`` stage: the data-quality suite of the simulated dataset.

``python -m no2hotspots validate`` summarises ``paths.simulated`` scene by scene, runs the expectations of
``conf/validate/default.yaml`` (great-expectations, in process) and writes ``validate.simulated_report`` (.json and
.md) and the per-scene table ``validate.scene_table``. A failing suite exits non-zero after writing the report.
"""

from __future__ import annotations

import logging

from ..config import require

log = logging.getLogger(__name__)


def run(cfg):
    from .simulated import validate_simulated

    root = require(cfg, "paths.simulated", lambda v: isinstance(v, str) and v, "must be a folder path")
    report = require(cfg, "validate.simulated_report", lambda v: str(v).endswith(".json"), "must be a .json path")
    scene_csv = cfg.validate.get("scene_table") or None
    result = validate_simulated(root, cfg.validate, report, scene_csv=scene_csv)
    log.info("simulated dataset valid: %d expectations passed (report %s)", len(result.outcomes), result.report_md)
    return result
