"""TROPOMI's across-track pixel sizes: observe a scene through the instrument's pixels, regridded to the scene grid.

TROPOMI's ground pixels are 5.5 km along track but 3.5 km across at nadir growing to ~15 km at the swath edge
(:func:`no2hotspots.osse.geometry.across_track_edges_km`: equal viewing-angle steps from 824 km). The detection
grid's 5.5 km cells are filled by area-weighted averages of whatever pixels cover them, so the smoothing a plume
undergoes depends on where in the swath the scene lies. A swath scene draws the across-track distance of its
centre from nadir uniformly over the swath (every place on the ground is seen at every swath position) and takes
the real pixel edges over its width (columns = across track, rows = along track, the track's ~14 deg tilt
ignored). Then, row by row:

    pixel_j = sum_k A_jk C_k       (A: share of pixel j's width in scene cell k; the true column C is known per cell)
    obs_i   = sum_j R_ij pixel_j   (R: share of cell i covered by pixel j, the regridding)

and the instrument noise is added per pixel before regridding, with the precision of a pixel of width w scaled as
1/sqrt(area): ``noise_std * sqrt(cell / w)`` (``noise_std`` is the precision of a scene-cell-sized pixel), and
so are the along-track stripes (one offset per pixel column, as TROPOMI's detector rows). Noise is therefore
correlated across neighbouring cells where pixels are wide, and finer than a cell near nadir.
"""

from __future__ import annotations

import numpy as np

from ..osse.geometry import across_track_edges_km
from .settings import Settings


def full_edges_km(st: Settings) -> np.ndarray:
    s = st.swath
    return across_track_edges_km(s.n_ground_pixels, s.max_view_angle_deg, s.altitude_km)


def position_range_km(st: Settings) -> tuple[float, float]:
    """Across-track positions of a scene's centre that keep the whole scene inside the swath."""
    e = full_edges_km(st)
    half = st.size_px * st.pixel_size_m / 1e3 / 2
    return float(e[0] + half), float(e[-1] - half)


def _overlap(lo_a, hi_a, lo_b, hi_b):
    return np.clip(np.minimum(hi_a[:, None], hi_b[None, :]) - np.maximum(lo_a[:, None], lo_b[None, :]), 0.0, None)


def scene_pixels(edges_km: np.ndarray, centre_km: float, size_px: int, cell_km: float):
    """The instrument pixels over one scene: edges in scene column units and (A, R) as in the module doc.

    Returns ``(pix_edges_col, A (P, N), R (N, P), width_km (P,))`` with column ``k``'s cell spanning
    ``[k - 0.5, k + 0.5]``."""
    half = size_px * cell_km / 2
    lo, hi = centre_km - half, centre_km + half
    j0 = int(np.searchsorted(edges_km, lo, side="right") - 1)
    j1 = int(np.searchsorted(edges_km, hi, side="left"))
    pe = edges_km[max(j0, 0) : j1 + 1]
    pix = (pe - lo) / cell_km - 0.5  # in column units
    cells = np.arange(size_px + 1) - 0.5
    ov = _overlap(cells[:-1], cells[1:], pix[:-1], pix[1:])  # (N, P) overlap in column units
    A = (ov / ov.sum(axis=0, keepdims=True)).T  # pixel = mean of the true column over its part inside the scene
    R = ov  # cell = its area-weighted mean of pixels (cells are 1 column wide and fully covered)
    return pix, A, R, np.diff(pe)


def observe(col, noise, stripes, st: Settings, centres_km: np.ndarray, rng: np.random.Generator):
    """Observe scenes (n, N, N) float32 through the swath pixels at ``centres_km``; returns float32 (n, N, N).

    ``noise`` (n,) and ``stripes`` (n,) are the per-scene standard deviations [mol m-2] for a scene-cell-sized
    pixel; the random numbers come from ``rng``."""
    edges = full_edges_km(st)
    n, size = col.shape[0], st.size_px
    cell_km = st.pixel_size_m / 1e3
    parts = [scene_pixels(edges, float(c), size, cell_km) for c in centres_km]
    pmax = max(p[1].shape[0] for p in parts)
    M = np.zeros((n, size, size), np.float32)  # cells -> cells: R @ A
    Rp = np.zeros((n, size, pmax), np.float32)  # noise pixels -> cells
    scale = np.zeros((n, 1, pmax), np.float32)  # per pixel noise scale sqrt(cell / w)
    for i, (_, A, R, w) in enumerate(parts):
        P = A.shape[0]
        M[i] = R @ A
        Rp[i, :, :P] = R
        scale[i, 0, :P] = np.sqrt(cell_km / w)
    out = np.matmul(col, M.transpose(0, 2, 1))  # rows along track; columns through the operator
    eps = rng.standard_normal((n, size, pmax), dtype=np.float32) * scale * noise.astype(np.float32)[:, None, None]
    eps += rng.standard_normal((n, 1, pmax), dtype=np.float32) * stripes.astype(np.float32)[:, None, None]
    out += np.matmul(eps, Rp.transpose(0, 2, 1))
    return out


def pixel_width_at(centres_km: np.ndarray, cols: np.ndarray, st: Settings) -> np.ndarray:
    """Across-track width [km] of the instrument pixel at scene column(s) ``cols`` (n, ...) of scenes centred at
    ``centres_km`` (n,); NaN stays NaN."""
    edges = full_edges_km(st)
    cell_km = st.pixel_size_m / 1e3
    x = centres_km.reshape((-1,) + (1,) * (np.ndim(cols) - 1)) + (cols - (st.size_px - 1) / 2) * cell_km
    j = np.clip(np.searchsorted(edges, np.nan_to_num(x), side="right") - 1, 0, edges.size - 2)
    return np.where(np.isnan(cols), np.nan, np.diff(edges)[j])
