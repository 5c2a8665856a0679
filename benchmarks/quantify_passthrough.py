"""How much a neighbour's plume passing through from upwind moves each method's single-overpass estimate.

For every row of a quantify run's ``estimates_site_overpass.csv`` at a site whose truth exceeds ``--min-truth``
(the acceptance set's 5 kt NOx/yr), the known truth sources upwind of the site within ``--band-km`` of the wind's
axis through it and ``--reach-km`` upwind (more than ``--same-km`` from the site: not the site's own) are summed,
each decayed over its travel time to the site (exp(-d / (U tau)), U the row's wind, tau ``--lifetime-h``), and
divided by the site's truth: the share of NOx passing through the site's plume region from upwind. Rows are binned
by that share (and by wind speed below / from ``--fast-m-s``, and by truth class); per bin the median ratio
estimate / truth of the rows with an estimate > 0 (n: their count; ``sites``: the distinct sites among them), so
the same sites are compared with the wind from a clear and from a crowded direction. The rows with a clear upwind
(share < 0.1) are also binned by the truth NOx inside IME's background ring (``--ring-km``, 25-45 km) over the
site's: a neighbour's NO2 there raises the background IME takes off. In a uniform wind the flux
divergence cancels a plume that only passes through (the same inflow and outflow); the CSF's transects and the IME's
disk count it (``quantify.csf.inflow_km`` takes it off the CSF).

    .venv/bin/python benchmarks/quantify_passthrough.py --estimates OUT/estimates_site_overpass.csv \
        --sources OSSE/truth/sources.csv [--json benchmarks/results/quantify_passthrough.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from no2hotspots.quantify.scene import local_xy, wind_frame

EDGES = (0.0, 0.1, 0.3, 1.0, np.inf)


def _offsets(rows: pd.DataFrame, src: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(rows, sources) km east and north of each row's site to each source, as quantify takes offsets."""
    lat, lon = (src[c].to_numpy(float)[None, :] for c in ("lat", "lon"))
    return local_xy(lat, lon, rows["lat"].to_numpy(float)[:, None], rows["lon"].to_numpy(float)[:, None])


def upwind_share(rows: pd.DataFrame, src: pd.DataFrame, *, band_km, reach_km, same_km, lifetime_h) -> np.ndarray:
    """Per row, the decayed NOx of the truth sources upwind of the site over the site's truth."""
    dx, dy = _offsets(rows, src)
    direction = rows["direction_used_deg"].fillna(rows["wind_from_deg"]).to_numpy(float)
    s, t = wind_frame(dx, dy, direction[:, None])  # s: downwind of the site (km)
    up = (np.hypot(dx, dy) > same_km) & (s < 0) & (s > -reach_km) & (np.abs(t) <= band_km)
    u = rows["wind_speed_m_s"].to_numpy(float)[:, None]
    decayed = np.where(up, src["nox_t_per_yr"].to_numpy(float)[None, :] * np.exp(s * 1e3 / (u * lifetime_h * 3600)), 0)
    return decayed.sum(axis=1) / rows["inventory_nox_t_per_yr"].to_numpy(float)


def ring_share(rows: pd.DataFrame, src: pd.DataFrame, inner_km: float, outer_km: float) -> np.ndarray:
    """Per row, the NOx of the truth sources inside IME's background ring around the site over the site's truth."""
    r = np.hypot(*_offsets(rows, src))
    inside = (r > inner_km) & (r < outer_km)
    return np.where(inside, src["nox_t_per_yr"].to_numpy(float)[None, :], 0).sum(axis=1) / rows[
        "inventory_nox_t_per_yr"
    ].to_numpy(float)


