"""What the paper leaves out: how many hotspots are real (precision) and how far they sit from the source.
Every hotspot table (per overpass, composite, baseline) goes through the same functions.

* Per detection: every row of hotspots.csv (one hotspot of one overpass) is matched to its nearest inventory source
  (great-circle distance from the hotspot peak). It is a true detection when that distance is at most
  ``match_distance_km``. ``hotspot_precision`` = true detections / all detections.
* Per site: hotspots of different overpasses whose peaks lie within ``merge_distance_km`` of each other (single
  linkage, i.e. chains merge) form one hotspot site, located at the peak-emission-weighted mean of its peaks.
  ``site_precision`` = sites whose location is within ``match_distance_km`` of a source / all sites. A persistent
  false hotspot thus counts once per site but once per overpass in the per-detection figure.
* Localisation error: distance from each hotspot peak to its nearest source, summarised as percentiles over all
  detections and over the true ones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .geo import PointIndex, single_linkage

PERCENTILES = (10, 25, 50, 75, 90)


def merge_sites(hotspots: pd.DataFrame, merge_distance_km: float) -> np.ndarray:
    """Site number (0..n_sites-1, in order of first appearance) of each hotspot, single-linkage within distance."""
    return single_linkage(hotspots["peak_lat"].to_numpy(float), hotspots["peak_lon"].to_numpy(float), merge_distance_km)


def match_hotspots(
    hotspots: pd.DataFrame, sources: pd.DataFrame, *, match_distance_km: float, merge_distance_km: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-detection and per-site tables with the nearest source, its distance and the ``matched`` flag."""
    index = PointIndex(sources["lat"], sources["lon"])
    cols = ["hotspot_id", "overpass", "time", "peak_lat", "peak_lon", "peak_rel_emission", "nox_rate_estimate_t_per_yr"]
    det = hotspots[[c for c in cols if c in hotspots.columns]].copy()
    idx, dist = index.nearest(det["peak_lat"], det["peak_lon"])
    det["site_id"] = merge_sites(det, merge_distance_km)
    det["nearest_source_id"] = np.where(idx >= 0, sources["id"].to_numpy()[np.maximum(idx, 0)], "") if len(det) else []
    det["nearest_source_km"] = dist
    det["matched"] = dist <= match_distance_km

    if len(det):
        w = det["peak_rel_emission"].clip(lower=1e-12).fillna(1.0)
        g = det.assign(w=w, wlat=w * det["peak_lat"], wlon=w * det["peak_lon"]).groupby("site_id")
        sites = pd.DataFrame(
            {
                "n_detections": g.size(),
                "n_overpasses": g["overpass"].nunique(),
                "lat": g["wlat"].sum() / g["w"].sum(),
                "lon": g["wlon"].sum() / g["w"].sum(),
                "max_peak_rel_emission": g["peak_rel_emission"].max(),
            }
        ).reset_index()
    else:
        sites = pd.DataFrame(
            {
                "site_id": np.zeros(0, int),
                "n_detections": np.zeros(0, int),
                "n_overpasses": np.zeros(0, int),
                "lat": np.zeros(0),
                "lon": np.zeros(0),
                "max_peak_rel_emission": np.zeros(0),
            }
        )
    sidx, sdist = index.nearest(sites["lat"].to_numpy(float), sites["lon"].to_numpy(float))
    sites["nearest_source_id"] = (
        np.where(sidx >= 0, sources["id"].to_numpy()[np.maximum(sidx, 0)], "") if len(sites) else []
    )
    sites["nearest_source_km"] = sdist
    sites["matched"] = sdist <= match_distance_km
    return det, sites


def precision_table(det: pd.DataFrame, sites: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for level, t in (("detection", det), ("site", sites)):
        n = len(t)
        k = int(t["matched"].sum()) if n else 0
        rows.append({"level": level, "n": n, "n_matched": k, "n_unmatched": n - k, "precision": k / n if n else np.nan})
    return pd.DataFrame(rows)


def localisation_table(det: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for subset, t in (("all", det), ("matched", det[det["matched"]] if len(det) else det)):
        d = t["nearest_source_km"].to_numpy(float)
        d = d[np.isfinite(d)]
        row = {"subset": subset, "n": int(len(d)), "mean_km": float(d.mean()) if len(d) else np.nan}
        for p in PERCENTILES:
            row[f"p{p}_km"] = float(np.percentile(d, p)) if len(d) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)
