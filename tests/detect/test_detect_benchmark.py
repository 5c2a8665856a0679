"""benchmarks/detect.py still runs against the detection code it times (it had fallen behind find_hotspots)."""

from __future__ import annotations


def test_detect_benchmark_times_the_current_detection_path(benchmark_script):
    mod = benchmark_script("detect")
    no2, valid = mod.synthetic_grid(96)
    row = mod.bench_model("demo", no2, valid, stride=32, batch_size=8, device="cpu", repeats=1)
    assert row["tiles"] == 4  # tiles start at rows/columns 0 and 32 of a 96-cell grid
    assert row["n_hotspots"] >= 0 and row["full_s"] > 0 and row["bare_inference_s"] > 0
    assert row["parameters"] > 0
