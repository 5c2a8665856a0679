"""The evaluation of ONE hotspot table (the model's per-overpass table, a composite table, a baseline's): every
figure and metric comes from :func:`evaluate_table`, so tables are scored by the same code and compared side by side.

Inputs prepared once per collection (:class:`Scene`): the evaluation grid and its observation count, the gridded
inventory, the inventory sources inside the grid and the streamed sums (:mod:`.stream`). Output: a dict of tables
(DataFrames written as CSV under ``<table>/``) and flat metrics without the table prefix (``run`` adds it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from . import matching, overlap, precision
from .geo import PointIndex
from .matching import RULES

#: the paper's Table 2 rates (%, its bins) for the side-by-side table
PAPER_TABLE2 = {"gt5000": 89.0, "4000_5000": 100.0, "2000_4000": 78.0, "lt2000": 67.0}
PAPER_CO2_OVERLAP_PCT = 40.0


@dataclass
class Table:
    name: str
    kind: str  # overpass | composite
    df: pd.DataFrame
    required: bool = False
    hs: matching.HotspotSources | None = None
    pairs: dict = field(default_factory=dict)

    @property
    def per_overpass(self) -> bool:
        return self.kind == "overpass"


@dataclass
class Scene:
    """What every table of one collection is scored against."""

    s: object  # checked settings (settings.settings_for)
    lat_edges: np.ndarray
    lon_edges: np.ndarray
    gridded: xr.Dataset  # inventory summed per evaluation cell
    obs: np.ndarray  # observation count per evaluation cell (Fig. 8)
    inv: pd.DataFrame  # the whole inventory
    inv_index: PointIndex
    inv_to_src: np.ndarray  # inventory row -> row of src (-1 outside the grid)
    src: pd.DataFrame  # inventory sources inside the grid (iy, ix, obs_count, observed, region, nn_km, ...)
    src_index: PointIndex
    rule_names: tuple = ()  # (table, rule) rows of sums["det_valid"] / ["cloud_det"]
    cloud_bins_km: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sums: dict = field(default_factory=dict)  # streamed sums (stream.accumulate_batch), reduced; set after the pass
    n_valid: np.ndarray | None = None  # valid observations per source (summed over periods)


def prepare(table: Table, scene: Scene) -> Table:
    """The table's hotspots matched to cells and sources (needed before the stream: per-overpass detections)."""
    table.hs = matching.hotspot_sources(table.df, scene.inv_index, scene.inv_to_src, scene.lat_edges, scene.lon_edges)
    table.pairs = matching.pairs(table.df, table.hs, scene.src, scene.src_index, float(scene.s.match_distance_km))
    return table


def min_detections(table: Table, s) -> int:
    return int(s.min_detections) if table.per_overpass else 1


def evaluate_table(table: Table, scene: Scene) -> tuple[dict[str, pd.DataFrame], tuple[dict, dict]]:
    """Every table, figure number and metric of one hotspot table: (tables, (paper metrics, other metrics))."""
    s = scene.s
    md = min_detections(table, s)
    out: dict[str, pd.DataFrame] = {}
    out["cells"], out["table2"], out["table2_strict"] = _table2(table, scene, md)
    out["chance_floor"] = _chance_floor(table, scene, md)
    floor = overlap.rate_of(out["chance_floor"])
    out["sources"] = src = _sources(table, scene, md)
    out["co2_overlap"], out["co2_overlap_by_region"] = _co2_overlap(src, s)

    # --- precision, sites, localisation
    det, sites = precision.match_hotspots(
        table.df, scene.inv, match_distance_km=float(s.match_distance_km), merge_distance_km=float(s.merge_distance_km)
    )
    out["hotspots_matched"] = det
    out["hotspot_sites"] = sites
    out["precision"] = precision.precision_table(det, sites)
    out["localisation"] = precision.localisation_table(det)
    out.update(_recall_curves(table, scene, src, md))
    metrics = _metrics(table, out, floor, s)
    return out, metrics


