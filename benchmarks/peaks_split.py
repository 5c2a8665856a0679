"""Peak splitting (no2hotspots.peaks): the batch flooding against the plain map-by-map flooding it replaced.

Maps: smooth noise over a whole 64 x 64 map (an untrained model's output: every cell above the marking threshold,
hundreds of local peaks; the worst case, met in the first validation passes of a training run) and sparse blobs (a
trained model's output). Baseline = the old flooding (tests/test_peaks.py::_reference_split, one map at a time,
every cell visited in Python), measured in the same run; the labels are checked equal. Prints ms per map and the
ratio; writes benchmarks/results/peaks_split.json.

    .venv/bin/python benchmarks/peaks_split.py [--maps 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from no2hotspots.metrics.scores import label
from no2hotspots.peaks import split_peaks_stack

ROOT = Path(__file__).resolve().parents[1]
SPLIT = {"prominence": 0.2, "min_separation_px": 2}


def reference():
    spec = importlib.util.spec_from_file_location("test_peaks", ROOT / "tests" / "test_peaks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod._reference_split


def maps(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "noise":
        v = ndimage.gaussian_filter(rng.normal(size=(n, 64, 64)), (0, 1.5, 1.5))
        return 0.05 + 0.02 * v / v.std()
    y, x = np.mgrid[0:64, 0:64]
    out = np.abs(rng.normal(0.0, 0.005, (n, 64, 64)))
    for i in range(n):
        for _ in range(rng.integers(1, 6)):
            cy, cx, a = rng.uniform(4, 60), rng.uniform(4, 60), rng.uniform(0.1, 1.0)
            out[i] += a * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * rng.uniform(1.0, 2.5) ** 2))
    return out


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--maps", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    ref = reference()
    rng = np.random.default_rng(0)
    rows = {}
    for kind in ("noise", "blobs"):
        v = maps(kind, args.maps, rng)
        lab, n = label(v >= 0.02)
        new, _ = split_peaks_stack(v, lab, **SPLIT)
        old = np.zeros_like(new)
        base = 0
        for i in range(len(v)):
            sub = ref(v[i], lab[i], **SPLIT)
            old[i] = np.where(sub > 0, sub + base, 0)
            base += int(sub.max())
        if not np.array_equal(new, old):
            raise SystemExit(f"{kind}: labels differ from the reference flooding")
        t_old = best_of(lambda v=v, lab=lab: [ref(v[i], lab[i], **SPLIT) for i in range(len(v))], args.repeat)
        t_new = best_of(lambda v=v, lab=lab: split_peaks_stack(v, lab, **SPLIT), args.repeat)
        rows[kind] = {
            "maps": len(v),
            "regions": int(n),
            "hotspots": int(new.max()),
            "reference_ms_per_map": 1e3 * t_old / len(v),
            "batch_ms_per_map": 1e3 * t_new / len(v),
            "speedup": t_old / t_new,
        }
        r = rows[kind]
        print(
            f"{kind:6s} {r['maps']} maps, {r['regions']} regions -> {r['hotspots']} hotspots: reference "
            f"{r['reference_ms_per_map']:.2f} ms/map, batch {r['batch_ms_per_map']:.2f} ms/map, {r['speedup']:.1f}x"
        )
    out = ROOT / "benchmarks" / "results" / "peaks_split.json"
    out.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "results": rows}, indent=2))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
