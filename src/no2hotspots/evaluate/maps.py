"""PNG maps of one evaluated collection (matplotlib, Agg backend): mean NO2, observation counts, and hotspots over
the inventory sources (sized by NOx emission, coloured found / missed / unobserved)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from ..atomic import save_figure


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _extent(ax, lat_edges, lon_edges):
    ax.set_xlim(lon_edges[0], lon_edges[-1])
    ax.set_ylim(lat_edges[0], lat_edges[-1])
    ax.set_xlabel("longitude [degrees_east]")
    ax.set_ylabel("latitude [degrees_north]")
    ax.set_aspect(1.0 / max(np.cos(np.deg2rad(0.5 * (lat_edges[0] + lat_edges[-1]))), 0.1))


def _sizes(nox):
    nox = np.asarray(nox, float)
    return 10 + 190 * np.sqrt(nox / max(np.nanmax(nox), 1e-9)) if len(nox) else nox


def no2_map(ingest: xr.Dataset, sources: pd.DataFrame, lat_edges, lon_edges, path, title: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 6))
    if "no2_mean" in ingest:
        m = ax.pcolormesh(
            ingest["lon"], ingest["lat"], ingest["no2_mean"].values * 1e6, shading="nearest", cmap="viridis"
        )
        fig.colorbar(m, ax=ax, label="mean tropospheric NO2 [µmol m-2]")
    else:
        ax.text(0.5, 0.5, "no no2_mean in the ingest grid", transform=ax.transAxes, ha="center")
    ax.scatter(
        sources["lon"],
        sources["lat"],
        s=_sizes(sources["nox_t_per_yr"]),
        facecolors="none",
        edgecolors="white",
        linewidths=0.8,
        label="inventory source (size ~ NOx)",
    )
    _extent(ax, lat_edges, lon_edges)
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title(title)
    save_figure(fig, path)
    plt.close(fig)


def obs_map(
    ingest: xr.Dataset, obs_coarse: xr.DataArray, lat_edges, lon_edges, min_observations: int, path, title: str
) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    m0 = axes[0].pcolormesh(ingest["lon"], ingest["lat"], ingest["obs_count"].values, shading="nearest", cmap="magma")
    fig.colorbar(m0, ax=axes[0], label="overpasses")
    axes[0].set_title("ingest grid obs_count")
    m1 = axes[1].pcolormesh(lon_edges, lat_edges, obs_coarse.values, shading="flat", cmap="magma")
    fig.colorbar(m1, ax=axes[1], label="valid observations")
    axes[1].set_title(f"evaluation grid (cells with < {min_observations} are unobserved)")
    for ax in axes:
        _extent(ax, lat_edges, lon_edges)
    fig.suptitle(title)
    save_figure(fig, path)
    plt.close(fig)


def hotspot_map(sources: pd.DataFrame, det: pd.DataFrame, lat_edges, lon_edges, path, title: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 6))
    for lo in lon_edges:
        ax.axvline(lo, color="0.9", lw=0.4, zorder=0)
    for la in lat_edges:
        ax.axhline(la, color="0.9", lw=0.4, zorder=0)
    status = np.where(~sources["observed"], "unobserved", np.where(sources["matched"], "found", "missed"))
    for name, colour in (("found", "tab:green"), ("missed", "tab:red"), ("unobserved", "0.6")):
        sel = status == name
        ax.scatter(
            sources.loc[sel, "lon"],
            sources.loc[sel, "lat"],
            s=_sizes(sources["nox_t_per_yr"])[sel],
            c=colour,
            alpha=0.6,
            edgecolors="k",
            linewidths=0.3,
            label=f"source {name} ({int(sel.sum())})",
        )
    if len(det):
        ax.scatter(
            det["peak_lon"],
            det["peak_lat"],
            marker="x",
            c=np.where(det["matched"], "k", "tab:orange"),
            s=25,
            linewidths=1.0,
            label=f"hotspot peak ({len(det)}; orange = no source nearby)",
        )
    _extent(ax, lat_edges, lon_edges)
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title(title)
    save_figure(fig, path)
    plt.close(fig)
