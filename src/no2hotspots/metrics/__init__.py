"""Evaluation metrics of relative-emission maps (the paper's recognition accuracy, Table 1, and more).

- ``scores``: per-sample and per-source scores as plain numpy functions, and the scoring convention (its
  docstring is the five-line definition the README quotes);
- ``summary``: quartiles by emission class -> flat dict of floats, and ``table1`` (pandas);
- ``emission``: ``EmissionMetrics``, a torchmetrics ``Metric`` that accumulates the scores over batches/processes;
- :class:`Scoring`: the scoring settings (a ``score``-like config node) and its version string.

``EmissionMetrics`` is imported lazily (torchmetrics costs seconds to import).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from .summary import CLASS_NAMES, CONVENTIONS, table1  # noqa: F401

__all__ = ["CLASS_NAMES", "CONVENTIONS", "DEFINITIONS_VERSION", "EmissionMetrics", "Scoring", "table1"]

#: bump when a definition in ``scores``/``summary`` changes: scores of different versions are never compared
DEFINITIONS_VERSION = 3


@dataclass(frozen=True)
class Scoring:
    """What defines a score: the two thresholds and the convention's parameters (see ``scores``)."""

    mark_threshold: float = 0.02
    detect_threshold: float = 0.2
    match_distance_px: float = 2.0
    min_visible_fraction: float = 0.5
    min_scored_r: float = 0.02
    dilate_px: int = 1
    peak_prominence: float = 1.0
    peak_min_separation_px: int = 2

    @classmethod
    def from_config(cls, node) -> Scoring:
        return cls(**{k: node[k] for k in cls.__dataclass_fields__})

    @property
    def thresholds(self) -> dict[str, float]:
        """Name -> marking threshold: ``mark`` (Table 1, the paper's) and ``detect`` (the product's hotspots)."""
        return {"mark": float(self.mark_threshold), "detect": float(self.detect_threshold)}

    def metrics(self, threshold: str | float):
        """A fresh :class:`EmissionMetrics` at the named threshold (``mark``, ``detect``) or at a value."""
        from .emission import EmissionMetrics

        return EmissionMetrics(
            self.thresholds[threshold] if isinstance(threshold, str) else float(threshold),
            match_distance_px=float(self.match_distance_px),
            min_visible_fraction=float(self.min_visible_fraction),
            min_scored_r=float(self.min_scored_r),
            dilate_px=int(self.dilate_px),
            peak_prominence=float(self.peak_prominence),
            peak_min_separation_px=int(self.peak_min_separation_px),
        )

    @property
    def version(self) -> str:
        """``v<DEFINITIONS_VERSION>-<hash of the settings>``: equal strings mean comparable scores."""
        digest = hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:8]
        return f"v{DEFINITIONS_VERSION}-{digest}"


def __getattr__(name):
    if name == "EmissionMetrics":
        from .emission import EmissionMetrics

        return EmissionMetrics
    raise AttributeError(name)
