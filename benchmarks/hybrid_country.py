"""The hybrid's settings on a country-scale OSSE year kept by ``year.py --classical --keep`` (e.g. osse=india_year).

For each variant (a tag and ``hybrid.*`` overrides) the hybrid stage reruns on the kept root's detections and
baseline into ``outputs/hybrid_<tag>`` and the evaluate stage scores it into ``outputs/evaluate_<tag>`` and
``metrics_<tag>`` (``python -m no2hotspots``, the chain's own overrides; nothing upstream is recomputed). Printed per
variant: the hybrid's F1 (the headline's: site precision with the nearest-rule source recall), recall, site
precision, sites, the strict Table 2 per bin and the < 2000 t chance floor; the model's composite and the baseline
of the same evaluation beside them. Use a VALIDATION year (india_year), never china_year, to choose anything.

    .venv/bin/python benchmarks/hybrid_country.py --root /tmp/.../year_india_year_686_xxxx --preset india_year
        --model outputs/train/model [--data data] [--variant k2 hybrid.k_sigma=2.0 ...] [--osse-set K=V ...]
        [--out JSON]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from no2hotspots.headline import BINS, f1  # the headline's bins and F1: site precision with nearest-source recall

sys.path.insert(0, str(Path(__file__).resolve().parent))
from year import chain_overrides  # noqa: E402  (the chain year.py ran)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VARIANTS = [
    ["k2", "hybrid.k_sigma=2.0"],
    ["k2.5", "hybrid.k_sigma=2.5"],
    ["k3", "hybrid.k_sigma=3.0"],
    ["k4", "hybrid.k_sigma=4.0"],
    ["k3m10", "hybrid.k_sigma=3.0", "hybrid.merge_km=10.0"],
]


def chain(root: Path, preset: str, model: str, data: str, workers: int, osse_set=()) -> list[str]:
    """The overrides ``year.py`` ran the chain with (its folders, the preset's whole period and ``--osse-set``, the
    model), less ``paths.metrics``, which each variant sets."""
    from no2hotspots.config import compose

    days = int(compose([f"paths.data={data}", f"osse={preset}"]).osse.dates.days)
    return [
        o
        for o in chain_overrides(preset, days, root, model, data, workers, osse_set)
        if not o.startswith("paths.metrics=")
    ]


def figures(metrics: dict, table: str) -> dict:
    """One table's headline figures from an evaluate metrics file."""
    r, p = metrics[f"{table}/source_recall_nearest"], metrics[f"{table}/site_precision"]
    return {
        "f1": f1(p, r),
        "recall_nearest": r,
        "site_precision": p,
        "n_sites": metrics[f"{table}/n_sites"],
        "strict": {b: metrics[f"{table}/table2_strict_rate_{b}"] for b in BINS},
        "chance_floor": metrics[f"{table}/chance_floor"],
    }


def run_variant(root: Path, base: list[str], tag: str, overrides: list[str]) -> dict:
    out = [f"hybrid.out_dir={root / 'outputs' / f'hybrid_{tag}'}", *overrides]
    scored = [f"paths.metrics={root / f'metrics_{tag}'}", f"evaluate.out_dir={root / 'outputs' / f'evaluate_{tag}'}"]
    t0 = time.time()
    for stage, extra in (("hybrid", []), ("evaluate", scored)):
        cmd = [sys.executable, "-m", "no2hotspots", stage, *base, *out, *extra]
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if done.returncode:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
            raise SystemExit(f"{tag}: {stage} failed: {' '.join(tail)}")
    metrics = json.loads((root / f"metrics_{tag}" / "evaluate_osse.json").read_text())
    return {
        "overrides": overrides,
        "wall_s": round(time.time() - t0, 1),
        "hybrid": figures(metrics, "hybrid"),
        "composite": figures(metrics, "composite"),
        "baseline": figures(metrics, "baseline"),
    }


def kept_year(description: str, group: str, argv=None) -> tuple[argparse.Namespace, Path, list[str], dict]:
    """The command line of a rerun on a year kept by ``year.py --classical --keep`` (its root, preset, model, data,
    workers and ``--osse-set``; variants ``TAG <group>.KEY=VALUE ...``): the arguments, the root, the chain's
    overrides and the result's head."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--root", required=True, help="a folder kept by year.py --classical --keep")
    ap.add_argument("--preset", required=True, help="the osse preset it ran (e.g. india_year)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", default=str(REPO / "data"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--variant", nargs="+", action="append", help=f"TAG {group}.KEY=VALUE ... (repeatable)")
    ap.add_argument("--osse-set", nargs="*", default=[], metavar="KEY=VALUE", help="the year.py run's --osse-set")
    ap.add_argument("--out", default=None, help="result JSON")
    args = ap.parse_args(argv)
    root = Path(args.root).resolve()
    model, data = str(Path(args.model).resolve()), str(Path(args.data).resolve())
    base = chain(root, args.preset, model, data, args.workers, args.osse_set)
    result = {"root": str(root), "preset": args.preset, "osse_set": args.osse_set, "model": args.model, "variants": {}}
    return args, root, base, result


def main(argv=None) -> int:
    args, root, base, result = kept_year(__doc__.splitlines()[0], "hybrid", argv)
    for tag, *overrides in args.variant or DEFAULT_VARIANTS:
        v = run_variant(root, base, tag, overrides)
        result["variants"][tag] = v
        h, s = v["hybrid"], v["hybrid"]["strict"]
        print(
            f"{tag:8s} hybrid F1 {h['f1']:.4f} recall {h['recall_nearest']:.3f} precision {h['site_precision']:.3f}"
            f" sites {h['n_sites']} strict {' / '.join(f'{s[b]:.3f}' for b in BINS)} chance {h['chance_floor']:.3f}"
            f" | composite F1 {v['composite']['f1']:.4f} baseline F1 {v['baseline']['f1']:.4f} ({v['wall_s']} s)"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        print("written", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
