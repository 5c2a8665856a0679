"""The disk of the integrated mass enhancement and of the flux divergence, shared with other known sources.

A disk of radius R = 20 km around a source also holds any other source within R, and both methods then count it:
on the demo year's OSSE the period estimates at sites with another true source 10-20 km away read 1.51 (IME) and
1.19 (divergence) times the rate of the sources within 10 km, 0.92 and 0.80 at sites without one (the validation
OSSE: 1.46 and 1.25, 0.95 and 0.91). The sources that
share the disk (``Scene.sharing``: for a hotspot the overpass's other hotspots and the period sites, for a period
site the other period sites; only those at least ``quantify.disk_split_min_km`` away, 10 km = ``period.merge_km`` and
``co2.match_km``, nearer ones being the same site: :func:`.overpass.sharing_sources`) therefore take their side of
it: a cell belongs to this source only where it is nearer to it than to each of them (the half-way line between the
two; cells on a line count with the share of their area on this side, as cells on the disk's rim do). The truth an
estimate is compared to is attributed the same way (an inventory source counts at the nearest of these points).

- Flux divergence (``quantify.divergence.split_disk``, off by default): the sum of E over any region is the outflow
  through its boundary plus the loss inside, so the other source's emission (its E peak) stays on its side and a
  plume that only passes through adds nothing; but a source's E is spread over the pixels, and a period site sits a
  few km from its source, so the cut also takes this source's own E: on the validation OSSE (sites > 5 kt, period)
  0.91 -> 0.67 of the truth at sites without a neighbour, 1.25 -> 0.88 at those with one, where IME's split took
  0.95 -> 0.89 and 1.46 -> 1.18 (its median |ln ratio| over all sites 0.225 -> 0.180): on for IME, off here.
- IME: the plume leaves the region where its path along the wind meets the first half-way line or the rim, after
  L = min(R, min over the sources ahead of |o|^2 / (2 h.o)) (h the wind's heading, o the source's offset), and the
  residence time is that of L. A plume that passes through from a source upwind stays in the mass: not corrected.
  Without a wind direction the IME keeps the whole disk (where the plume leaves this source's part is unknown).

Sources never detected are not known, and still count.
"""

from __future__ import annotations

import numpy as np

from .scene import Scene, cell_reach, disk_fraction, sub_offsets


def splitting(scene: Scene, radius_km: float) -> np.ndarray:
    """(k, 2): the offsets [km] of the sources sharing the disk whose half-way line crosses it (nearer than 2R)."""
    o = scene.sharing
    d = np.hypot(o[:, 0], o[:, 1])
    return o[(d > 1e-6) & (d < 2.0 * radius_km)]


def _this_side(x, y, o: np.ndarray) -> np.ndarray:
    """Whether the points (x, y) [km] lie nearer to the source (the origin) than to each source of ``o`` (k, 2)."""
    out = np.ones(np.shape(x), dtype=bool)
    for ok in o:
        out &= x * ok[0] + y * ok[1] < 0.5 * float(ok @ ok)
    return out


def own_fraction(scene: Scene, radius_km: float, sub: int = 5) -> np.ndarray:
    """The share of each cell's area within ``radius_km`` of the source and nearer to it than to any source of
    :func:`splitting`: :func:`.scene.disk_fraction` where none splits the disk."""
    frac = disk_fraction(scene, radius_km, sub)
    o = splitting(scene, radius_km)
    if not len(o):
        return frac
    # signed distance of each cell centre beyond each half-way line (> 0: on the other source's side)
    d = np.hypot(o[:, 0], o[:, 1])
    beyond = (scene.x[..., None] * o[:, 0] + scene.y[..., None] * o[:, 1] - 0.5 * d**2) / d
    reach = cell_reach(scene, sub)
    out = np.where(np.any(beyond > reach, axis=-1), 0.0, frac)
    cut = np.flatnonzero((out > 0) & np.any(beyond >= -reach, axis=-1))
    if cut.size:
        ox, oy = sub_offsets(scene, cut, sub)
        x, y = scene.x.ravel()[cut][None] + ox, scene.y.ravel()[cut][None] + oy
        out.flat[cut] = ((np.hypot(x, y) <= radius_km) & _this_side(x, y, o)).mean(axis=0)
    return out


def own_side(scene: Scene, radius_km: float) -> np.ndarray:
    """Cells whose centre is nearer to the source than to any source of :func:`splitting` (whole cells, as the flux
    divergence's difference stencil takes them)."""
    return _this_side(scene.x, scene.y, splitting(scene, radius_km))


def exit_km(scene: Scene, radius_km: float, direction_from_deg: float) -> float:
    """L: how far along the wind (from ``direction_from_deg``) the plume stays in the source's part of the disk."""
    o = splitting(scene, radius_km)
    if not len(o) or not np.isfinite(direction_from_deg):
        return float(radius_km)
    phi = np.radians(direction_from_deg)
    ahead = o[:, 0] * -np.sin(phi) + o[:, 1] * -np.cos(phi)  # h.o, h the heading
    a = ahead > 0
    if not a.any():
        return float(radius_km)
    return float(min(radius_km, np.min(np.sum(o[a] ** 2, axis=1) / (2.0 * ahead[a]))))
