"""The short summary printed at the end of ``make demo``: where the results are and how to look at them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from omegaconf import DictConfig


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def summary_lines(cfg: DictConfig) -> list[str]:
    out = Path(cfg.paths.outputs)
    metrics = Path(cfg.paths.metrics)
    lines = ["", "no2hotspots demo finished.", ""]
    reg = _read_json(out / "register" / "model.json")
    if reg:
        lines.append(
            f"  model        {reg.get('name', '?')} version {reg.get('version', '?')} "
            f"(champion: version {reg.get('champion_version', '?')})"
        )
    train = _read_json(metrics / "train.json")
    if train:
        keys = [
            k for k in ("test/acc_q1_all", "test/acc_q2_all", "test/precision_q2_all", "test/source_f1") if k in train
        ]
        if keys:
            lines.append("  test set     " + ", ".join(f"{k}={train[k]:.3g}" for k in keys))
    for coll in sorted(p.name for p in (out / "detect").glob("*") if p.is_dir()):
        d = out / "detect" / coll
        det = _read_json(d / "detect.json")
        lines.append(f"  {coll:<12} {det.get('n_hotspots', '?')} hotspots: {d / 'hotspots.csv'}, map {d / 'map.png'}")
        ev = out / "evaluate" / coll
        if ev.is_dir():
            lines.append(f"  {'':<12} evaluation: {ev}/ and {metrics / f'evaluate_{coll}.json'}")
    lines += [
        "",
        "  metrics      dvc metrics show        plots: dvc plots show (opens dvc_plots/index.html)",
        f"  MLflow UI    make ui   (or: mlflow ui --backend-store-uri {cfg.tracking.uri} --host 127.0.0.1)"
        " then open http://127.0.0.1:5000",
        "",
    ]
    return lines


def run(cfg: DictConfig) -> None:
    sys.stdout.write("\n".join(summary_lines(cfg)) + "\n")
