"""What a regional background above the training range does to a model, with and without detect's shift.

Synthetic 128 x 128 fields at 0.05 deg (Beijing's latitude) through the detect stage's own computation
(:func:`no2hotspots.detect.field.detect_field`, the settings of conf/detect), one per background level (uniform,
plus N(0, 1e-5) noise, seed 0): a clear field, the same with a cloud gap covering its eastern third, and the clear
field with one compact source (Gaussian, 1.5 px, 1.5e-4 mol m-2 peak). Per level: the highest relative emission
away from the source (clear field; beside the gap's edge) and at the source, with ``detect.background_max_mol_m2``
0 (off) and conf/detect's value (``--max`` for another). The training world's backgrounds are 0.5-3e-5 mol m-2
(simulate.background).

    .venv/bin/python benchmarks/background_shift.py --model outputs/train/model [--max 5.0e-5] [--out F.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import xarray as xr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from no2hotspots.config import compose  # noqa: E402
from no2hotspots.detect.field import detect_field  # noqa: E402
from no2hotspots.detect.run import settings  # noqa: E402
from no2hotspots.registry.load import from_dir  # noqa: E402

LEVELS = (1.0e-5, 3.0e-5, 1.0e-4, 2.0e-4, 3.0e-4)
N = 128
SOURCE = (64, 40)  # row, col
GAP_COL = 86  # columns >= this are a cloud gap


def field(level: float, *, source: bool, gap: bool, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    no2 = level + rng.normal(0.0, 1.0e-5, (N, N))
    if source:
        yy, xx = np.mgrid[0:N, 0:N]
        no2 += 1.5e-4 * np.exp(-((yy - SOURCE[0]) ** 2 + (xx - SOURCE[1]) ** 2) / (2 * 1.5**2))
    if gap:
        no2[:, GAP_COL:] = np.nan
    lat, lon = 39.0 + (np.arange(N) + 0.5) * 0.05, 115.0 + (np.arange(N) + 0.5) * 0.05
    ds = xr.Dataset({"no2": (("lat", "lon"), no2.astype(np.float32))}, coords={"lat": lat, "lon": lon})
    ds["coverage"] = xr.where(np.isfinite(ds["no2"]), 1.0, 0.0)
    return ds


def probe(loaded, s: dict) -> dict:
    inner = (slice(8, N - 8), slice(8, N - 8))  # away from the field's outer edges
    near = np.zeros((N, N), bool)
    near[SOURCE[0] - 4 : SOURCE[0] + 5, SOURCE[1] - 4 : SOURCE[1] + 5] = True
    rows = {}
    for level in LEVELS:
        clear = detect_field(field(level, source=False, gap=False), loaded, s)["relative_emission"]
        gapped = detect_field(field(level, source=False, gap=True), loaded, s)["relative_emission"]
        src = detect_field(field(level, source=True, gap=False), loaded, s)
        rel = src["relative_emission"]
        rows[f"{level:.0e}"] = {
            "clear_max_r": round(float(np.nanmax(clear[inner])), 3),
            "gap_edge_max_r": round(float(np.nanmax(gapped[8:-8, GAP_COL - 6 : GAP_COL])), 3),
            "source_r": round(float(np.nanmax(rel[near])), 3),
            "elsewhere_max_r": round(float(np.nanmax(np.where(near, np.nan, rel)[inner])), 3),
            "n_hotspots_with_source": len(src["hotspots"]),
        }
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a model folder (model.json + state_dict.pt)")
    ap.add_argument("--max", type=float, default=None, help="the shifted arm's detect.background_max_mol_m2 (conf's)")
    ap.add_argument("--sigma-km", type=float, default=None, help="its detect.background_sigma_km (default: conf's)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    loaded = from_dir(args.model)
    s = {**settings(compose()), "device": "cpu"}
    b_on = s["background_max_mol_m2"] if args.max is None else args.max
    sigma = s["background_sigma_km"] if args.sigma_km is None else args.sigma_km
    result = {"model": args.model, "levels_mol_m2": list(LEVELS), "sigma_km": sigma, "arms": {}}
    for name, b in (("off", 0.0), (f"max {b_on:.1e}", b_on)):
        result["arms"][name] = probe(loaded, {**s, "background_max_mol_m2": b, "background_sigma_km": sigma})
        for level, r in result["arms"][name].items():
            print(
                f"{name:12s} background {level}: clear field max r {r['clear_max_r']:.3f} | beside a gap "
                f"{r['gap_edge_max_r']:.3f} | source r {r['source_r']:.3f} (elsewhere {r['elsewhere_max_r']:.3f}, "
                f"{r['n_hotspots_with_source']} hotspot(s))",
                flush=True,
            )
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
