"""The confirmation rule: the standardised flux divergence at each site.

The baseline's period-mean emission map E (mol m-2 s-1; cells observed on fewer than ``min_valid`` overpasses left
out) is box-smoothed over ``smooth_cells`` (the divergence is noisy cell to cell; NaN cells left out of each box)
and standardised by its own background: z = (E_s - median) / (1.4826 x MAD) over the map's cells, robust to the
sources it holds. A site is confirmed when z at its cell (the baseline grid's cell holding the site; with
``window_cells`` > 1 the highest z of the block of that many cells around it) is at least ``k_sigma``; a site off
the map or in an unobserved cell has z = NaN and is not confirmed. With ``snap_cells`` > 1 a confirmed site then
moves to the cell of the highest z of the UNSMOOTHED map in the block of that many cells around it
(:func:`snap_to_peak`): the model's sites sit downwind of their source, the divergence peaks at it; sites that land
in the same cell become one.

With ``baseline_sites`` the baseline's own period sites join the confirmed ones where none of those lies within
``merge_km`` (:func:`with_baseline_sites`): the divergence finds sources the model's recurrence misses (mostly
mid-sized ones in clusters), the model finds weak ones the divergence's threshold misses.

With ``point_contrast_min`` > 0 (opt-in) a site must also look like a POINT source (:func:`point_contrast`): the
share of its z that is local, 1 - (median z over the ring ``point_ring_km`` around it) / (z at its cell), at least
that. A stack's divergence is compact (Beirle et al., ESSD 2021: the divergence of the mean flux is "highly
sensitive for point sources", and their catalogue skips "area sources such as megacities"); an urban area's column,
through the sink term V / tau, raises the ring as much as the centre. The ring's median, not its mean, so one
neighbouring stack in it does not count; a site whose ring has no observed cell, or whose own z is not positive,
cannot be tested and stays.
"""

from __future__ import annotations

import numpy as np

from ..baseline.smoothing import smoothed_mean
from ..robust import MAD_TO_SIGMA, median_mad


def z_map(mean: np.ndarray, n_valid: np.ndarray, *, min_valid: int, smooth_cells: int) -> np.ndarray:
    """z = (E_s - median) / (1.4826 MAD) of the smoothed map over its finite cells (NaN elsewhere; all NaN when the
    map has no spread)."""
    s = smoothed_mean(mean, n_valid, min_valid, smooth_cells)
    background = median_mad(s)
    if background is None:
        return s
    med, mad = background
    sigma = MAD_TO_SIGMA * mad
    if not sigma > 0:
        return np.full(s.shape, np.nan)
    return (s - med) / sigma


def site_z(
    z: np.ndarray, site_lat, site_lon, lat: np.ndarray, lon: np.ndarray, res: float, window_cells: int = 1
) -> np.ndarray:
    """z at the cell of the regular grid (ascending centres ``lat``/``lon``, ``res`` degrees) holding each site, or
    the highest finite z of the ``window_cells`` x ``window_cells`` block centred on it (odd; 1 = the cell); NaN off
    the grid or where the block has no finite z."""
    from ..detect.composite import peak_cells

    if int(window_cells) > 1:
        from scipy import ndimage

        top = ndimage.maximum_filter(
            np.where(np.isfinite(z), z, -np.inf), int(window_cells), mode="constant", cval=-np.inf
        )
        z = np.where(np.isfinite(top), top, np.nan)
    i, j = peak_cells(site_lat, site_lon, lat, lon, res)
    inside = (i >= 0) & (i < len(lat)) & (j >= 0) & (j < len(lon))
    out = np.full(len(i), np.nan)
    out[inside] = z[i[inside], j[inside]]
    return out


