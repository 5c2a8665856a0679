"""Emission-rate units: parse a unit string and convert to tonnes per year (per source or per grid cell).

Accepted spellings: ``t/yr``, ``t yr-1``, ``kt/yr``, ``kg/s``, ``kg s-1``, ``g/s``, ``Mg/yr``, ``tonnes/year``,
``kg/h``, ``t/d`` ... (a mass unit over a time unit), and for gridded fluxes a mass over an area and a time:
``kg m-2 s-1``, ``kg/m2/s``, ``g m-2 yr-1``, ``t km-2 yr-1``. An unknown unit raises the caller's error naming it.
"""

from __future__ import annotations

import re

SECONDS_PER_YEAR = 365.25 * 86400.0

#: mass unit -> tonnes
MASS_T = {
    "g": 1e-6,
    "kg": 1e-3,
    "t": 1.0,
    "tonne": 1.0,
    "tonnes": 1.0,
    "ton": 1.0,
    "tons": 1.0,
    "mg": 1.0,
    "kt": 1e3,
    "gg": 1e3,
    "mt": 1e6,
    "tg": 1e6,
}
# Note: "Mg" (megagram) is a tonne; lower-cased keys, so "mg" here means Mg (milligram is never an emission unit).
#: time unit -> seconds
TIME_S = {
    "s": 1.0,
    "sec": 1.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "yr": SECONDS_PER_YEAR,
    "y": SECONDS_PER_YEAR,
    "a": SECONDS_PER_YEAR,
    "year": SECONDS_PER_YEAR,
    "month": SECONDS_PER_YEAR / 12.0,
}
#: area unit -> m2
AREA_M2 = {"m2": 1.0, "km2": 1e6, "ha": 1e4}


def _tokens(unit: str) -> list[tuple[str, int]]:
    """Split ``"kg m-2 s-1"`` / ``"kg/m2/s"`` / ``"t/yr"`` into (base, exponent) tokens ([] if unparsable)."""
    u = unit.strip().lower().replace("^", "").replace("**", "").replace("·", " ").replace("*", " ")
    u = re.sub(r"\bper\b", "/", u)
    tokens: list[tuple[str, int]] = []
    parts = u.split("/")
    for k, part in enumerate(parts):
        for tok in part.split():
            m = re.fullmatch(r"([a-z]+?)(2)?(-?\d+)?", tok)
            if not m:
                return []
            base = m.group(1) + (m.group(2) or "")
            exp = int(m.group(3)) if m.group(3) else 1
            if k > 0:  # everything after a "/" is in the denominator: kg/m2/s == kg/(m2 s)
                exp = -abs(exp)
            tokens.append((base, exp))
    return tokens


def _factor(unit: str, *, need_area: bool) -> float | None:
    """Tonnes per year (per area m2 if ``need_area``) for one unit of ``unit``; None if not understood."""
    toks = _tokens(unit)
    mass = [t for t in toks if t[0] in MASS_T and t[1] == 1]
    time_ = [t for t in toks if t[0] in TIME_S and t[1] == -1]
    area = [t for t in toks if t[0] in AREA_M2 and t[1] == -1] + [
        (t[0] + "2", -1) for t in toks if t[0] in ("m", "km") and t[1] == -2
    ]
    if len(mass) != 1 or len(time_) != 1 or len(toks) != 2 + (1 if need_area else 0):
        return None
    if need_area and len(area) != 1:
        return None
    f = MASS_T[mass[0][0]] * SECONDS_PER_YEAR / TIME_S[time_[0][0]]
    if need_area:
        f /= AREA_M2[area[0][0]]
    return f


def rate_factor(unit: str) -> float | None:
    """Multiply a rate in ``unit`` (mass per time) by this to get t/yr; None if the unit is not understood."""
    return _factor(str(unit), need_area=False)


def flux_factor(unit: str) -> float | None:
    """Multiply a flux in ``unit`` (mass per area per time) by this to get t m-2 yr-1; None if not understood."""
    return _factor(str(unit), need_area=True)


KNOWN_RATE_UNITS = "t/yr, kt/yr, Mt/yr, kg/yr, kg/s, g/s, kg/h, t/d"
KNOWN_FLUX_UNITS = "kg m-2 s-1, g m-2 s-1, kg m-2 yr-1, t km-2 yr-1"
