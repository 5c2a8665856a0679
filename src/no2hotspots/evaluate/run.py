"""The ``evaluate`` stage: score each collection's hotspot tables against its inventory of point sources.

``python -m no2hotspots evaluate [evaluate.collection=NAME]`` reads ``<evaluate.ingest_dir>/<c>/`` (grid.nc and the
overpass files, no2hotspots.contracts.grid), ``<evaluate.detect_dir>/<c>/`` (hotspots.csv, period.nc, the overpass
files, detect.json; no2hotspots.contracts.detections) and every other table in ``evaluate.tables`` that exists
(composite, hybrid, baseline), streams the overpass files once (:mod:`.stream`, units on Dask), scores every table
with the same code (:mod:`.tables`) and writes ``<evaluate.out_dir>/<c>/`` (replaced as a whole),
``metrics/evaluate_<c>.json`` (the paper's figures first) and ``plots/evaluate/<c>_table2.csv``; then logs to MLflow
per ``evaluate.log_to``.
docs/evaluate.md describes every file and metric.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from ..atomic import Group, atomic_group, write_csv, write_text
from ..config import require_int
from ..contracts import grid as grid_contract
from ..inventory.gridding import (
    cell_index,
    coverage_description,
    fine_obs_count,
    grid_points,
    obs_count_array,
    regular_edges,
)
from ..units import digest
from . import inputs, matching, overlap, precision, settings, stream, timeseries
from .facilities import group_units
from .geo import PointIndex, haversine_km
from .matching import RULES
from .tables import PAPER_CO2_OVERLAP_PCT, PAPER_TABLE2, Scene, Table, evaluate_table, num, prepare

log = logging.getLogger(__name__)


def grid_bbox(grid) -> dict:
    """The ingest grid's outer box (from lat_bnds/lon_bnds, else centres +- half a cell)."""
    if "lat_bnds" in grid and "lon_bnds" in grid:
        lat, lon = grid["lat_bnds"].values, grid["lon_bnds"].values
    else:
        r = float(grid.attrs["resolution_deg"])
        lat = np.stack([grid["lat"].values - r / 2, grid["lat"].values + r / 2], axis=1)
        lon = np.stack([grid["lon"].values - r / 2, grid["lon"].values + r / 2], axis=1)
    return {
        "lat_min": float(lat.min()),
        "lat_max": float(lat.max()),
        "lon_min": float(lon.min()),
        "lon_max": float(lon.max()),
    }


def fine_cells(lat, lon, grid) -> tuple[np.ndarray, np.ndarray]:
    """Row/column of the collection grid cell holding each point (-1 outside)."""
    glat, glon = grid["lat"].values, grid["lon"].values
    res = float(grid.attrs["resolution_deg"])
    out = []
    for v, g in ((np.asarray(lat, float), glat), (np.asarray(lon, float), glon)):
        if not len(g):
            out.append(np.full(len(v), -1))
            continue
        i = np.rint((v - g[0]) / res).astype(int)
        ok = (i >= 0) & (i < len(g))
        ok[ok] &= np.abs(v[ok] - g[i[ok]]) <= res / 2 + 1e-9
        out.append(np.where(ok, i, -1))
    return out[0], out[1]


