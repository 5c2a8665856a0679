"""Would a downwind rule take one overpass's plume-tail hotspots? Scored on a validation OSSE, overpass by overpass.

At Matimba two of the twelve hotspots lie on the Matimba/Medupi plume 30 and 95 km downwind (README). A rule for
one overpass: drop a hotspot that lies within ``R`` km of a stronger hotspot of the same overpass (higher peak
relative emission) and within ``--half-angle`` degrees of the wind's heading at that stronger one (the wind of the
OSSE's truth, sampled at the overpass time with detect's wind settings, as the composite's downwind test does for a
period). Scored as ``per_overpass_tiling.py`` scores the per-overpass hotspots (``baseline_one_overpass.Tally``):
recall of the strong sources the overpass observed (a hotspot within 10 km), hotspot precision (a truth source of
any size within 10 km), F1; per R (0 = no rule), with how many hotspots each rule drops and how many of those had a
source within 10 km. Reads a folder kept by ``grid_invariance.py --keep`` (its ``<tag>/detect`` holds the model that
run used); writes ``--out``.

    .venv/bin/python benchmarks/downwind_overpass.py --root R [--tag default_ref] [--radius-km 0 20 40 60] [--out F]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from no2hotspots.config import compose
from no2hotspots.contracts import grid as grid_contract
from no2hotspots.detect.downwind import downwind_of_partner, partners
from no2hotspots.evaluate.geo import PointIndex
from no2hotspots.winds import open_winds

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_one_overpass import MATCH_KM, Tally  # noqa: E402
from per_overpass_tiling import observed_strong  # noqa: E402  (the strong sources an overpass observed)

REPO = Path(__file__).resolve().parents[1]


def satellites(m: pd.DataFrame, winds, radius_km: float, half_angle_deg: float) -> np.ndarray:
    """Per hotspot of one overpass: within ``radius_km`` of a stronger one and in the cone of its wind's heading."""
    if radius_km <= 0 or len(m) < 2:
        return np.zeros(len(m), bool)
    lat, lon = m["peak_lat"].to_numpy(float), m["peak_lon"].to_numpy(float)
    pair, dx, dy = partners(lat, lon, m["peak_rel_emission"].to_numpy(float), radius_km)
    wind = winds.at(lat, lon, np.datetime64(str(m["time"].iloc[0])[:19]))
    return downwind_of_partner(pair, dx, dy, wind.direction_from, half_angle_deg)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, help="a folder kept by grid_invariance.py --keep")
    ap.add_argument("--tag", default="default_ref", help="the detect folder under --root")
    ap.add_argument("--grid", default="g005", help="the ingest it was detected on (ingest_<grid>)")
    ap.add_argument("--strong", type=float, default=5000.0)
    ap.add_argument("--radius-km", type=float, nargs="+", default=[0.0, 20.0, 40.0, 60.0])
    ap.add_argument("--half-angle", type=float, default=45.0)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "downwind_overpass.json"))
    args = ap.parse_args(argv)
    root = Path(args.root)
    folder = root / f"ingest_{args.grid}" / "osse"
    grid = grid_contract.open_grid(folder)
    res = float(grid.attrs["resolution_deg"])
    truth = pd.read_csv(root / "osse" / "truth" / "sources.csv")
    strong = truth[truth["nox_t_per_yr"] >= args.strong]
    sources = PointIndex(truth["lat"], truth["lon"])
    winds = open_winds(compose([]).detect.winds, [str(root / "osse" / "truth" / "winds" / "*.nc")], key="detect.winds")
    table = pd.read_csv(root / args.tag / "detect" / "osse" / "hotspots.csv")
    by_overpass = dict(tuple(table.groupby("overpass")))
    tally = {r: Tally() for r in args.radius_km}
    dropped = {r: [0, 0] for r in args.radius_km}  # hotspots dropped, of them with a source within MATCH_KM
    for key in grid_contract.overpass_index(grid)["key"]:
        s_lat, s_lon, _, _ = observed_strong(folder, key, strong, res)
        m = by_overpass.get(key, table.iloc[:0])
        near = sources.any_within(m["peak_lat"].to_numpy(float), m["peak_lon"].to_numpy(float), MATCH_KM)
        for r in args.radius_km:
            drop = satellites(m, winds, r, args.half_angle)
            dropped[r][0] += int(drop.sum())
            dropped[r][1] += int((drop & near).sum())
            h = m[~drop]
            tally[r].add(s_lat, s_lon, h["peak_lat"].to_numpy(float), h["peak_lon"].to_numpy(float), sources)
    result = {"root": str(root), "tag": args.tag, "half_angle_deg": args.half_angle, "rows": []}
    for r in args.radius_km:
        row = {"radius_km": r, "dropped": dropped[r][0], "dropped_with_source_within_10km": dropped[r][1]}
        row |= tally[r].figures()
        result["rows"].append(row)
        print(
            f"R {r:5.1f} km: dropped {row['dropped']:5d} ({row['dropped_with_source_within_10km']} near a source) "
            f"recall {row['recall_strong']:.3f} precision {row['hotspot_precision']:.3f} F1 {row['f1']:.4f}"
        )
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print("written", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
