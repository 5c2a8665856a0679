"""The model's per-overpass hotspots scored one overpass at a time, for detect folders kept by grid_invariance.py.

The Matimba scene's two figures on every overpass of a validation OSSE (as ``baseline_one_overpass.py`` scores the
baseline): recall of the strong sources (truth >= ``--strong`` t NOx/yr whose cell the overpass observed, found when
a hotspot of that overpass lies within 10 km) and hotspot precision (hotspots within 10 km of any truth source),
summed over the overpasses, with their F1; for each detect folder (e.g. the blend tiling's and the context pass's
``<tag>_ref``) and each threshold on the hotspot's peak relative emission (a hotspot kept when its peak reaches it:
a filter of the stage's r >= 0.2 hotspots, not a rerun at that threshold). A year's per-overpass chance floor
saturates; this asks what one overpass's hotspots are worth. ``--edge-cells N ...`` also scores, per N, the hotspots
left when those whose peak lies within N cells of the grid's outer edge are dropped (0 = none dropped; the edge rule
the context pass invites: it reads beyond the grid as unobserved). ``--gap-cells N ...`` likewise keeps, per N,
the hotspots whose ``gap_cells`` (hotspots.csv: cells from the peak to the overpass's nearest unobserved cell) is at
least N (1 = all): what a user filtering the table on it gains and loses. With ``--gap-shifted`` the gap rule only
applies where detect took background off at the peak (``background_shift_mol_m2`` > 0: a background above the
training world's, where a cloud gap's edge is a step higher than any the model saw); ``--gap-shift-min T ...`` scores,
per T, the rule firing only where more than T mol/m2 was taken off (0 = any shift, detect's default).

    .venv/bin/python benchmarks/per_overpass_tiling.py --root R --tags default_ref tiling-context_ref
        [--edge-cells 0 1 2] [--gap-cells 1 2 3 [--gap-shifted [--gap-shift-min 0 1e-5]]] [--out F]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from no2hotspots.contracts import grid as grid_contract
from no2hotspots.detect.composite import peak_cells
from no2hotspots.detect.hotspots import edge_distance
from no2hotspots.evaluate.geo import PointIndex

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_one_overpass import Tally  # noqa: E402  (the same tally as the baseline's single-overpass scores)
from composite_rule import fmt  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4)


def observed_strong(folder: Path, key: str, strong: pd.DataFrame, res: float):
    """(lat, lon) of the ``strong`` sources whose cell overpass ``key`` of the ingest ``folder`` observed (a finite
    NO2 there), and that overpass grid's lat and lon axes."""
    with grid_contract.open_overpass(grid_contract.overpass_path(folder, key)) as ds:
        no2, la, lo = ds["no2"].values, ds["lat"].values, ds["lon"].values
    i, j = peak_cells(strong["lat"], strong["lon"], la, lo, res)
    inside = (i >= 0) & (i < len(la)) & (j >= 0) & (j < len(lo))
    seen = np.zeros(len(strong), bool)
    seen[inside] = np.isfinite(no2[i[inside], j[inside]])
    return strong["lat"].to_numpy()[seen], strong["lon"].to_numpy()[seen], la, lo


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, help="a folder kept by grid_invariance.py --keep")
    ap.add_argument("--tags", nargs="+", required=True, help="detect folders under --root (e.g. default_ref)")
    ap.add_argument("--grid", default="g005", help="the ingest those folders were detected on (ingest_<grid>)")
    ap.add_argument("--strong", type=float, default=5000.0)
    ap.add_argument("--edge-cells", type=int, nargs="+", default=[0], help="drop peaks within N cells of the edge")
    ap.add_argument("--gap-cells", type=int, nargs="+", default=[1], help="keep hotspots with gap_cells >= N")
    ap.add_argument("--gap-shifted", action="store_true", help="the gap rule only where background was taken off")
    ap.add_argument("--gap-shift-min", type=float, nargs="+", default=[0.0], help="with --gap-shifted: shift > T")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "per_overpass_tiling.json"))
    args = ap.parse_args(argv)
    root = Path(args.root)
    folder = root / f"ingest_{args.grid}" / "osse"
    grid = grid_contract.open_grid(folder)
    res = float(grid.attrs["resolution_deg"])
    truth = pd.read_csv(root / "osse" / "truth" / "sources.csv")
    strong = truth[truth["nox_t_per_yr"] >= args.strong]
    sources = PointIndex(truth["lat"], truth["lon"])
    tables = {
        t: dict(tuple(pd.read_csv(root / t / "detect" / "osse" / "hotspots.csv").groupby("overpass")))
        for t in args.tags
    }
    edges = sorted(set(args.edge_cells))
    gaps = sorted(set(args.gap_cells))
    shifts = sorted(set(args.gap_shift_min)) if args.gap_shifted else [0.0]
    rules = [(g, s) for g in gaps for s in (shifts if g > 1 else shifts[:1])]  # gap >= 1 keeps all: one T
    tally = {(t, th, e, g, s): Tally() for t in args.tags for th in THRESHOLDS for e in edges for g, s in rules}
    keys = list(grid_contract.overpass_index(grid)["key"])
    for key in keys:
        s_lat, s_lon, la, lo = observed_strong(folder, key, strong, res)
        for t in args.tags:
            m = tables[t].get(key)
            if m is None:
                m = tables[t][next(iter(tables[t]))].iloc[:0]
            hi, hj = peak_cells(m["peak_lat"], m["peak_lon"], la, lo, res)
            edge = edge_distance(hi, hj, (len(la), len(lo)))
            gap_cells = m["gap_cells"].to_numpy() if gaps != [1] else np.ones(len(m), int)
            shift = m["background_shift_mol_m2"].to_numpy(float) if args.gap_shifted else None
            # with --gap-shifted, hotspots with shift <= T pass every gap rule
            gap = {s: gap_cells if shift is None else np.where(shift > s, gap_cells, max(gaps)) for s in shifts}
            for th in THRESHOLDS:
                for e in edges:
                    for g, s in rules:
                        h = m[(m["peak_rel_emission"] >= th).to_numpy() & (edge >= e) & (gap[s] >= g)]
                        h_lat, h_lon = h["peak_lat"].to_numpy(float), h["peak_lon"].to_numpy(float)
                        tally[t, th, e, g, s].add(s_lat, s_lon, h_lat, h_lon, sources)
    result = {"root": str(root), "overpasses": len(keys), "strong_t_nox_per_yr": args.strong, "rows": []}
    result["gap_rule"] = "where background_shift_mol_m2 > gap_shift_min_mol_m2" if args.gap_shifted else "every hotspot"
    for (t, th, e, g, s), v in tally.items():
        row = {"detect": t, "min_peak_rel_emission": th, "edge_cells_dropped": e, "gap_cells_min": g}
        row |= {"gap_shift_min_mol_m2": s} if args.gap_shifted else {}
        row |= v.figures()
        result["rows"].append(row)
        print(
            f"{t:24s} r >= {th:<4g} edge {e} gap >= {g} shift > {s:g} recall {fmt(row['recall_strong'])} "
            f"precision {fmt(row['hotspot_precision'])} F1 {fmt(row['f1'])} ({row['hotspots']} hotspots)"
        )
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print("written", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
