"""Time series per hotspot site and per inventory source, and a step-change test on them (issue 11 item 5).

Per point and period (month by default): valid observations, detections (a source by ``evaluate.source_rule``, a
site by its own hotspots), the detection rate (detections on valid observations / valid observations), the mean
relative emission at the point over its valid observations and the mean NOx estimate of the hotspots detecting it.

Change test, per point and per series (detection rate; relative emission): every split between two periods with at
least ``min_valid`` valid observations on each side is tested — detections before vs after with a binomial
likelihood-ratio (G) test, relative emission with Welch's t test from the per-period sums — and the split with the
smallest p-value is the step; its p-value is multiplied by the number of splits tried (Bonferroni). Over all points,
the Benjamini-Hochberg procedure at false-discovery rate ``alpha`` flags the changed ones. A point is flagged when
either of its series is. Where the truth (OSSE sources.csv) carries ``change_date`` and ``change_factor``, an
injected change is *found* when its source is flagged with a step in the right direction within
``tolerance_periods`` of the period holding the change date.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..inventory.changes import change_dates, change_factors, injected_mask


def series_table(points: pd.DataFrame, periods: list[str], sums: dict, nox: pd.DataFrame) -> pd.DataFrame:
    """One row per (point, period). ``nox``: mean NOx estimate and hotspot count per (point, period)."""
    s = sums["series"]
    n_p, n_t = s["n_valid"].shape
    rows = pd.DataFrame(
        {
            "point": np.repeat(np.arange(n_p), n_t),
            "period": np.tile(np.asarray(periods, dtype=object), n_p),
            **{f: s[f].ravel() for f in ("n_valid", "n_cell_observed", "n_detections", "n_detections_valid", "n_rel")},
        }
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        rows["detection_rate"] = np.where(rows["n_valid"] > 0, rows["n_detections_valid"] / rows["n_valid"], np.nan)
        mean = np.where(s["n_rel"] > 0, s["sum_rel"] / np.maximum(s["n_rel"], 1), np.nan)
    rows["mean_rel_emission"] = mean.ravel()
    rows = rows.merge(nox, on=["point", "period"], how="left")
    rows["n_hotspots"] = rows["n_hotspots"].fillna(0).astype(int)
    meta = points[["kind", "id", "lat", "lon", "region"]].reset_index(drop=True)
    rows = pd.concat([meta.iloc[rows["point"]].reset_index(drop=True), rows], axis=1)
    return rows


def _g_test(d1, n1, d2, n2) -> float:
    """p-value of the binomial likelihood-ratio test of equal rates (chi-square, 1 dof)."""
    from scipy.stats import chi2

    def ll(d, n):
        p = d / n
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(d > 0, d * np.log(np.where(p > 0, p, 1)), 0.0)
            b = np.where(n - d > 0, (n - d) * np.log(np.where(p < 1, 1 - p, 1)), 0.0)
        return a + b

    g = 2 * (ll(d1, n1) + ll(d2, n2) - ll(d1 + d2, n1 + n2))
    return float(chi2.sf(max(float(g), 0.0), 1))


def _welch(c1, s1, q1, c2, s2, q2) -> float:
    """p-value of Welch's t test from counts, sums and sums of squares (1.0 when it cannot be computed)."""
    from scipy.stats import t as student

    if c1 < 2 or c2 < 2:
        return 1.0
    m1, m2 = s1 / c1, s2 / c2
    v1 = max((q1 - c1 * m1 * m1) / (c1 - 1), 0.0)
    v2 = max((q2 - c2 * m2 * m2) / (c2 - 1), 0.0)
    se2 = v1 / c1 + v2 / c2
    if se2 <= 1e-18:
        return 0.0 if abs(m2 - m1) > 1e-9 else 1.0
    tval = (m2 - m1) / np.sqrt(se2)
    dof = se2**2 / ((v1 / c1) ** 2 / (c1 - 1) + (v2 / c2) ** 2 / (c2 - 1)) if v1 + v2 > 0 else c1 + c2 - 2
    return float(2 * student.sf(abs(tval), max(dof, 1.0)))


def step_scan(d, n, c, s, q, min_valid: int) -> dict:
    """Best split of one point's per-period series for both tests (see the module docstring)."""
    d, n, c, s, q = (np.asarray(v, float) for v in (d, n, c, s, q))
    cd, cn, cc, cs, cq = (np.cumsum(v) for v in (d, n, c, s, q))
    out = {
        "rate_step": -1,
        "rate_p": np.nan,
        "rate_before": np.nan,
        "rate_after": np.nan,
        "rel_step": -1,
        "rel_p": np.nan,
        "rel_before": np.nan,
        "rel_after": np.nan,
    }
    tried_rate, tried_rel = [], []
    for k in range(1, len(n)):
        n1, n2 = cn[k - 1], cn[-1] - cn[k - 1]
        if n1 >= min_valid and n2 >= min_valid:
            d1, d2 = cd[k - 1], cd[-1] - cd[k - 1]
            tried_rate.append((_g_test(d1, n1, d2, n2), k, d1 / n1, d2 / n2))
        c1, c2 = cc[k - 1], cc[-1] - cc[k - 1]
        if c1 >= min_valid and c2 >= min_valid:
            s1, s2 = cs[k - 1], cs[-1] - cs[k - 1]
            q1, q2 = cq[k - 1], cq[-1] - cq[k - 1]
            tried_rel.append((_welch(c1, s1, q1, c2, s2, q2), k, s1 / c1, s2 / c2))
    for name, tried in (("rate", tried_rate), ("rel", tried_rel)):
        if tried:
            p, k, before, after = min(tried, key=lambda x: (x[0], x[1]))
            out.update(
                {
                    f"{name}_step": k,
                    f"{name}_p": min(1.0, p * len(tried)),
                    f"{name}_before": before,
                    f"{name}_after": after,
                }
            )
    return out


