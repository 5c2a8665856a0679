"""Background, noise, striping and cloud fields, vectorised over scenes (float32)."""

from __future__ import annotations

import numpy as np


def _interp_matrix(n_fine: int, n_coarse: int) -> np.ndarray:
    """(n_fine, n_coarse) linear-interpolation weights from a coarse grid spanning the scene to the fine grid."""
    x = np.linspace(0, n_coarse - 1, n_fine)
    i0 = np.minimum(np.floor(x).astype(int), n_coarse - 2)
    w = x - i0
    m = np.zeros((n_fine, n_coarse), dtype=np.float32)
    m[np.arange(n_fine), i0] = 1 - w
    m[np.arange(n_fine), i0 + 1] = w
    return m


def smooth_field(rng: np.random.Generator, n_scenes: int, size_px: int, coarse_px: int) -> np.ndarray:
    """Smooth random fields (n, size, size): i.i.d. N(0,1) on a coarse grid, bilinearly interpolated (two matmuls)."""
    m = _interp_matrix(size_px, coarse_px)
    g = rng.standard_normal((n_scenes, coarse_px, coarse_px), dtype=np.float32)
    return m @ g @ m.T


def background(rng, mean, rel_std: float, size_px: int, coarse_px: int) -> np.ndarray:
    """Smooth positive background [mol m-2]: mean * (1 + rel_std * field), floored at 10 % of the mean."""
    mean = np.asarray(mean, dtype=np.float32)[:, None, None]
    f = smooth_field(rng, mean.shape[0], size_px, coarse_px)
    return mean * np.maximum(np.float32(1.0) + np.float32(rel_std) * f, np.float32(0.1))


def static_columns(
    rng, n: int, size_px: int, probability: float, max_per_scene: int, radius_px: tuple, amplitude: tuple
) -> tuple[np.ndarray, np.ndarray]:
    """Static urban columns [mol m-2] (n, size, size) and their number per scene: with ``probability`` a scene
    holds 1..``max_per_scene`` Gaussian columns (radius and amplitude uniform in the given ranges, centre uniform in
    the scene). No plume, no emission: the target never marks them (the OSSE's persistent urban blobs,
    :mod:`no2hotspots.osse.weather`). Draws nothing from ``rng`` when ``probability`` is 0."""
    out = np.zeros((n, size_px, size_px), dtype=np.float32)
    count = np.zeros(n, dtype=np.int64)
    if probability <= 0:
        return out, count
    count = np.where(rng.random(n) < probability, rng.integers(1, max_per_scene + 1, n), 0)
    k = int(max_per_scene)
    centre = rng.uniform(0, size_px, (n, k, 2))
    radius = rng.uniform(radius_px[0], radius_px[1], (n, k))
    amp = rng.uniform(amplitude[0], amplitude[1], (n, k)) * (np.arange(k)[None, :] < count[:, None])
    g = np.arange(size_px, dtype=np.float64) + 0.5
    for m in range(k):
        on = np.flatnonzero(amp[:, m] > 0)
        if not on.size:
            continue
        dy = (g[None, :] - centre[on, m, 0][:, None]) ** 2
        dx = (g[None, :] - centre[on, m, 1][:, None]) ** 2
        w = 2 * radius[on, m] ** 2
        out[on] += (amp[on, m][:, None, None] * np.exp(-(dy[:, :, None] + dx[:, None, :]) / w[:, None, None])).astype(
            np.float32
        )
    return out, count


def cloud_mask(rng, fraction, size_px: int, coarse_px: int) -> np.ndarray:
    """Boolean cloud masks (n, size, size): a smooth field thresholded at each scene's target fraction.

    The threshold is the fraction's quantile of a 1-in-4 subsample of the field (cheap, close to the target); the
    realised fraction is what the dataset reports.
    """
    fraction = np.asarray(fraction, dtype=np.float64)
    n = fraction.size
    f = smooth_field(rng, n, size_px, coarse_px)
    sub = np.sort(f[:, ::2, ::2].reshape(n, -1), axis=1)
    k = np.clip(np.round((1 - fraction) * sub.shape[1]).astype(int), 0, sub.shape[1] - 1)
    thr = sub[np.arange(n), k][:, None, None]
    mask = f > thr
    mask[fraction <= 0] = False
    return mask


def edge_cloud_mask(rng, row, col, angle, offset_px, size_px: int, scale_px: float, wiggle: float, coarse_px: int):
    """Cloud masks (n, size, size) whose gap edge runs ``offset_px`` from the point (``row``, ``col``) of each scene.

    The cloud field is a ramp across the line through the point at ``angle`` (radians; positive offsets leave the
    point in the clear) plus ``wiggle`` times a smooth random field, so the edge bends but passes near the point:
    cloud where ``(d - offset) / scale_px + wiggle * field > 0``, ``d`` the signed distance across the line."""
    n = np.asarray(row).size
    rr = np.arange(size_px, dtype=np.float32)[None, :, None]
    cc = np.arange(size_px, dtype=np.float32)[None, None, :]
    sa = np.sin(np.asarray(angle, np.float32))[:, None, None]
    ca = np.cos(np.asarray(angle, np.float32))[:, None, None]
    d = (rr - np.asarray(row, np.float32)[:, None, None]) * sa + (cc - np.asarray(col, np.float32)[:, None, None]) * ca
    f = smooth_field(rng, n, size_px, coarse_px)
    g = (d - np.asarray(offset_px, np.float32)[:, None, None]) / np.float32(scale_px) + np.float32(wiggle) * f
    return g > 0
