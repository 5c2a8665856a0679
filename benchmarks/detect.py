"""Detection throughput: tiles/s of the full detection path vs bare model inference, for the demo and paper models.

Full path = tiling (stride 32, 64x64 tiles) + prepare_input + model + Hann-window stitching + hotspot extraction
(scipy 8-connected labelling) on a synthetic 600x600-cell NO2 grid (one overpass, a few Gaussian blobs). Baseline
= the same number of tiles as one prepared tensor pushed through the bare model in batches under inference_mode,
in the same run. Random weights (speed only). Prints the figures and writes benchmarks/results/detect.json.

    .venv/bin/python benchmarks/detect.py [--size 600] [--stride 32] [--batch-size 64] [--models demo paper]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("NO2HOTSPOTS_PROGRESS", "0")

from no2hotspots.config import compose  # noqa: E402
from no2hotspots.detect.hotspots import find_hotspots  # noqa: E402
from no2hotspots.detect.tiles import model_predictor, resolve_device, stitch  # noqa: E402
from no2hotspots.model.inputs import prepare_input  # noqa: E402
from no2hotspots.model.net import build_model, count_parameters  # noqa: E402

INPUT_SCALE = 1.0e4
OUT = Path(__file__).resolve().parent / "results" / "detect.json"


def synthetic_grid(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:n, 0:n]
    no2 = 2e-5 + 0.5e-5 * rng.standard_normal((n, n))
    for _ in range(max(n // 60, 1) ** 2 // 4 + 3):
        i, j, a = rng.integers(0, n), rng.integers(0, n), rng.uniform(0.5e-4, 3e-4)
        no2 += a * np.exp(-((yy - i) ** 2 + (xx - j) ** 2) / (2 * 2.0**2))
    valid = rng.random((n, n)) > 0.1  # 10 % cloud gaps
    return np.where(valid, no2, np.nan).astype(np.float32)[None], valid[None]


def bench_model(name: str, no2, valid, *, stride: int, batch_size: int, device: str, repeats: int) -> dict:
    cfg = compose([f"model={name}"])
    torch.manual_seed(0)
    net = build_model(cfg.model).eval().to(device)
    predict = model_predictor(net, INPUT_SCALE, device=device)
    n = no2.shape[-1]
    lat, lon = np.linspace(-25, -25 + 0.05 * (n - 1), n), np.linspace(25, 25 + 0.05 * (n - 1), n)
    area = np.full((n, n), 30.0)

    warm, _ = stitch(no2[:, :64, :64], valid[:, :64, :64], predict, batch_size=batch_size)  # warm-up
    find_hotspots(warm[0], lat[:64], lon[:64], cell_area_km2=area[:64, :64], emission_min=0.0, emission_max=1.0)
    full = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        rel, counts = stitch(no2, valid, predict, stride=stride, batch_size=batch_size)
        t1 = time.perf_counter()
        df, _ = find_hotspots(
            rel[0],
            lat,
            lon,
            cell_area_km2=area,
            valid=valid[0],
            emission_min=0.0,
            emission_max=1.0,
            threshold=0.2,
        )
        t2 = time.perf_counter()
        full.append((t2 - t0, t1 - t0, t2 - t1))
    n_tiles = counts["tiles_run"]

    # baseline: the same number of tiles, already prepared, through the bare model
    rng = np.random.default_rng(1)
    tiles = np.stack(
        [
            no2[0, r : r + 64, c : c + 64]
            for r, c in zip(rng.integers(0, n - 64, n_tiles), rng.integers(0, n - 64, n_tiles))
        ]
    )
    x = prepare_input(tiles, np.isfinite(tiles), INPUT_SCALE).to(device)
    bare = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, n_tiles, batch_size):
                y = net(x[i : i + batch_size])
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        bare.append(time.perf_counter() - t0)
        del y
    best = min(full, key=lambda f: f[0])
    return {
        "model": name,
        "parameters": count_parameters(net),
        "tiles": n_tiles,
        "full_s": round(best[0], 4),
        "stitch_incl_inference_s": round(best[1], 4),
        "hotspots_s": round(best[2], 4),
        "n_hotspots": int(len(df)),
        "bare_inference_s": round(min(bare), 4),
        "full_tiles_per_s": round(n_tiles / best[0], 1),
        "bare_tiles_per_s": round(n_tiles / min(bare), 1),
        "overhead_pct": round(100 * (best[0] / min(bare) - 1), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=600)
    ap.add_argument("--stride", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=["demo", "paper"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    device = resolve_device(args.device)
    no2, valid = synthetic_grid(args.size)
    rows = [
        bench_model(m, no2, valid, stride=args.stride, batch_size=args.batch_size, device=device, repeats=args.repeats)
        for m in args.models
    ]
    result = {
        "benchmark": "detect",
        "grid": [args.size, args.size],
        "stride": args.stride,
        "batch_size": args.batch_size,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
        "torch": torch.__version__,
        "note": "best of repeats; random weights; timings on a shared machine are noisy",
        "results": rows,
    }
    for r in rows:
        print(
            f"{r['model']:>6} ({r['parameters']:,} params): {r['tiles']} tiles; full detection "
            f"{r['full_tiles_per_s']:.1f} tiles/s ({r['full_s']:.2f} s, hotspots {r['hotspots_s'] * 1e3:.0f} ms); "
            f"bare inference {r['bare_tiles_per_s']:.1f} tiles/s; overhead {r['overhead_pct']:+.1f} %"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
