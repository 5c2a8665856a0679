"""Does detection depend on the grid? The same OSSE detected on four grids/tilings, compared source by source.

Issue 12 asks that hotspot sets agree (Jaccard of matched sources >= 0.9) between tile strides 16 and 32 and between
0.05 and 0.0625 degree grids. This runs one OSSE (default: the VALIDATION OSSE of benchmarks/composite_rule.py,
Beijing - Tianjin - Tangshan, seed 7; ``--bbox``/``--seed`` for another) through ``python -m no2hotspots osse``,
then ``ingest`` + ``detect`` once per variant:

* ``ref``      0.05 deg grid, stride 32 (the defaults)
* ``stride16`` 0.05 deg grid, stride 16
* ``shifted``  0.05 deg grid moved by half a cell east and north (the same scene, cell edges elsewhere)
* ``res0625``  0.0625 deg grid, stride 32

A detection is a pair (overpass, source): a hotspot whose nearest OSSE source (all of them, margins included; units
within 1 km are one facility, as evaluate scores them) lies within ``--match-km`` (10, as evaluate's nearest rule). Per
variant against ``ref``: the Jaccard index of those pairs |A & B| / |A | B|, the same for the sources found over the
year, for the composite sites' sources and (unless ``--no-period``) for the sources of the period products the pipeline
headlines: the flux-divergence ``baseline`` and the ``hybrid`` (both stages rerun per variant on its own grid; the
issue's "Jaccard of matched sources"), also per source NOx bin and under the distance rule (every source with a site
within ``--match-km``); and the along-wind / cross-wind offset of the matched per-overpass peaks from their source
(wind of the OSSE at the overpass time; positive along-wind = downwind). Everything is printed and written to ``--out``
(JSON).

    .venv/bin/python benchmarks/grid_invariance.py --model outputs/train/model [--days 366] [--variants ...]

``--hybrid-variants "OVERRIDES" ...`` (with ``--evaluate``) reruns the hybrid stage and evaluate on the ``ref``
variant's overpasses and baseline once per quoted set of hybrid overrides (e.g. ``"hybrid.k_sigma=3
hybrid.merge_km=5"``; in ``ref/hybrid_variant_<i>/``) and scores each beside the default (``scores["hybrid <set>"]``).

``--extra`` adds detect overrides to every variant (e.g. ``detect.tiling=context detect.resample=model_pixel``);
``--osse-set`` changes the OSSE itself (e.g. ``osse.background.mean_mol_m2=[5.0e-5,2.0e-4]``; a new ``--root``);
runs with one ``--root --keep`` share the OSSE and the ingests and keep one folder per mode and variant, and
``--cross --root R`` then compares them (the shifted against the 0.0625 deg grid per mode, each mode's reference
against the default's) without running anything, and ``--flips TAG --root R`` says why the period products' matched
sources differ between the kept ``TAG_ref`` and ``TAG_res0625`` runs (another source within 3 km took the match,
often a unit of the same plant; a neighbour within ``--match-km`` did; or none near).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from composite_rule import BINS, fmt, score, stage  # noqa: E402  (benchmarks/ is on sys.path: the script's folder)

from no2hotspots.evaluate.facilities import FACILITY_KM, group_units  # noqa: E402
from no2hotspots.evaluate.geo import EARTH_RADIUS_KM, PointIndex  # noqa: E402
from no2hotspots.evaluate.overlap import assign_bins, bin_edges_and_labels  # noqa: E402

#: the Jaccard of found sources is also given per source's own NOx rate [t/yr] (lower-inclusive bins): marginal,
#: weak sources flip between grids first
SOURCE_BINS_T = [0, 2000, 5000]


def grids(bbox: list[float]) -> dict[str, list[str]]:
    """The ingest grids: name -> ingest overrides."""
    half = 0.025
    shifted = [bbox[0] + half, bbox[1] + half, bbox[2] + half, bbox[3] + half]
    return {
        "g005": [],
        "shifted": ["ingest.collections.osse.bbox=[" + ",".join(f"{v:.4f}" for v in shifted) + "]"],
        "g0625": ["ingest.resolution_deg=0.0625"],
    }


#: variant -> (grid, detect overrides)
VARIANTS = {
    "ref": ("g005", []),
    "stride16": ("g005", ["detect.stride=16"]),
    "shifted": ("shifted", []),
    "res0625": ("g0625", []),
}


def truth_sources(root: Path, facility_km: float = FACILITY_KM) -> pd.DataFrame:
    """The OSSE's sources as evaluate scores them: units within ``facility_km`` are one facility
    (``evaluate.facility_km``; no2hotspots.evaluate.facilities)."""
    return group_units(pd.read_csv(root / "osse" / "truth" / "sources.csv"), facility_km)


def matched(table: pd.DataFrame, src: pd.DataFrame, index: PointIndex, match_km: float) -> pd.DataFrame:
    """The table's hotspots whose nearest source lies within ``match_km``, with that source's id and offset."""
    if table.empty:
        return table.assign(source=[], dist_km=[])
    idx, dist = index.nearest(table["peak_lat"].to_numpy(float), table["peak_lon"].to_numpy(float))
    out = table.assign(
        source=src["id"].to_numpy()[idx],
        dist_km=dist,
        s_lat=src["lat"].to_numpy()[idx],
        s_lon=src["lon"].to_numpy()[idx],
    )
    return out[out["dist_km"] <= match_km].reset_index(drop=True)


def sources_near(table: pd.DataFrame, src: pd.DataFrame, match_km: float) -> set:
    """Ids of the sources with some row of ``table`` within ``match_km`` (evaluate's ``distance`` rule: a site near
    a cluster finds every source of it, so a hotspot that moves from one unit of a plant to the next does not change
    the set, as it does under the nearest rule)."""
    near = PointIndex(table["peak_lat"], table["peak_lon"]).any_within(src["lat"], src["lon"], match_km)
    return set(src["id"].to_numpy()[near])


def jaccard(a: set, b: set) -> float | None:
    return None if not (a | b) else len(a & b) / len(a | b)


def jaccard_by_bin(a: set, b: set, src: pd.DataFrame) -> dict[str, float | None]:
    """:func:`jaccard` of two sets of source ids within each bin of the sources' NOx rate (``SOURCE_BINS_T``)."""
    full, keys, _ = bin_edges_and_labels(SOURCE_BINS_T)
    which = dict(zip(src["id"], assign_bins(src["nox_t_per_yr"].to_numpy(float), full)))
    return {k: jaccard({x for x in a if which[x] == i}, {x for x in b if which[x] == i}) for i, k in enumerate(keys)}


