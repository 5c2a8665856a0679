"""Time of the quantify stage's unit (one overpass: every hotspot and every period site it covers, all methods) on a
workspace's outputs, against the code of a baseline revision run in the same call.

Each timing is a fresh process that composes the workspace's ``params.yaml`` as the quantify stage does (sites,
inventory, winds), then runs ``quantify_overpass`` in process, without Dask and without the unit cache, over
``--n`` overpasses of the collection starting at ``--offset``; it reports seconds per overpass (context set-up
excluded) and a SHA-256 of the rows. The current tree and the baseline revision (its ``src/`` from ``git archive``)
take turns, A B A B ..., so the ratio holds when the machine's speed drifts; the two trees must give the same rows
(the digest) for the ratio to mean "same work, faster".

    .venv/bin/python benchmarks/quantify_overpass.py [--workspace .] [--baseline-rev 241bce7] [--collection osse] \
        [--n 24] [--offset 100] [--repeats 3] [--json benchmarks/results/quantify_overpass.json]

The workspace (default: this checkout) is one where ``make demo`` (or ``dvc repro`` up to evaluate) has run, so its
outputs hold the collection's ingest, detect and evaluate results; its ``params.yaml`` is the one read. Without them
the script says so and exits 0 (``make bench`` on a fresh clone).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the baseline revision: the last change to the rows (the IME's position term with the residence time of R +- d;
#: the rows spooled to disk just before), so the same rows as today's, digest and all. Earlier baselines write other
#: rows: 3e149c1 (before the shared crop geometry) before the CSF's transect scatter became a component of its own
#: and the NO -> NO2 conversion's term was added; timed against one, the ratio compares different work, and the
#: script says so ("rows identical: NO").
BASELINE_REV = "241bce7"


def child(args) -> None:
    """One timing in this process (PYTHONPATH selects the code): prints one JSON line.

    The context is assembled here as ``quantify.run.quantify_collection`` assembles it, line for line, not through a
    helper of the current tree: the same code must also run on the baseline revision's src/."""
    os.environ.setdefault("NO2HOTSPOTS_PROGRESS", "0")
    from omegaconf import OmegaConf

    import no2hotspots
    from no2hotspots.quantify import estimate, inputs, overpass, run
    from no2hotspots.quantify.co2 import InventoryMatcher
    from no2hotspots.winds.field import expand_paths

    os.chdir(args.workspace)
    cfg = OmegaConf.load("params.yaml")
    name = args.collection
    s = run.settings(run.collection_config(cfg, name), name)
    s["units_dir"] = None
    hot, sites, _ = run.hotspots_and_sites(s, name)
    inv = inputs.load_sites(s["inventory"], "inventory")
    matcher = InventoryMatcher(inv, s["co2"])
    site_ratio = {int(r.site_id): matcher.ratio(r.lat, r.lon) for r in sites.itertuples()}
    ctx = overpass.Context(s, sites, site_ratio, matcher, inv, estimate.MODEL_UNCERTAINTY)
    overpasses = inputs.overpass_list(name, s["ingest_dir"])
    wind_files = expand_paths((s["winds"] or {}).get("paths"))
    tasks = run.overpass_tasks(s, name, overpasses, hot, ctx, wind_files)[args.offset : args.offset + args.n]
    t0 = time.perf_counter()
    res = [overpass.quantify_overpass(t, ctx=ctx) for t in tasks]
    dt = time.perf_counter() - t0
    # the rows as one frame per overpass and kind (older revisions return lists of dicts, today's code frames), as
    # CSV text: what the digest compares
    import pandas as pd

    frames = [pd.DataFrame(r[k]) for r in res for k in ("hotspots", "sites")]
    digest = hashlib.sha256()
    for f in frames:
        digest.update(f.to_csv(index=False).encode())
    print(json.dumps({
        "code": str(Path(no2hotspots.__file__).resolve().parents[1]),
        "overpasses": len(tasks),
        "s_per_overpass": dt / max(len(tasks), 1),
        "points": sum(len(f[[c for c in ("hotspot_id", "site_id") if c in f]].drop_duplicates()) for f in frames),
        "rows": sum(len(f) for f in frames),
        "rows_sha256": digest.hexdigest(),
    }))  # fmt: skip