def table(rows: pd.DataFrame, by: str | None, col: str = "share") -> dict:
    """{method: {group: {bin of ``col``: {n, sites, median_ratio}}}}."""
    out = {}
    for m, g in rows.groupby("method"):
        groups = {"all": g} if by is None else dict(iter(g.groupby(by)))
        out[m] = {}
        for name, gg in groups.items():
            cells = {}
            for lo, hi in zip(EDGES[:-1], EDGES[1:]):
                x = gg[(gg[col] >= lo) & (gg[col] < hi)]
                x = x[x["ratio"] > 0]
                cells[f"{lo:g}-{hi:g}"] = {
                    "n": len(x),
                    "sites": int(x["site_id"].nunique()),
                    "median_ratio": float(np.median(x["ratio"])) if len(x) else None,
                }
            out[m][str(name)] = cells
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--estimates", required=True, help="a quantify run's estimates_site_overpass.csv")
    ap.add_argument("--sources", required=True, help="the OSSE's truth/sources.csv")
    ap.add_argument("--min-truth", type=float, default=5000.0, help="sites above this truth [t NOx/yr]")
    ap.add_argument("--band-km", type=float, default=24.0, help="half-width of the upwind band")
    ap.add_argument("--reach-km", type=float, default=200.0, help="how far upwind sources count")
    ap.add_argument("--same-km", type=float, default=3.0, help="sources nearer than this are the site's own")
    ap.add_argument("--lifetime-h", type=float, default=4.0, help="NO2 lifetime for the decay to the site")
    ap.add_argument("--fast-m-s", type=float, default=7.0)
    ap.add_argument("--ring-km", type=float, nargs=2, default=(25.0, 45.0), help="IME's background ring (gap, ring)")
    ap.add_argument("--json", help="also write the tables here")
    ap.add_argument("--run", default="", help="what run the estimates are of (kept in the JSON)")
    args = ap.parse_args(argv)
    rows = pd.read_csv(args.estimates)
    rows = rows[(rows["inventory_nox_t_per_yr"] > args.min_truth) & np.isfinite(rows["nox_t_per_yr"])].copy()
    rows["ratio"] = rows["nox_t_per_yr"] / rows["inventory_nox_t_per_yr"]
    rows["share"] = upwind_share(
        rows, pd.read_csv(args.sources), band_km=args.band_km, reach_km=args.reach_km, same_km=args.same_km,
        lifetime_h=args.lifetime_h,
    )  # fmt: skip
    rows["speed"] = np.where(rows["wind_speed_m_s"] >= args.fast_m_s, f">={args.fast_m_s:g} m/s", f"<{args.fast_m_s:g}")
    rows["truth_class"] = np.where(
        rows["inventory_nox_t_per_yr"] >= 10000, ">=10 kt", f"{args.min_truth / 1e3:g}-10 kt"
    )
    rows["ring"] = ring_share(rows, pd.read_csv(args.sources), *args.ring_km)
    result = {"all": table(rows, None), "by_speed": table(rows, "speed"), "by_truth": table(rows, "truth_class"),
              "clean_upwind_by_ring": table(rows[rows["share"] < EDGES[1]], None, "ring")}  # fmt: skip
    for part, t in result.items():
        bins = " | ".join(f"{lo:g}-{hi:g}" for lo, hi in zip(EDGES[:-1], EDGES[1:]))
        what = (
            "rows with the upwind share < 0.1, by the ring's NOx share"
            if part.startswith("clean")
            else "by the upwind NOx share"
        )
        print(f"-- {part}: median estimate/truth (n) {what} {bins}")
        for m, groups in t.items():
            for name, cells in groups.items():
                vals = " | ".join(
                    f"{c['median_ratio']:.2f} ({c['n']})" if c["median_ratio"] is not None else f"- ({c['n']})"
                    for c in cells.values()
                )
                print(f"{m:10s} {name:10s} {vals}")
    if args.json:
        kept = {k: v for k, v in vars(args).items() if k not in ("estimates", "sources", "json", "run")}
        meta = {"what": __doc__.splitlines()[0], "run": args.run, "estimates": str(args.estimates),
                "sources": str(args.sources), "args": kept}  # fmt: skip
        Path(args.json).write_text(json.dumps({**meta, **result}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
