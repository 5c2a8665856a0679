"""Choosing the composite rule (``detect.composite``) on a VALIDATION OSSE, never on the demo OSSE that evaluate scores.

The validation OSSE is ``osse=demo`` moved to another region (default: 115.2-120.2 E, 36.5-41.5 N, Beijing -
Tianjin - Tangshan, east of and disjoint from the demo's Shanxi - Hebei - Inner Mongolia box, margins included),
another seed (7) and no injected change: its own real CoCO2 plants, weather, clouds and noise. The chain runs as DVC
runs it (``python -m no2hotspots osse / ingest / detect / evaluate``, in a temporary folder) with a given model;
then, for each candidate rule, detect republishes the period from the overpasses it already has (no unit is
recomputed) and evaluate scores the composite table with the project's own code. Printed per rule: sites (rows),
site precision (rows merged within 10 km), row precision (every row is one claimed site), source recall (nearest
rule), F1 (the headline's: site precision with the nearest-rule recall) and F1 with the row precision, and the
strict Table 2 per bin. With ``--quantify`` the quantify stage runs on each candidate's sites too, and the
period rates are scored against the truth per method (median |ln ratio| and the share of truths within the stated
1-sigma, all matched sites and quantify's acceptance set): a rule whose sites cannot be quantified is no default.

    .venv/bin/python benchmarks/composite_rule.py --model outputs/train/model [--days 366] [--out JSON] [--only TEXT]
        [--quantify] [--hybrid K ... [--hybrid-extra "OVERRIDES"]] [--baseline-k K ...] [--baseline "OVERRIDES" ...]
        [--keep | --reuse DIR]

``--hybrid K ...`` also runs the baseline stage (once) and, per candidate and K, the hybrid stage
(``hybrid.k_sigma=K``, its default candidates: the recurrence sites before the downwind test), without and with the
baseline's own sites added (``hybrid.baseline_sites``), and scores its table the same way (rows named
``<candidate> | hybrid k=K[ + baseline sites]``).

``--hybrid-extra "OVERRIDES"`` adds these hybrid overrides (space-separated) to every hybrid run, named in its row.

``--baseline-k K ...`` runs the baseline stage at these ``baseline.k_sigma`` (its hotspot threshold: median + K
robust standard deviations of the smoothed period flux divergence) and scores its table the same way (rows named
``baseline k=K``); with ``--hybrid`` also the hybrid with that baseline's sites, per candidate (rows named
``<candidate> | baseline k=KB | hybrid k=K + baseline sites``). ``--baseline "OVERRIDES" ...`` does the same for any
baseline settings, one quoted set of space-separated overrides per variant (e.g. ``"baseline.smooth_cells=1
baseline.k_sigma=4"``; rows named ``baseline <overrides>``). The baseline is rerun at its configured settings
afterwards.

``--keep`` leaves the temporary folder (osse, ingest, detect units); ``--reuse DIR`` runs more candidates in such a
folder without rerunning osse and ingest (detect reuses its overpasses and only republishes the period).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from no2hotspots.headline import BINS, f1  # the headline's bins and F1: site precision with nearest-source recall

REPO = Path(__file__).resolve().parents[1]


def _recurrence(alpha: str, level: str, *extra: str, position: str = "cell") -> list[str]:
    """Overrides of a recurrence candidate: its false-discovery rate, its peak level (null: hotspot peaks), where a
    site lies (cell unless the name says centroid, as the recorded results were measured; the default is centroid)
    and more; no downwind test unless the name says downwind (as the recorded results were measured)."""
    off = [] if any(e.startswith("downwind.alpha") for e in extra) else ["downwind.alpha=null"]
    return [
        "detect.composite.rule=recurrence",
        f"detect.composite.recurrence.alpha={alpha}",
        f"detect.composite.recurrence.level={level}",
        f"detect.composite.recurrence.position={position}",
        *(f"detect.composite.recurrence.{e}" for e in (*off, *extra)),
    ]


#: candidate rules: name -> detect.composite overrides
CANDIDATES = {
    "mean (k=5, min 0.03)": ["detect.composite.rule=mean"],
    "mean (min 0.02, prominence 0.05)": [
        "detect.composite.rule=mean",
        "detect.composite.min_value=0.02",
        "detect.peaks.prominence=0.05",
    ],
    "recurrence of hotspot peaks alpha=1e-2": _recurrence("0.01", "null"),
    "recurrence of hotspot peaks alpha=1e-4": _recurrence("0.0001", "null"),
    "recurrence of hotspot peaks alpha=1e-4, 2 cells apart": _recurrence("0.0001", "null", "separation_cells=2"),
    "recurrence of maxima >= 0.02 alpha=1e-4": _recurrence("0.0001", "0.02"),
    "recurrence of maxima >= 0.02 alpha=1e-4, centroid": _recurrence("0.0001", "0.02", position="centroid"),
    "recurrence of maxima >= 0.02 alpha=1e-4, ring 3 cells": _recurrence("0.0001", "0.02", "ring_cells=3"),
    "recurrence of maxima >= 0.02 alpha=1e-4, ring 6 cells": _recurrence("0.0001", "0.02", "ring_cells=6"),
    "recurrence of maxima >= 0.02 alpha=1e-2, ring 8 cells": _recurrence("0.01", "0.02", "ring_cells=8"),
    "recurrence of maxima >= 0.05 alpha=1e-4": _recurrence("0.0001", "0.05"),
    "recurrence of maxima >= 0.1 alpha=1e-4": _recurrence("0.0001", "0.1"),
    "recurrence of maxima >= 0.02 alpha=1e-2": _recurrence("0.01", "0.02"),
    **{
        f"recurrence of maxima >= 0.02 alpha=1e-4, centroid, downwind p {a} r {r} km {h} deg": _recurrence(
            "0.0001",
            "0.02",
            f"downwind.alpha={a}",
            f"downwind.radius_km={r}",
            f"downwind.half_angle_deg={h}",
            position="centroid",
        )
        for a, r, h in (
            ("0.05", 20, 45),
            ("0.01", 20, 45),
            ("0.05", 25, 45),
            ("0.01", 25, 60),
            ("0.05", 15, 45),
            ("0.01", 15, 45),
        )
    },
}


def period_rates(q: dict) -> dict:
    """Per set (all matched sites, quantify's acceptance set) and method: n, median |ln ratio|, median ratio, 1-sigma
    coverage."""
    ev = q.get("evaluation") or {}
    return {
        part: {
            m: {k: v.get(k) for k in ("n", "median_abs_log_ratio", "median_ratio", "coverage_68")}
            for m, v in (ev.get(part) or {}).items()
            if isinstance(v, dict)
        }
        for part in ("period", "period_acceptance")
    }


def stage(name: str, overrides: list[str], log: Path) -> float:
    t0 = time.perf_counter()
    with open(log, "a") as f:
        rc = subprocess.run(
            [sys.executable, "-m", "no2hotspots", name, *overrides], cwd=REPO, stdout=f, stderr=subprocess.STDOUT
        ).returncode
    if rc:
        raise SystemExit(f"{name} failed (rc {rc}); see {log}")
    return time.perf_counter() - t0


def score(root: Path, name: str, extra: list[str], table: str) -> dict:
    """The figures of one evaluated table (``composite`` or ``hybrid``) from the evaluation's metrics."""
    ev = json.loads((root / "metrics" / "evaluate_osse.json").read_text())

    def g(k):
        return ev.get(f"{table}/{k}")

    return {
        "rule": name,
        "overrides": extra,
        "rows": g("n_hotspots"),
        "sites": g("n_sites"),
        "site_precision": g("site_precision"),
        "row_precision": g("hotspot_precision"),
        "recall_nearest": g("source_recall_nearest"),
        "f1": f1(g("site_precision"), g("source_recall_nearest")),
        "f1_rows": f1(g("hotspot_precision"), g("source_recall_nearest")),
        **{f"strict_{b}": g(f"table2_strict_rate_{b}") for b in BINS},
        "chance_floor": g("chance_floor"),
    }


def fmt(v: float | None) -> str:
    """A figure for the printout (``n/a`` when undefined, e.g. a recall with no observed source or a Jaccard of two
    empty sets)."""
    return "n/a" if v is None else f"{v:.3f}"


def show(row: dict) -> None:
    print(
        f"{row['rule']:54s} rows {row['rows']:4d} sites {row['sites']:4d} site prec {fmt(row['site_precision'])} "
        f"row prec {fmt(row['row_precision'])} recall {fmt(row['recall_nearest'])} F1 {fmt(row['f1'])} "
        f"(rows {fmt(row['f1_rows'])}) strict "
        + " / ".join(f"{100 * (row[f'strict_{b}'] or 0):.0f}" for b in BINS)
        + f" chance {100 * (row['chance_floor'] or 0):.1f}",
        flush=True,
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="detect.model_uri (a model folder, models:/..., runs:/...)")
    ap.add_argument("--bbox", default="[115.2,36.5,120.2,41.5]", help="validation region [lon0,lat0,lon1,lat1]")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--days", type=int, default=366)
    ap.add_argument("--data", default=str(REPO / "data"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "composite_rule.json"))
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--reuse", metavar="DIR", help="a folder kept by --keep: its osse and ingest outputs are reused")
    ap.add_argument("--only", nargs="+", metavar="TEXT", help="run only the candidates whose name contains a TEXT")
    ap.add_argument("--quantify", action="store_true", help="also quantify each candidate's sites (period rates)")
    ap.add_argument("--hybrid", nargs="+", type=float, metavar="K", help="also score the hybrid at these k_sigma")
    ap.add_argument(
        "--hybrid-extra", metavar="OVERRIDES", help='more hybrid overrides for every hybrid run ("a=1 b=2")'
    )
    ap.add_argument("--baseline-k", nargs="+", type=float, metavar="K", help="also score the baseline at these k_sigma")
    ap.add_argument(
        "--baseline",
        nargs="+",
        metavar="OVERRIDES",
        help='also score the baseline with these settings, one quoted set per variant ("baseline.smooth_cells=1 ...")',
    )
    args = ap.parse_args(argv)
    chosen = {k: v for k, v in CANDIDATES.items() if not args.only or any(t in k for t in args.only)}
    if not chosen:
        raise SystemExit(f"--only {' '.join(args.only)}: no candidate matches ({', '.join(CANDIDATES)})")
    os.environ.setdefault("NO2HOTSPOTS_PROGRESS", "0")
    root = Path(args.reuse) if args.reuse else Path(tempfile.mkdtemp(prefix="composite_rule_"))
    base = [
        f"paths.data={args.data}",
        f"paths.outputs={root / 'outputs'}",
        f"paths.metrics={root / 'metrics'}",
        f"paths.plots={root / 'plots'}",
        f"paths.mlruns={root / 'mlruns'}",
        "osse=demo",
        "osse.region.name=validation",
        f"osse.region.bbox={args.bbox}",
        f"osse.dates.days={args.days}",
        "osse.dates.end=null",
        "osse.changes=[]",
        f"seed={args.seed}",
        "ingest.collection=osse",
        "detect.collection=osse",
        f"detect.model_uri={args.model}",
        "evaluate.collection=osse",
        "evaluate.log_to=none",
        "evaluate.maps=false",
        "quantify.collection=osse",
        "baseline.collection=osse",
        "hybrid.collection=osse",
    ]
    hybrid_extra = (args.hybrid_extra or "").split()
    hybrid_tag = f" ({' '.join(hybrid_extra)})" if hybrid_extra else ""
    variants = [(f"baseline k={kb:g}", [f"baseline.k_sigma={kb}"]) for kb in args.baseline_k or ()]
    variants += [(f"baseline {' '.join(o.split())}", o.split()) for o in args.baseline or ()]
    log = root / "stages.log"
    timing = {} if args.reuse else {s: round(stage(s, base, log), 1) for s in ("osse", "ingest")}
    rows = []
    for name, extra in chosen.items():
        t = stage("detect", base + extra, log)
        timing.setdefault("detect_first", round(t, 1))
        stage("evaluate", base + extra, log)
        row = score(root, name, extra, "composite")
        if args.quantify:
            t = stage("quantify", base + extra, log)
            timing.setdefault("quantify_first", round(t, 1))
            row["quantify"] = period_rates(json.loads((root / "metrics" / "quantify_osse.json").read_text()))
        rows.append(row)
        show(row)
        for k, plus in ((k, plus) for plus in (False, True) for k in args.hybrid or ()):
            if not (root / "outputs" / "baseline" / "osse" / "period.nc").exists():
                timing["baseline"] = round(stage("baseline", base, log), 1)
            h = [f"hybrid.k_sigma={k}", f"hybrid.baseline_sites={str(plus).lower()}", *hybrid_extra]
            stage("hybrid", base + extra + h, log)
            stage("evaluate", base + extra, log)
            label = f"{name} | hybrid k={k:g}{hybrid_tag}" + (" + baseline sites" if plus else "")
            rows.append(score(root, label, [*extra, *h], "hybrid"))
            show(rows[-1])
        for blabel, b in variants:
            stage("baseline", base + b, log)
            stage("evaluate", base + extra, log)
            rows.append(score(root, blabel, b, "baseline"))
            show(rows[-1])
            for k in args.hybrid or ():
                h = [f"hybrid.k_sigma={k}", "hybrid.baseline_sites=true", *hybrid_extra]
                stage("hybrid", base + extra + b + h, log)
                stage("evaluate", base + extra, log)
                label = f"{name} | {blabel} | hybrid k={k:g}{hybrid_tag} + baseline sites"
                rows.append(score(root, label, [*extra, *b, *h], "hybrid"))
                show(rows[-1])
        if variants:
            stage("baseline", base, log)  # back to the configured threshold (a --reuse with --hybrid reads it)
        for part, methods in (row.get("quantify") or {}).items():
            print(
                f"    quantify {part:17s} "
                + "  ".join(
                    f"{m} n {v['n']} |ln| {v['median_abs_log_ratio'] or float('nan'):.3f} "
                    f"ratio {v['median_ratio'] or float('nan'):.2f} cov {v['coverage_68'] or float('nan'):.2f}"
                    for m, v in methods.items()
                ),
                flush=True,
            )
    ev_model = json.loads((root / "metrics" / "evaluate_osse.json").read_text())
    out = {
        "validation": {"bbox": args.bbox, "seed": args.seed, "days": args.days, "model": args.model},
        "n_sources_observed": ev_model.get("inventory/n_sources_observed"),
        "stage_wall_s": timing,
        "candidates": rows,
        "best_f1": max(rows, key=lambda r: r["f1_rows"] or 0)["rule"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"best F1 (row precision): {out['best_f1']}; written {args.out}")
    if not args.keep and not args.reuse:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"kept {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
