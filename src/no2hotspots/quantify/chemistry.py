"""From an NO2 emission rate to NOx (t/yr, as NO2 mass) and CO2 (Mt/yr), with the corrections' uncertainties.

NOx/NO2 ratio (``quantify.chemistry.nox_no2_ratio``, default 1.32 +- 0.13): in a power-plant plume a few tens of km
downwind NO and NO2 are near photostationary state; 1.32 is the ratio used for TROPOMI point-source estimates by
Beirle et al. (2019, Sci. Adv. 5, eaax9800; 2021, ESSD 13, 2995), taken from Seinfeld & Pandis (typical urban
conditions), and ddeq's default (``ddeq.emissions.convert_NO2_to_NOx_emissions(f=1.32)``). The 10 % 1-sigma is our
statement of how far it varies with ozone, radiation and distance from the stack (Beirle et al. 2021 discuss this
factor among the systematic errors of the catalogue).

NO2 lifetime (``quantify.chemistry.lifetime_h``, default 4 +- 1.5 h): daytime NO2 lifetimes near power plants fitted
from satellite data cluster around 2-6 h (Beirle et al. 2011, Science 333, 1737: ~4 h at low/mid latitudes in summer;
Beirle et al. 2019 use ~4 h for Riyadh; the OSSE draws 2.5-6 h per day). The estimators use it to undo the loss
between the stack and where the NO2 is measured; set ``lifetime_h: null`` to switch the correction off.

Near-source NO -> NO2 conversion (``quantify.chemistry.no2_ramp``, :class:`.estimate.Ramp`): a stack emits mostly
NO, which turns into NO2 over the first minutes (Meier et al. 2024, ACP 24, 7667: NOx/NO2 = m exp(-t / r) + f0 fitted
along the plumes of four power plants, shipped by ddeq 1.1 as ``ddeq.functions.NO2toNOxConversion``). Near the
source the NO2 is therefore less than the far-field ratio says, and an estimator that takes it for the far-field
share reads the rate low: a csf transect by the share at its travel time, an IME disk by the NO2 the first minutes
lack, the flux divergence by what its outflow lacks (a steady plume at 5 m/s with the fits' medians: csf 14 %, IME
24 %, divergence 4-8 % low; tests). Each
estimator undoes it at its own travel times; the far-field NOx/NO2 stays ``nox_no2_ratio``. The default is the
median of the four fits (m 4.0, r 645 s, f0 1.51) with their spread as 1-sigma (m 1.85, r 535 s); m 0 turns it off.

Units: NOx emission inventories report NOx as NO2 mass (the project's convention, docs/contracts.md), so
Q_NOx [t/yr] = Q_NO2 [mol/s] * ratio * 46.0055 g/mol * 365.25 * 86400 s / 1e6.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .estimate import NO_RAMP, Estimate, Lifetime, Ramp

NO2_MOLAR_MASS_G = 46.0055
SECONDS_PER_YEAR = 365.25 * 86400.0
MOL_S_TO_T_YR = NO2_MOLAR_MASS_G * SECONDS_PER_YEAR / 1e6  # NO2 mol/s -> t NO2/yr


@dataclass(frozen=True)
class Chemistry:
    nox_no2_ratio: float = 1.32
    nox_no2_ratio_sigma: float = 0.13
    lifetime_h: float | None = 4.0
    lifetime_sigma_h: float = 1.5
    ramp: Ramp = NO_RAMP

    @property
    def lifetime(self) -> Lifetime:
        if self.lifetime_h is None:
            return Lifetime(float("inf"), 0.0, self.ramp)
        return Lifetime(self.lifetime_h * 3600.0, self.lifetime_sigma_h * 3600.0, self.ramp)


def to_nox(est: Estimate, chem: Chemistry) -> Estimate:
    """The estimate in t NOx/yr (as NO2 mass), with the ratio's uncertainty added as ``nox_ratio``."""
    f = chem.nox_no2_ratio * MOL_S_TO_T_YR
    sig = {k: v * f for k, v in est.sigma.items()}
    q = est.q * f
    if est.ok:
        sig["nox_ratio"] = abs(q) * chem.nox_no2_ratio_sigma / chem.nox_no2_ratio
    return Estimate(est.method, q, sig, list(est.flags), dict(est.diag), units="t NOx/yr (as NO2)")


def nox_t_per_yr_to_no2_mol_s(nox_t_per_yr, ratio: float = 1.32):
    """Inverse of the conversion (for synthetic tests and truth comparisons)."""
    return np.asarray(nox_t_per_yr, float) / (ratio * MOL_S_TO_T_YR)
