"""Estimates against a known truth (OSSE sources) or an inventory: log-ratio statistics, interval coverage, scatter.

For each method (and per bin of the true NOx rate): n compared, the median and mean of ln(estimate / truth), its
standard deviation, the median |ln ratio| (the acceptance figure: <= ln 1.3 means typically within 30 %), the share
within a factor 1.3 and 2, and the share of 1-sigma intervals [q - sigma, q + sigma] covering the truth (68 % if the
stated uncertainties are right). Non-positive estimates have no log ratio: they are counted (``n_nonpositive``) and
left out of the log statistics (but not of the coverage).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LN13 = float(np.log(1.3))


def _median_rel_sigma(sig: np.ndarray, est: np.ndarray) -> float | None:
    """Median of sigma / |estimate| over the estimates where it is defined (a finite sigma and a non-zero
    estimate); None when there is none. A single undefined ratio must not turn the whole median into NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = sig / np.abs(est)
    r = r[np.isfinite(r)]
    return float(np.median(r)) if r.size else None


def stats(est: np.ndarray, sig: np.ndarray, truth: np.ndarray) -> dict:
    est, sig, truth = (np.asarray(a, float) for a in (est, sig, truth))
    ok = np.isfinite(est) & np.isfinite(truth) & (truth > 0)
    out = {"n": int(ok.sum())}
    if not ok.any():
        return out
    e, s, t = est[ok], sig[ok], truth[ok]
    pos = e > 0
    lr = np.log(e[pos] / t[pos])
    cover = np.isfinite(s) & (np.abs(e - t) <= s)
    out.update(
        {
            "n_nonpositive": int((~pos).sum()),
            "median_log_ratio": float(np.median(lr)) if lr.size else None,
            "mean_log_ratio": float(np.mean(lr)) if lr.size else None,
            "std_log_ratio": float(np.std(lr, ddof=1)) if lr.size > 1 else None,
            "median_abs_log_ratio": float(np.median(np.abs(lr))) if lr.size else None,
            "median_ratio": float(np.exp(np.median(lr))) if lr.size else None,
            "share_within_factor_1_3": float(np.mean(np.abs(lr) <= LN13)) if lr.size else None,
            "share_within_factor_2": float(np.mean(np.abs(lr) <= np.log(2))) if lr.size else None,
            "coverage_68": float(np.mean(cover)),
            "median_rel_sigma": _median_rel_sigma(s, e),
        }
    )
    return out


def evaluate_table(
    df: pd.DataFrame,
    *,
    value: str,
    sigma: str,
    truth: str,
    bins: list[float],
    extra_filter: pd.Series | None = None,
) -> dict:
    """Statistics per method, and per method and truth bin; rows with a finite truth only."""
    d = df[np.isfinite(df[truth].to_numpy(float))]
    if extra_filter is not None:
        d = d[extra_filter.reindex(d.index).fillna(False).to_numpy(bool)]
    out: dict = {}
    edges = [0.0] + [float(b) for b in bins] + [np.inf]
    for m, g in d.groupby("method", sort=True):
        block = stats(g[value], g[sigma], g[truth])
        per_bin = {}
        for lo, hi in zip(edges[:-1], edges[1:]):
            gb = g[(g[truth] >= lo) & (g[truth] < hi)]
            name = f"{lo:g}-{hi:g}" if np.isfinite(hi) else f">{lo:g}"
            per_bin[name] = stats(gb[value], gb[sigma], gb[truth])
        block["by_truth_bin_t_per_yr"] = per_bin
        out[str(m)] = block
    return out


def scatter_plot(df: pd.DataFrame, path, *, value: str, sigma: str, truth: str, title: str) -> None:
    """Log-log scatter of estimate vs truth per method with 1-sigma bars, the 1:1 line and factor 1.3 / 2 bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    from ..atomic import save_figure

    d = df[np.isfinite(df[truth].to_numpy(float)) & (df[truth] > 0)]
    methods = sorted(d["method"].unique()) or ["(none)"]
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 4.2), squeeze=False)
    vals = np.concatenate([d[truth].to_numpy(float), d[value].to_numpy(float)])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    lo, hi = (vals.min() / 2, vals.max() * 2) if vals.size else (1e2, 1e5)
    line = np.array([lo, hi])
    for ax, m in zip(axes[0], methods):
        g = d[d["method"] == m]
        ok = g[value] > 0
        ax.fill_between(line, line / 2, line * 2, color="0.92", lw=0, label="factor 2")
        ax.fill_between(line, line / 1.3, line * 1.3, color="0.82", lw=0, label="factor 1.3")
        ax.plot(line, line, "k-", lw=0.8)
        ax.errorbar(
            g.loc[ok, truth], g.loc[ok, value], yerr=np.minimum(g.loc[ok, sigma], 0.999 * g.loc[ok, value]),
            fmt="o", ms=3, lw=0.6, alpha=0.8,
        )  # fmt: skip
        s = stats(g[value], g[sigma], g[truth])
        txt = f"n={s['n']}"
        if s.get("median_abs_log_ratio") is not None:
            txt += f"\nmedian|ln r|={s['median_abs_log_ratio']:.2f}\n68% cover={s['coverage_68']:.0%}"
        ax.text(0.03, 0.97, txt, transform=ax.transAxes, va="top", fontsize=8)
        ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), title=m, xlabel="truth / inventory [t NOx/yr]")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        if ax is axes[0][0]:
            ax.set_ylabel("estimate [t NOx/yr, as NO2]")
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path)
    plt.close(fig)