def benjamini_hochberg(p: np.ndarray, alpha: float) -> np.ndarray:
    """Which of the p-values (NaN = not tested) are discoveries at false-discovery rate ``alpha``."""
    p = np.asarray(p, float)
    tested = np.isfinite(p)
    out = np.zeros(len(p), bool)
    m = int(tested.sum())
    if m == 0:
        return out
    idx = np.nonzero(tested)[0]
    order = idx[np.argsort(p[idx], kind="stable")]
    ranks = np.arange(1, m + 1)
    ok = p[order] <= alpha * ranks / m
    if ok.any():
        out[order[: np.nonzero(ok)[0].max() + 1]] = True
    return out


def change_table(points: pd.DataFrame, periods: list[str], sums: dict, *, alpha: float, min_valid: int) -> pd.DataFrame:
    """One row per point: the best step of each series, its p-value, the flag and the direction."""
    s = sums["series"]
    rows = []
    for i in range(len(points)):
        r = step_scan(
            s["n_detections_valid"][i], s["n_valid"][i], s["n_rel"][i], s["sum_rel"][i], s["sumsq_rel"][i], min_valid
        )
        rows.append(r)
    ch = pd.concat([points[["kind", "id", "lat", "lon", "region"]].reset_index(drop=True), pd.DataFrame(rows)], axis=1)
    ch["rate_flagged"] = benjamini_hochberg(ch["rate_p"].to_numpy(), alpha)
    ch["rel_flagged"] = benjamini_hochberg(ch["rel_p"].to_numpy(), alpha)
    ch["flagged"] = ch["rate_flagged"] | ch["rel_flagged"]
    # the step and direction of the flagged test with the smaller p-value (rate first on ties)
    use_rel = ch["rel_flagged"] & (~ch["rate_flagged"] | (ch["rel_p"] < ch["rate_p"]))
    step = np.where(use_rel, ch["rel_step"], ch["rate_step"])
    before = np.where(use_rel, ch["rel_before"], ch["rate_before"])
    after = np.where(use_rel, ch["rel_after"], ch["rate_after"])
    labels = np.asarray(list(periods) + [""], dtype=object)
    ch["step_period"] = np.where(ch["flagged"], labels[np.where(step >= 0, step, len(periods))], "")
    ch["direction"] = np.where(~ch["flagged"], "", np.where(after < before, "drop", "rise"))
    ch["rate_step_period"] = labels[np.where(ch["rate_step"] >= 0, ch["rate_step"], len(periods))]
    ch["rel_step_period"] = labels[np.where(ch["rel_step"] >= 0, ch["rel_step"], len(periods))]
    ch["tested"] = ch["rate_p"].notna() | ch["rel_p"].notna()
    return ch.drop(columns=["rate_step", "rel_step"])


def injected(
    changes: pd.DataFrame, sources: pd.DataFrame, periods: list[str], freq: str, tolerance: int
) -> pd.DataFrame:
    """Add ``change_date``, ``change_factor``, ``injected``, ``change_period`` and ``change_found`` to the source rows
    of ``changes`` (``sources``: the in-grid sources, in point order, with the truth's change columns)."""
    out = changes.copy()
    n = len(sources)
    date = change_dates(sources).reset_index(drop=True)
    factor = change_factors(sources).reset_index(drop=True)
    is_inj = pd.Series(injected_mask(sources))
    pos = {p: i for i, p in enumerate(periods)}
    change_period = [str(d.tz_convert(None).to_period(freq)) if ok else "" for d, ok in zip(date, is_inj.to_numpy())]
    out["change_date"] = pd.Series([str(d.date()) if ok else "" for d, ok in zip(date, is_inj)] + [""] * (len(out) - n))
    out["change_factor"] = pd.Series(list(np.where(is_inj, factor, np.nan)) + [np.nan] * (len(out) - n))
    out["injected"] = pd.Series(list(is_inj.to_numpy()) + [False] * (len(out) - n)).astype(bool)
    out["change_period"] = pd.Series(change_period + [""] * (len(out) - n))
    found = []
    for i in range(len(out)):
        if i >= n or not out.at[i, "injected"]:
            found.append(False)
            continue
        want = "drop" if out.at[i, "change_factor"] < 1 else "rise"
        step, cp = out.at[i, "step_period"], out.at[i, "change_period"]
        close = step in pos and cp in pos and abs(pos[step] - pos[cp]) <= tolerance
        found.append(bool(out.at[i, "flagged"] and out.at[i, "direction"] == want and close))
    out["change_found"] = found
    return out
