"""Plain per-scene, per-source NumPy loop of the same physics (the baseline for tests and the benchmark).

Every source is evaluated on every pixel of its scene (no truncation, no batching), near-source pixels averaged
over the same sub-pixels; the random fields are drawn per scene. Slow on purpose: it is the readable reference.
It covers the paper's world (Gaussian plumes of point sources observed at the scene pixel, ``simulate=paper``);
the puff path is checked against :func:`no2hotspots.osse.transport.render_puffs_dense` instead.
"""

from __future__ import annotations

import numpy as np

from . import fields
from .physics import BRIGGS_RURAL_C, _pixel_column, wind_unit_vector
from .scenes import SceneParams, emission_class, emission_map
from .settings import Settings


def plume_scene(p: SceneParams, i: int, st: Settings) -> np.ndarray:
    n, a, f32 = st.size_px, st.pixel_size_m, np.float32
    out = np.zeros((n, n), dtype=np.float64)
    rr, cc = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    ex, ey = wind_unit_vector(p.wind_from_direction[i])
    u, tau = p.wind_speed[i], p.no2_lifetime_h[i] * 3600.0
    c = f32(BRIGGS_RURAL_C[p.stability_class[i]])
    ha = f32(0.5 * a * max(abs(ex), abs(ey)))
    hb = f32(0.5 * a * max(min(abs(ex), abs(ey)), 0.01))
    for k in range(int(p.n_sources[i])):
        row, col, q = p.source_row[i, k], p.source_col[i, k], p.source_no2_rate[i, k]
        args = (f32(q / u), f32(1.0 / (u * tau)), c, f32(st.sigma0_m**2))
        de, dn = (cc - col) * a, (rr - row) * a
        v = _pixel_column((de * ex + dn * ey).astype(f32), (dn * ex - de * ey).astype(f32), *args, ha, hb)
        R, fct = st.subpixel_radius_px, st.subpixel_factor
        r0, c0 = int(np.floor(row + 0.5)), int(np.floor(col + 0.5))
        off = (np.arange(fct) + 0.5) / fct - 0.5
        for pr in range(r0 - R, r0 + R + 1):
            for pc in range(c0 - R, c0 + R + 1):
                if 0 <= pr < n and 0 <= pc < n:
                    sr, sc = np.meshgrid(pr + off, pc + off, indexing="ij")
                    de, dn = (sc - col) * a, (sr - row) * a
                    sub = _pixel_column(
                        (de * ex + dn * ey).astype(f32),
                        (dn * ex - de * ey).astype(f32),
                        *args,
                        ha / f32(fct),
                        hb / f32(fct),
                    )
                    v[pr, pc] = sub.mean(dtype=np.float64)
        out += v
    return out.astype(f32)


def simulate_loop(p: SceneParams, st: Settings, rng: np.random.Generator) -> dict:
    """Scene-by-scene version of :func:`~no2hotspots.simulate.scenes.simulate_batch` (same physics and fields)."""
    n = st.size_px
    no2 = np.empty((p.n, n, n), dtype=np.float32)
    valid = np.empty((p.n, n, n), dtype=np.uint8)
    for i in range(p.n):
        col = plume_scene(p, i, st)
        col += fields.background(rng, p.background_mean[i : i + 1], st.background_rel_std, n, st.background_coarse_px)[
            0
        ]
        cloud = fields.cloud_mask(rng, p.cloud_fraction[i : i + 1], n, st.cloud_coarse_px)[0]
        col += rng.standard_normal((n, n), dtype=np.float32) * np.float32(p.noise_std[i])
        col += rng.standard_normal((1, n), dtype=np.float32) * np.float32(p.stripe_std[i])
        col[cloud] = np.nan
        no2[i], valid[i] = col, ~cloud
    return {
        "no2": no2,
        "valid": valid,
        "emission": emission_map(p, st),
        "cloud_fraction": 1.0 - valid.reshape(p.n, -1).mean(axis=1),
        "emission_class": emission_class(p),
    }
