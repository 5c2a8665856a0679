"""The GPU paths measured against the same machine's CPU: training steps, the real training loop, detect's predictor.

Four parts, each against a CPU baseline measured in the same run (all CPU threads of the machine):

1. ``steps``: one optimizer step of the demo and paper networks (the training loss of conf/train/<model>.yaml via
   ``train.loop.step_loss``, Adam) on a batch resident on the device; samples/s at several batch sizes, on CUDA in
   three precisions: ``fp32`` (TF32 off: what the CPU computes), ``tf32`` (PyTorch's default for convolutions
   on CUDA) and ``bf16`` (autocast; not offered by the train stage, measured to size the headroom);
2. ``loop``: ``train.loop.train_epoch``, the train stage's own epoch, over shards on disk (``ShardStream``,
   ``prepare_input``, one host sync per step): what ``train.device=cuda`` gets end to end, on CUDA without and with
   the next shard read ahead in a thread (``+pf``: ``ShardStream(prefetch=True)``, what the stage does on CUDA);
3. ``predict``: ``detect.tiles.model_predictor`` (what ``detect.device=cuda`` runs, TF32 off) on batches of tiles;
4. ``prep`` (``--parts prep``): the model input prepared on the host and copied, against copied raw and prepared on
   the GPU (``prepare_input(device=)``, what the loop and the predictor do since 2026-12-04);
5. ``agreement``: the same weights and tiles on CPU and CUDA, eval mode: the largest difference of the relative
   emission map (0..1) for a plain forward in fp32 and tf32 and for detect's predictor, and the pixels that
   cross the product's detection threshold (0.2);
6. ``ema`` (``--parts ema``): the training step of 1. (tf32, what the stage runs on CUDA) without the weight average,
   with the train stage's (``train.run.averaged``: torch's ``AveragedModel.update_parameters`` with our warm-up), and
   with a direct update (the same arithmetic on the tensors, the count a Python int: a candidate, not the product's),
   and the host synchronisations one update makes (``torch.cuda.set_sync_debug_mode``).

Without CUDA only the CPU rows are measured (and the script says so). The shards for ``loop`` are written by the
tests' contract-conforming generator (tests/train/simdata.py) into a temporary folder.

    python benchmarks/gpu.py [--parts models prep] [--seconds 3] [--scenes 2048] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests" / "train"))
sys.path.insert(0, str(REPO / "benchmarks"))

from train import timed  # noqa: E402  (benchmarks/train.py)

from no2hotspots.atomic import write_json  # noqa: E402
from no2hotspots.model.net import build_model, count_parameters  # noqa: E402
from no2hotspots.train.distributed import Dist  # noqa: E402
from no2hotspots.train.loop import Loss, step_loss, train_epoch  # noqa: E402

INPUT_SCALE = 1.0e5  # tests/train/simdata.py
MODES = ("fp32", "tf32", "bf16")


def config(model: str):
    """The composed config of ``model=<model> train=<model>`` (Hydra, as the train stage composes it)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(REPO / "conf"), version_base=None):
        return compose("config", overrides=[f"model={model}", f"train={model}"])


def set_mode(mode: str) -> None:
    tf32 = mode == "tf32"
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32


def net_for(cfg, device: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(cfg.model).to(device)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def direct_average(net: torch.nn.Module, decay: float):
    """The train stage's average (its ``ema_step_`` and ``warmup_decay``) without AveragedModel: the count a Python
    int, no tensor copied to the device per update. Returns the update function."""
    import copy

    from no2hotspots.train.run import ema_step_, warmup_decay

    avg = copy.deepcopy(net)
    pairs = list(zip([*avg.parameters(), *avg.buffers()], [*net.parameters(), *net.buffers()], strict=True))
    groups = [
        ([a for a, _ in g], [w.detach() for _, w in g])
        for g in ([p for p in pairs if p[0].is_floating_point()], [p for p in pairs if not p[0].is_floating_point()])
        if g
    ]
    count = [0]

    def update():
        t = count[0]
        d = 0.0 if t == 0 else warmup_decay(decay, t)  # the first update copies, as AveragedModel's
        for averages, weights in groups:
            ema_step_(averages, weights, d)
        count[0] += 1

    return update


def ema_update(net: torch.nn.Module, ema: str):
    if ema in (None, "none"):
        return None
    if ema == "stage":
        from no2hotspots.train.run import averaged

        avg = averaged(net, 0.995)
        return lambda: avg.update_parameters(net)
    return direct_average(net, 0.995)


def syncs_per_update(cfg, ema: str) -> int:
    """Host synchronisations one weight-average update makes on CUDA (after the first, which copies)."""
    import warnings

    net = net_for(cfg, "cuda").train()
    update = ema_update(net, ema)
    update()
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            update()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in seen)