def snap_to_peak(
    z: np.ndarray, site_lat, site_lon, lat: np.ndarray, lon: np.ndarray, res: float, snap_cells: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each site moved to the centre of the cell with the highest finite z in the ``snap_cells`` x ``snap_cells``
    block centred on its cell (odd; 1 = not moved); a site off the grid, or whose block has no finite z, stays.
    Ties go to the first cell in row-major order of the block."""
    from ..detect.composite import peak_cells

    new_lat, new_lon = np.asarray(site_lat, float).copy(), np.asarray(site_lon, float).copy()
    h = int(snap_cells) // 2
    if h < 1:
        return new_lat, new_lon
    i, j = peak_cells(site_lat, site_lon, lat, lon, res)
    for n, (a, b) in enumerate(zip(i, j)):
        if not (0 <= a < len(lat) and 0 <= b < len(lon)):
            continue
        a0, b0 = max(a - h, 0), max(b - h, 0)
        block = z[a0 : a + h + 1, b0 : b + h + 1]
        if not np.isfinite(block).any():
            continue
        da, db = np.unravel_index(np.argmax(np.where(np.isfinite(block), block, -np.inf)), block.shape)
        new_lat[n], new_lon[n] = lat[a0 + da], lon[b0 + db]
    return new_lat, new_lon


def with_baseline_sites(confirmed, baseline, merge_km: float):
    """The confirmed model sites (``origin`` model) and the baseline's sites farther than ``merge_km`` from every one
    of them (``origin`` baseline; their ``peak_value``, in the baseline's units, is not kept), numbered 1..n in
    that order; ``origin_site_id`` is a row's id in the table it came from."""
    import pandas as pd

    from ..evaluate.geo import PointIndex

    if len(confirmed) and len(baseline):
        near = PointIndex(confirmed["peak_lat"], confirmed["peak_lon"])
        baseline = baseline[~near.any_within(baseline["peak_lat"], baseline["peak_lon"], merge_km)]
    base = pd.DataFrame(
        {
            "origin_site_id": baseline["site_id"].to_numpy(),
            "peak_lat": baseline["peak_lat"].to_numpy(float),
            "peak_lon": baseline["peak_lon"].to_numpy(float),
            "origin": "baseline",
        }
    )
    model = confirmed.rename(columns={"site_id": "origin_site_id"}).assign(origin="model")
    out = pd.concat([model, base], ignore_index=True) if len(base) else model.reset_index(drop=True)
    out.insert(0, "site_id", np.arange(1, len(out) + 1, dtype=np.int64))
    return out


def point_contrast(
    z: np.ndarray, site_lat, site_lon, lat: np.ndarray, lon: np.ndarray, res: float, ring_km: tuple[float, float]
) -> np.ndarray:
    """1 - (median finite z of the cells whose centres lie ``ring_km[0]`` to ``ring_km[1]`` km from each site's cell
    centre) / (z at that cell): ~1 for a compact peak on a flat background, ~0 for a feature as wide as the ring;
    NaN off the grid, where the cell's z is not positive or the ring has no finite cell."""
    from ..detect.composite import peak_cells
    from ..evaluate.geo import EARTH_RADIUS_KM

    r0, r1 = float(ring_km[0]), float(ring_km[1])
    i, j = peak_cells(site_lat, site_lon, lat, lon, res)
    km_lat = np.radians(res) * EARTH_RADIUS_KM
    out = np.full(len(i), np.nan)
    for n, (a, b) in enumerate(zip(i, j)):
        if not (0 <= a < len(lat) and 0 <= b < len(lon)) or not z[a, b] > 0:
            continue
        km_lon = km_lat * np.cos(np.radians(lat[a]))
        ha, hb = int(np.ceil(r1 / km_lat)), int(np.ceil(r1 / max(km_lon, 1e-9)))
        a0, a1, b0, b1 = max(a - ha, 0), min(a + ha + 1, len(lat)), max(b - hb, 0), min(b + hb + 1, len(lon))
        di = (np.arange(a0, a1) - a)[:, None] * km_lat
        dj = (np.arange(b0, b1) - b)[None, :] * km_lon
        d = np.hypot(di, dj)
        block = z[a0:a1, b0:b1]
        ring = block[(d >= r0) & (d <= r1) & np.isfinite(block)]
        if ring.size:
            out[n] = 1.0 - float(np.median(ring)) / float(z[a, b])
    return out
