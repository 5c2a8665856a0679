"""What detect writes for a collection once its overpasses are done: the hotspot table over the period, the period
maps (accumulated one overpass at a time), the summary and the map, published in one rename."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .. import units
from ..atomic import atomic_path, write_json
from ..contracts import detections
from ..contracts import grid as grid_contract
from .composite import composite_hotspots, full_blocks, local_maxima, peak_cells, peak_counts
from .outputs import ESTIMATE_NOTE, write_map

log = logging.getLogger(__name__)


def hotspot_table(results: list[dict], grid: xr.Dataset) -> pd.DataFrame:
    """All hotspots, ids 1..n ordered by time, overpass and peak; ``obs_count`` of the peak cell over the period.
    Each result's ``hotspots`` are columns (:func:`no2hotspots.detect.overpass.columns`)."""
    names = [c for c in detections.COLUMNS if c not in ("hotspot_id", "obs_count")]
    parts = [pd.DataFrame(r["hotspots"], columns=names) for r in results if len(r["hotspots"][names[0]])]
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=names)
    df = df.sort_values(["time", "overpass", "overpass_hotspot"], kind="stable").reset_index(drop=True)
    df.insert(0, "hotspot_id", np.arange(1, len(df) + 1, dtype=np.int64))
    res = float(grid.attrs["resolution_deg"])
    lat, lon = grid["lat"].values, grid["lon"].values
    i, j = peak_cells(df["peak_lat"].to_numpy(float), df["peak_lon"].to_numpy(float), lat, lon, res)
    obs = grid["obs_count"].values
    df["obs_count"] = obs[np.clip(i, 0, obs.shape[0] - 1), np.clip(j, 0, obs.shape[1] - 1)].astype(np.int64)
    return df[list(detections.COLUMNS)]


def accumulate(index: pd.DataFrame, grid: xr.Dataset, units_dir: Path, level: float | None = None) -> dict:
    """relative_emission max/mean, n_valid and n_detections on the collection grid, streaming the overpasses; with
    ``level``, also ``n_maxima``: overpasses whose map has a local maximum >= level in the cell
    (:func:`no2hotspots.detect.composite.local_maxima`, for the recurrence rule's ``level``), and ``n_maxima_valid``:
    overpasses that observed the cell's whole 3x3 block (:func:`~no2hotspots.detect.composite.full_blocks`, the
    overpasses in which it can be one)."""
    shape = (grid.sizes["lat"], grid.sizes["lon"])
    rmax = np.full(shape, -np.inf, np.float32)
    rsum = np.zeros(shape, np.float64)
    n_valid = np.zeros(shape, np.int32)
    n_det = np.zeros(shape, np.int32)
    n_max = np.zeros(shape, np.int32) if level is not None else None
    n_block = np.zeros(shape, np.int32) if level is not None else None
    for r in index.itertuples():
        ds = detections.open_overpass(units_dir / f"{r.key}.nc")
        rel = ds["relative_emission"].values
        ok = np.isfinite(rel)
        w = (slice(r.i0, r.i0 + r.ny), slice(r.j0, r.j0 + r.nx))
        rmax[w] = np.maximum(rmax[w], np.where(ok, rel, -np.inf))
        rsum[w] += np.where(ok, rel, 0.0)
        n_valid[w] += ok
        n_det[w] += ds["hotspot_id"].values > 0
        if n_max is not None:
            blocks = full_blocks(rel)
            n_max[w] += local_maxima(rel, level, blocks)
            n_block[w] += blocks
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_valid > 0, rsum / np.maximum(n_valid, 1), np.nan)
        # leave-one-out of the largest value: a one-off alarm adds nothing, a repeated signal stays
        trimmed = np.where(
            n_valid > 1, (rsum - np.where(np.isfinite(rmax), rmax, 0.0)) / np.maximum(n_valid - 1, 1), np.nan
        )
    out = {
        "rel_trimmed": trimmed,
        "rel_max": np.where(np.isfinite(rmax), rmax, np.nan),
        "rel_mean": mean,
        "n_valid": n_valid,
        "n_detections": n_det,
    }
    if n_max is not None:
        out["n_maxima"] = n_max
        out["n_maxima_valid"] = n_block
    return out