def wind_offsets(m: pd.DataFrame, winds: pd.DataFrame) -> dict:
    """Along-wind (downwind positive) and cross-wind offset [km] of matched peaks from their source."""
    if m.empty:
        return {}
    wt = pd.to_datetime(winds["time_utc"]).to_numpy()
    ht = pd.to_datetime(m["time"]).to_numpy()
    k = np.clip(np.searchsorted(wt, ht, side="right") - 1, 0, len(wt) - 1)
    to_rad = np.deg2rad(winds["direction_from_deg"].to_numpy(float)[k] + 180.0)  # direction the wind blows to
    ue, un = np.sin(to_rad), np.cos(to_rad)
    lat0 = np.deg2rad(m["s_lat"].to_numpy(float))
    de = np.deg2rad(m["peak_lon"].to_numpy(float) - m["s_lon"].to_numpy(float)) * np.cos(lat0) * EARTH_RADIUS_KM
    dn = np.deg2rad(m["peak_lat"].to_numpy(float) - m["s_lat"].to_numpy(float)) * EARTH_RADIUS_KM
    along, cross = de * ue + dn * un, np.abs(-de * un + dn * ue)
    q = lambda v, p: round(float(np.percentile(v, p)), 2)  # noqa: E731
    return {
        "n": int(len(m)),
        "distance_km_median": q(m["dist_km"], 50),
        "along_wind_km_median": q(along, 50),
        "along_wind_km_16_84": [q(along, 16), q(along, 84)],
        "cross_wind_abs_km_median": q(cross, 50),
    }


