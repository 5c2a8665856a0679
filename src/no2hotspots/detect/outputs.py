"""Detection products in ``outputs/detect/<collection>/`` (docs/contracts.md, Detections).

The caller hands a (temporary) folder that is renamed into place as a whole, so the files here are written
directly into it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..atomic import to_builtin
from .hotspots import COLUMN_DOCS, COLUMNS

ESTIMATE_NOTE = (
    "nox_rate_estimate_t_per_yr is an ESTIMATE: emission_min_t_per_yr + peak_rel_emission * "
    "(emission_max_t_per_yr - emission_min_t_per_yr) using the model's training range; relative emission is the "
    "model output, not a measured emission"
)


def emission_dataset(grid: xr.Dataset, rel: np.ndarray, ids: np.ndarray, attrs: dict) -> xr.Dataset:
    """``relative_emission(time,lat,lon)``, ``relative_emission_max(lat,lon)``, ``hotspot_id(time,lat,lon)``."""
    coords = {
        "time": ("time", grid["time"].values, {**grid["time"].attrs, "standard_name": "time"}),
        "lat": (
            "lat",
            grid["lat"].values,
            {"standard_name": "latitude", "units": "degrees_north", "long_name": "latitude of cell centre"},
        ),
        "lon": (
            "lon",
            grid["lon"].values,
            {"standard_name": "longitude", "units": "degrees_east", "long_name": "longitude of cell centre"},
        ),
    }
    with np.errstate(invalid="ignore"), _quiet():
        rmax = np.nanmax(rel, axis=0) if rel.shape[0] else np.full(rel.shape[1:], np.nan, np.float32)
    ds = xr.Dataset(
        {
            "relative_emission": (
                ("time", "lat", "lon"),
                rel.astype(np.float32),
                {
                    "units": "1",
                    "long_name": "relative emission estimated by the CNN (0..1 of the model's training range)",
                    "comment": "NaN where there was no valid input; " + ESTIMATE_NOTE,
                    "valid_min": np.float32(0.0),
                    "valid_max": np.float32(1.0),
                },
            ),
            "relative_emission_max": (
                ("lat", "lon"),
                rmax.astype(np.float32),
                {"units": "1", "long_name": "maximum over time of relative_emission", "cell_methods": "time: maximum"},
            ),
            "hotspot_id": (
                ("time", "lat", "lon"),
                ids.astype(np.int32),
                {"long_name": "hotspot_id of the region each cell belongs to (0 = none), see hotspots.csv"},
            ),
        },
        coords=coords,
    )
    for b, c in (("lat_bnds", "lat"), ("lon_bnds", "lon")):
        if b in grid:
            ds[b] = ((c, grid[b].dims[-1]), grid[b].values, {"units": ds[c].attrs["units"]})
            ds[c] = ds[c].assign_attrs(bounds=b)
    ds.attrs.update({"Conventions": "CF-1.10", "title": "no2hotspots relative-emission map and hotspots"})
    ds.attrs.update({k: _nc_attr(v) for k, v in attrs.items()})
    return ds


def write_tables(df: pd.DataFrame, folder: Path, meta: dict) -> None:
    """hotspots.csv (plain CSV, one row per hotspot) and hotspots.geojson (Points at the peak)."""
    df = df[list(COLUMNS)]
    df.to_csv(folder / "hotspots.csv", index=False)
    features = []
    for row in df.to_dict(orient="records"):
        props = {k: to_builtin(v) for k, v in row.items()}
        features.append(
            {
                "type": "Feature",
                "id": props["hotspot_id"],
                "geometry": {"type": "Point", "coordinates": [props["peak_lon"], props["peak_lat"]]},
                "properties": props,
            }
        )
    fc = {
        "type": "FeatureCollection",
        "features": features,
        # foreign member (RFC 7946 section 6.1): what the properties mean and which model produced them
        "metadata": {**meta, "note": ESTIMATE_NOTE, "columns": COLUMN_DOCS},
    }
    (folder / "hotspots.geojson").write_text(json.dumps(fc, indent=1, default=to_builtin) + "\n")


def write_summary(folder: Path, summary: dict) -> None:
    (folder / "detect.json").write_text(json.dumps(summary, indent=2, sort_keys=True, default=to_builtin) + "\n")


def write_map(
    folder: Path,
    lat: np.ndarray,
    lon: np.ndarray,
    no2: np.ndarray,
    hotspots: pd.DataFrame,
    *,
    title: str,
    sources: pd.DataFrame | None = None,
    source_label: str = "inventory",
) -> None:
    """map.png: NO2 field [umol m-2] with hotspot peaks (size ~ relative emission) and inventory sources."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    aspect = 1.0 / max(np.cos(np.deg2rad(float(np.mean(lat)))), 0.1)
    width = 8.0
    height = float(np.clip(width * aspect * (np.ptp(lat) + 1e-9) / (np.ptp(lon) + 1e-9), 3.0, 12.0))
    fig, ax = plt.subplots(figsize=(width, height))
    try:
        mesh = ax.pcolormesh(lon, lat, np.ma.masked_invalid(no2 * 1e6), shading="nearest", cmap="viridis")
        cb = fig.colorbar(mesh, ax=ax, shrink=0.85)
        cb.set_label("tropospheric NO$_2$ column [µmol m$^{-2}$]")
        if sources is not None and len(sources):
            ax.scatter(
                sources["lon"],
                sources["lat"],
                marker="^",
                s=40,
                facecolor="none",
                edgecolor="white",
                linewidth=1.2,
                label=source_label,
                zorder=3,
            )
        if len(hotspots):
            size = 30 + 270 * np.clip(hotspots["peak_rel_emission"].to_numpy(float), 0, 1)
            ax.scatter(
                hotspots["peak_lon"],
                hotspots["peak_lat"],
                s=size,
                facecolor="none",
                edgecolor="red",
                linewidth=1.5,
                label="hotspot (size ~ relative emission)",
                zorder=4,
            )
        if len(hotspots) or (sources is not None and len(sources)):
            ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
        ax.set_xlabel("longitude [°E]")
        ax.set_ylabel("latitude [°N]")
        ax.set_aspect(aspect)
        ax.set_title(title, fontsize=10)
        fig.savefig(folder / "map.png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)


def _nc_attr(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float, str, np.integer, np.floating)):
        return v
    return json.dumps(v, default=to_builtin)


class _quiet:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *a):
        return self._w.__exit__(*a)
