"""Summaries of accumulated scores: quartiles per emission class (the paper's Table 1) and source-level rates."""

from __future__ import annotations

import numpy as np

CONVENTIONS = ("every", "visible")
CLASS_NAMES = {1: "low", 2: "mid", 3: "high"}
QUARTILES = {"q1": 25, "q2": 50, "q3": 75}


def _quartiles(values: np.ndarray) -> dict[str, float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {q: float("nan") for q in QUARTILES}
    p = np.percentile(values, list(QUARTILES.values()))  # numpy: torch.quantile refuses > 2**24 elements
    return {q: float(v) for q, v in zip(QUARTILES, p)}


def summarize(recall, precision, iou, cls, n_sources, n_blobs, n_matched, loc_error, abs_error) -> dict[str, float]:
    """Flat dict of floats with stable keys, for one convention. Inputs are numpy arrays (per sample, except
    ``loc_error`` per matched pair and ``abs_error`` per source).

    - ``pixel_recall_{q1,q2,q3}_{all,low,mid,high}``: Table 1 (fractions in [0, 1]); NaN for a class without
      samples; ``pixel_precision_{q1,q2,q3}_all``, ``pixel_iou_q2_all``;
    - ``n_samples`` (with sources), ``n_samples_{low,mid,high}``, ``n_samples_without_source``;
    - ``source_recall``, ``source_precision``, ``source_f1``, ``n_sources``, ``n_blobs``, ``n_sources_found``,
      ``loc_error_px_median``, ``mae_at_sources``;
    - ``false_alarm_rate``: share of samples without a source that hold any blob.
    """
    out: dict[str, float] = {}
    groups = {"all": cls > 0, **{name: cls == c for c, name in CLASS_NAMES.items()}}
    for g, sel in groups.items():
        for q, v in _quartiles(recall[sel]).items():
            out[f"pixel_recall_{q}_{g}"] = v
    for q, v in _quartiles(precision[cls > 0]).items():
        out[f"pixel_precision_{q}_all"] = v
    out["pixel_iou_q2_all"] = _quartiles(iou[cls > 0])["q2"]
    out["n_samples"] = float((cls > 0).sum())
    for c, name in CLASS_NAMES.items():
        out[f"n_samples_{name}"] = float((cls == c).sum())
    empty = cls == 0
    out["n_samples_without_source"] = float(empty.sum())
    n_src, n_blob, n_tp = float(n_sources.sum()), float(n_blobs.sum()), float(n_matched.sum())
    recall_s = n_tp / n_src if n_src else float("nan")
    precision_s = n_tp / n_blob if n_blob else float("nan")
    if n_src and n_blob:
        f1 = 2 * recall_s * precision_s / (recall_s + precision_s) if recall_s + precision_s > 0 else 0.0
    else:
        f1 = 0.0 if n_src else float("nan")
    out.update(
        source_recall=recall_s,
        source_precision=precision_s,
        source_f1=f1,
        n_sources=n_src,
        n_blobs=n_blob,
        n_sources_found=n_tp,
    )
    out["loc_error_px_median"] = float(np.median(loc_error)) if loc_error.size else float("nan")
    out["mae_at_sources"] = float(np.mean(abs_error)) if abs_error.size else float("nan")
    out["false_alarm_rate"] = float((n_blobs[empty] > 0).mean()) if empty.any() else float("nan")
    return out


def table1(results: dict, prefix: str = ""):
    """The paper's Table 1 from ``EmissionMetrics.compute()`` output: rows all/low/mid/high, columns 1Q/2Q/3Q
    (pixel recall in %) and n (samples). ``prefix`` selects the convention (and split/threshold), e.g. ``every/``
    or ``test/mark/every/``."""
    import pandas as pd

    rows = {}
    for g in ("all", "low", "mid", "high"):
        n_key = "n_samples" if g == "all" else f"n_samples_{g}"
        rows[g] = {f"{q[1]}Q": 100.0 * float(results[f"{prefix}pixel_recall_{q}_{g}"]) for q in QUARTILES}
        rows[g]["n"] = int(results[f"{prefix}{n_key}"])
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "emission class"
    return df
