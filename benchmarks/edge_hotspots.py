"""How a workspace's per-overpass hotspots lie against the grid's edge, and how many of them are near a true source.

For the OSSE collection of one or more ``make demo`` (or ``dvc exp``) workspaces: the per-overpass hotspot peaks
(``outputs/detect/osse/hotspots.csv``) by their distance in cells from the ingest grid's outer edge (0 = the
outermost row or column), each band's count and share within ``--match-km`` of a truth source (any source of the
OSSE, those in the grid's margin included). The context pass reads what lies beyond a grid as unobserved; the blend
tiling's tiles end flush with it. With ``--gaps`` the same by the distance from the peak to the nearest cell its own
overpass did not observe (a cloud gap, the swath's end, or beyond the grid; 0 = the peak's cell itself), the hotspot
table's ``gap_cells`` column. Writes nothing; prints one line per workspace and band.

    .venv/bin/python benchmarks/edge_hotspots.py WS [WS ...] [--collection osse] [--gaps]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from no2hotspots.contracts import grid as grid_contract
from no2hotspots.detect.composite import peak_cells
from no2hotspots.detect.hotspots import edge_distance
from no2hotspots.evaluate.geo import PointIndex

BANDS = ((0, 1), (2, 3), (4, 9), (10, None))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workspaces", nargs="+")
    ap.add_argument("--collection", default="osse")
    ap.add_argument("--match-km", type=float, default=10.0)
    ap.add_argument("--gaps", action="store_true", help="also by the distance to the overpass's unobserved cells")
    args = ap.parse_args(argv)
    for ws in map(Path, args.workspaces):
        out = ws / "outputs"
        grid = grid_contract.open_grid(out / "ingest" / args.collection)
        lat, lon = grid["lat"].values, grid["lon"].values
        res = float(grid.attrs["resolution_deg"])
        truth = pd.read_csv(out / "osse" / "truth" / "sources.csv")
        near = PointIndex(truth["lat"].to_numpy(float), truth["lon"].to_numpy(float))
        h = pd.read_csv(out / "detect" / args.collection / "hotspots.csv")
        i, j = peak_cells(h["peak_lat"], h["peak_lon"], lat, lon, res)
        d = edge_distance(i, j, (len(lat), len(lon)))
        ok = near.any_within(h["peak_lat"].to_numpy(float), h["peak_lon"].to_numpy(float), args.match_km)
        tiling = json.loads((out / "detect" / args.collection / "detect.json").read_text())["params"].get("tiling")
        dists = {"the edge": d}
        if args.gaps:
            if "gap_cells" not in h:
                raise SystemExit(
                    f"{ws}: hotspots.csv has no gap_cells column (detected before it had one): rerun detect"
                )
            dists["an unobserved cell"] = h["gap_cells"].to_numpy()
        for what, dd in dists.items():
            for lo, hi in BANDS:
                m = (dd >= lo) & (dd <= (hi if hi is not None else dd.max()))
                share = f"{ok[m].mean():.3f}" if m.any() else "n/a"
                band = f"{lo}-{hi}" if hi is not None else f">={lo}"
                print(
                    f"{ws} ({tiling}): {len(h)} hotspots; {band:>5} cells from {what}: {int(m.sum())},"
                    f" near a source {share}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