def stencil(grid, lat, radius_km: float) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (K, 2) of the fine cells around a point and, per point, which lie within ``radius_km`` of it."""
    res = float(grid.attrs["resolution_deg"])
    lat = np.asarray(lat, float)
    km_deg = 111.19
    coslat = max(float(np.cos(np.deg2rad(np.nanmax(np.abs(lat))))) if len(lat) else 1.0, 0.05)
    ni = int(np.ceil(radius_km / (km_deg * res))) if radius_km > 0 else 0
    nj = int(np.ceil(radius_km / (km_deg * res * coslat))) if radius_km > 0 else 0
    di, dj = np.meshgrid(np.arange(-ni, ni + 1), np.arange(-nj, nj + 1), indexing="ij")
    offsets = np.stack([di.ravel(), dj.ravel()], axis=1)
    # distance from the point's cell centre to the offset cell centre
    dlat = offsets[None, :, 0] * res
    dlon = offsets[None, :, 1] * res
    d = haversine_km(lat[:, None], 0.0, lat[:, None] + dlat, dlon)
    return offsets, (d <= radius_km + 1e-9) | ((offsets[None, :, 0] == 0) & (offsets[None, :, 1] == 0))


def load_tables(cfg: DictConfig, name: str, index: pd.DataFrame) -> list[Table]:
    out = []
    for spec in settings.tables_for(cfg, name):
        if not spec["path"].exists() and not spec["required"]:
            log.info("evaluate %s: no %s table (%s); skipped", name, spec["name"], spec["path"])
            continue
        df = inputs.read_table(spec["path"], spec["kind"], index)
        out.append(Table(spec["name"], spec["kind"], df, required=spec["required"]))
    # the model's table (the first required per-overpass one) first: its sites and series are followed over time
    first = next((t for t in out if t.required and t.per_overpass), out[0])
    return [first] + [t for t in out if t is not first]


def evaluate_collection(cfg: DictConfig, name: str) -> dict:
    """Run the evaluation of one collection, write its outputs and return its flat metrics."""
    t0 = time.perf_counter()
    s = settings.settings_for(cfg, name)
    mode = _log_mode(cfg, name)
    per_unit = require_int(cfg, "evaluate.overpasses_per_unit", 1)
    ing_dir, ddir = settings.ingest_dir(cfg, name), settings.detect_dir(cfg, name)
    grid = grid_contract.open_grid(ing_dir)
    index = grid_contract.overpass_index(grid)
    tables = load_tables(cfg, name, index)  # the model's table first
    detect_meta = inputs.read_detect_json(ddir / "detect.json")
    inv = group_units(
        inputs.load_inventory(s.inventory, f"evaluate.collections.{name}.inventory"), float(s.facility_km)
    )

    scene = make_scene(s, grid, inv, tables)
    for t in tables:
        prepare(t, scene)
    model = tables[0]
    points, series_pairs = follow_points(s, scene, model)
    freq = str(s.timeseries.period)
    periods = sorted({period_of(t, freq) for t in index["time"]})
    ctx = stream_context(s, scene, tables, grid, points, series_pairs, periods, ing_dir, ddir, name)
    sums, n_units = stream_pass(cfg, name, ctx, index, freq, per_unit)
    obs = observation_count(s, sums, grid, scene)
    add_observations(s, scene, sums, obs)

    # every table by the same code; the model's time series and change test
    results = {t.name: evaluate_table(t, scene) for t in tables}
    if model.per_overpass:
        _site_frequency(results[model.name], sums, len(scene.src))
    series = timeseries.series_table(points, periods, sums, _nox_per_period(model.df, series_pairs, freq))
    changes, has_truth_change = _changes(s, scene, points, periods, sums, freq)
    metrics = _metrics(tables, results, scene, sums, changes, has_truth_change, index, s)
    side = side_by_side(tables, results)

    out_dir = settings.out_dir(cfg, name)
    summary = {
        "collection": name,
        "settings": OmegaConf.to_container(s, resolve=True),
        "tables": [{"name": t.name, "kind": t.kind, "rows": int(len(t.df))} for t in tables],
        "stream": {
            "n_overpasses": int(sums["n_overpasses"]),
            "n_units": n_units,
            "n_relative_emission_files": int(sums["n_rel_files"]),
            "n_truth_files": int(sums["n_truth"]),
        },
        "detect": detect_meta,
        "metrics": metrics,
    }
    with atomic_group() as out:  # the folder, metrics and plot data are replaced together (no2hotspots.atomic)
        tmp = out.folder(out_dir)
        _write_folder(tmp, name, s, obs, tables, results, side, series, changes, summary)
        if s.maps:
            _figures(tmp, name, grid, ddir, tables, results, scene, series, changes, s)
        _write_metrics_and_plot_data(out, cfg, name, metrics, side)
    _log_headline(name, sums, tables, metrics, time.perf_counter() - t0)
    if mode != "none":
        from .mlflow_log import log_evaluation

        digest_ = digest(OmegaConf.to_container(s, resolve=True))
        log_evaluation(cfg, name, mode, detect_meta.get("run_id"), metrics, out_dir, side, digest_)
    return metrics


def _log_mode(cfg: DictConfig, name: str) -> str:
    """``evaluate.log_to``, turned into ``new_run`` for a run by hand whose settings differ from params.yaml."""
    mode = settings.log_to(cfg)
    if mode == "model_run" and settings.differs_from_pipeline(cfg):
        log.warning(
            "evaluate %s: the evaluate settings differ from params.yaml (a run by hand with overrides): logging to a "
            "new MLflow run tagged evaluates_run, not over the pipeline's evaluation of the model's run",
            name,
        )
        mode = "new_run"
    return mode


def stream_pass(cfg: DictConfig, name: str, ctx: stream.Context, index, freq: str, per_unit: int) -> tuple[dict, int]:
    """The one pass over the overpass files, in units on Dask: the reduced sums and the number of units. Each unit's
    sums are added as they come, in the units' order (so the same float sums whatever the workers), and dropped: a
    unit's result is one evaluation grid plus points x periods (~7.8 MB on ``china_year``'s year, 58 units: held
    all together, +431 MB; benchmarks/evaluate_memory.py)."""
    from ..parallel import iter_units

    batches = stream.batches(index, lambda t: period_of(t, freq), per_unit)
    sums = stream.empty_sums(ctx)
    for part in iter_units(stream.accumulate_batch, batches, cfg, desc=f"evaluate {name}", shared={"ctx": ctx}):
        stream.add_sums(sums, part)
    return sums, len(batches)


def add_observations(s, scene: Scene, sums: dict, obs) -> None:
    """Put the pass's results on the scene: observation counts per cell and per source, valid overpasses."""
    scene.obs, scene.sums = obs.values, sums
    n_src = len(scene.src)
    scene.n_valid = sums["series"]["n_valid"][:n_src].sum(axis=1)
    scene.src["obs_count"] = scene.obs[scene.src["iy"], scene.src["ix"]] if n_src else np.zeros(0, int)
    scene.src["observed"] = scene.src["obs_count"] >= int(s.min_observations)


