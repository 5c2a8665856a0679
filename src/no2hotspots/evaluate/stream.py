"""The evaluation's pass over the overpass files, one file at a time: the unit of the evaluate stage.

A unit is a run of consecutive overpasses (``evaluate.overpasses_per_unit``); for each it reads the ingest overpass
file (coverage, NO2), the model's detection overpass file (relative emission) and, where the OSSE's truth is
configured, the granule's truth fields (cloud fraction), and adds to small accumulators:

* the paper's observation count per evaluation cell (:class:`~no2hotspots.inventory.gridding.ObsCounter`);
* per point (inventory sources inside the grid, then the model's hotspot sites) and per period (month): valid
  observations (the point's 0.05 deg cell covered to >= ``point_valid_coverage``), overpasses whose evaluation
  cell was observed (the Fig. 8 rule), detections, and the sum / sum of squares of the relative emission at the
  point (max over the cells within ``point_radius_km``) over its valid observations;
* per table and per-source rule, detections on valid observations (detection frequency);
* per table and rule, (source, overpass) pairs by distance to the nearest cloud edge: observed / detected.

A unit returns sums only, so memory is one evaluation grid plus (points x periods), whatever the number of
overpasses. Units run on Dask or in process (:func:`no2hotspots.parallel.map_units`); the sums do not depend on
how the overpasses are split into units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..contracts import detections
from ..contracts import grid as grid_contract
from ..inventory.gridding import ObsCounter

SERIES_FIELDS = ("n_valid", "n_cell_observed", "n_detections", "n_detections_valid", "n_rel", "sum_rel", "sumsq_rel")


@dataclass(frozen=True)
class Overpass:
    key: str
    period: str  # period label (e.g. 2019-07)
    i0: int
    j0: int
    source_file: str


@dataclass(frozen=True)
class Batch:
    overpasses: tuple[Overpass, ...]


@dataclass
class Context:
    """What every unit needs (sent once to each worker)."""

    ingest_dir: str
    detect_dir: str | None  # the model's detection folder (per-overpass relative emission), or None
    truth_dir: str | None
    lat: np.ndarray  # collection grid cell centres
    lon: np.ndarray
    lat_bnds: np.ndarray | None
    lon_bnds: np.ndarray | None
    lat_edges: np.ndarray  # evaluation grid
    lon_edges: np.ndarray
    coverage_min: float
    point_valid_coverage: float
    # points (sources first: 0..n_sources-1, then sites)
    n_sources: int
    p_fi: np.ndarray  # fine cell of each point on the collection grid (-1 outside)
    p_fj: np.ndarray
    p_cy: np.ndarray  # evaluation cell (-1 outside)
    p_cx: np.ndarray
    p_lat: np.ndarray
    p_lon: np.ndarray
    offsets: np.ndarray  # (K, 2) fine-cell offsets of the relative-emission neighbourhood
    in_radius: np.ndarray  # (P, K) bool
    periods: tuple[str, ...]
    # detections: series[key] -> points detected in that overpass (model: sources by the source rule, sites by
    # membership); by_rule[(table, rule)][key] -> sources detected
    series: dict = field(default_factory=dict)
    by_rule: dict = field(default_factory=dict)
    rule_names: tuple = ()
    cloud_fraction: float = 0.5
    cloud_bins_km: np.ndarray = field(default_factory=lambda: np.zeros(0))


def batches(index, period_of, per_unit: int) -> list[Batch]:
    """Consecutive runs of ``per_unit`` overpasses of the ingest index (sorted by time)."""
    rows = [
        Overpass(str(r.key), period_of(r.time), int(r.i0), int(r.j0), str(r.source_file))
        for r in index.sort_values(["time", "key"], kind="stable").itertuples()
    ]
    return [Batch(tuple(rows[i : i + per_unit])) for i in range(0, len(rows), per_unit)]


def empty_sums(ctx: Context) -> dict:
    n_p = len(ctx.p_fi)
    n_b = len(ctx.cloud_bins_km)
    return {
        "obs": np.zeros((len(ctx.lat_edges) - 1, len(ctx.lon_edges) - 1), np.int32),
        "series": {f: np.zeros((n_p, len(ctx.periods)), np.float64 if "sum" in f else np.int32) for f in SERIES_FIELDS},
        "det_valid": np.zeros((len(ctx.rule_names), ctx.n_sources), np.int32),
        "cloud_n": np.zeros(n_b, np.int64),
        "cloud_det": np.zeros((len(ctx.rule_names), n_b), np.int64),
        "n_overpasses": 0,
        "n_truth": 0,
        "n_rel_files": 0,
    }


def add_sums(total: dict, part: dict) -> dict:
    for k, v in part.items():
        if k == "series":
            for f, a in v.items():
                total["series"][f] += a
        else:
            total[k] = total[k] + v
    return total


def accumulate_batch(batch: Batch, *, ctx: Context) -> dict:
    """The sums of one run of overpasses (see the module docstring); top-level, so Dask can ship it."""
    sums = empty_sums(ctx)
    counter = ObsCounter(
        ctx.lat,
        ctx.lon,
        ctx.lat_edges,
        ctx.lon_edges,
        coverage_min=ctx.coverage_min,
        lat_bnds=ctx.lat_bnds,
        lon_bnds=ctx.lon_bnds,
    )
    period_index = {p: i for i, p in enumerate(ctx.periods)}
    for op in batch.overpasses:
        ing = grid_contract.open_overpass(grid_contract.overpass_path(ctx.ingest_dir, op.key))
        cov = np.nan_to_num(ing["coverage"].values.astype(float), nan=0.0)
        no2 = ing["no2"].values
        ny, nx = cov.shape
        observed = counter.add(cov, op.i0, op.j0)
        t = period_index[op.period]
        ser = sums["series"]

        # the point's own cell
        li, lj = ctx.p_fi - op.i0, ctx.p_fj - op.j0
        inside = (ctx.p_fi >= 0) & (li >= 0) & (li < ny) & (lj >= 0) & (lj < nx)
        valid = np.zeros(len(li), bool)
        valid[inside] = (cov[li[inside], lj[inside]] >= ctx.point_valid_coverage) & np.isfinite(
            no2[li[inside], lj[inside]]
        )
        cell_ok = ctx.p_cy >= 0
        cell_obs = np.zeros(len(li), bool)
        cell_obs[cell_ok] = observed[ctx.p_cy[cell_ok], ctx.p_cx[cell_ok]]
        ser["n_valid"][:, t] += valid
        ser["n_cell_observed"][:, t] += cell_obs

        # relative emission near the point, over its valid observations
        rel_file = detections.overpass_path(ctx.detect_dir, op.key) if ctx.detect_dir else None
        if rel_file is not None and rel_file.exists():
            rel = detections.open_overpass(rel_file)["relative_emission"].values
            r = _neighbourhood_max(rel, li, lj, ctx.offsets, ctx.in_radius)
            ok = valid & np.isfinite(r)
            ser["n_rel"][:, t] += ok
            ser["sum_rel"][:, t] += np.where(ok, r, 0.0)
            ser["sumsq_rel"][:, t] += np.where(ok, r * r, 0.0)
            sums["n_rel_files"] += 1

        # detections in this overpass
        det = ctx.series.get(op.key)
        if det is not None and len(det):
            ser["n_detections"][det, t] += 1
            ser["n_detections_valid"][det, t] += valid[det]
        rule_det = []
        for k, name in enumerate(ctx.rule_names):
            d = ctx.by_rule.get(name, {}).get(op.key, np.zeros(0, int))
            sums["det_valid"][k, d] += valid[d]
            rule_det.append(d)

        # distance of validly observed sources to the nearest cloud edge (the OSSE's truth)
        if ctx.truth_dir and len(ctx.cloud_bins_km):
            dist = cloud_edge_km(Path(ctx.truth_dir), op.source_file, ctx, valid[: ctx.n_sources])
            if dist is not None:
                sums["n_truth"] += 1
                src_valid = np.nonzero(valid[: ctx.n_sources])[0]
                b = _bin(dist[src_valid], ctx.cloud_bins_km)
                sums["cloud_n"] += np.bincount(b, minlength=len(ctx.cloud_bins_km))
                for k, d in enumerate(rule_det):
                    hit = np.isin(src_valid, d)
                    sums["cloud_det"][k] += np.bincount(b[hit], minlength=len(ctx.cloud_bins_km))
        sums["n_overpasses"] += 1
    sums["obs"] = counter.counts
    return sums


def _neighbourhood_max(rel: np.ndarray, li, lj, offsets, in_radius) -> np.ndarray:
    """Max of ``rel`` over each point's cells within the radius that lie in this overpass's part (NaN if none)."""
    ny, nx = rel.shape
    ii = li[:, None] + offsets[None, :, 0]
    jj = lj[:, None] + offsets[None, :, 1]
    ok = in_radius & (ii >= 0) & (ii < ny) & (jj >= 0) & (jj < nx)
    vals = np.full(ii.shape, np.nan, np.float32)
    vals[ok] = rel[ii[ok], jj[ok]]
    with np.errstate(all="ignore"):
        out = np.where(
            np.isfinite(vals).any(axis=1), np.nanmax(np.where(np.isfinite(vals), vals, -np.inf), axis=1), np.nan
        )
    return out


def _bin(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each distance: [e0, e1), ..., [e_last, inf) (inf = no cloud: the last bin)."""
    idx = np.searchsorted(edges, values, side="right") - 1
    return np.clip(idx, 0, len(edges) - 1)


