"""Where does evaluate's memory go? Resident memory of the evaluate stage's process around each of its steps.

``year.py`` reports evaluate's peak for growing periods (docs/history.md: 492 MB at 11 china_year granules, 1,349 MB at
916); this breaks one run down. It runs ``evaluate`` for one collection of an existing workspace in this process
(``parallel.scheduler=sync``: the streamed pass in process too, so its memory is counted) into temporary folders,
and prints the process's RSS (psutil) before and after each step of :func:`no2hotspots.evaluate.run.evaluate_collection`
and of each table's :func:`no2hotspots.evaluate.tables.evaluate_table`, with the peak RSS so far. The workspace's
own outputs, metrics and MLflow runs are not touched (``evaluate.log_to=none``).

    .venv/bin/python benchmarks/evaluate_memory.py [--collection osse] [overrides ...] [--out JSON]

(tracemalloc is not used: with its tracebacks it more than doubles the peak it measures.)
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

RUN_STEPS = ("load_tables", "make_scene", "follow_points", "stream_context", "stream_pass", "evaluate_table",
             "_write_folder", "_figures", "_write_metrics_and_plot_data")  # fmt: skip
TABLE_STEPS = ("_table2", "_chance_floor", "_sources", "_co2_overlap", "_recall_curves", "_metrics")


def main(argv=None) -> int:
    import psutil

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collection", default="osse")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "evaluate_memory.json"))
    ap.add_argument("overrides", nargs="*", help="more config overrides (e.g. evaluate.maps=false)")
    args = ap.parse_args(argv)

    from no2hotspots.config import compose
    from no2hotspots.evaluate import run as er
    from no2hotspots.evaluate import tables as tb

    proc = psutil.Process()
    steps: list[dict] = []

    def mb() -> float:
        return round(proc.memory_info().rss / 1e6, 1)

    def peak() -> float:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6, 1)  # Linux: KiB

    def wrap(module, name: str, where: str) -> None:
        inner = getattr(module, name)

        def measured(*a, **k):
            before = mb()
            out = inner(*a, **k)
            steps.append({"step": f"{where}.{name}", "rss_before_mb": before, "rss_after_mb": mb(), "peak_mb": peak()})
            line = "{step:38s} RSS {rss_before_mb:8.1f} -> {rss_after_mb:8.1f} MB   peak so far {peak_mb:8.1f} MB"
            print(line.format(**steps[-1]), flush=True)
            return out

        setattr(module, name, measured)

    for n in RUN_STEPS:
        wrap(er, n, "run")
    for n in TABLE_STEPS:
        wrap(tb, n, "evaluate_table")
    tmp = Path(tempfile.mkdtemp(prefix="evaluate_memory_"))
    start = mb()
    cfg = compose(
        [
            f"evaluate.collection={args.collection}",
            f"evaluate.out_dir={tmp / 'evaluate'}",
            f"paths.metrics={tmp / 'metrics'}",
            f"paths.plots={tmp / 'plots'}",
            "evaluate.log_to=none",
            "parallel.scheduler=sync",
            *args.overrides,
        ]
    )
    er.run(cfg)
    result = {
        "collection": args.collection,
        "overrides": args.overrides,
        "rss_after_imports_mb": start,
        "peak_mb": peak(),
        "steps": steps,
    }
    print(f"RSS after imports {start} MB, peak {result['peak_mb']} MB")
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"written {args.out} (outputs in {tmp})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