def _table2(table: Table, scene: Scene, md: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Table 2: inventory cells by NOx bin under the paper's rule and the strict one; (cells, table2, strict)."""
    s = scene.s
    K = int(s.min_observations)
    hot = table.df
    cells = overlap.inventory_cells(scene.gridded, scene.obs)
    cells["observed"] = cells["obs_count"] >= K
    cells["n_detections"] = overlap.match_cells(
        cells, hot, scene.lat_edges, scene.lon_edges, mode=str(s.match_mode), distance_km=float(s.match_distance_km)
    )
    cells["found"] = cells["observed"] & (cells["n_detections"] >= md)
    cells["n_detections_strict"] = overlap.match_cells_strict(cells, hot, table.hs)
    cells["found_strict"] = cells["observed"] & (cells["n_detections_strict"] >= md)
    t2 = overlap.table2(cells, list(s.nox_bins), K)
    t2s = overlap.table2(cells.assign(found=cells["found_strict"]), list(s.nox_bins), K)
    return cells, t2, t2s


def _chance_floor(table: Table, scene: Scene, md: int) -> pd.DataFrame:
    """Source-free cells next to a source cell, counted like Table 2."""
    s = scene.s
    source_cells = scene.gridded["n_sources"].values > 0
    return overlap.chance_floor(
        source_cells,
        scene.obs,
        table.df,
        scene.lat_edges,
        scene.lon_edges,
        neighbourhood=int(s.chance_neighbourhood),
        mode=str(s.match_mode),
        distance_km=float(s.match_distance_km),
        min_observations=int(s.min_observations),
        min_detections=md,
    )


def _sources(table: Table, scene: Scene, md: int) -> pd.DataFrame:
    """The inventory sources inside the grid, found or not under each rule (and, for the model's per-overpass
    table, their detection frequency over the valid overpasses)."""
    s = scene.s
    cols = ["id", "lat", "lon", "nox_t_per_yr", "co2_t_per_yr", "obs_count", "observed", "region", "nn_km"]
    src = scene.src[cols + (["unit_ids"] if "unit_ids" in scene.src else [])].copy()
    for rule in RULES:
        n = matching.n_overpasses(table.pairs[rule], len(src))
        src[f"n_detections_{rule}"] = n
        src[f"found_{rule}"] = src["observed"] & (n >= md)
    paper_rule = "cell" if str(s.match_mode) == "cell" else "distance"
    src["matched"] = src[f"found_{paper_rule}"]
    if table.per_overpass and table.name in {t for t, _ in scene.rule_names}:
        src["n_valid"] = scene.n_valid
        for rule in RULES:
            row = scene.rule_names.index((table.name, rule))
            src[f"n_detections_valid_{rule}"] = scene.sums["det_valid"][row]
        with np.errstate(invalid="ignore", divide="ignore"):
            src["detection_frequency"] = np.where(
                src["n_valid"] > 0, src[f"n_detections_valid_{s.source_rule}"] / np.maximum(src["n_valid"], 1), np.nan
            )
    return src


def _co2_overlap(src: pd.DataFrame, s) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fig. 10: the strong CO2 sources and, by region, the share with a hotspot (paper rule and strict)."""
    thr = float(s.co2_threshold_kt_per_month) * 1000.0 * 12.0
    strong = src[src["co2_t_per_yr"] >= thr].reset_index(drop=True)
    co2 = overlap.co2_overlap_by_region(strong, s.regions, "evaluate.regions")
    co2_strict = overlap.co2_overlap_by_region(
        strong.assign(matched=strong["found_strict"]), s.regions, "evaluate.regions"
    )
    by_region = co2.merge(
        co2_strict[["region", "n_matched", "pct_matched"]].rename(
            columns={"n_matched": "n_matched_strict", "pct_matched": "pct_matched_strict"}
        ),
        on="region",
    )
    return strong, by_region


def _recall_curves(table: Table, scene: Scene, src: pd.DataFrame, md: int) -> dict[str, pd.DataFrame]:
    """Recall by emission, observation count, neighbour distance (and cloud-edge distance), every rule side by
    side."""
    s = scene.s
    found = {r: src[f"found_{r}"].to_numpy(bool) for r in RULES}
    out = {
        "recall_by_emission": rules_by_bins(
            src["nox_t_per_yr"], s.recall_emission_bins_t_per_yr, src["observed"], found
        ),
        "recall_by_obs": rules_by_bins(
            src["obs_count"],
            s.recall_obs_bins,
            src["observed"],  # a cell below evaluate's min_observations is unobserved here too, as in every table
            {r: (src[f"n_detections_{r}"] >= md).to_numpy() for r in RULES},
        ),
        "recall_by_neighbour": rules_by_bins(src["nn_km"], s.recall_neighbour_bins_km, src["observed"], found),
    }
    if table.per_overpass and scene.sums.get("n_truth", 0) and (table.name, RULES[0]) in scene.rule_names:
        out["recall_by_cloud_edge"] = cloud_edge_table(table.name, scene)
    return out


def rules_by_bins(values, edges, observed, found: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per bin of ``values``: totals and, per rule, found / observed."""
    full, keys, names = overlap.bin_edges_and_labels(list(edges))
    b = overlap.assign_bins(np.asarray(values, float), full)
    observed = np.asarray(observed, bool)
    rows = []
    for i, (k, n) in enumerate([*zip(keys, names), ("all", "all")]):
        sel = (b == i) if k != "all" else (b >= 0)
        obs = sel & observed
        row = {
            "bin": k,
            "range": n,
            "lower": full[i] if k != "all" else full[0],
            "upper": full[i + 1] if k != "all" else np.inf,
            "n_total": int(sel.sum()),
            "n_observed": int(obs.sum()),
            "n_unobserved": int(sel.sum() - obs.sum()),
        }
        for r, f in found.items():
            kf = int((obs & f).sum())
            row[f"n_found_{r}"] = kf
            row[f"rate_{r}"] = kf / row["n_observed"] if row["n_observed"] else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def cloud_edge_table(name: str, scene: Scene) -> pd.DataFrame:
    """(source, overpass) pairs with the source validly observed, by distance to the nearest cloudy truth pixel."""
    full, keys, names = overlap.bin_edges_and_labels(list(scene.cloud_bins_km))
    n = scene.sums["cloud_n"]
    df = pd.DataFrame({"bin": keys, "range": names, "lower": full[:-1], "upper": full[1:], "n_observations": n})
    for rule in RULES:
        d = scene.sums["cloud_det"][scene.rule_names.index((name, rule))]
        df[f"n_detected_{rule}"] = d
        with np.errstate(invalid="ignore", divide="ignore"):
            df[f"rate_{rule}"] = np.where(n > 0, d / np.maximum(n, 1), np.nan)
    total = {"bin": "all", "range": "all", "lower": full[0], "upper": np.inf, "n_observations": int(n.sum())}
    for rule in RULES:
        total[f"n_detected_{rule}"] = int(df[f"n_detected_{rule}"].sum())
        total[f"rate_{rule}"] = total[f"n_detected_{rule}"] / total["n_observations"] if n.sum() else np.nan
    return pd.concat([df, pd.DataFrame([total])], ignore_index=True)


def num(v):
    """JSON-safe number: NaN/inf -> None (DVC and json.loads read it as null)."""
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) or math.isinf(v) else v


