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


def scene_pixels(edges_km: np.ndarray, centres_km: np.ndarray, size_px: int, cell_km: float):
    """The instrument pixels over scenes centred at ``centres_km`` (n,): ``(ov, width_km)``.

    ``ov`` (n, size, P) is the overlap of scene cell k (one column wide) with pixel j in column units, pixels cut
    to the scene (so A, R of the module doc are ``ov`` normalised over cells and ``ov`` itself); ``width_km``
    (n, P) the pixels' full widths (0 for padding). P is the most pixels any scene meets."""
    centres_km = np.asarray(centres_km, float)
    half = size_px * cell_km / 2
    lo, hi = centres_km - half, centres_km + half
    j0 = np.clip(np.searchsorted(edges_km, lo, side="right") - 1, 0, edges_km.size - 1)
    j1 = np.clip(np.searchsorted(edges_km, hi, side="left"), 0, edges_km.size - 1)
    p = int((j1 - j0).max()) if centres_km.size else 0
    idx = np.minimum(j0[:, None] + np.arange(p + 1)[None, :], j1[:, None])  # (n, P + 1) edges, repeated past j1
    pe = edges_km[idx]
    width = np.diff(pe, axis=1)
    cut = (np.clip(pe, lo[:, None], hi[:, None]) - lo[:, None]) / cell_km - 0.5  # column units, cut to the scene
    k = np.arange(size_px + 1, dtype=float) - 0.5
    k = k.astype(np.float32)
    cut = cut.astype(np.float32)
    ov = np.minimum(k[None, 1:, None], cut[:, None, 1:]) - np.maximum(k[None, :-1, None], cut[:, None, :-1])
    np.maximum(ov, np.float32(0.0), out=ov)
    return ov, width


def observe(col, noise, stripes, st: Settings, centres_km: np.ndarray, rng: np.random.Generator):
    """Observe scenes (n, N, N) float32 through the swath pixels at ``centres_km``; returns float32 (n, N, N).

    ``noise`` (n,) and ``stripes`` (n,) are the per-scene standard deviations [mol m-2] for a scene-cell-sized
    pixel; the random numbers come from ``rng``."""
    n, size = col.shape[0], st.size_px
    cell_km = st.pixel_size_m / 1e3
    ov, width = scene_pixels(full_edges_km(st), centres_km, size, cell_km)
    inside = ov.sum(axis=1, keepdims=True)  # (n, 1, P) each pixel's width inside the scene, in columns
    A = np.divide(ov, inside, out=np.zeros_like(ov), where=inside > 0).transpose(0, 2, 1)  # (n, P, N)
    Rt = np.ascontiguousarray(ov.transpose(0, 2, 1))  # (n, P, N): R transposed
    Mt = np.matmul(A.transpose(0, 2, 1), Rt)  # (n, N, N): (R @ A) transposed, so rows multiply from the left
    scale = np.sqrt(np.divide(cell_km, width, out=np.zeros_like(width), where=width > 0)).astype(np.float32)
    out = np.matmul(col, Mt)  # rows along track; columns through the operator
    pmax = Rt.shape[1]
    eps = rng.standard_normal((n, size, pmax), dtype=np.float32) * (scale * noise.astype(np.float32)[:, None])[:, None]
    eps += rng.standard_normal((n, 1, pmax), dtype=np.float32) * stripes.astype(np.float32)[:, None, None]
    out += np.matmul(eps, Rt)
    return out


def pixel_width_at(centres_km: np.ndarray, cols: np.ndarray, st: Settings) -> np.ndarray:
    """Across-track width [km] of the instrument pixel at scene column(s) ``cols`` (n, ...) of scenes centred at
    ``centres_km`` (n,); NaN stays NaN."""
    edges = full_edges_km(st)
    cell_km = st.pixel_size_m / 1e3
    x = centres_km.reshape((-1,) + (1,) * (np.ndim(cols) - 1)) + (cols - (st.size_px - 1) / 2) * cell_km
    j = np.clip(np.searchsorted(edges, np.nan_to_num(x), side="right") - 1, 0, edges.size - 2)
    return np.where(np.isnan(cols), np.nan, np.diff(edges)[j])
