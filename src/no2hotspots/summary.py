"""The short summary printed at the end of ``make demo``: where the results are and how to look at them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from omegaconf import DictConfig

from . import tracking


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _ui_line(uri: str) -> str:
    if uri.startswith(("http://", "https://")):
        return f"  MLflow UI    {uri} (the team server)"
    return (
        f"  MLflow UI    make ui   (or: mlflow ui --backend-store-uri {uri} --host 127.0.0.1)"
        " then open http://127.0.0.1:5000"
    )


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
    score = _read_json(metrics / "score.json").get("test", {})
    mark, detect = score.get("mark", {}), score.get("detect", {})
    if mark and detect:
        e, v = mark["every"], mark["visible"]
        lines.append(
            f"  Table 1      test split, pixel recall 1Q/median: every source {_pct(e['pixel_recall_q1_all'])}/"
            f"{_pct(e['pixel_recall_q2_all'])}, visible sources {_pct(v['pixel_recall_q1_all'])}/"
            f"{_pct(v['pixel_recall_q2_all'])} (threshold {cfg.score.mark_threshold})"
        )
        d = detect["every"]
        lines.append(
            f"  sources      at the detection threshold {cfg.score.detect_threshold}: "
            f"recall {_num(d['source_recall'])}, precision {_num(d['source_precision'])}, F1 {_num(d['source_f1'])}"
        )
    for coll in sorted(p.name for p in (out / "detect").glob("*") if p.is_dir()):
        d = out / "detect" / coll
        det = _read_json(d / "detect.json")
        lines.append(f"  {coll:<12} {det.get('n_hotspots', '?')} hotspots: {d / 'hotspots.csv'}, map {d / 'map.png'}")
        ev = out / "evaluate" / coll
        if ev.is_dir():
            lines.append(f"  {'':<12} evaluation: {ev}/ and {metrics / f'evaluate_{coll}.json'}")
    head = _read_json(metrics / "headline.json").get("headline", {})
    if head:
        lines.append(f"  headline     {len(head)} figures in {metrics / 'headline.json'}:")
        lines += [f"               {k} = {v}" for k, v in sorted(head.items())]
    lines += [
        "",
        "  metrics      dvc metrics show        plots: dvc plots show (opens dvc_plots/index.html)",
        "  compare      dvc exp show --drop '.*' --keep 'Experiment|headline\\.'  (experiments, headline figures)",
        _ui_line(tracking.resolve_uri(cfg)),
        "",
    ]
    return lines


def run(cfg: DictConfig) -> None:
    sys.stdout.write("\n".join(summary_lines(cfg)) + "\n")