def _changes(s, scene: Scene, points, periods, sums: dict, freq: str) -> tuple[pd.DataFrame, bool]:
    """The change test per followed point, checked against the injected changes where the truth has them."""
    changes = timeseries.change_table(
        points, periods, sums, alpha=float(s.timeseries.alpha), min_valid=int(s.timeseries.min_valid)
    )
    has_truth_change = {"change_date", "change_factor"} <= set(scene.src.columns)
    if has_truth_change:
        changes = timeseries.injected(changes, scene.src, periods, freq, int(s.timeseries.tolerance_periods))
    return changes, has_truth_change


def _write_folder(tmp: Path, name: str, s, obs, tables, results, side, series, changes, summary: dict) -> None:
    """The collection's tables, observation counts and evaluate.json into the folder being assembled."""
    obs.to_dataset().assign_attrs(
        Conventions="CF-1.10", title=f"valid observations per {s.grid_res_deg:g} deg cell (Fig. 8)", collection=name
    ).to_netcdf(tmp / "obs_count.nc", engine="netcdf4")
    write_csv(side, tmp / "table2_side_by_side.csv")
    write_csv(summary_side_by_side(tables, results), tmp / "summary_side_by_side.csv")
    for t in tables:
        for fname, df in results[t.name][0].items():
            if fname == "hotspots_matched":
                df = df.assign(time=_iso(df["time"]))
            write_csv(df, tmp / t.name / f"{fname}.csv")
    write_csv(series, tmp / "timeseries.csv")
    write_csv(changes, tmp / "changes.csv")
    write_text(tmp / "evaluate.json", json.dumps(summary, indent=2, default=_json_default) + "\n")


def _write_metrics_and_plot_data(out: Group, cfg: DictConfig, name: str, metrics: dict, side: pd.DataFrame) -> None:
    """``metrics/evaluate_<c>.json`` (the paper's figures first: write_json would sort the keys) and the Table 2
    plot data: one row per table (model, composite, hybrid, baseline, the paper), rule and bin, with a bar ``label``;
    staged in ``out``, the stage's atomic group."""
    out.write_text(
        Path(str(cfg.paths.metrics)) / f"evaluate_{name}.json",
        json.dumps(metrics, indent=2, default=_json_default) + "\n",
    )
    out.write_csv(table2_plot_rows(side), Path(str(cfg.paths.plots)) / "evaluate" / f"{name}_table2.csv")


