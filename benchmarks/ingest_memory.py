"""Is ingest's memory flat in the number of granules? Peak RSS of the ingest stage on the first N granules of a folder.

``year.py`` measures the whole chain at growing sizes, which needs a fresh OSSE per size (~20 min for a china_year
year). This reruns only ingest on granules already on disk (e.g. a ``year.py --keep`` folder's
``outputs/osse/granules``): for each N, the first N granules (in name = time order) are linked into a temporary
folder and ``python -m no2hotspots ingest`` runs on them with 2 Dask workers, measured by ``year.py``'s sampler
(peak RSS of the stage process and its workers together, sampled every 0.1 s). Printed per N: wall, peak RSS of
all processes, of the stage process and of the workers, CPU; and the ratio of the largest to the smallest peak.

    .venv/bin/python benchmarks/ingest_memory.py --granules DIR [--sizes 11 101 916] [--out JSON]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import year  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--granules", required=True, help="folder of S5P L2 granules (e.g. <year.py folder>/outputs/osse/granules)"
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[11, 101, 916])
    ap.add_argument("--preset", default="china_year", help="osse preset whose bbox the granules are gridded to")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "ingest_memory.json"))
    args = ap.parse_args(argv)
    files = sorted(Path(args.granules).glob("*.nc"))
    if not files:
        raise SystemExit(f"{args.granules}: no *.nc granules")
    rows = {}
    for n in args.sizes:
        root = Path(tempfile.mkdtemp(prefix=f"ingest_memory_{n}_"))
        try:
            (root / "g").mkdir()
            for f in files[:n]:
                try:
                    os.link(f, root / "g" / f.name)
                except OSError:
                    os.symlink(f.resolve(), root / "g" / f.name)
            ov = year.chain_overrides(args.preset, 365, root, "unused", str(REPO / "data"), args.workers)
            ov.append(f"ingest.collections.osse.inputs={root}/g/*.nc")
            r = year.run_stage("ingest", ov, REPO, root / "ingest.log")
            r["granules"] = min(n, len(files))
            rows[str(n)] = r
            keys = ("wall_s", "peak_rss_mb", "peak_main_rss_mb", "peak_workers_rss_mb", "cpu_s")
            print(f"{r['granules']:5d} granules: " + ", ".join(f"{k} {r[k]}" for k in keys), flush=True)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    peaks = [r["peak_rss_mb"] for r in rows.values()]
    result = {
        "granules_dir": str(args.granules),
        "workers": args.workers,
        "git": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip(),
        "load_end": year.load(),
        "sizes": rows,
        "peak_rss_max_over_min": round(max(peaks) / min(peaks), 3),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"peak RSS max/min over the sizes: {result['peak_rss_max_over_min']}; written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