class SatelliteTest:
    """The downwind test of :mod:`.downwind` as the ``satellites`` callable of the recurrence rule: streams the
    overpasses once (each map's maxima >= ``level``, the wind at the sites at its time) and keeps a summary."""

    def __init__(self, index: pd.DataFrame, units_dir: Path, level: float, winds, d: dict):
        self.index, self.units_dir, self.level, self.winds, self.d = index, units_dir, float(level), winds, d
        self.summary: dict = {}

    def _overpasses(self, cells, site_lat, site_lon, pair):
        """The overpasses whose window holds a tested site; the wind sampled at the partner sites only."""
        tested, origin = pair.any(axis=1), np.flatnonzero(pair.any(axis=0))
        for r in self.index.itertuples():
            i, j = cells[tested, 0] - r.i0, cells[tested, 1] - r.j0
            if not ((i >= 0) & (i < r.ny) & (j >= 0) & (j < r.nx)).any():
                continue
            rel = detections.open_overpass(self.units_dir / f"{r.key}.nc")["relative_emission"].values
            blocks = full_blocks(rel)
            mx = np.where(blocks, local_maxima(rel, self.level, blocks).astype(np.float64), np.nan)
            direction = np.full(len(cells), np.nan)
            direction[origin] = self.winds.at(site_lat[origin], site_lon[origin], np.datetime64(r.time)).direction_from
            yield mx, direction, (r.i0, r.j0)

    def __call__(self, cells, site_lat, site_lon, share) -> np.ndarray:
        from . import downwind

        cells = np.asarray(cells)
        pair, dx, dy = downwind.partners(site_lat, site_lon, share, self.d["radius_km"])
        c = downwind.count_overpasses(
            self._overpasses(cells, site_lat, site_lon, pair), cells, pair, dx, dy, self.d["half_angle_deg"]
        )
        p, sat = downwind.satellite_test(c["n_obs"], c["n_obs_down"], c["n_hit"], c["n_hit_down"], self.d["alpha"])
        self.summary = {
            **{k: self.d[k] for k in ("alpha", "radius_km", "half_angle_deg")},
            "n_sites": int(len(cells)),
            "n_tested": int(pair.any(axis=1).sum()),
            "n_dropped": int(sat.sum()),
        }
        log.info("downwind test: %(n_tested)d of %(n_sites)d site(s) tested, %(n_dropped)d dropped", self.summary)
        return sat


def publish(
    name: str,
    out_dir: Path,
    units_dir: Path,
    grid: xr.Dataset,
    results: list[dict],
    summary: dict,
    model_info: dict,
    inventory: pd.DataFrame | None,
    composite: dict | None = None,
    winds=None,
) -> pd.DataFrame:
    """``<out_dir>/`` assembled in a temporary folder and swapped in as a whole. ``winds`` (a
    :class:`no2hotspots.winds.WindField`) serves the recurrence rule's downwind test when it is on."""
    index = grid_contract.overpass_index(grid)
    index = index[index["key"].isin([r["key"] for r in results])]
    table = hotspot_table(results, grid)
    enabled = bool(composite and composite.get("enabled"))
    level = composite["recurrence"].get("level") if enabled and composite.get("rule") == "recurrence" else None
    period = accumulate(index, grid, units_dir, level)
    lat, lon, res = grid["lat"].values, grid["lon"].values, float(grid.attrs["resolution_deg"])
    period["n_peaks"] = peak_counts(table["peak_lat"].to_numpy(float), table["peak_lon"].to_numpy(float), lat, lon, res)
    dw = (composite or {}).get("recurrence", {}).get("downwind") or {}
    test = enabled and composite.get("rule") == "recurrence" and dw.get("alpha") is not None and winds is not None
    sat = SatelliteTest(index, units_dir, level, winds, dw) if test else None
    comp = composite_hotspots(period, lat, lon, composite, satellites=sat) if enabled else None
    summary = {
        **summary,
        "n_hotspots": int(len(table)),
        "n_composite_hotspots": None if comp is None else int(len(comp)),
        "composite_threshold": None if comp is None or not len(comp) else float(comp["threshold"].iloc[0]),
        "composite_downwind_test": None if sat is None else sat.summary,
        "hotspots_per_overpass": {k: int(v) for k, v in table.groupby("overpass").size().items()},
    }
    with atomic_path(out_dir, is_dir=True) as tmp:
        for key in index["key"]:
            units.link_into(units_dir / f"{key}.nc", detections.overpass_path(tmp, key))
        detections.write_hotspots(table, tmp, {**model_info, "collection": name, "note": ESTIMATE_NOTE})
        if comp is not None:
            comp.to_csv(tmp / detections.COMPOSITE_CSV, index=False)
        detections.write_period(
            tmp,
            lat=lat,
            lon=lon,
            res=res,
            rel_max=period["rel_max"],
            rel_mean=period["rel_mean"],
            n_valid=period["n_valid"],
            n_detections=period["n_detections"],
            n_peaks=period["n_peaks"],
            n_maxima=period.get("n_maxima"),
            n_maxima_valid=period.get("n_maxima_valid"),
            maxima_level=level,
            attrs={k: str(v) for k, v in model_info.items() if v is not None},
        )
        write_json(tmp / "detect.json", summary)
        sources = _inside(inventory, lat, lon, res)
        title = (
            f"{name}: {len(table)} hotspot(s) (r >= {summary['threshold']:g}) over {len(index)} overpass(es)\n"
            f"model {model_info.get('model_name') or model_info.get('model_uri')} "
            f"v{model_info.get('model_version') or '?'}"
        )
        write_map(
            tmp,
            lat,
            lon,
            grid["no2_mean"].values,
            table,
            title=title,
            sources=sources,
            source_label=f"inventory site, NOx >= {summary.get('overlay_min_nox_t_per_yr', 0):g} t/yr",
        )
    return table


def _inside(inventory: pd.DataFrame | None, lat, lon, res: float):
    if inventory is None or not len(inventory) or not len(lat) or not len(lon):
        return None
    inside = inventory["lat"].between(lat[0] - res / 2, lat[-1] + res / 2) & inventory["lon"].between(
        lon[0] - res / 2, lon[-1] + res / 2
    )
    return inventory[inside]