def table2_plot_rows(side: pd.DataFrame) -> pd.DataFrame:
    """Long Table 2 for ``dvc plots``: ``label`` (table / rule / bin), ``table``, ``rule``, ``bin``, ``rate_pct``."""
    rows = []
    for _, r in side.iterrows():
        if "paper_pct" in side.columns and pd.notna(r["paper_pct"]):
            rows.append(("paper (MEIC, China 2019)", "paper's", r["range"], r["paper_pct"]))
        for col in side.columns:
            if col.endswith("_strict_pct"):
                rows.append((col[: -len("_strict_pct")], "strict", r["range"], r[col]))
            elif col.endswith("_pct") and col != "paper_pct":
                rows.append((col[: -len("_pct")], "paper's", r["range"], r[col]))
    out = pd.DataFrame(rows, columns=["table", "rule", "bin", "rate_pct"])
    out.insert(0, "label", out["table"] + " / " + out["rule"] + " / " + out["bin"].astype(str))
    return out


def _log_headline(name: str, sums: dict, tables, metrics: dict, seconds: float) -> None:
    headline = ("table2_rate_all", "table2_strict_rate_all", "site_precision", "chance_floor")
    log.info(
        "evaluate %s (%d overpasses, %d tables, %.1f s): %s",
        name,
        sums["n_overpasses"],
        len(tables),
        seconds,
        ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in metrics.items()
            if k.split("/")[-1].startswith(headline)
        ),
    )


def _site_frequency(result, sums: dict, n_src: int) -> None:
    """Detection frequency of the model's hotspot sites (points n_src.. of the stream, in site order)."""
    frames, (_, more) = result
    sites = frames["hotspot_sites"]
    ser = sums["series"]
    rows = n_src + np.arange(len(sites))
    sites["n_valid"] = ser["n_valid"][rows].sum(axis=1)
    sites["n_detections_valid"] = ser["n_detections_valid"][rows].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        freq = np.where(sites["n_valid"] > 0, sites["n_detections_valid"] / np.maximum(sites["n_valid"], 1), np.nan)
    sites["detection_frequency"] = freq
    ok = np.isfinite(freq)
    more["site_detection_frequency_median"] = num(np.median(freq[ok])) if ok.any() else None


def period_of(t, freq: str) -> str:
    """The period label (e.g. 2019-07) of a time, UTC wall time; '' for no time."""
    return str(pd.Timestamp(t).tz_localize(None).to_period(freq)) if pd.notna(t) else ""


def make_scene(s, grid, inv: pd.DataFrame, tables: list[Table]) -> Scene:
    """The evaluation grid, the inventory on it and the sources inside it (what every table is scored against)."""
    lat_edges, lon_edges = regular_edges(grid_bbox(grid), float(s.grid_res_deg), key="evaluate.grid_res_deg")
    gridded = grid_points(inv, lat_edges, lon_edges, ("nox_t_per_yr", "co2_t_per_yr"))
    iy, ix = cell_index(inv["lat"], lat_edges), cell_index(inv["lon"], lon_edges)
    inside = (iy >= 0) & (ix >= 0)
    src = inv[inside].copy().reset_index(drop=True)
    src["iy"], src["ix"] = iy[inside], ix[inside]
    inv_to_src = np.full(len(inv), -1)
    inv_to_src[np.nonzero(inside)[0]] = np.arange(int(inside.sum()))
    src["region"] = overlap.region_names(src, s.regions, "evaluate.regions")
    inv_index = PointIndex(inv["lat"], inv["lon"])
    src["nn_km"] = inv_index.nearest_other(src["lat"], src["lon"])
    return Scene(
        s=s,
        lat_edges=lat_edges,
        lon_edges=lon_edges,
        gridded=gridded,
        obs=None,
        inv=inv,
        inv_index=inv_index,
        inv_to_src=inv_to_src,
        src=src,
        src_index=PointIndex(src["lat"], src["lon"]),
        rule_names=tuple((t.name, r) for t in tables if t.per_overpass for r in RULES),
        cloud_bins_km=np.asarray(list(s.cloud_edge.bins_km), float),
    )


