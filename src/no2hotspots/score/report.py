"""What the score stage writes: full scores, Table 1 CSVs, DVC metrics and plots, MLflow metrics/tables/figure."""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict
from pathlib import Path

from omegaconf import DictConfig

from ..atomic import atomic_group, write_csv, write_json
from ..metrics import CONVENTIONS, table1

#: MLflow/DVC metrics of the validation split (what the registry compares; the rest stays in score.json)
VAL_KEYS = (
    "detect/every/source_f1",
    "detect/every/source_recall",
    "detect/every/source_precision",
    "mark/every/pixel_recall_q1_all",
    "mark/every/pixel_recall_q2_all",
)
#: per threshold and convention, the test metrics besides Table 1 that go to DVC and MLflow
TEST_EXTRA = (
    "pixel_precision_q2_all",
    "pixel_iou_q2_all",
    "source_recall",
    "source_precision",
    "source_f1",
    "false_alarm_rate",
    "loc_error_px_median",
    "n_samples",
    "n_sources",
)
TABLE1 = tuple(f"pixel_recall_{q}_{g}" for g in ("all", "low", "mid", "high") for q in ("q1", "q2", "q3"))


def _num(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def selected(results: dict) -> dict[str, float]:
    """``<split>/<threshold>/<convention>/<metric>`` -> value: Table 1 and :data:`TEST_EXTRA` on the test split and
    on every other held-out split (``paper_world``), :data:`VAL_KEYS` on the validation split."""
    out: dict[str, float] = {}
    for split, r in results.items():
        if split == "val":
            out.update({f"val/{k}": r.metrics[k] for k in VAL_KEYS})
            continue
        for thr in ("mark", "detect"):
            for conv in CONVENTIONS:
                for k in TABLE1 + TEST_EXTRA:
                    out[f"{split}/{thr}/{conv}/{k}"] = r.metrics[f"{thr}/{conv}/{k}"]
        out[f"{split}/visible/n_sources_hidden"] = r.metrics["mark/visible/n_sources_hidden"]
    return out


def nested(flat: dict[str, float]) -> dict:
    out: dict = {}
    for key, v in flat.items():
        node = out
        *path, leaf = key.split("/")
        for p in path:
            node = node.setdefault(p, {})
        node[leaf] = _num(v)
    return out


def threshold_curve(metrics: dict):
    """Validation source recall/precision/F1 (every source) per threshold of the curve, and the two named ones."""
    import pandas as pd

    rows = []
    for key in sorted({k.split("/")[0] for k in metrics if k.startswith("t")}, key=lambda k: float(k[1:])):
        rows.append(
            {
                "threshold": float(key[1:]),
                **{m: metrics[f"{key}/every/source_{m}"] for m in ("recall", "precision", "f1")},
            }
        )
    return pd.DataFrame(rows, columns=["threshold", "recall", "precision", "f1"])


def table1_rows(results: dict, split: str = "test"):
    """Long table: one row per (threshold, convention, class) with 1Q/2Q/3Q/n, for CSV and plots (``label``: the
    three keys in one string, the bar label of ``dvc plots``)."""
    import pandas as pd

    r = results[split]
    parts = []
    for thr in ("mark", "detect"):
        for conv in CONVENTIONS:
            t = table1(r.metrics, prefix=f"{thr}/{conv}/").reset_index()
            t.insert(0, "convention", "every source" if conv == "every" else "visible sources")
            t.insert(0, "threshold", thr)
            parts.append(t)
    out = pd.concat(parts, ignore_index=True)
    out["label"] = out["threshold"] + " / " + out["convention"] + " / " + out["emission class"].astype(str)
    return out


def write(cfg: DictConfig, scoring, meta: dict, results: dict, pairs: dict | None = None) -> dict:
    """``<score.out_dir>/`` (replaced as a whole), ``<paths.metrics>/score.json``, ``<paths.plots>/score/``."""
    flat = {**selected(results), **{f"pairs/{k}": v for k, v in (pairs or {}).items()}}
    full = {
        "scoring_version": scoring.version,
        "scoring": asdict(scoring),
        "model_run_id": meta.get("run_id"),
        "model_data_version": meta.get("data_version"),
        "splits": {
            s: {"mse": r.loss, "metrics": {k: _num(v) for k, v in r.metrics.items()}} for s, r in results.items()
        },
        "pairs": {k: _num(v) for k, v in (pairs or {}).items()},
    }
    out_dir = Path(str(cfg.score.out_dir))
    with atomic_group() as out:  # the folder, metrics and plot files are replaced together (no2hotspots.atomic)
        tmp = out.folder(out_dir)
        write_json(tmp / "score.json", full)
        for split in results:
            if split != "val":
                write_csv(table1_rows(results, split), tmp / f"table1_{split}.csv")
        if "test" in results and results["test"].examples:
            from .panel import panel_png

            panel_png(results["test"].examples, tmp / "test_panel.png", scoring.detect_threshold)
        out.write_json(Path(str(cfg.paths.metrics)) / "score.json", nested(flat))
        plots = Path(str(cfg.paths.plots)) / "score"
        if "val" in results:
            out.write_csv(threshold_curve(results["val"].metrics), plots / "threshold_curve.csv")
        if "test" in results:
            out.write_csv(table1_rows(results), plots / "table1.csv")
    return full


def log_to_mlflow(cfg: DictConfig, scoring, meta: dict, results: dict, pairs: dict | None = None) -> None:
    """The selected metrics as ``score/<split>/...``, Table 1 as an MLflow table, the figure; version tags."""
    import mlflow

    from .. import tracking

    tracking.setup(cfg)
    flat = {**selected(results), **{f"pairs/{k}": v for k, v in (pairs or {}).items()}}
    metrics = {f"score/{k}": float(v) for k, v in flat.items() if v is not None and math.isfinite(v)}
    data_version = tracking.data_version(Path(str(cfg.paths.simulated)))
    with mlflow.start_run(run_id=str(meta["run_id"])):
        mlflow.log_metrics(metrics)
        mlflow.set_tags({"scoring_version": scoring.version, "score_data_version": data_version})
        if "test" in results:
            mlflow.log_table(table1_rows(results), artifact_file="tables/table1.json")
        for split in results:
            if split not in ("val", "test"):
                mlflow.log_table(table1_rows(results, split), artifact_file=f"tables/table1_{split}.json")
        with tempfile.TemporaryDirectory() as d:
            write_json(Path(d) / "score.json", {"scoring_version": scoring.version, "scoring": asdict(scoring)})
            src = Path(str(cfg.score.out_dir)) / "test_panel.png"
            if src.exists():
                (Path(d) / "test_panel.png").write_bytes(src.read_bytes())
            mlflow.log_artifacts(d, "score")


def headline_line(results: dict) -> str:
    parts = []
    if "test" in results:
        m = results["test"].metrics
        parts.append(
            "test Table 1 all 1Q/median (every source) {:.1f}/{:.1f} % at mark, source F1 {:.3f} at detect".format(
                100 * m["mark/every/pixel_recall_q1_all"],
                100 * m["mark/every/pixel_recall_q2_all"],
                m["detect/every/source_f1"],
            )
        )
    if "paper_world" in results:
        m = results["paper_world"].metrics
        parts.append(
            "paper_world 1Q/median {:.1f}/{:.1f} %".format(
                100 * m["mark/every/pixel_recall_q1_all"], 100 * m["mark/every/pixel_recall_q2_all"]
            )
        )
    if "val" in results:
        parts.append("val source F1 {:.3f}".format(results["val"].metrics["detect/every/source_f1"]))
    return "; ".join(parts)
