"""The baseline's single-overpass settings (``baseline.collections.matimba``) on the validation OSSE's overpasses.

The Matimba scene is one overpass: its baseline runs with a 3x3 box and the model's 20 % peak split, settings kept
from before the period's were chosen on the validation OSSE (no box, 5 % split). This scores both, and the model's
own per-overpass hotspots, on every single overpass of a validation OSSE that ``benchmarks/composite_rule.py --keep``
left (its ingest, the baseline's per-overpass units and detect's ``hotspots.csv``; the model is the one that run
used), with the Matimba scene's own two figures, summed over the overpasses:

- recall of the strong sources: truth sources >= ``--strong`` t NOx/yr whose 0.05 deg cell the overpass observed
  (a finite flux divergence there), found when a hotspot of that overpass lies within 10 km;
- hotspot precision: the overpass's hotspots within 10 km of any truth source (every size);

and F1 of the two. The baseline's map of one overpass is built by the stage's own code (``accumulate`` of that one
unit, ``hotspots`` with each variant's settings, checked by ``baseline.run.settings``). Variants are sets of
``baseline.*`` overrides on top of ``min_valid=1`` (``--variant NAME "OVERRIDES"``; defaults: Matimba's settings
and the period's). ``--hybrid K ...`` adds a per-overpass hybrid: the model's hotspots whose z in that overpass's
3x3-smoothed divergence (``hybrid.confirm.z_map``) is >= K, plus the first variant's hotspots farther than 10 km from
them. Writes ``benchmarks/results/baseline_one_overpass.json`` (``--out``).

    .venv/bin/python benchmarks/baseline_one_overpass.py --reuse DIR [--strong 5000] [--variant NAME "OVERRIDES" ...]
        [--hybrid K ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from no2hotspots.baseline.run import accumulate, hotspots, settings
from no2hotspots.config import compose
from no2hotspots.contracts import grid as grid_contract
from no2hotspots.detect.composite import peak_cells
from no2hotspots.evaluate.geo import PointIndex
from no2hotspots.headline import f1
from no2hotspots.hybrid.confirm import site_z, with_baseline_sites, z_map

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {
    "matimba: 3x3 box, 20 % split (the default for one overpass)": (
        "baseline.smooth_cells=3 baseline.peaks.prominence=0.2"
    ),
    "period: no box, 5 % split": "baseline.smooth_cells=1 baseline.peaks.prominence=0.05",
}
MATCH_KM = 10.0


class Tally:
    def __init__(self):
        self.strong = self.found = self.hotspots = self.matched = 0

    def add(self, strong_lat, strong_lon, h_lat, h_lon, sources: PointIndex) -> None:
        """One overpass: the strong sources seen in it, its hotspots, and every source (indexed once)."""
        self.strong += len(strong_lat)
        self.found += int(PointIndex(h_lat, h_lon).any_within(strong_lat, strong_lon, MATCH_KM).sum())
        self.hotspots += len(h_lat)
        self.matched += int(sources.any_within(h_lat, h_lon, MATCH_KM).sum())

    def figures(self) -> dict:
        recall = self.found / self.strong if self.strong else None
        precision = self.matched / self.hotspots if self.hotspots else None
        return {
            "strong_sources_observed": self.strong,
            "strong_sources_found": self.found,
            "recall_strong": recall,
            "hotspots": self.hotspots,
            "hotspots_within_10km": self.matched,
            "hotspot_precision": precision,
            "f1": f1(precision, recall),
        }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reuse", required=True, metavar="DIR", help="a folder kept by composite_rule.py --keep")
    ap.add_argument("--strong", type=float, default=5000.0, help="strong sources: t NOx/yr (Matimba: 5000)")
    ap.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "OVERRIDES"))
    ap.add_argument(
        "--hybrid",
        nargs="+",
        type=float,
        default=[],
        metavar="K",
        help="also the hybrid per overpass: the model's hotspots whose 3x3-smoothed z of that overpass's divergence "
        "is >= K, plus the first variant's hotspots farther than 10 km from every one of them",
    )
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "baseline_one_overpass.json"))
    args = ap.parse_args(argv)
    root = Path(args.reuse) / "outputs"
    variants = dict(args.variant) if args.variant else VARIANTS
    setting = {name: settings(compose(["baseline.min_valid=1", *over.split()])) for name, over in variants.items()}
    folder = root / "ingest" / "osse"
    grid = grid_contract.open_grid(folder)
    index = grid_contract.overpass_index(grid)
    units_dir = root / ".units" / "baseline" / "osse"
    truth = pd.read_csv(root / "osse" / "truth" / "sources.csv")
    strong = truth[truth["nox_t_per_yr"] >= args.strong]
    sources = PointIndex(truth["lat"], truth["lon"])
    lat, lon = grid["lat"].values, grid["lon"].values
    res = float(grid.attrs["resolution_deg"])
    si, sj = peak_cells(strong["lat"], strong["lon"], lat, lon, res)
    inside = (si >= 0) & (si < len(lat)) & (sj >= 0) & (sj < len(lon))
    model = pd.read_csv(root / "detect" / "osse" / "hotspots.csv")
    by_overpass = dict(tuple(model.groupby("overpass")))
    hybrid_names = {
        k: f"hybrid per overpass: model confirmed at z >= {k:g} + the first variant's sites" for k in args.hybrid
    }
    tallies = {name: Tally() for name in [*variants, "model per overpass (detect's hotspots)", *hybrid_names.values()]}
    t0 = time.perf_counter()
    n_used = 0
    for k in range(len(index)):
        one = index.iloc[[k]]
        if not (units_dir / f"{one['key'].iloc[0]}.nc").exists():
            continue
        mean, n_valid = accumulate(one, grid, units_dir)
        if not (n_valid > 0).any():  # no wind for this overpass: the baseline has no map
            continue
        n_used += 1
        seen = np.zeros(len(strong), bool)
        seen[inside] = n_valid[si[inside], sj[inside]] > 0
        s_lat, s_lon = strong["lat"].to_numpy()[seen], strong["lon"].to_numpy()[seen]
        tables = {name: hotspots(mean, n_valid, grid, s) for name, s in setting.items()}
        for name, t in tables.items():
            tallies[name].add(s_lat, s_lon, t["peak_lat"], t["peak_lon"], sources)
        m = by_overpass.get(one["key"].iloc[0], model.iloc[:0])
        tallies["model per overpass (detect's hotspots)"].add(s_lat, s_lon, m["peak_lat"], m["peak_lon"], sources)
        if args.hybrid:
            z = site_z(z_map(mean, n_valid, min_valid=1, smooth_cells=3), m["peak_lat"], m["peak_lon"], lat, lon, res)
            base = next(iter(tables.values()))
            for k, name in hybrid_names.items():  # the hybrid stage's own merge of the baseline's sites
                h = with_baseline_sites(m[np.isfinite(z) & (z >= k)], base, MATCH_KM)
                tallies[name].add(s_lat, s_lon, h["peak_lat"], h["peak_lon"], sources)
    result = {
        "folder": str(args.reuse),
        "overpasses_scored": n_used,
        "strong_t_nox_per_yr": args.strong,
        "match_km": MATCH_KM,
        "variants": {name: variants.get(name, "(the model)") for name in tallies if name not in hybrid_names.values()},
        "hybrid_k": args.hybrid,
        "figures": {name: t.figures() for name, t in tallies.items()},
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    for name, fig in result["figures"].items():
        print(
            f"{name}: strong {fig['strong_sources_found']}/{fig['strong_sources_observed']} "
            f"({100 * (fig['recall_strong'] or 0):.1f} %), hotspots {fig['hotspots_within_10km']}/{fig['hotspots']} "
            f"within 10 km ({100 * (fig['hotspot_precision'] or 0):.1f} %), F1 {fig['f1'] or 0:.3f}",
            flush=True,
        )
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{n_used} overpasses; written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
