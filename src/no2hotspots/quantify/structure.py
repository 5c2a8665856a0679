"""The method-structure term: transport that is not what the estimators assume (issue 15).

Every estimator takes a straight plume along the wind at the overpass, steady in time, with first-order loss and
no along-wind diffusion. Real plumes (and the OSSE's puffs) curve in a turning, time-varying wind into the
background band or ring, and along-wind diffusion against decay moves mass to where the decay correction treats it
wrongly. None of the other budget terms holds this, so each method gets a relative 1-sigma ``rel_sigma`` and, where
the calibration establishes one, a bias (the median estimate/truth; estimates and their other terms are divided by
it). The bias falls with the air's residence time over the NO2 lifetime, x = 20 km / (U tau) (the plume's air at a
distance s is older than s / U when its path curves), and with the wind's measured turning theta over the method's
travel window (the data part of its direction sigma, ``wind_from_spread_deg``: a curved plume leaves the straight
cone and its background band takes part of it), so it is ``bias`` exp(-``bias_slope`` x - ``bias_turning``
theta^2), theta in radians, a joint median fit (``bias_slope`` / ``bias_turning`` 0: without that dependence; theta
unknown, e.g. the fallback wind: taken as 0).

Both come from the training simulator's own puff scenes in a turning, time-varying wind (not from the OSSE
evaluation): ``benchmarks/quantify_structure.py`` (its numbers are in conf/quantify/default.yaml and
docs/quantify.md). Its errors repeat between overpasses as the wind regimes do: ``period.correlation.structure``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .estimate import Estimate

#: the distance of the residence time x = RESIDENCE_KM / (U tau) the bias slope is taken against (IME's radius)
RESIDENCE_KM = 20.0


@dataclass(frozen=True)
class StructureConfig:
    rel_sigma: dict = field(default_factory=dict)  # method -> relative 1-sigma (methods not listed: none)
    bias: dict = field(default_factory=dict)  # method -> median estimate / truth (methods not listed: none)
    bias_slope: dict = field(default_factory=dict)  # method -> beta: the bias is bias exp(-beta x) (not listed: 0)
    bias_turning: dict = field(default_factory=dict)  # method -> gamma: times exp(-gamma theta^2) (not listed: 0)


def bias_at(cfg: StructureConfig, method: str, speed: float, tau_s: float, turning_deg: float = np.nan) -> float:
    """The method's bias at the residence time over the lifetime x = RESIDENCE_KM / (U tau) (no decay: x = 0) and
    the wind's turning ``turning_deg`` (NaN: 0); a method without a bias has none, whatever its slopes."""
    if method not in cfg.bias:
        return 1.0
    b = float(cfg.bias[method])
    beta = float(cfg.bias_slope.get(method, 0.0))
    gamma = float(cfg.bias_turning.get(method, 0.0))
    x = RESIDENCE_KM * 1e3 / (speed * tau_s) if beta and np.isfinite(tau_s) and speed > 0 else 0.0
    th = np.radians(turning_deg) if gamma and np.isfinite(turning_deg) else 0.0
    return b * float(np.exp(-beta * x - gamma * th**2))  # exactly b where both are 0


def apply(e: Estimate, cfg: StructureConfig, speed: float = np.nan, tau_s: float = np.inf,
          turning_deg: float = np.nan) -> Estimate:  # fmt: skip
    """The estimate divided by its method's bias (every budget term too; with slopes, the bias at the estimate's
    wind ``speed``, lifetime ``tau_s`` and wind turning ``turning_deg``) with the ``structure`` term added."""
    if not e.ok:
        return e
    b = bias_at(cfg, e.method, speed, tau_s, turning_deg)
    if b != 1.0:
        e.q /= b
        e.sigma = {k: v / b for k, v in e.sigma.items()}
        e.diag["structure_bias"] = b
    e.sigma["structure"] = abs(e.q) * float(cfg.rel_sigma.get(e.method, 0.0))
    return e