def bench_steps(cfg, device: str, mode: str, batch: int, seconds: float, ema: str | None = None) -> dict:
    net = net_for(cfg, device).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    average = ema_update(net, ema)
    loss = Loss.from_config(cfg.train)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 2, 64, 64, generator=g).to(device)
    y = ((torch.rand(batch, 64, 64, generator=g) > 0.99).float() * 0.5).to(device)
    set_mode(mode)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=mode == "bf16"):
            pred = net(x)
        value, _ = step_loss(loss, pred.float(), y, Dist())  # host sync per step, as the loop does
        value.backward()
        opt.step()
        if average is not None:
            average()
        sync(device)

    t = timed(step, seconds)
    row = {"part": "steps" if ema is None else f"ema:{ema}", "model": cfg.model.name, "device": device,
           "mode": mode, "batch": batch, "samples_per_s": batch / t}  # fmt: skip
    if ema not in (None, "none") and device == "cuda":
        row["syncs_per_update"] = syncs_per_update(cfg, ema)
    return row


def bench_loop(cfg, device: str, mode: str, shards: list[Path], batch: int, prefetch: bool = False) -> dict:
    from no2hotspots.train.data import ShardStream

    net = net_for(cfg, device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    stream = ShardStream(shards, batch, shuffle=True, seed=0, prefetch=prefetch)
    set_mode(mode)
    dist = Dist(device=torch.device(device))
    kw = dict(seed=0, input_scale=INPUT_SCALE, dist=dist)
    train_epoch(
        net, opt, ShardStream(shards[:1], batch, shuffle=True, seed=0), Loss.from_config(cfg.train), epoch=0, **kw
    )  # fmt: skip  (warm-up: CUDA context, cuDNN plans)
    sync(device)
    t0 = time.perf_counter()
    mean_loss, _ = train_epoch(net, opt, stream, Loss.from_config(cfg.train), epoch=1, **kw)
    sync(device)
    t = time.perf_counter() - t0
    return {"part": "loop", "model": cfg.model.name, "device": device, "mode": mode + "+pf" * prefetch,
            "batch": batch, "prefetch": prefetch, "samples_per_s": stream.n_scenes() / t,
            "epoch_loss": mean_loss}  # fmt: skip


def bench_predict(cfg, device: str, batch: int, seconds: float, tiles: tuple[np.ndarray, np.ndarray]) -> dict:
    from no2hotspots.detect.tiles import model_predictor

    predict = model_predictor(net_for(cfg, "cpu"), INPUT_SCALE, device=device)  # TF32 off on CUDA (its own rule)
    no2, valid = tiles[0][:batch], tiles[1][:batch]
    t = timed(lambda: predict(no2, valid), seconds)
    return {"part": "predict", "model": cfg.model.name, "device": device, "mode": "fp32", "batch": batch,
            "samples_per_s": batch / t}  # fmt: skip


def agreement(cfg, tiles: tuple[np.ndarray, np.ndarray]) -> dict:
    """CPU against CUDA on the same weights and tiles: a plain forward in fp32 and tf32, and detect's predictor."""
    from no2hotspots.detect.tiles import model_predictor
    from no2hotspots.model.inputs import prepare_input

    ref = model_predictor(net_for(cfg, "cpu"), INPUT_SCALE, device="cpu")(*tiles)
    got = {"predictor": model_predictor(net_for(cfg, "cpu"), INPUT_SCALE, device="cuda")(*tiles)}
    net = net_for(cfg, "cuda").eval()
    for mode in ("fp32", "tf32"):
        set_mode(mode)
        with torch.inference_mode():
            y = net(prepare_input(*tiles, INPUT_SCALE, device="cuda")).clamp(0.0, 1.0)
        got[mode] = y.cpu().numpy()
    out = {}
    for mode, g in got.items():
        d = np.abs(g - ref)
        flips = int(((g >= 0.2) != (ref >= 0.2)).sum())
        out[mode] = {"max_abs_diff": float(d.max()), "p99_abs_diff": float(np.quantile(d, 0.99)),
                     "pixels_crossing_0.2": flips, "pixels": int(d.size)}  # fmt: skip
    return {"part": "agreement", "model": cfg.model.name, **out}


def bench_prep(device: str, batch: int, seconds: float, tiles: tuple[np.ndarray, np.ndarray]) -> list[dict]:
    """The model input of ``batch`` tiles on ``device``: prepared on the host and copied (before 2026-12-04), against
    the raw arrays copied and prepared there (``prepare_input(device=)``, what the loop and the predictor do now)."""
    from no2hotspots.model.inputs import prepare_input

    no2, valid = tiles[0][:batch], tiles[1][:batch]
    ways = {
        "host": lambda: prepare_input(no2, valid, INPUT_SCALE).to(device),
        "device": lambda: prepare_input(no2, valid, INPUT_SCALE, device=device),
    }
    rows = []
    for where, fn in ways.items():

        def run(fn=fn):
            fn()
            sync(device)

        t = timed(run, seconds)
        rows.append({"part": "prep", "model": "-", "device": device, "mode": where, "batch": batch,
                     "samples_per_s": batch / t})  # fmt: skip
    return rows


def write_shards(root: Path, n: int) -> tuple[list[Path], tuple[np.ndarray, np.ndarray]]:
    from simdata import make_scenes, write_dataset  # tests/train/simdata.py

    from no2hotspots.train.data import split_shards

    write_dataset(root, {"train": n}, seed=3, shard_size=512)
    no2, valid, *_ = make_scenes(512, np.random.default_rng(5))
    return split_shards(root, "train"), (no2, valid)


def show(rows: list[dict]) -> None:
    cpu = {(r["part"], r["model"], r["batch"]): r["samples_per_s"] for r in rows if r.get("device") == "cpu"}
    print(f"{'part':<8}{'model':<7}{'device':<7}{'mode':<9}{'batch':>6}{'samples/s':>11}  vs CPU (same box)")
    for r in rows:
        if r["part"] == "agreement":
            continue
        if r["part"].startswith("ema:"):
            key = lambda h: (h["model"], h["device"], h["batch"])  # noqa: E731
            base = next(h["samples_per_s"] for h in rows if h["part"] == "ema:none" and key(h) == key(r))
            syncs = f", {r['syncs_per_update']} host syncs per update" if "syncs_per_update" in r else ""
            print(f"{r['part']:<12}{r['model']:<7}{r['device']:<7}{r['mode']:<9}{r['batch']:>6}"
                  f"{r['samples_per_s']:>11.0f}  {r['samples_per_s'] / base:5.2f}x of no average{syncs}")  # fmt: skip
            continue
        if r["part"] == "prep":
            host = next(h["samples_per_s"] for h in rows if h["part"] == "prep" and h["batch"] == r["batch"])
            ratio = f"{r['samples_per_s'] / host:8.1f}x prepared on the host" if r["mode"] == "device" else ""
            print(
                f"{'prep':<8}{'-':<7}{r['device']:<7}{r['mode']:<9}{r['batch']:>6}{r['samples_per_s']:>11.0f}  {ratio}"
            )
            continue
        base = cpu.get((r["part"], r["model"], r["batch"])) or cpu.get((r["part"], r["model"], 32))
        ratio = f"{r['samples_per_s'] / base:8.1f}x" if base and r["device"] != "cpu" else ""
        print(f"{r['part']:<8}{r['model']:<7}{r['device']:<7}{r['mode']:<9}{r['batch']:>6}"
              f"{r['samples_per_s']:>11.0f}  {ratio}")  # fmt: skip
    for r in rows:
        if r["part"] == "agreement":
            for mode in ("fp32", "tf32", "predictor"):
                a = r[mode]
                print(
                    f"agreement {r['model']} CPU vs CUDA {mode}: max |dr| {a['max_abs_diff']:.2e}, p99 "
                    f"{a['p99_abs_diff']:.2e}, {a['pixels_crossing_0.2']} of {a['pixels']:,} pixels cross r=0.2"
                )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["demo", "paper"])
    ap.add_argument("--seconds", type=float, default=3.0, help="timing window per measurement")
    ap.add_argument("--scenes", type=int, default=2048, help="scenes in the loop's training shards")
    ap.add_argument("--batches", type=int, nargs="+", default=[32, 256, 1024], help="CUDA batch sizes")
    ap.add_argument("--parts", nargs="+", choices=["models", "loop", "prep", "ema"], default=["models", "prep"],
                    help="models: every part per model; loop: only the epochs; prep: input preparation; "
                    "ema: the step without and with the weight average")  # fmt: skip
    ap.add_argument("--out", help="JSON to write (default benchmarks/results/gpu.json, with CUDA only)")
    args = ap.parse_args(argv)
    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    cuda = torch.cuda.is_available()
    if not cuda:
        print("no CUDA device here: CPU rows only")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        shards, tiles = write_shards(Path(tmp), args.scenes) if set(args.parts) - {"ema"} else (None, None)
        for name in args.models if "ema" in args.parts else []:
            cfg = config(name)
            for device, batches in (("cpu", [32]), ("cuda", args.batches if cuda else [])):
                for batch in batches:
                    for ema in ("none", "stage", "direct"):
                        rows.append(bench_steps(cfg, device, "fp32" if device == "cpu" else "tf32", batch,
                                                args.seconds, ema))  # fmt: skip
        if "prep" in args.parts and cuda:
            for batch in (256, 512):
                rows.extend(bench_prep("cuda", batch, args.seconds, tiles))
        for name in args.models if {"models", "loop"} & set(args.parts) else []:
            cfg = config(name)
            print(f"{name}: {count_parameters(net_for(cfg, 'cpu')):,} parameters, loss {cfg.train.loss}", flush=True)
            full = "models" in args.parts
            rows.append(bench_loop(cfg, "cpu", "fp32", shards, 32))
            if full:
                rows.append(bench_steps(cfg, "cpu", "fp32", 32, args.seconds))
                rows.append(bench_predict(cfg, "cpu", 256, args.seconds, tiles))
            if not cuda:
                continue
            for mode in MODES if full else ():
                for batch in args.batches:
                    rows.append(bench_steps(cfg, "cuda", mode, batch, args.seconds))
            for batch in args.batches:  # without and with reading the next shard ahead (what the stage does on CUDA)
                rows.append(bench_loop(cfg, "cuda", "tf32", shards, batch))
                rows.append(bench_loop(cfg, "cuda", "tf32", shards, batch, prefetch=True))
            if full:
                for batch in (256, 512):
                    rows.append(bench_predict(cfg, "cuda", batch, args.seconds, tiles))
                rows.append(agreement(cfg, tiles))
    show(rows)
    result = {
        "machine": {
            "platform": platform.platform(),
            "cpu_threads": threads,
            "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if cuda else None,
        },
        "rows": rows,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if args.out is None and not torch.cuda.is_available():
        print("no CUDA here: the committed GPU figures are kept (give --out FILE to write these)")
        return 0
    args.out = args.out or str(REPO / "benchmarks" / "results" / "gpu.json")
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
