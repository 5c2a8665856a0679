"""The method-structure term: transport that is not what the estimators assume (issue 15).

Every estimator takes a straight plume along the wind at the overpass, steady in time, with first-order loss and
no along-wind diffusion. Real plumes (and the OSSE's puffs) curve in a turning, time-varying wind into the
background band or ring, and along-wind diffusion against decay moves mass to where the decay correction treats it
wrongly. None of the other budget terms holds this, so each method gets a relative 1-sigma ``rel_sigma`` and, where
the calibration establishes one, a bias ``bias`` (the median estimate/truth; estimates and their other terms are
divided by it).

Both come from the training simulator's own puff scenes in a turning, time-varying wind (not from the OSSE
evaluation): ``benchmarks/quantify_structure.py`` (its numbers are in conf/quantify/default.yaml and
docs/quantify.md). Its errors repeat between overpasses as the wind regimes do: ``period.correlation.structure``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .estimate import Estimate


@dataclass(frozen=True)
class StructureConfig:
    rel_sigma: dict = field(default_factory=dict)  # method -> relative 1-sigma (methods not listed: none)
    bias: dict = field(default_factory=dict)  # method -> median estimate / truth (methods not listed: none)


def apply(e: Estimate, cfg: StructureConfig) -> Estimate:
    """The estimate divided by its method's bias (every budget term too) with the ``structure`` term added."""
    if not e.ok:
        return e
    b = float(cfg.bias.get(e.method, 1.0))
    if b != 1.0:
        e.q /= b
        e.sigma = {k: v / b for k, v in e.sigma.items()}
        e.diag["structure_bias"] = b
    e.sigma["structure"] = abs(e.q) * float(cfg.rel_sigma.get(e.method, 0.0))
    return e
