"""The train stage on CUDA, end to end, against the same stage on the same machine's CPU (all its threads).

``python -m no2hotspots train train.device=cuda`` and ``train.device=cpu`` on the same shards (the tests'
contract-conforming generator, tests/train/simdata.py), demo model and recipe, a real MLflow SQLite store in a
temporary folder: wall time of each stage run, its validation loss, then the CUDA run's logged model loaded from
MLflow (``runs:/RUN_ID/model``, no2hotspots.registry.load) in a process that sees no GPU, and its predictions
compared with the CUDA run's own model folder loaded the same way.

    python benchmarks/gpu_stage.py [--scenes 4096] [--epochs 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests" / "train"))

from no2hotspots.atomic import write_json  # noqa: E402

CHECK = """
import json, sys
import numpy as np
import torch
from no2hotspots.registry.load import load_model
sys.path.insert(0, "tests/train")
from simdata import make_scenes
no2, valid, *_ = make_scenes(64, np.random.default_rng(9))
a = load_model(sys.argv[1], sys.argv[2]).predict(no2, valid)
b = load_model(sys.argv[3]).predict(no2, valid)
print(json.dumps({"cuda_visible": torch.cuda.is_available(), "max_abs_diff": float(np.abs(a - b).max()),
                  "finite": bool(np.isfinite(a).all()), "shape": list(a.shape)}))
"""


def run_stage(tmp: Path, sim: Path, device: str, epochs: int, threads: int) -> dict:
    out = tmp / device
    cmd = [sys.executable, "-m", "no2hotspots", "train", f"paths.outputs={out}/outputs",
           f"paths.metrics={out}/metrics", f"paths.plots={out}/plots", f"paths.mlruns={out}/mlruns",
           f"paths.simulated={sim}", f"train.device={device}", f"train.epochs={epochs}",
           f"train.num_threads={threads}", "train.early_stopping.patience=100"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode:
        print(p.stderr[-3000:])
        raise SystemExit(f"train.device={device} failed (exit {p.returncode})")
    metrics = json.loads((out / "metrics" / "train.json").read_text())
    run = json.loads((out / "outputs" / "train" / "run.json").read_text())
    return {"device": device, "threads": threads, "wall_s": wall, **metrics, "run_id": run["run_id"],
            "tracking_uri": run["tracking_uri"], "model_dir": str(out / "outputs" / "train" / "model")}  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=4096, help="training scenes (validation: a quarter)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", help="JSON to write (default benchmarks/results/gpu_stage.json, with CUDA only)")
    args = ap.parse_args(argv)
    from simdata import write_dataset

    threads = len(os.sched_getaffinity(0))
    devices = ["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        n = {"train": args.scenes, "val": args.scenes // 4, "test": args.scenes // 4}
        sim = write_dataset(tmp / "sim", n, seed=3, shard_size=512)
        for device in devices:
            rows.append(run_stage(tmp, sim, device, args.epochs, threads if device == "cpu" else 4))
            r = rows[-1]
            print(f"train.device={device}: {r['wall_s']:.1f} s for {args.epochs} epochs of {args.scenes} scenes "
                  f"(stage total, MLflow logging included), val loss {r['val_loss']:.5f}", flush=True)  # fmt: skip
        check = None
        if devices[0] == "cuda":
            path = os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])
            env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": path}
            r = rows[0]
            p = subprocess.run([sys.executable, "-c", CHECK, f"runs:/{r['run_id']}/model", r["tracking_uri"],
                                r["model_dir"]], cwd=REPO, env=env, capture_output=True, text=True)  # fmt: skip
            if p.returncode:
                print(p.stderr[-3000:])
            check = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else {"error": p.returncode}
            print(f"CUDA-trained model from MLflow on a process without GPU: {check}")
            print(f"stage wall time CPU / CUDA: {rows[1]['wall_s'] / rows[0]['wall_s']:.2f}x")
    if args.out is None and not torch.cuda.is_available():
        print("no CUDA here: the committed GPU figures are kept (give --out FILE to write these)")
        return 0
    args.out = args.out or str(REPO / "benchmarks" / "results" / "gpu_stage.json")
    write_json(args.out, {"rows": rows, "cpu_load_check": check, "torch": torch.__version__,
                          "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                          "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")})  # fmt: skip
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
