"""CO2 from the NOx estimate: Q_CO2 = Q_NOx * r, with r the CO2/NOx mass ratio of the source.

- **matched plant**: r = sum CO2 / sum NOx of the inventory sites within ``match_km`` of the hotspot (CoCO2 has both
  per unit; several units or plants inside one hotspot are summed, as the NO2 estimate integrates all of them), with
  a relative 1-sigma ``matched_ratio_rel_sigma`` (default 0.25: inventory CO2/NOx ratios come from emission factors,
  not from the plant's actual abatement; Guevara et al. 2023);
- **fuel default** when no site matches (or the matched sites lack CO2 or NOx): r and its relative 1-sigma per fuel
  from ``default_ratio`` (defaults: median CO2/NOx of the CoCO2 v1.1 sites of that fuel, coal 1190, natural gas 830,
  oil 296, biomass 1459, waste 704 t CO2 per t NOx; spreads from the sites' log-ratio scatter, at least 30 %), using
  the fuel of the nearest site within ``fuel_search_km`` if any, else ``unknown``.

Uncertainty: sigma_CO2^2 = (r sigma_NOx)^2 + (Q_NOx sigma_r)^2; each NOx component is carried (scaled by r) and the
ratio's own term is the component ``co2_ratio``. Units: Mt CO2/yr.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..evaluate.geo import PointIndex

DEFAULT_RATIOS = {
    "coal": (1190.0, 0.3),
    "natural gas": (830.0, 0.6),
    "oil": (296.0, 0.7),
    "biomass": (1459.0, 0.5),
    "waste": (704.0, 0.35),
    "unknown": (1190.0, 0.6),
}


@dataclass(frozen=True)
class CO2Config:
    match_km: float = 10.0
    fuel_search_km: float = 30.0
    matched_ratio_rel_sigma: float = 0.25
    default_ratio: dict = field(default_factory=lambda: dict(DEFAULT_RATIOS))


@dataclass
class Ratio:
    ratio: float  # t CO2 per t NOx (as NO2)
    rel_sigma: float
    basis: str  # "matched: <ids>" or "fuel default: <fuel>"
    matched_ids: list[str]
    nox_t_per_yr: float  # inventory NOx of the matched sites (NaN if none): the truth for evaluation
    co2_t_per_yr: float


class InventoryMatcher:
    """Inventory sites around hotspots: matched NOx/CO2 sums and CO2/NOx ratios."""

    def __init__(self, sites: pd.DataFrame | None, cfg: CO2Config = CO2Config()):
        self.cfg = cfg
        self.sites = (
            sites if sites is not None else pd.DataFrame(columns=["id", "lat", "lon", "nox_t_per_yr", "co2_t_per_yr"])
        )
        self.index = PointIndex(self.sites["lat"].to_numpy(float), self.sites["lon"].to_numpy(float))
        # columns as arrays once (a matcher answers thousands of hotspots)
        self._nox = pd.to_numeric(self.sites["nox_t_per_yr"], errors="coerce").to_numpy(float)
        self._co2 = pd.to_numeric(self.sites["co2_t_per_yr"], errors="coerce").to_numpy(float)
        self._ids = [str(i) for i in self.sites["id"]]
        self._fuel = list(self.sites["fuel"]) if "fuel" in self.sites else None

    def ratio(self, lat: float, lon: float) -> Ratio:
        c = self.cfg
        idx = self.index.within(lat, lon, c.match_km)[0] if len(self.index) else np.zeros(0, int)
        # the ratio of the matched plants that list both species: one with NOx but no CO2 (an inventory without that
        # species, ``allow_nan``) would add to the denominator only and pull the CO2 low
        both = idx[np.isfinite(self._nox[idx]) & np.isfinite(self._co2[idx])]
        nox_b, co2_b = _sum(self._nox[both]), _sum(self._co2[both])
        nox, co2 = _sum(self._nox[idx]), _sum(self._co2[idx])  # what the inventory lists there: the truth
        ids = [self._ids[i] for i in idx]
        if np.isfinite(nox_b) and np.isfinite(co2_b) and nox_b > 0 and co2_b > 0:
            return Ratio(co2_b / nox_b, c.matched_ratio_rel_sigma, "matched: " + " ".join(ids), ids, nox, co2)
        fuel = "unknown"
        if len(self.index) and self._fuel is not None:
            j, d = self.index.nearest(lat, lon)
            if j[0] >= 0 and d[0] <= c.fuel_search_km and isinstance(self._fuel[j[0]], str):
                fuel = self._fuel[j[0]]
        r, rs = c.default_ratio.get(fuel, c.default_ratio.get("unknown", DEFAULT_RATIOS["unknown"]))
        return Ratio(float(r), float(rs), f"fuel default: {fuel}", ids, nox, co2)


def _sum(a: np.ndarray) -> float:
    """Sum of the known values; NaN when none is known (pandas' ``sum(min_count=1)``)."""
    known = a[~np.isnan(a)]
    return float(known.sum()) if known.size else float("nan")


def nox_at(sites: pd.DataFrame | None, ids: list[str], time) -> float:
    """Inventory NOx [t/yr] of the sites ``ids`` at ``time``: with the OSSE truth's injected changes
    (``change_date``, ``change_factor`` columns: the emission is x factor from that day on), else as listed."""
    return TruthAt(sites)(ids, time)


class TruthAt:
    """:func:`nox_at` for many rows: the inventory rows of each set of ids are looked up once."""

    def __init__(self, sites: pd.DataFrame | None):
        self.sites = sites
        self._rows: dict[tuple, tuple] = {}

    def __call__(self, ids: list[str], time) -> float:
        if self.sites is None or not ids:
            return float("nan")
        key = tuple(ids)
        if key not in self._rows:
            sub = self.sites[self.sites["id"].astype(str).isin(ids)]
            nox = pd.to_numeric(sub["nox_t_per_yr"], errors="coerce").to_numpy(float)
            when = fac = None
            if "change_date" in sub and "change_factor" in sub:
                when = pd.to_datetime(sub["change_date"], errors="coerce").to_numpy("datetime64[ns]")
                fac = pd.to_numeric(sub["change_factor"], errors="coerce").to_numpy(float)
            self._rows[key] = (nox, when, fac)
        nox, when, fac = self._rows[key]
        if when is not None:
            if isinstance(time, np.datetime64):
                t = time.astype("datetime64[ns]")
            else:
                ts = pd.Timestamp(time)
                t = np.datetime64(ts.tz_localize(None) if ts.tzinfo else ts, "ns")
            changed = ~np.isnat(when) & np.isfinite(fac) & (t >= when)
            nox = np.where(changed, nox * fac, nox)
        return float(np.nansum(nox)) if np.isfinite(nox).any() else float("nan")


def co2_from_nox(nox: float, sigma: dict[str, float], r: Ratio) -> tuple[float, dict[str, float]]:
    """(Mt CO2/yr, components in Mt CO2/yr) from NOx [t/yr] and its components."""
    q = nox * r.ratio / 1e6
    comp = {k: v * r.ratio / 1e6 for k, v in sigma.items()}
    if np.isfinite(q):
        comp["co2_ratio"] = abs(q) * r.rel_sigma
    return q, comp
