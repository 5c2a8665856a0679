"""Evaluation metrics of relative-emission maps (the paper's recognition accuracy, Table 1, and more).

- ``scores``: per-sample and per-source scores as plain numpy/torch functions (no torchmetrics);
- ``summary``: quartiles by emission class -> flat dict of floats, and ``table1`` (pandas);
- ``emission``: ``EmissionMetrics``, a torchmetrics ``Metric`` that accumulates the scores over batches/processes.

``EmissionMetrics`` is imported lazily (torchmetrics costs seconds to import).
"""

from __future__ import annotations

from .summary import CLASS_NAMES, table1  # noqa: F401

__all__ = [
    "EmissionMetrics",
    "table1",
    "CLASS_NAMES",
    "DEFAULT_THRESHOLD",
    "DEFAULT_MATCH_DISTANCE_PX",
    "DEFAULT_MIN_VISIBLE_FRACTION",
]

DEFAULT_THRESHOLD = 0.05
DEFAULT_MATCH_DISTANCE_PX = 2.0
DEFAULT_MIN_VISIBLE_FRACTION = 0.5


def __getattr__(name):
    if name == "EmissionMetrics":
        from .emission import EmissionMetrics

        return EmissionMetrics
    raise AttributeError(name)