def truth_path(truth_dir: Path, source_file: str) -> Path:
    """The OSSE's per-granule truth file: ``<truth_dir>/<granule stem>_truth.nc``."""
    return Path(truth_dir) / f"{Path(source_file).stem}_truth.nc"


def cloud_edge_km(truth_dir: Path, source_file: str, ctx: Context, which: np.ndarray) -> np.ndarray | None:
    """Great-circle distance from each selected source (``which``) to the nearest cloudy truth pixel centre (inf when
    the granule has none); None when there is no truth file for this overpass."""
    path = truth_path(truth_dir, source_file)
    if not path.exists():
        return None
    from scipy.spatial import cKDTree

    from ..readfile import open_netcdf
    from .geo import EARTH_RADIUS_KM, unit_vectors

    out = np.full(ctx.n_sources, np.nan)
    if not which.any():
        return out
    ds = open_netcdf(path, load=True, what="OSSE truth fields")
    missing = [v for v in ("cloud_fraction", "latitude", "longitude") if v not in ds]
    if missing:
        from ..errors import InputFileError

        raise InputFileError(path, f"missing variable(s) {', '.join(missing)} (not an OSSE truth file?)")
    cf = ds["cloud_fraction"].values
    cloudy = np.isfinite(cf) & (cf >= ctx.cloud_fraction)
    plat = ctx.p_lat[: ctx.n_sources][which]
    plon = ctx.p_lon[: ctx.n_sources][which]
    if not cloudy.any():
        out[which] = np.inf
        return out
    lat = ds["latitude"].values[cloudy]
    lon = ds["longitude"].values[cloudy]
    tree = cKDTree(unit_vectors(lat, lon))
    chord, _ = tree.query(unit_vectors(plat, plon), k=1)
    out[which] = 2 * EARTH_RADIUS_KM * np.arcsin(np.clip(np.asarray(chord) / 2, 0, 1))
    return out