def cross(root: Path, match_km: float) -> dict:
    """Between the runs kept under ``root`` (one folder per mode tag and variant): per mode, the pair Jaccard of the
    shifted against the 0.0625 deg grid, and of the mode's reference against the default's."""
    src = truth_sources(root)
    index = PointIndex(src["lat"].to_numpy(float), src["lon"].to_numpy(float))
    pairs = {}
    for f in sorted(root.glob("*_*/detect/osse/hotspots.csv")):
        tag, name = f.parents[2].name.rsplit("_", 1)
        m = matched(pd.read_csv(f), src, index, match_km)
        pairs[(tag, name)] = set(zip(m["overpass"], m["source"]))
    out = {}
    for tag in sorted({t for t, _ in pairs}):
        if (tag, "shifted") in pairs and (tag, "res0625") in pairs:
            out[f"{tag}: shifted vs res0625"] = jaccard(pairs[(tag, "shifted")], pairs[(tag, "res0625")])
        if (tag, "ref") in pairs and ("default", "ref") in pairs:
            out[f"{tag}: ref vs default ref"] = jaccard(pairs[(tag, "ref")], pairs[("default", "ref")])
    return out


def _near_flips(a: set, b: set, nox: dict) -> dict:
    """Sources with a site within the match distance on one grid only (the distance rule), by NOx rate."""
    rates = sorted(nox[s] for s in a ^ b)
    return {
        "jaccard": jaccard(a, b),
        "n_union": len(a | b),
        "n_flipped": len(rates),
        "flipped_under_2000_t": int(sum(r < 2000 for r in rates)),
        "flipped_nox_t_per_yr": [round(r, 1) for r in rates],
    }


