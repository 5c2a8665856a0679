"""How far downwind does near-source NO -> NO2 conversion move a steady plume's NO2, at TROPOMI's pixel size?

The simulator and the OSSE give NO2 a fixed share of the emitted NOx from the stack on (``simulate.no2_nox_ratio``,
``osse.sources.no2_nox_ratio``). Real stacks emit mostly NO; ozone turns it into NO2 over minutes to tens of minutes,
so the NOx/NO2 ratio falls from ~3-8 at the stack to its photostationary value downwind. Meier et al. (2024) fitted
NOx/NO2 = m exp(-t / r) + f0 (t: time since emission) for four plants; ddeq 1.1 ships the fits
(:class:`ddeq.functions.NO2toNOxConversion`). Keeping the far-field share as configured, the ramp multiplies the NO2
column at plume age t by h(t) = f0 / (m exp(-t / r) + f0)
(:func:`no2hotspots.nox.no2_ramp_factor`, the simulator's own).

This prints, for a steady Gaussian plume (:func:`no2hotspots.simulate.physics.column_point`, the training world's
formula: Pasquill-Gifford class D, sigma0 200 m, NO2 lifetime 4 h) from a source at a pixel centre and a wind along
the pixel rows, the pixel-averaged column along the plume's row (5.5 km pixels, 25 m quadrature) with and without
each plant's ramp: the pixel holding the maximum, the first pixel reaching 90 % of it, the source pixel's share of
it and the column-weighted centroid of the first ``--pixels`` pixels (a steady plume's pixel columns are nearly flat
downwind, so the maximum's pixel moves far on a small rise: the 90 % pixel and the source's share say more).
Nothing here changes the product; it measures a difference between the training world and real plumes.

    python benchmarks/nox_ramp.py [--json F]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from ddeq.functions import NO2toNOxConversion

from no2hotspots.nox import no2_ramp_factor
from no2hotspots.simulate.physics import column_point

PLANTS = ("Matimba", "Belchatow", "Janschwalde", "Lipetsk")


def pixel_row(u: float, ramp: NO2toNOxConversion | None, *, pixel_m: float, n_pix: int, step_m: float) -> np.ndarray:
    """Pixel-averaged column [mol m-2 per mol s-1] of pixels 0..n_pix-1 along the plume's row (pixel 0 holds the
    source at its centre); cross-wind over the pixel's width, along-wind over its length, ``step_m`` quadrature."""
    half = pixel_m / 2
    s = np.arange(-half + step_m / 2, (n_pix - 0.5) * pixel_m, step_m)
    t = np.arange(-half + step_m / 2, half, step_m)
    c = column_point(s[:, None], t[None, :], 1.0, u, 4 * 3600.0, 3, 200.0)
    if ramp is not None:
        c = c * no2_ramp_factor(s[:, None] / u, *ramp.params)
    along = c.mean(axis=1)  # average across the pixel's width
    per = int(round(pixel_m / step_m))
    return along[: n_pix * per].reshape(n_pix, per).mean(axis=1)


def summarise(row: np.ndarray, pixel_m: float) -> dict:
    x = np.arange(row.size) * pixel_m / 1e3
    return {
        "max_pixel": int(np.argmax(row)),
        "centroid_km": float((row * x).sum() / row.sum()),
        "source_pixel_share_of_max": float(row[0] / row.max()),
        "first_pixel_at_90pct_of_max": int(np.argmax(row >= 0.9 * row.max())),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--speeds", nargs="+", type=float, default=[2.0, 4.0, 6.0, 10.0], help="wind speeds [m/s]")
    ap.add_argument("--pixel-m", type=float, default=5500.0)
    ap.add_argument("--pixels", type=int, default=6, help="pixels along the plume (the source pixel first)")
    ap.add_argument("--step-m", type=float, default=25.0)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    rows = []
    for u in a.speeds:
        base = summarise(pixel_row(u, None, pixel_m=a.pixel_m, n_pix=a.pixels, step_m=a.step_m), a.pixel_m)
        for plant in PLANTS:
            ramp = NO2toNOxConversion(name=plant)
            got = summarise(pixel_row(u, ramp, pixel_m=a.pixel_m, n_pix=a.pixels, step_m=a.step_m), a.pixel_m)
            rows.append(
                {
                    "wind_m_s": u,
                    "plant": plant,
                    "params_m_r_f0": list(map(float, ramp.params)),
                    "no_ramp": base,
                    "ramp": got,
                    "centroid_shift_km": got["centroid_km"] - base["centroid_km"],
                }
            )
            m, r, f0 = ramp.params
            b_share, g_share = 100 * base["source_pixel_share_of_max"], 100 * got["source_pixel_share_of_max"]
            print(
                f"u {u:4.1f} m/s  {plant:11s} (m {m:.1f}, r {r:5.0f} s, f0 {f0:.2f}):"
                f" max pixel {base['max_pixel']} -> {got['max_pixel']}, centroid {base['centroid_km']:.2f} ->"
                f" {got['centroid_km']:.2f} km (+{got['centroid_km'] - base['centroid_km']:.2f}), source pixel"
                f" {b_share:.0f} -> {g_share:.0f} % of the max, first pixel at 90 % of it"
                f" {base['first_pixel_at_90pct_of_max']} -> {got['first_pixel_at_90pct_of_max']}"
            )
    if a.json:
        a.json.write_text(json.dumps({"settings": vars(a) | {"json": str(a.json)}, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