def follow_points(s, scene: Scene, model: Table) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The points followed over time (the sources in the grid, then the model's hotspot sites) and which model
    hotspot detects which point (``s`` point, ``h`` hotspot row, ``overpass``): sources by ``evaluate.source_rule``,
    sites by their own hotspots."""
    src = scene.src
    mdet, msites = precision.match_hotspots(
        model.df, scene.inv, match_distance_km=float(s.match_distance_km), merge_distance_km=float(s.merge_distance_km)
    )
    sites = pd.DataFrame(
        {
            "id": [f"site-{int(i)}" for i in msites["site_id"]],
            "lat": msites["lat"].to_numpy(float),
            "lon": msites["lon"].to_numpy(float),
            "region": overlap.region_names(msites, s.regions, "evaluate.regions").to_numpy(),
            "kind": "site",
        }
    )
    points = pd.concat([src[["id", "lat", "lon", "region"]].assign(kind="source"), sites], ignore_index=True)
    site_point = {int(sid): len(src) + k for k, sid in enumerate(msites["site_id"])}
    by_rule = model.pairs[str(s.source_rule)][["s", "overpass", "h"]]
    by_site = pd.DataFrame(
        {"s": [site_point[int(v)] for v in mdet["site_id"]], "overpass": mdet["overpass"], "h": np.arange(len(mdet))}
    )
    return points, pd.concat([by_rule, by_site], ignore_index=True)


def stream_context(s, scene, tables, grid, points, series_pairs, periods, ing_dir, ddir, name) -> stream.Context:
    """What every unit of the pass over the overpass files needs (sent once to each worker)."""
    model = tables[0]
    truth_dir = s.truth_fields if s.truth_fields and Path(str(s.truth_fields)).is_dir() else None
    if s.truth_fields and truth_dir is None:
        log.warning("evaluate %s: truth fields %s not found; no recall by cloud-edge distance", name, s.truth_fields)
    fi, fj = fine_cells(points["lat"], points["lon"], grid)
    cy, cx = cell_index(points["lat"], scene.lat_edges), cell_index(points["lon"], scene.lon_edges)
    ok = (cy >= 0) & (cx >= 0)
    offsets, in_radius = stencil(grid, points["lat"], float(s.point_radius_km))
    return stream.Context(
        ingest_dir=str(ing_dir),
        detect_dir=str(ddir) if (ddir / "overpasses").is_dir() else None,  # the model's relative-emission maps
        truth_dir=str(truth_dir) if truth_dir else None,
        lat=grid["lat"].values,
        lon=grid["lon"].values,
        lat_bnds=grid["lat_bnds"].values if "lat_bnds" in grid else None,
        lon_bnds=grid["lon_bnds"].values if "lon_bnds" in grid else None,
        lat_edges=scene.lat_edges,
        lon_edges=scene.lon_edges,
        coverage_min=float(s.coverage_min),
        point_valid_coverage=float(s.point_valid_coverage),
        n_sources=len(scene.src),
        p_fi=fi,
        p_fj=fj,
        p_cy=np.where(ok, cy, -1),
        p_cx=np.where(ok, cx, -1),
        p_lat=points["lat"].to_numpy(float),
        p_lon=points["lon"].to_numpy(float),
        offsets=offsets,
        in_radius=in_radius,
        periods=tuple(periods),
        series=matching.per_overpass(series_pairs) if model.per_overpass else {},
        by_rule={(t.name, r): matching.per_overpass(t.pairs[r]) for t in tables if t.per_overpass for r in RULES},
        rule_names=scene.rule_names,
        cloud_fraction=float(s.cloud_edge.cloud_fraction),
        cloud_bins_km=scene.cloud_bins_km,
    )


def observation_count(s, sums: dict, grid, scene: Scene):
    """Fig. 8: the streamed coverage count, or max/median of the ingest grid's fine obs_count."""
    if s.obs_method == "coverage":
        desc = coverage_description(float(s.coverage_min))
        return obs_count_array(sums["obs"], scene.lat_edges, scene.lon_edges, desc, "coverage")
    return fine_obs_count(
        grid["obs_count"].values, grid["lat"].values, grid["lon"].values, scene.lat_edges, scene.lon_edges, s.obs_method
    )


def _iso(t: pd.Series) -> pd.Series:
    t = pd.to_datetime(t, utc=True)
    return t.dt.strftime("%Y-%m-%dT%H:%M:%SZ").where(t.notna(), "")


def _json_default(o):
    from ..atomic import to_builtin

    v = to_builtin(o)
    if v is o:
        return str(o)
    return v


def _nox_per_period(table: pd.DataFrame, pairs: pd.DataFrame, freq: str) -> pd.DataFrame:
    """Mean NOx estimate and number of hotspots per (point, period) from the (point, hotspot) pairs."""
    if not len(pairs) or not len(table):
        return pd.DataFrame({"point": [], "period": [], "mean_nox_estimate_t_per_yr": [], "n_hotspots": []})
    h = pairs["h"].to_numpy(int)
    t = pd.to_datetime(table["time"], utc=True).dt.tz_localize(None).dt.to_period(freq).astype(str)
    df = pd.DataFrame(
        {
            "point": pairs["s"].to_numpy(int),
            "period": t.to_numpy()[h],
            "nox": table["nox_rate_estimate_t_per_yr"].to_numpy(float)[h],
        }
    )
    g = df.groupby(["point", "period"])
    return pd.DataFrame({"mean_nox_estimate_t_per_yr": g["nox"].mean(), "n_hotspots": g.size()}).reset_index()


def side_by_side(tables: list[Table], results: dict) -> pd.DataFrame:
    """Table 2 of every table next to the paper's: rows = bins (paper order), then the chance floor."""
    first = results[tables[0].name][0]["table2"]
    out = first[["bin", "range"]].copy()
    out["paper_pct"] = [PAPER_TABLE2.get(b, np.nan) for b in out["bin"]]
    chance_row = {"bin": "chance_floor", "range": "source-free cells next to a source cell", "paper_pct": np.nan}
    for t in tables:
        frames, (_, more) = results[t.name]
        t2, t2s = frames["table2"], frames["table2_strict"]
        out[f"{t.name}_found"] = t2["n_found"].to_numpy()
        out[f"{t.name}_observed"] = t2["n_observed"].to_numpy()
        out[f"{t.name}_pct"] = 100 * t2["rate"].to_numpy(float)
        out[f"{t.name}_strict_found"] = t2s["n_found"].to_numpy()
        out[f"{t.name}_strict_pct"] = 100 * t2s["rate"].to_numpy(float)
        chance_row[f"{t.name}_found"] = more["chance_floor_found"]
        chance_row[f"{t.name}_observed"] = more["chance_floor_total"]
        chance_row[f"{t.name}_pct"] = 100 * more["chance_floor"] if more["chance_floor"] is not None else np.nan
    return pd.concat([out, pd.DataFrame([chance_row])], ignore_index=True)


def summary_side_by_side(tables: list[Table], results: dict) -> pd.DataFrame:
    """Every metric (rows) of every table (columns), with the paper's value where it gives one."""
    names = []
    values: dict[str, dict] = {}
    for t in tables:
        paper, more = results[t.name][1]
        values[t.name] = {**paper, **more}
        names += [k for k in {**paper, **more} if k not in names]
    paper_vals = {f"table2_rate_{b}": v / 100 for b, v in PAPER_TABLE2.items()}
    paper_vals["co2_overlap_pct"] = PAPER_CO2_OVERLAP_PCT
    df = pd.DataFrame({"metric": names, "paper": [paper_vals.get(n, np.nan) for n in names]})
    for t in tables:
        df[t.name] = [values[t.name].get(n) for n in names]
    return df


def _metrics(tables, results, scene, sums, changes, has_truth_change, index, s) -> dict:
    """Flat metrics, the paper's figures first: Fig. 8, then Table 2 and Fig. 10 of every table, then the rest."""
    K = int(s.min_observations)
    obs = scene.obs
    m: dict = {
        "fig8/n_overpasses": int(len(index)),
        "fig8/n_cells": int(obs.size),
        "fig8/n_cells_observed": int((obs >= K).sum()) if K > 0 else int((obs > 0).sum()),
        "fig8/obs_count_median": num(np.median(obs)) if obs.size else None,
        "fig8/obs_count_max": int(obs.max()) if obs.size else 0,
    }
    for t in tables:
        paper, _ = results[t.name][1]
        m.update({f"{t.name}/{k}": v for k, v in paper.items()})
    for t in tables:
        _, more = results[t.name][1]
        m.update({f"{t.name}/{k}": v for k, v in more.items()})
    src = scene.src
    m["inventory/n_sources"] = int(len(src))
    m["inventory/n_sources_observed"] = int(src["observed"].sum())
    cells = results[tables[0].name][0]["cells"]
    m["inventory/n_cells"] = int(len(cells))
    m["inventory/n_cells_observed"] = int(cells["observed"].sum())
    m["timeseries/n_points"] = int(len(changes))
    m["timeseries/n_sites"] = int((changes["kind"] == "site").sum())
    m["timeseries/n_periods"] = int(len(sums["series"]["n_valid"][0])) if len(changes) else 0
    m["timeseries/n_tested"] = int(changes["tested"].sum())
    m["timeseries/n_flagged"] = int(changes["flagged"].sum())
    m["timeseries/n_flagged_sites"] = int((changes["flagged"] & (changes["kind"] == "site")).sum())
    m["timeseries/n_flagged_sources"] = int((changes["flagged"] & (changes["kind"] == "source")).sum())
    if has_truth_change:
        inj = changes["injected"].to_numpy(bool)
        m["timeseries/injected_n"] = int(inj.sum())
        m["timeseries/injected_found"] = int(changes["change_found"].sum())
        unchanged_src = (changes["kind"] == "source").to_numpy() & ~inj
        m["timeseries/flagged_unchanged_sources"] = int((changes["flagged"].to_numpy() & unchanged_src).sum())
    m["settings/min_observations"] = K
    m["settings/match_distance_km"] = float(s.match_distance_km)
    m["stream/n_truth_files"] = int(sums["n_truth"])
    return m


def _figures(tmp: Path, name: str, grid, ddir: Path, tables, results, scene: Scene, series, changes, s) -> None:
    from ..contracts import detections
    from . import maps

    res = float(s.grid_res_deg)
    coast = str(s.coastline_resolution)
    le, lo = scene.lat_edges, scene.lon_edges
    src = scene.src
    maps.fig8_obs_count(
        scene.obs,
        le,
        lo,
        src,
        float(s.coverage_min),
        int(s.min_observations),
        tmp / "fig8_obs_count.png",
        f"{name}: valid observations per {res:g}° cell over {int(scene.sums['n_overpasses'])} overpasses",
        coast,
    )
    maps.no2_map(grid, src, le, lo, tmp / "map_no2_mean.png", f"{name}: mean NO2 over the counted overpasses", coast)
    model = tables[0]
    frames = results[model.name][0]
    period = detections.open_period(ddir) if (ddir / detections.PERIOD_FILE).exists() else None
    thr = float(s.fig9b_min_rel_emission)
    maps.fig9b_period_hotspots(
        frames["hotspot_sites"],
        period,
        le,
        lo,
        src,
        thr,
        tmp / "fig9b_period_hotspots.png",
        f"{name}: {model.name} hotspot sites over the period",
        coast,
    )
    paper_rule = "cell" if s.match_mode == "cell" else "distance"
    strong = frames["co2_overlap"]
    maps.fig10_co2_sources(
        strong,
        frames["co2_overlap_by_region"],
        OmegaConf.to_container(s.regions) if s.regions else {},
        le,
        lo,
        float(s.co2_threshold_kt_per_month),
        maps.rule_text(paper_rule, float(s.match_distance_km), res),
        tmp / "fig10_co2_sources.png",
        f"{name}: strong CO2 sources with an NO2 hotspot ({model.name})",
        coast,
    )
    rule = str(s.source_rule)
    label = f"{rule} rule: " + maps.rule_text(rule, float(s.match_distance_km), res)
    for t in tables:
        f = results[t.name][0]
        maps.hotspot_map(
            f["sources"],
            f["hotspots_matched"],
            le,
            lo,
            rule=rule,
            rule_label=label,
            distance_km=float(s.match_distance_km),
            path=tmp / t.name / "map_hotspots.png",
            title=f"{name} ({t.name}): {len(t.df)} hotspots, {len(f['sources'])} inventory sources",
            res_coast=coast,
        )
    if len(series):
        _timeseries_figures(tmp, name, model.name, series, changes, label, s)


def _timeseries_figures(tmp: Path, name: str, table: str, series, changes, label: str, s) -> None:
    """One time-series figure per region (and one for the points outside every region)."""
    from . import maps

    per = str(s.timeseries.period)
    regions = list((s.regions or {}).keys())
    labels = series["region"].fillna("").astype(str)
    groups = [(r, labels == r) for r in regions] + [("other" if regions else "all", labels == "")]
    for region, sel in groups:
        if not sel.any():
            continue
        pts = series.loc[sel, "point"].unique()
        maps.timeseries_plot(
            series[sel],
            changes.loc[pts],
            region,
            int(s.timeseries.max_lines),
            label,
            tmp / f"timeseries_{region}.png",
            f"{name}, {region}: {_PERIOD_WORDS.get(per, f'per {per} period')} series of the {table} table",
        )


_PERIOD_WORDS = {"M": "monthly", "W": "weekly", "D": "daily", "Q": "quarterly"}


def run(cfg: DictConfig) -> dict:
    """Evaluate every selected collection; returns {collection: metrics}."""
    return {name: evaluate_collection(cfg, name) for name in settings.collections_to_run(cfg)}
