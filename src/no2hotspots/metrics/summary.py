"""Summaries of accumulated scores: quartiles per emission class (the paper's Table 1) and source-level rates."""

from __future__ import annotations

import numpy as np

CLASS_NAMES = {1: "low", 2: "mid", 3: "high"}
QUARTILES = {"q1": 25, "q2": 50, "q3": 75}


def _quartiles(values: np.ndarray) -> dict[str, float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {q: float("nan") for q in QUARTILES}
    p = np.percentile(values, list(QUARTILES.values()))  # numpy: torch.quantile refuses > 2**24 elements
    return {q: float(v) for q, v in zip(QUARTILES, p)}


def summarize(
    acc, prec, iou, cls, n_sources, n_blobs, n_matched, loc_error, abs_error, *, acc_with_hidden=None, n_hidden=None
) -> dict[str, float]:
    """Flat dict of floats with stable keys (see ``EmissionMetrics.compute``). Inputs are numpy arrays."""
    out: dict[str, float] = {}
    groups = {"all": cls > 0, **{name: cls == c for c, name in CLASS_NAMES.items()}}
    for metric, values in (("acc", acc), ("precision", prec), ("iou", iou)):
        for g, sel in groups.items():
            for q, v in _quartiles(values[sel]).items():
                out[f"{metric}_{q}_{g}"] = v
    out["n_samples"] = float((cls > 0).sum())
    for c, name in CLASS_NAMES.items():
        out[f"n_samples_{name}"] = float((cls == c).sum())
    out["n_samples_empty"] = float((cls == 0).sum())
    out["n_samples_hidden"] = float((cls < 0).sum())
    if acc_with_hidden is not None:
        for q, v in _quartiles(acc_with_hidden).items():
            out[f"acc_with_hidden_{q}_all"] = v
    if n_hidden is not None:
        out["n_sources_hidden"] = float(np.sum(n_hidden))
    n_src, n_blob, n_tp = float(n_sources.sum()), float(n_blobs.sum()), float(n_matched.sum())
    recall = n_tp / n_src if n_src else float("nan")
    precision = n_tp / n_blob if n_blob else float("nan")
    f1 = (
        2 * recall * precision / (recall + precision)
        if n_src and n_blob and (recall + precision) > 0
        else (0.0 if n_src and n_blob else float("nan"))
    )
    out.update(
        source_recall=recall,
        source_precision=precision,
        source_f1=f1,
        n_sources=n_src,
        n_blobs=n_blob,
        n_sources_found=n_tp,
    )
    out["loc_error_px_median"] = float(np.median(loc_error)) if loc_error.size else float("nan")
    out["loc_error_px_mean"] = float(np.mean(loc_error)) if loc_error.size else float("nan")
    out["mae_at_sources"] = float(np.mean(abs_error)) if abs_error.size else float("nan")
    empty = cls == 0
    out["false_alarm_rate"] = float((n_blobs[empty] > 0).mean()) if empty.any() else float("nan")
    return out


def table1(results: dict):
    """The paper's Table 1 from ``EmissionMetrics.compute()`` output (keys may carry a prefix such as ``test/``).

    Rows all/low/mid/high; columns 1Q/2Q/3Q (recognition accuracy in %) and n (number of samples).
    """
    import pandas as pd

    def get(key):
        if key in results:
            return results[key]
        for k, v in results.items():
            if k.endswith("/" + key):
                return v
        raise KeyError(key)

    rows = {}
    for g in ("all", "low", "mid", "high"):
        n_key = "n_samples" if g == "all" else f"n_samples_{g}"
        rows[g] = {
            "1Q": 100.0 * float(get(f"acc_q1_{g}")),
            "2Q": 100.0 * float(get(f"acc_q2_{g}")),
            "3Q": 100.0 * float(get(f"acc_q3_{g}")),
            "n": int(get(n_key)),
        }
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "emission class"
    return df