def _metrics(table: Table, out: dict, floor: dict, s) -> tuple[dict, dict]:
    """(paper figures, beyond the paper): flat, unprefixed."""
    paper: dict = {}
    for _, r in out["table2"].iterrows():
        b = r["bin"]
        paper[f"table2_rate_{b}"] = num(r["rate"])
        paper[f"table2_found_{b}"] = int(r["n_found"])
        paper[f"table2_total_{b}"] = int(r["n_observed"])
        paper[f"table2_unobserved_{b}"] = int(r["n_unobserved"])
    for _, r in out["co2_overlap_by_region"].iterrows():
        sfx = "" if r["region"] == "all" else f"_{r['region']}"
        paper[f"co2_overlap_pct{sfx}"] = num(r["pct_matched"])
        paper[f"co2_overlap_n{sfx}"] = int(r["n_matched"])
        paper[f"co2_overlap_total{sfx}"] = int(r["n_observed"])
        paper[f"co2_overlap_unobserved{sfx}"] = int(r["n_unobserved"])

    more: dict = {}
    for _, r in out["table2_strict"].iterrows():
        b = r["bin"]
        more[f"table2_strict_rate_{b}"] = num(r["rate"])
        more[f"table2_strict_found_{b}"] = int(r["n_found"])
    for _, r in out["co2_overlap_by_region"].iterrows():
        sfx = "" if r["region"] == "all" else f"_{r['region']}"
        more[f"co2_overlap_strict_pct{sfx}"] = num(r["pct_matched_strict"])
    more["chance_floor"] = num(floor["rate"])
    more["chance_floor_found"] = floor["n_found"]
    more["chance_floor_total"] = floor["n_observed"]
    for key, frame in (("lowest_bin_over_chance", "table2"), ("lowest_bin_strict_over_chance", "table2_strict")):
        low = out[frame].set_index("bin")["rate"].iloc[-2]  # the lowest bin (paper order: highest first, then "all")
        more[key] = num(low / floor["rate"]) if floor["rate"] and not math.isnan(low) else None
    p = out["precision"].set_index("level")
    more["hotspot_precision"] = num(p.loc["detection", "precision"])
    more["site_precision"] = num(p.loc["site", "precision"])
    more["n_hotspots"] = int(len(table.df))
    more["n_sites"] = int(len(out["hotspot_sites"]))
    more["n_sites_matched"] = int(out["hotspot_sites"]["matched"].sum()) if len(out["hotspot_sites"]) else 0
    lo = out["localisation"].set_index("subset")
    more["loc_error_km_median"] = num(lo.loc["all", "p50_km"])
    more["loc_error_km_p90"] = num(lo.loc["all", "p90_km"])
    more["loc_error_km_median_matched"] = num(lo.loc["matched", "p50_km"])
    src = out["sources"]
    obs = src[src["observed"]]
    for rule in RULES:
        more[f"source_recall_{rule}"] = num(obs[f"found_{rule}"].mean()) if len(obs) else None
    rule = s.source_rule
    for _, r in out["recall_by_neighbour"].iterrows():
        if r["bin"] != "all":
            more[f"recall_nn_{r['bin']}km"] = num(r[f"rate_{rule}"])
    if "recall_by_cloud_edge" in out:
        for _, r in out["recall_by_cloud_edge"].iterrows():
            if r["bin"] != "all":
                more[f"recall_cloud_edge_{r['bin']}km"] = num(r[f"rate_{rule}"])
    if "detection_frequency" in src:
        f = src.loc[src["observed"] & (src["n_valid"] > 0), "detection_frequency"]
        more["detection_frequency_median"] = num(f.median()) if len(f) else None
        more["detection_frequency_mean"] = num(f.mean()) if len(f) else None
    return paper, more
