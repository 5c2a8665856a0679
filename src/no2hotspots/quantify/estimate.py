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
- ``no2_ramp``       the near-source NO -> NO2 conversion's m and r +- sigma (:class:`Ramp`; only where it is on);
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
from dataclasses import dataclass, field, replace

import numpy as np

from ..nox import no2_ramp_factor

COMPONENTS = (
    "noise",
    "transects",
    "wind_speed",
    "wind_direction",
    "lifetime",
    "no2_ramp",
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


# Gauss-Legendre nodes on [0, 1] for the ramp's time integrals (its deficit decays as exp(-t / r))
_GL_X, _GL_W = np.polynomial.legendre.leggauss(96)
_GL_X, _GL_W = 0.5 * (_GL_X + 1.0), 0.5 * _GL_W


@dataclass(frozen=True)
class Ramp:
    """The near-source NO -> NO2 conversion the estimators undo. A stack emits mostly NO; Meier et al. (2024, ACP 24,
    7667) fit NOx/NO2 = m exp(-t / r) + f0 along plumes (ddeq 1.1's ``NO2toNOxConversion``), so at plume age t the
    NO2 is the far-field share times share(t) = f0 / (m exp(-t / r) + f0) (the function the OSSE and the simulator
    render with, :func:`no2hotspots.nox.no2_ramp_factor`); the far-field NOx/NO2 stays the chemistry's
    ``nox_no2_ratio``. m = 0: off (share 1 everywhere, every estimate as without it). ``sigma_m``, ``sigma_r_s``: the
    1-sigma of m and r (the ``no2_ramp`` budget term)."""

    m: float = 0.0
    r_s: float = 645.0
    f0: float = 1.51
    sigma_m: float = 0.0
    sigma_r_s: float = 0.0

    @property
    def on(self) -> bool:
        return self.m > 0

    def share(self, age_s):
        return no2_ramp_factor(np.asarray(age_s, float), self.m, self.r_s, self.f0)

    def with_(self, **kw) -> Ramp:
        return replace(self, **kw)

    def mass_time(self, t_end_s: float, tau_s: float) -> float:
        """The integral of exp(-t / tau) share(t) over the plume's first ``t_end_s`` [s]: a steady source of Q
        (far-field NO2) holds Q x this much NO2 there (tau (1 - exp(-T / tau)) without the ramp)."""
        full = tau_s * -np.expm1(-t_end_s / tau_s) if np.isfinite(tau_s) else t_end_s
        t_max = min(t_end_s, 40.0 * self.r_s)  # the deficit 1 - share(t) is < 1e-16 after 40 r
        t = t_max * _GL_X
        decay = np.exp(-t / tau_s) if np.isfinite(tau_s) else 1.0
        return float(full - t_max * np.sum(_GL_W * decay * (1.0 - self.share(t))))

    def divergence_share(self, t_end_s: float, tau_s: float) -> float:
        """What a flux divergence summed over the plume's first ``t_end_s`` sees of Q: the NO2 flux leaving there
        plus the NO2 lost before, exp(-T / tau) share(T) + mass_time / tau (1 without the ramp)."""
        if not np.isfinite(tau_s):
            return float(self.share(t_end_s))
        return float(np.exp(-t_end_s / tau_s) * self.share(t_end_s) + self.mass_time(t_end_s, tau_s) / tau_s)

    def sigma(self, q_of: Callable[[Ramp], float]) -> float:
        """The ``no2_ramp`` term: the changes of ``q_of(ramp)`` over m +- sigma_m and r +- sigma_r_s in quadrature."""
        dm = sensitivity(lambda m: q_of(self.with_(m=max(m, 0.0))), self.m, self.sigma_m)
        dr = sensitivity(lambda r: q_of(self.with_(r_s=max(r, 60.0))), self.r_s, self.sigma_r_s)
        return float(np.hypot(dm, dr))


#: the conversion off (m = 0): every estimate as without it
NO_RAMP = Ramp()


@dataclass(frozen=True)
class Lifetime:
    """NO2 lifetime tau [s] with its 1-sigma; ``tau_s = inf`` disables the decay correction. ``ramp``: the
    near-source NO -> NO2 conversion (:class:`Ramp`, off by default), the other change of NO2 along the plume."""

    tau_s: float = 4 * 3600.0
    sigma_s: float = 1.5 * 3600.0
    ramp: Ramp = NO_RAMP

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