def flips(root: Path, match_km: float, tag: str = "default") -> dict:
    """Why the period products' matched sources differ between the kept ``ref`` and ``res0625`` runs of mode ``tag``:
    each source matched (nearest rule) on one grid only, by the distance to the nearest source the other grid matched
    (<= 3 km: another source took the match, often a unit of the same plant; <= ``match_km``: a neighbour did; else
    none near), with its NOx rate."""
    src = truth_sources(root)
    index = PointIndex(src["lat"].to_numpy(float), src["lon"].to_numpy(float))
    where = {s: (la, lo) for s, la, lo in zip(src["id"], src["lat"], src["lon"])}
    nox = dict(zip(src["id"], src["nox_t_per_yr"].astype(float)))
    out = {}
    for product in ("hybrid", "baseline"):
        sets = {}
        for name in ("ref", "res0625"):
            table = pd.read_csv(root / f"{tag}_{name}" / product / "osse" / "composite.csv")
            sets[name] = set(matched(table, src, index, match_km)["source"])
            sets[name + " near"] = sources_near(table, src, match_km)
        rows = []
        for only, other in (("ref", "res0625"), ("res0625", "ref")):
            others = sorted(sets[other])
            near = PointIndex([where[s][0] for s in others], [where[s][1] for s in others]) if others else None
            for s in sorted(sets[only] - sets[other]):
                dist = float(near.nearest([where[s][0]], [where[s][1]])[1][0]) if near else float("inf")
                kind = (
                    "other_source_le_3km" if dist <= 3.0 else ("neighbour_le_match_km" if dist <= match_km else "none")
                )
                rows.append(
                    {
                        "source": s,
                        "only_on": only,
                        "nox_t_per_yr": round(nox[s], 1),
                        "nearest_matched_on_other_km": round(dist, 1),
                        "kind": kind,
                    }
                )
        kinds = pd.Series([r["kind"] for r in rows], dtype=object)
        out[product] = {
            "jaccard": jaccard(sets["ref"], sets["res0625"]),
            "n_union": len(sets["ref"] | sets["res0625"]),
            "n_flipped": len(rows),
            "by_kind": {k: int((kinds == k).sum()) for k in ("other_source_le_3km", "neighbour_le_match_km", "none")},
            "flipped_under_2000_t": int(sum(r["nox_t_per_yr"] < 2000 for r in rows)),
            "rows": rows,
            "near_rule": _near_flips(sets["ref near"], sets["res0625 near"], nox),
        }
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="detect.model_uri (a model folder, models:/..., runs:/...)")
    ap.add_argument("--bbox", default="[115.2,36.5,120.2,41.5]", help="OSSE region [lon0,lat0,lon1,lat1]")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--days", type=int, default=366)
    ap.add_argument("--match-km", type=float, default=10.0)
    ap.add_argument("--variants", nargs="+", default=None, help="subset of ref stride16 shifted res0625")
    ap.add_argument("--extra", nargs="*", default=[], help="overrides for every detect run (e.g. a tiling option)")
    ap.add_argument(
        "--osse-set", nargs="*", default=[], help="osse overrides (e.g. osse.background.mean_mol_m2=[5.0e-5,2.0e-4])"
    )
    ap.add_argument("--data", default=str(REPO / "data"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "grid_invariance.json"))
    ap.add_argument("--root", default=None, help="reuse this folder (its OSSE is not rerun when present)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--no-period", action="store_true", help="skip the baseline and hybrid stages per variant")
    ap.add_argument(
        "--evaluate", action="store_true", help="also score each variant's tables against the truth (evaluate stage)"
    )
    ap.add_argument(
        "--hybrid-variants",
        nargs="+",
        default=[],
        metavar="OVERRIDES",
        help="with --evaluate: the ref variant's hybrid also at these settings, one quoted set each",
    )
    ap.add_argument("--cross", action="store_true", help="only compare the runs kept under --root (writes --out)")
    ap.add_argument(
        "--flips", default=None, metavar="TAG", help="only explain the ref/res0625 differences of the kept TAG runs"
    )
    args = ap.parse_args(argv)
    if (args.flips or args.cross) and not args.root:
        ap.error("--cross and --flips read the runs kept under --root")
    if args.flips:
        result = {"root": str(args.root), "tag": args.flips, **flips(Path(args.root), args.match_km, args.flips)}
        for product in ("hybrid", "baseline"):
            r = result[product]
            print(
                f"{product}: Jaccard {fmt(r['jaccard'])}, {r['n_flipped']} of {r['n_union']} sources matched on one "
                f"grid only: {r['by_kind']}, {r['flipped_under_2000_t']} of them < 2000 t/yr"
            )
            n = r["near_rule"]
            print(
                f"  within {args.match_km:g} km of a site: Jaccard {fmt(n['jaccard'])}, {n['n_flipped']} of "
                f"{n['n_union']} on one grid only, {n['flipped_under_2000_t']} of them < 2000 t/yr"
            )
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        return 0
    if args.cross:
        result = cross(Path(args.root), args.match_km)
        print(json.dumps(result, indent=1))
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        return 0
    if not args.model:
        ap.error("--model is required (but with --cross or --flips)")
    os.environ.setdefault("NO2HOTSPOTS_PROGRESS", "0")
    bbox = json.loads(args.bbox)
    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="grid_invariance_"))
    root.mkdir(parents=True, exist_ok=True)
    base = [
        f"paths.data={args.data}",
        f"paths.metrics={root / 'metrics'}",
        f"paths.plots={root / 'plots'}",
        f"paths.mlruns={root / 'mlruns'}",
        "osse=demo",
        "osse.region.name=invariance",
        f"osse.region.bbox={args.bbox}",
        f"osse.dates.days={args.days}",
        "osse.dates.end=null",
        "osse.changes=[]",
        *args.osse_set,
        f"osse.out_dir={root / 'osse'}",
        f"osse.units_dir={root / '.units_osse'}",
        f"seed={args.seed}",
        "ingest.collection=osse",
        "detect.collection=osse",
        f"detect.model_uri={args.model}",
        "detect.overlay_inventory=false",
        # the downwind test's winds: this OSSE's own (the default points under paths.outputs, which differs per variant)
        f"detect.wind_paths.osse=['{root / 'osse' / 'truth' / 'winds' / '*.nc'}']",
        # ... and the baseline's (quantify's wind settings; the default also points under paths.outputs)
        f"quantify.collections.osse.winds.paths=['{root / 'osse' / 'truth' / 'winds' / '*.nc'}']",
        "baseline.collection=osse",
        "hybrid.collection=osse",
    ]
    log = root / "stages.log"
    timing = {}
    if not (root / "osse" / "truth" / "sources.csv").exists():
        timing["osse"] = round(stage("osse", base, log), 1)
    src = truth_sources(root)
    winds = pd.read_csv(root / "osse" / "truth" / "winds.csv")
    index = PointIndex(src["lat"].to_numpy(float), src["lon"].to_numpy(float))

    grid_ov = grids(bbox)
    names = args.variants or list(VARIANTS)
    if "ref" not in names:
        names = ["ref", *names]
    # a folder name that is also a plain Hydra override value (no brackets or commas: ring_km=[10,20] -> 10-20)
    tag = "_".join(a.replace("detect.", "").replace("=", "-") for a in args.extra) or "default"
    tag = tag.replace("[", "").replace("]", "").replace(",", "-").replace(" ", "")
    res: dict[str, dict] = {}
    done_grids: dict[str, float] = {}
    for name in names:
        grid, det_ov = VARIANTS[name]
        ing = [
            *grid_ov[grid],
            f"ingest.out_dir={root / ('ingest_' + grid)}",
            f"ingest.units_dir={root / ('.units_' + grid)}",
        ]
        out = root / f"{tag}_{name}"
        ov = base + ing + det_ov + list(args.extra) + [f"paths.outputs={out}"]
        if grid not in done_grids:  # one ingest per grid (a rerun of the script reuses its granules)
            done_grids[grid] = stage("ingest", ov, log)
        t_ing = done_grids[grid]
        t_det = stage("detect", ov, log)
        det = out / "detect" / "osse"
        hotspots = pd.read_csv(det / "hotspots.csv")
        per = matched(hotspots, src, index, args.match_km)
        comp = matched(pd.read_csv(det / "composite.csv"), src, index, args.match_km)
        period = {}
        if not args.no_period:  # the period products on this variant's grid and model map
            for product in ("baseline", "hybrid"):
                wall = stage(product, ov, log)
                table = pd.read_csv(out / product / "osse" / "composite.csv")
                m = matched(table, src, index, args.match_km)
                period[product] = {
                    "wall_s": round(wall, 1),
                    "n_rows": int(len(table)),
                    "share_rows_matched": round(len(m) / max(len(table), 1), 4),
                    "sources": set(m["source"]),
                    "sources_near": sources_near(table, src, args.match_km),
                }
        scored = {}
        if args.evaluate:  # each variant's own accuracy: F1 = site precision x nearest-source recall, strict Table 2
            ev = ["evaluate.collection=osse", "evaluate.log_to=none", "evaluate.maps=false"]
            ev.append(f"paths.metrics={out / 'metrics'}")
            stage("evaluate", ov + ev, log)
            for table in ("composite", *period):
                scored[table] = {k: v for k, v in score(out, table, [], table).items() if k != "overrides"}
            if name == "ref":  # the hybrid again at other settings, on the same overpasses and baseline
                for i, text in enumerate(args.hybrid_variants):
                    hv = out / f"hybrid_variant_{i}"
                    hov = [f"hybrid.out_dir={hv / 'hybrid'}", *text.split()]
                    stage("hybrid", ov + hov, log)
                    stage(
                        "evaluate",
                        ov + ev + hov + [f"evaluate.out_dir={hv / 'evaluate'}", f"paths.metrics={hv / 'metrics'}"],
                        log,
                    )
                    scored[f"hybrid {text}"] = score(hv, f"hybrid {text}", text.split(), "hybrid")
        res[name] = {
            "scores": scored,
            "overrides": grid_ov[VARIANTS[name][0]] + VARIANTS[name][1] + list(args.extra),
            "wall_s": {"ingest": round(t_ing, 1), "detect": round(t_det, 1)},
            "n_hotspots": int(len(hotspots)),
            "n_hotspots_matched": int(len(per)),
            "pairs": set(zip(per["overpass"], per["source"])),
            "sources": set(per["source"]),
            "composite_sources": set(comp["source"]),
            "period": period,
            "offsets": wind_offsets(per, winds),
        }
    ref = res["ref"]
    rows = {}
    for name, r in res.items():
        rows[name] = {
            "overrides": r["overrides"],
            "wall_s": r["wall_s"],
            "n_hotspots": r["n_hotspots"],
            "n_matched_pairs": len(r["pairs"]),
            "share_hotspots_matched": round(r["n_hotspots_matched"] / max(r["n_hotspots"], 1), 4),
            "n_sources_found": len(r["sources"]),
            "n_composite_sources": len(r["composite_sources"]),
            "jaccard_pairs_vs_ref": jaccard(r["pairs"], ref["pairs"]),
            "jaccard_sources_vs_ref": jaccard(r["sources"], ref["sources"]),
            "jaccard_sources_by_nox_vs_ref": jaccard_by_bin(r["sources"], ref["sources"], src),
            "jaccard_composite_vs_ref": jaccard(r["composite_sources"], ref["composite_sources"]),
            "peak_offsets": r["offsets"],
            "scores": r["scores"],
        }
        for product, p in r["period"].items():
            rows[name][product] = {
                "wall_s": p["wall_s"],
                "n_rows": p["n_rows"],
                "share_rows_matched": p["share_rows_matched"],
                "n_sources_found": len(p["sources"]),
                "jaccard_sources_vs_ref": jaccard(p["sources"], ref["period"][product]["sources"]),
                "jaccard_sources_by_nox_vs_ref": jaccard_by_bin(p["sources"], ref["period"][product]["sources"], src),
                "n_sources_near": len(p["sources_near"]),
                "jaccard_sources_near_vs_ref": jaccard(p["sources_near"], ref["period"][product]["sources_near"]),
                "jaccard_sources_near_by_nox_vs_ref": jaccard_by_bin(
                    p["sources_near"], ref["period"][product]["sources_near"], src
                ),
            }
        x = rows[name]
        o = x["peak_offsets"]
        print(
            f"{name:9s} hotspots {x['n_hotspots']:6d} ({100 * x['share_hotspots_matched']:.1f} % matched) pairs "
            f"{x['n_matched_pairs']:6d} sources "
            f"{x['n_sources_found']:4d} composite {x['n_composite_sources']:4d} | Jaccard vs ref: pairs "
            f"{fmt(x['jaccard_pairs_vs_ref'])} sources {fmt(x['jaccard_sources_vs_ref'])} composite "
            f"{fmt(x['jaccard_composite_vs_ref'])} | peak-source {o.get('distance_km_median')} km, along-wind "
            f"{o.get('along_wind_km_median')} km ({o.get('along_wind_km_16_84')}), |cross| "
            f"{o.get('cross_wind_abs_km_median')} km",
            flush=True,
        )
        for product in r["period"]:
            p = x[product]
            print(
                f"{'':9s} {product:8s} rows {p['n_rows']:4d} ({100 * p['share_rows_matched']:.1f} % matched) sources "
                f"{p['n_sources_found']:4d} | Jaccard of sources vs ref {fmt(p['jaccard_sources_vs_ref'])} (by NOx "
                + ", ".join(f"{k} {v:.3f}" for k, v in p["jaccard_sources_by_nox_vs_ref"].items() if v is not None)
                + f"); within {args.match_km:g} km of a site: {fmt(p['jaccard_sources_near_vs_ref'])} (by NOx "
                + ", ".join(f"{k} {v:.3f}" for k, v in p["jaccard_sources_near_by_nox_vs_ref"].items() if v is not None)
                + ")",
                flush=True,
            )
        for table, sc in r["scores"].items():
            print(
                f"{'':9s} scored {table:9s} F1 {fmt(sc['f1'])} (site precision {fmt(sc['site_precision'])}, recall "
                f"{fmt(sc['recall_nearest'])}) strict "
                + " / ".join(f"{100 * (sc[f'strict_{b}'] or 0):.1f}" for b in BINS),
                flush=True,
            )
    result = {
        "osse": {"bbox": bbox, "seed": args.seed, "days": args.days, "model": args.model, "match_km": args.match_km},
        "osse_overrides": list(args.osse_set),
        "extra_overrides": list(args.extra),
        "stage_wall_s": timing,
        "variants": rows,
        "min_jaccard_pairs": min((v["jaccard_pairs_vs_ref"] for k, v in rows.items() if k != "ref"), default=None),
        **{
            f"min_jaccard_{product}_sources": min(
                (v[product]["jaccard_sources_vs_ref"] for k, v in rows.items() if k != "ref"), default=None
            )
            for product in ("baseline", "hybrid")
            if product in rows["ref"]
        },
        **{
            f"min_jaccard_{product}_sources_near": min(
                (v[product]["jaccard_sources_near_vs_ref"] for k, v in rows.items() if k != "ref"), default=None
            )
            for product in ("baseline", "hybrid")
            if product in rows["ref"]
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"lowest pair Jaccard vs ref: {result['min_jaccard_pairs']}; written {args.out}")
    if args.keep or args.root:
        print(f"kept {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
