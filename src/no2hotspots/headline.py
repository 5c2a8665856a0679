"""``python -m no2hotspots headline``: the dozen-odd figures that say how good a model is, in one small file.

Reads the stages' metrics (``<paths.metrics>/score.json``, ``evaluate_<c>.json``) and the Matimba evaluation's
per-source table, and writes ``<paths.metrics>/headline.json`` under one ``headline`` key, so ``dvc exp show
--drop '.*' --keep 'Experiment|headline\\.'`` and ``dvc metrics diff --targets metrics/headline.json`` compare
experiments on these and nothing else. Every figure counts every source (the headline convention); a figure that
is undefined (no hotspot, no scene of a class) is null; missing inputs (a split or collection not run) leave their
keys out and are logged, never filled in.

F1 on the OSSE (``osse.<table>.f1``): recall = share of the observed truth sources found by the ``nearest`` rule
(a hotspot whose nearest source is this one, within ``evaluate.match_distance_km``), precision = site precision
(distinct hotspot sites with a source within the same distance); per bin the recall is the strict Table 2 rate and
the precision the table's overall site precision (a false site has no emission bin).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig

from .atomic import write_json

log = logging.getLogger(__name__)

BINS = ("gt5000", "4000_5000", "2000_4000", "lt2000")
TABLES = ("model", "composite", "hybrid", "baseline")

#: headline key -> (metrics file, key in it), the simulated-data figures (score.json, nested)
SCORE_KEYS = {
    "table1.test_median_every": ("test", "mark", "every", "pixel_recall_q2_all"),
    "table1.test_q1_every": ("test", "mark", "every", "pixel_recall_q1_all"),
    "table1.test_median_visible": ("test", "mark", "visible", "pixel_recall_q2_all"),
    "table1.paper_world_q1_visible": ("paper_world", "mark", "visible", "pixel_recall_q1_all"),
    "table1.paper_world_median_visible": ("paper_world", "mark", "visible", "pixel_recall_q2_all"),
    "sim.val_source_f1": ("val", "detect", "every", "source_f1"),
    "sim.test_source_f1": ("test", "detect", "every", "source_f1"),
    "sim.pair_recall_ge3px": ("pairs", "pair_recall_ge3px"),
}


MISSING = object()  # a figure whose input is not there at all (left out, unlike an undefined value: null)


def _get(d: dict, path: tuple[str, ...]):
    """The figure at ``path``: MISSING when its split is not in the file at all (not run), None when the split is
    there without this figure (the stage writes no NaN: an undefined figure is absent)."""
    if path[0] not in d:
        return MISSING
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _read(path: Path) -> dict | None:
    if not path.exists():
        log.warning("headline: %s not found; its figures are left out", path)
        return None
    return json.loads(path.read_text())


def _clean(v):
    """A figure as JSON: floats rounded to 4 decimals, NaN and undefined as null (the key stays, so the columns of
    ``dvc exp show`` are the same for every experiment)."""
    if isinstance(v, float):
        return None if v != v else round(v, 4)
    return v


def f1(precision, recall):
    if precision is None or recall is None or precision != precision or recall != recall:
        return None
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def osse_figures(ev: dict) -> dict:
    """Strict Table 2 per bin, site precision, F1 and the chance floor of each hotspot table (the per-bin F1 that
    compares model and baseline is in the README and ``f1_by_bin``)."""
    out: dict[str, float] = {}
    for t in TABLES:
        if not any(k.startswith(f"{t}/") for k in ev):  # no such table in this evaluation
            continue
        p = ev.get(f"{t}/site_precision")  # absent: undefined (no site), null
        out[f"osse.{t}.site_precision"] = p
        out[f"osse.{t}.f1"] = f1(p, ev.get(f"{t}/source_recall_nearest"))
        for b in BINS:
            out[f"osse.{t}.table2_strict_{b}"] = ev.get(f"{t}/table2_strict_rate_{b}")
        out[f"osse.{t}.chance_floor"] = ev.get(f"{t}/chance_floor")
    return out


def f1_by_bin(ev: dict) -> dict[str, dict[str, float | None]]:
    """Per table and bin: F1 of the strict Table 2 rate (recall) and the table's site precision."""
    return {
        t: {b: f1(ev.get(f"{t}/site_precision"), ev.get(f"{t}/table2_strict_rate_{b}")) for b in BINS} for t in TABLES
    }


def matimba_figures(ev: dict, sources_csv: Path, min_nox_t_per_yr: float) -> dict:
    """Matimba: CoCO2 sites above ``min_nox_t_per_yr`` with valid pixels that get a hotspot within the match
    distance, and the share of hotspots within it of some CoCO2 site."""
    out = {"matimba.hotspot_precision": ev.get("model/hotspot_precision")}
    if sources_csv.exists():
        import pandas as pd

        s = pd.read_csv(sources_csv)
        strong = s[(s["nox_t_per_yr"] >= min_nox_t_per_yr) & s["observed"].astype(bool)]
        out["matimba.sites_found_ge5kt"] = int(strong["found_distance"].astype(bool).sum())
        out["matimba.sites_observed_ge5kt"] = int(len(strong))
    else:
        log.warning("headline: %s not found; Matimba site counts left out", sources_csv)
    return out


def run(cfg: DictConfig) -> dict:
    metrics = Path(str(cfg.paths.metrics))
    head: dict[str, float | int | None] = {}
    score = _read(metrics / "score.json")
    if score is not None:
        head.update({k: _get(score, path) for k, path in SCORE_KEYS.items()})
    osse = _read(metrics / "evaluate_osse.json")
    if osse is not None:
        head.update(osse_figures(osse))
    mat = _read(metrics / "evaluate_matimba.json")
    if mat is not None:
        sources = Path(str(cfg.evaluate.out_dir)) / "matimba" / "model" / "sources.csv"
        head.update(matimba_figures(mat, sources, 5000.0))
    head = {k: _clean(v) for k, v in head.items() if v is not MISSING}
    write_json(metrics / "headline.json", {"headline": head})
    log.info("headline: %d figures -> %s", len(head), metrics / "headline.json")
    return head
