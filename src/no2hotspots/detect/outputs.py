"""The detection map (map.png) and the note every hotspot table carries about its NOx column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

ESTIMATE_NOTE = (
    "nox_rate_estimate_t_per_yr is an ESTIMATE: emission_min_t_per_yr + peak_rel_emission * "
    "(emission_max_t_per_yr - emission_min_t_per_yr) using the model's training range; relative emission is the "
    "model output, not a measured emission"
)


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
