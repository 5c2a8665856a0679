"""Emission rates in an OSSE year with and without the estimators' NO -> NO2 conversion (quantify.chemistry.no2_ramp).

The quantify stage reruns on a year kept by ``year.py --classical --keep`` (its ingest, detections and truth; nothing
upstream is recomputed) once per variant, the OSSE collection's conversion set as the variant says, into
``outputs/quantify_<tag>`` and ``metrics_<tag>`` (``python -m no2hotspots quantify``, the chain's own overrides).
Printed per variant and method: the period estimates at sites > 5 kt NOx/yr with >= 3 estimates (the acceptance
set), all period estimates with a truth and the single overpasses, each as the median |ln(estimate / truth)|, the
median ratio and the share of 68 % intervals covering the truth (targets at the acceptance set: <= 0.262, 55-80 %).

Run it on a year whose world renders the conversion (``--osse-set osse.transport.no2_ramp.m=4.0 ...``, as year.py
ran it) to see what undoing it is worth, and on one that does not to see what assuming it costs there.

    .venv/bin/python benchmarks/quantify_ramp.py --root /tmp/.../year_demo_506_xxxx --preset demo
        --model outputs/train/model [--data data] [--osse-set K=V ...]
        [--variant off quantify.collections.osse.chemistry.no2_ramp.m=0.0 ...] [--out JSON]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hybrid_country import kept_year  # noqa: E402  (the chain year.py ran, less paths.metrics)

REPO = Path(__file__).resolve().parents[1]
_KEY = "quantify.collections.osse.chemistry.no2_ramp"
DEFAULT_VARIANTS = [
    ["off", f"{_KEY}.m=0.0"],
    ["on", f"{_KEY}.m=4.0"],  # r_s, f0 and the sigmas: quantify.chemistry.no2_ramp's, the default for real data
]
PARTS = {"acceptance": "period_acceptance", "period": "period", "overpass": "overpass"}
METHODS = ("csf", "divergence", "ime")


def run_variant(root: Path, base: list[str], tag: str, overrides: list[str]) -> dict:
    out = [
        f"quantify.out_dir={root / 'outputs' / f'quantify_{tag}'}",
        f"quantify.metrics_dir={root / f'metrics_{tag}'}",
        "quantify.units_dir=null",
        "quantify.collection=osse",
    ]
    t0 = time.time()
    done = subprocess.run(
        [sys.executable, "-m", "no2hotspots", "quantify", *base, *out, *overrides],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
        raise SystemExit(f"{tag}: quantify failed: {' '.join(tail)}")
    ev = json.loads((root / f"metrics_{tag}" / "quantify_osse.json").read_text())["evaluation"]
    keys = ("n", "median_abs_log_ratio", "median_ratio", "coverage_68")
    return {
        "overrides": overrides,
        "wall_s": round(time.time() - t0, 1),
        "warned": [ln for ln in done.stderr.splitlines() if "NO -> NO2" in ln],
        **{part: {m: {k: ev[key][m].get(k) for k in keys} for m in METHODS} for part, key in PARTS.items()},
    }


def main(argv=None) -> int:
    args, root, base, result = kept_year(__doc__.splitlines()[0], "quantify", argv)
    for tag, *overrides in args.variant or DEFAULT_VARIANTS:
        v = run_variant(root, base, tag, overrides)
        result["variants"][tag] = v
        for part in PARTS:
            row = " | ".join(
                f"{m} {v[part][m]['median_abs_log_ratio']:.3f} {v[part][m]['median_ratio']:.2f} "
                f"{100 * v[part][m]['coverage_68']:.0f}% (n {v[part][m]['n']})"
                for m in METHODS
            )
            print(f"{tag:5s} {part:10s} {row}")
        print(f"{tag:5s} {v['wall_s']} s{'; warned: ' + v['warned'][0] if v['warned'] else ''}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        print("written", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
