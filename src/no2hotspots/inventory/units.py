"""Emission-rate units on pint: parse a unit string and convert to tonnes per year (per source or per grid cell).

Accepted spellings (case-sensitive, as SI writes them): ``t/yr``, ``t yr-1``, ``kt/yr``, ``kg/s``, ``kg s-1``,
``g/s``, ``Mg/yr``, ``tonnes/year``, ``kg/h``, ``t/d`` ... (a mass over a time), and for gridded fluxes a mass over
an area and a time: ``kg m-2 s-1``, ``kg/m2/s``, ``g m-2 yr-1``, ``t km-2 yr-1``. Exponents may be written CF-style
(``m-2``, ``m2``), with ``^`` or ``**``; after a ``/``, space-separated units stay in the denominator
(``kg/m2 s`` = ``kg/(m2 s)``). ``Mg`` is a megagram (= 1 t), ``mg`` a milligram; ``kt`` is a kilotonne (pint alone
reads it as a knot); a year is the Julian year (365.25 d), a month a twelfth of it. ``ton``/``tons`` are refused
(short ton or metric tonne?): write ``t`` or ``short_ton``. A unit that is not a mass per time (or, for fluxes, a
mass per area per time) gives ``None``, and the caller raises its one-line error naming the unit.
"""

from __future__ import annotations

import functools
import math
import re

SECONDS_PER_YEAR = 365.25 * 86400.0

KNOWN_RATE_UNITS = "t/yr, kt/yr, Mt/yr, Mg/yr, kg/yr, kg/s, g/s, kg/h, t/d (case-sensitive: Mg = t, mg = milligram)"
KNOWN_FLUX_UNITS = "kg m-2 s-1, kg/m2/s, g m-2 s-1, kg m-2 yr-1, t km-2 yr-1"

#: spellings pint does not read as inventories mean them (whole words only, case-sensitive)
ALIASES = {"kt": "kilotonne", "Mt": "megatonne", "Gt": "gigatonne", "y": "year", "tonnes": "tonne"}
#: spellings refused because they are ambiguous
AMBIGUOUS = {"ton", "tons", "Ton", "Tons"}

_MAX_LEN = 100
_ALLOWED = re.compile(r"[A-Za-z0-9 ./*^()+\-_µμ]+")
_TOKEN = re.compile(
    r"\s*(?:(?P<word>[A-Za-z_µμ]+)(?:(?:\^|\*\*)?(?P<exp>[-+]?\d+))?"
    r"|(?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
    r"|(?P<op>[*/()]))"
)


@functools.lru_cache(maxsize=1)
def _registry():
    import pint  # lazy: ~0.5 s, needed only by the inventory readers

    return pint.UnitRegistry()


def _pint_expression(unit: str) -> str | None:
    """Rewrite an inventory unit string as a pint expression (``kg m-2 s-1`` -> ``kg*m**-2*s**-1``); None if odd."""
    u = unit.replace("·", " ").strip()
    u = re.sub(r"\s+per\s+", "/", u)
    if not u or len(u) > _MAX_LEN or not _ALLOWED.fullmatch(u):
        return None
    out: list[str] = []
    depth = 0
    in_denominator = False  # after a top-level "/": juxtaposed units stay in the denominator until the next "/"
    pos = 0
    while pos < len(u):
        m = _TOKEN.match(u, pos)
        if not m or m.end() == pos:
            return None
        pos = m.end()
        if m.group("op"):
            op = m.group("op")
            if op == "(":
                depth += 1
            elif op == ")":
                depth -= 1
                if depth < 0:
                    return None
            if op == "/" and depth == 0:
                if in_denominator:
                    out.append(")")
                out.append("/(")
                in_denominator = True
            else:
                out.append(op)
            continue
        if m.group("word"):
            word = m.group("word")
            if word in AMBIGUOUS:
                return None
            term = ALIASES.get(word, word)
            if m.group("exp"):
                term = f"{term}**{int(m.group('exp'))}"
        else:
            term = m.group("num")
        if out and out[-1] not in ("*", "/(", "(", "/"):
            out.append("*")  # juxtaposition is multiplication
        out.append(term)
    if depth != 0:
        return None
    if in_denominator:
        out.append(")")
    return "".join(out)


def _factor(unit: str, target: str, dims: str) -> float | None:
    """Factor converting one ``unit`` to ``target`` if ``unit`` has the dimensions ``dims``; None otherwise."""
    expr = _pint_expression(str(unit))
    if expr is None:
        return None
    import pint

    ureg = _registry()
    try:
        q = ureg.parse_expression(expr)
        if not isinstance(q, ureg.Quantity) or q.dimensionality != ureg.get_dimensionality(dims):
            return None
        f = float(q.to(target).magnitude)
    except (pint.errors.PintError, AttributeError, TypeError, ValueError, SyntaxError, ZeroDivisionError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def rate_factor(unit: str) -> float | None:
    """Multiply a rate in ``unit`` (mass per time) by this to get t/yr; None if ``unit`` is not a mass rate."""
    return _factor(unit, "tonne/year", "[mass]/[time]")


def flux_factor(unit: str) -> float | None:
    """Multiply a flux in ``unit`` (mass per area per time) by this to get t m-2 yr-1; None if it is not one."""
    return _factor(unit, "tonne/meter**2/year", "[mass]/[length]**2/[time]")


def unit_problem(unit: str, *, flux: bool = False) -> str | None:
    """Why ``unit`` is not an emission rate (or flux), in a few words for a one-line error; None if it is one."""
    ok = flux_factor(unit) if flux else rate_factor(unit)
    if ok is not None:
        return None
    want = "a mass per area per time" if flux else "a mass per time"
    unit = str(unit) if len(str(unit)) <= 40 else str(unit)[:37] + "..."
    expr = _pint_expression(str(unit))
    if expr is None:
        if any(w in AMBIGUOUS for w in re.findall(r"[A-Za-z]+", str(unit))):
            return f"{unit!r} is ambiguous (short ton or metric tonne?): write t or short_ton"
        return f"{unit!r} is not a unit expression (expected {want})"
    try:
        q = _registry().parse_expression(expr)
        dims = str(getattr(q, "dimensionality", "dimensionless"))
    except Exception:  # any pint parse failure means: an unknown unit name
        return f"{unit!r} has an unknown unit name (expected {want})"
    target = "[mass]/[length]**2/[time]" if flux else "[mass]/[time]"
    if dims == str(_registry().get_dimensionality(target)):
        return f"{unit!r} has a zero, negative or non-finite scale"
    return f"{unit!r} is {dims}, not {want}"
