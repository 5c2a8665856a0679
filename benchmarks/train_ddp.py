"""Training throughput of the demo model: one process with 2 torch threads, two processes with 1 thread each
(torchrun, DistributedDataParallel over gloo) and one process with 1 thread, measured in the same run; and two
processes with per-rank BatchNorm/dropout/Tversky (``train.distributed.global_batch=false``), the price of training
exactly as one process does.

Every configuration runs the project's own training step (no2hotspots.train.loop.train_epoch: input preparation,
forward, loss, the per-step loss all-reduce, backward with DDP's gradient all-reduce, Adam) on the same global batch
of 32 (16 per rank with 2 processes) of synthetic NO2 scenes held in memory (no shard reading), in a fresh process
started by this script (``torchrun --standalone`` for the 2-process case, which picks a free port). The box is
shared with other work, so each configuration is measured ``--repeats`` times, interleaved, and the result gives
min/median/max samples/s per configuration (each repeat: the median over timed epochs after a warm-up epoch) and
ratios of the medians to 1 process x 1 thread. The load average at start and end is recorded.

    .venv/bin/python benchmarks/train_ddp.py [--repeats 3] [--seconds 8] [--out benchmarks/results/train_ddp.json]

On a GPU machine, ``--device cuda [--model paper] [--batch 256]`` measures 1 GPU against all visible GPUs (nccl,
SyncBatchNorm) instead, with the global batch split over the GPUs (not yet run: no GPU was available when this was
written; results go to ``--out``, e.g. benchmarks/results/train_ddp_cuda.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

#: (name, processes, torch threads per process, train.distributed.global_batch)
CONFIGS = (
    ("1p x 1t", 1, 1, True),
    ("1p x 2t", 1, 2, True),
    ("2p x 1t (DDP, gloo)", 2, 1, True),
    ("2p x 1t, per-rank BN", 2, 1, False),
)
BATCH = 32  # global batch, the demo's train.batch_size
BATCHES_PER_EPOCH = 8


def gpu_configs() -> tuple:
    import torch

    n = torch.cuda.device_count()
    return (("1 GPU", 1, 1, True), (f"{n} GPUs (DDP, nccl)", n, 1, True)) if n > 1 else (("1 GPU", 1, 1, True),)


class MemoryStream:
    """Synthetic scenes in memory with ShardStream's interface: this rank's slice of each global batch."""

    def __init__(self, rank: int, world: int, batch: int, seed: int = 0):
        import numpy as np

        from no2hotspots.train.data import Batch

        rng = np.random.default_rng(seed)
        n = batch * BATCHES_PER_EPOCH
        no2 = rng.normal(3e-5, 1e-5, (n, 64, 64)).astype(np.float32)
        valid = (rng.random((n, 64, 64)) > 0.1).astype(np.uint8)
        emission = np.where(rng.random((n, 64, 64)) > 0.995, rng.random((n, 64, 64)), 0).astype(np.float32)
        b = batch // world
        self.batches_ = [
            Batch(no2[s + rank * b : s + (rank + 1) * b], valid[s + rank * b : s + (rank + 1) * b],
                  emission[s + rank * b : s + (rank + 1) * b])
            for s in range(0, n, batch)
        ]  # fmt: skip

    def n_batches(self) -> int:
        return len(self.batches_)

    def batches(self, epoch: int = 0):
        return iter(self.batches_)


def worker(threads: int, seconds: float, out: str, model_name: str, device: str, batch: int, per_rank: bool) -> None:
    """One measurement in this process (and its torchrun peers): samples/s of the training step, written by rank 0."""
    import torch
    from hydra.utils import instantiate

    from no2hotspots.config import compose
    from no2hotspots.model.net import build_model
    from no2hotspots.train import distributed
    from no2hotspots.train.loop import Loss, train_epoch

    overrides = [f"model={model_name}", "train=demo", f"train.num_threads={threads}", f"train.device={device}"]
    overrides += [f"train.distributed.threads_per_rank={threads}", f"train.distributed.global_batch={not per_rank}"]
    cfg = compose(overrides)
    with distributed.session(cfg) as dist:
        torch.manual_seed(0)
        model = build_model(cfg.model)
        if dist.global_batch:
            model = distributed.as_one_process(model, dist)
        model = model.to(dist.device)
        optimizer = instantiate(cfg.train.optimizer)(model.parameters())
        net, loss = dist.wrap(model), Loss.from_config(cfg.train)
        stream = MemoryStream(dist.rank, dist.world, batch)

        def epoch(i: int) -> float:
            t0 = time.perf_counter()
            train_epoch(net, optimizer, stream, loss, epoch=i, seed=0, input_scale=1e5, dist=dist)
            if dist.device.type == "cuda":
                torch.cuda.synchronize()
            return dist.broadcast(time.perf_counter() - t0)  # rank 0's clock decides for every rank

        epoch(0)  # warm-up
        t_end, rates = time.perf_counter() + seconds, []
        while True:
            rates.append(batch * stream.n_batches() / epoch(len(rates) + 1))
            if dist.broadcast(time.perf_counter() >= t_end and len(rates) >= 3):
                break
        if dist.is_main:
            result = {"samples_per_s": statistics.median(rates), "epochs": len(rates), "torch_threads": threads}
            Path(out).write_text(json.dumps({**result, "processes": dist.world}))


def measure(processes: int, threads: int, global_batch: bool, args) -> dict:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "result.json"
        what = ["--threads", str(threads), "--seconds", str(args.seconds), "--out", str(out), "--model", args.model]
        what += ["--device", args.device, "--batch", str(args.batch)] + ([] if global_batch else ["--per-rank"])
        args = [str(Path(__file__).resolve()), "--worker", *what]
        cmd = [sys.executable, *args]
        if processes > 1:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
            cmd += args
        env = {**os.environ, "NO2HOTSPOTS_PROGRESS": "0", "OMP_NUM_THREADS": str(threads)}
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if p.returncode != 0 or not out.exists():
            raise SystemExit(f"measurement {processes}p x {threads}t failed:\n{p.stderr[-3000:]}")
        return json.loads(out.read_text())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0, help="timed window per measurement (after a warm-up)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "train_ddp.json"))
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--model", default="demo", help="conf/model/<name>.yaml")
    ap.add_argument("--batch", type=int, default=BATCH, help="global batch (split over the processes)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--per-rank", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.threads, args.seconds, args.out, args.model, args.device, args.batch, args.per_rank)
        return 0
    configs = CONFIGS if args.device == "cpu" else gpu_configs()

    from no2hotspots.atomic import write_json

    load0 = os.getloadavg()[0]
    runs: dict[str, list[float]] = {c[0]: [] for c in configs}
    for r in range(args.repeats):
        for name, procs, threads, global_batch in configs:
            rate = measure(procs, threads, global_batch, args)["samples_per_s"]
            runs[name].append(rate)
            print(
                f"repeat {r + 1}/{args.repeats} {name:<22} {rate:8.1f} samples/s (load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    base = statistics.median(runs[configs[0][0]])
    rows = []
    for name, procs, threads, global_batch in configs:
        v = runs[name]
        med = statistics.median(v)
        rows.append({
            "config": name, "processes": procs, "threads_per_process": threads, "global_batch": args.batch,
            "batch_ops_over_global_batch": global_batch or procs == 1,
            "samples_per_s": {"min": min(v), "median": med, "max": max(v), "all": v},
            "ratio_to_first": med / base,
        })  # fmt: skip
    load1 = os.getloadavg()[0]
    print(f"\n{args.model} model on {args.device}, global batch {args.batch}; load average {load0:.1f} -> {load1:.1f}")
    print(f"{'config':<22}{'min':>9}{'median':>9}{'max':>9}{'ratio':>9}  (median / first row's median)")
    for row in rows:
        s = row["samples_per_s"]
        print(f"{row['config']:<22}{s['min']:>9.1f}{s['median']:>9.1f}{s['max']:>9.1f}{row['ratio_to_first']:>9.2f}")
    import torch

    result = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
            "torch": torch.__version__,
            "loadavg_1min_at_start": load0,
            "loadavg_1min_at_end": os.getloadavg()[0],
        },
        "model": args.model,
        "device": args.device,
        "what": "training samples/s of no2hotspots.train.loop.train_epoch on in-memory synthetic scenes",
        "repeats": args.repeats,
        "seconds_per_measurement": args.seconds,
        "configs": rows,
        "ratio_2p1t_to_1p2t": (
            rows[2]["samples_per_s"]["median"] / rows[1]["samples_per_s"]["median"] if args.device == "cpu" else None
        ),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
