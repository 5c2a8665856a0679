"""The result of one estimator on one scene, with its uncertainty budget, and the inputs every estimator takes.

Budget components (1-sigma, same units as the estimate; combined in quadrature, i.e. treated as independent within
one estimate):

- ``noise``          retrieval noise and background (from the precision through the estimator's weights, scaled by
                     the noise measured in the scene): it does not scale with the estimate, so the period mean
                     weights overpasses by it (:mod:`.period`);
- ``transects``      cross-sectional flux only: the scatter between its transects beyond ``noise`` (plume structure,
                     which grows with the emission; ``noise`` and ``transects`` together are at least that scatter);
- ``wind_speed``     the stated/measured wind-speed spread, propagated by re-evaluating with speed +- sigma;
- ``wind_direction`` the direction spread, propagated by re-running the estimator with direction +- sigma;
- ``lifetime``       NO2 lifetime +- sigma (decay correction);
- ``position``       the source's position error along the wind (:mod:`.position`; cross-sectional flux and integrated
                     mass enhancement);
- ``structure``      transport not as the methods assume (curved plumes in turning winds, along-wind diffusion
                     with decay), calibrated on the training simulator's puff scenes (:mod:`.structure`);
- ``nox_ratio``      NOx/NO2 ratio +- sigma (added when converting to NOx, :mod:`.chemistry`);
- ``model``          the detection model's own uncertainty: a hook (see :data:`MODEL_UNCERTAINTY`), 0 until a
                     model provides MC-dropout or ensemble spreads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

COMPONENTS = (
    "noise",
    "transects",
    "wind_speed",
    "wind_direction",
    "lifetime",
    "position",
    "structure",
    "nox_ratio",
    "model",
)


@dataclass(frozen=True)
class Wind:
    """The wind one estimate uses: speed [m s-1], direction it blows from [degree] (NaN = unknown) and 1-sigmas."""

    speed: float
    sigma_speed: float
    direction_from: float = float("nan")
    sigma_direction: float = float("nan")

    def with_(self, **kw) -> Wind:
        d = {**self.__dict__, **kw}
        return Wind(**d)


@dataclass(frozen=True)
class Lifetime:
    """NO2 lifetime tau [s] with its 1-sigma; ``tau_s = inf`` disables the decay correction."""

    tau_s: float = 4 * 3600.0
    sigma_s: float = 1.5 * 3600.0

    def shifted(self, k: float) -> float:
        t = self.tau_s + k * self.sigma_s
        return max(t, 600.0) if np.isfinite(t) else t


@dataclass
class Estimate:
    method: str
    q: float  # emission rate [mol s-1 NO2] until converted (chemistry.to_nox)
    sigma: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    diag: dict = field(default_factory=dict)
    units: str = "mol s-1 NO2"

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.q))

    @property
    def sigma_total(self) -> float:
        """The components in quadrature, those that could not be computed (NaN) left out: :attr:`unknown_sigma`
        names them, and the output rows flag them (``unknown_sigma_<component>``)."""
        v = [s for s in self.sigma.values() if np.isfinite(s)]
        return float(np.sqrt(np.sum(np.square(v)))) if v else float("nan")

    @property
    def unknown_sigma(self) -> list[str]:
        """Components of a made estimate that could not be computed (e.g. the wind-direction sensitivity when the
        estimate fails at both the direction +- its sigma): ``sigma_total`` is a lower bound where any is listed."""
        return [c for c, s in self.sigma.items() if not np.isfinite(s)] if self.ok else []

    @classmethod
    def failed(cls, method: str, why: str, **diag) -> Estimate:
        return cls(method, float("nan"), {}, [why], diag)


def sensitivity(f: Callable[[float], float], x: float, dx: float) -> float:
    """Half the change of f over x +- dx (NaN-safe: one-sided if one side fails)."""
    if not np.isfinite(dx) or dx == 0:
        return 0.0
    hi, lo = f(x + dx), f(x - dx)
    if np.isfinite(hi) and np.isfinite(lo):
        return float(abs(hi - lo) / 2)
    base = f(x)
    for v in (hi, lo):
        if np.isfinite(v) and np.isfinite(base):
            return float(abs(v - base))
    return float("nan")


#: Hook for the detection model's own uncertainty (MC-dropout / ensemble; a later step). A callable
#: ``(hotspot_row: dict, estimate: Estimate) -> relative 1-sigma`` registered here (or passed to
#: ``quantify.run.quantify_overpass(model_uncertainty=...)``) fills the ``model`` component; ``None`` leaves it 0.
MODEL_UNCERTAINTY: Callable[[dict, Estimate], float] | None = None