def timing(src: Path, args) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--workspace", str(args.workspace),
           "--collection", args.collection, "--n", str(args.n), "--offset", str(args.offset)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"timing with {src} failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def baseline_src(rev: str, tmp: Path) -> Path:
    """The baseline revision's src/ unpacked into tmp (git archive: no worktree left behind)."""
    tar = tmp / "base.tar"
    with open(tar, "wb") as f:
        subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], stdout=f, check=True)
    with tarfile.open(tar) as t:
        t.extractall(tmp / "base", filter="data")
    return tmp / "base" / "src"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path, default=Path("."), help="a checkout with the demo's outputs")
    ap.add_argument("--collection", default="osse")
    ap.add_argument("--n", type=int, default=24, help="overpasses per timing")
    ap.add_argument("--offset", type=int, default=100, help="first overpass (list order)")
    ap.add_argument("--baseline-rev", default=BASELINE_REV,
                    help=f"git revision whose src/ is the baseline (default {BASELINE_REV}: last change to the rows; "
                    "3e149c1: before the shared crop geometry, other rows; 'none': no baseline)")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=3, help="timings of each tree (alternating)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.workspace = args.workspace.resolve()
    if args.child:
        return child(args)
    if args.baseline_rev in ("none", ""):
        args.baseline_rev = None
    missing = [
        d for d in ("ingest", "detect", "evaluate") if not (args.workspace / "outputs" / d / args.collection).is_dir()
    ]
    if missing or not (args.workspace / "params.yaml").is_file():
        print(
            f"quantify_overpass: skipped, {args.workspace} has no {args.collection} outputs (run make demo there first)"
        )
        return None
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "src"], capture_output=True, text=True)
    report = {
        "args": {k: str(v) for k, v in vars(args).items() if k != "child"},
        "head": head.stdout.strip(),
        "src_modified": bool(dirty.stdout.strip()),
        "load_before": load_average(),
        "current": [],
        "baseline": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        base = baseline_src(args.baseline_rev, Path(tmp)) if args.baseline_rev else None
        for i in range(args.repeats):
            report["current"].append(timing(ROOT / "src", args))
            print(f"current  {i + 1}: {report['current'][-1]['s_per_overpass']:.3f} s/overpass", flush=True)
            if base is not None:
                report["baseline"].append(timing(base, args))
                print(f"baseline {i + 1}: {report['baseline'][-1]['s_per_overpass']:.3f} s/overpass", flush=True)
    report["load_after"] = load_average()
    cur = [t["s_per_overpass"] for t in report["current"]]
    first = report["current"][0]
    print(f"{args.collection}: {first['overpasses']} overpasses, {first['points']} points, {first['rows']} rows")
    print(f"current:  median {statistics.median(cur):.3f} s/overpass (min {min(cur):.3f}, max {max(cur):.3f})")
    if report["baseline"]:
        bas = [t["s_per_overpass"] for t in report["baseline"]]
        ratios = [b / c for b, c in zip(bas, cur)]
        same = {t["rows_sha256"] for t in report["current"] + report["baseline"]}
        report["summary"] = {"current_median_s": statistics.median(cur), "baseline_median_s": statistics.median(bas),
                             "speedup_pairs": ratios, "speedup_median": statistics.median(ratios),
                             "same_rows": len(same) == 1}  # fmt: skip
        print(f"baseline: median {statistics.median(bas):.3f} s/overpass (min {min(bas):.3f}, max {max(bas):.3f})"
              f" at {args.baseline_rev}")  # fmt: skip
        print(f"speed-up baseline/current, pair by pair: {' '.join(f'{r:.2f}' for r in ratios)}; median "
              f"{statistics.median(ratios):.2f}x; rows identical: {'yes' if len(same) == 1 else 'NO'}")  # fmt: skip
    print(f"load average before {report['load_before']}, after {report['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
