"""Training/inference throughput of the hotspot CNN on this machine, against a dense 3x3-conv baseline.

For each model config (conf/model/<name>.yaml): training samples/s (forward + MSE backward + Adam step, batch 32),
inference tiles/s (no_grad, eval mode, batch 256), FLOPs per sample (torch.utils.flop_counter.FlopCounterMode),
achieved GFLOP/s and its share of the baseline: a dense 3x3 conv 64->64 ch at 64x64, batch 32, forward, measured in
the same run. Threads: torch.set_num_threads(2) (the target box has 2 cores). ``--refine-widths W ...`` adds the
demo model with ``model.head.refine_width=W`` (the full-resolution refinement) and prints its training and inference
rates as a ratio to the demo model's, measured in the same run. The model input's preparation is timed with and
without its scaling check (what training skips after each epoch's first batch), against the demo's training step.

    .venv/bin/python benchmarks/train.py [--models demo paper] [--refine-widths 12] [--seconds 6] [--out F]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

LOAD0 = float("nan")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from no2hotspots.atomic import write_json  # noqa: E402
from no2hotspots.model.net import build_model, count_parameters  # noqa: E402


def timed(fn, seconds: float, min_iters: int = 3) -> float:
    """Median seconds per call of fn() over repeated calls (after 2 warm-up calls)."""
    for _ in range(2):
        fn()
    times, t_end = [], time.perf_counter() + seconds
    while time.perf_counter() < t_end or len(times) < min_iters:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def conv_baseline(seconds: float, device: str = "cpu") -> dict:
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False).to(device)
    x = torch.randn(32, 64, 64, 64, device=device)

    def fwd():
        with torch.no_grad():
            conv(x)
        if device == "cuda":
            torch.cuda.synchronize()

    flops = count_flops(fwd)
    t = timed(fwd, seconds)
    return {"what": "conv3x3 64->64 @64x64, batch 32, forward", "flops": flops, "gflops_per_s": flops / t / 1e9}


def bench_model(
    name: str, seconds: float, device: str = "cpu", batch_train: int = 32, batch_infer: int = 256, refine: int = 0
) -> dict:
    cfg = OmegaConf.load(REPO / "conf" / "model" / f"{name}.yaml")
    if refine:
        cfg.head.refine_width = refine
        name = f"{name}+r{refine}"
    torch.manual_seed(0)
    net = build_model(cfg).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(batch_train, 2, 64, 64, device=device)
    y = (torch.rand(batch_train, 64, 64, device=device) > 0.99).float()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(net(x), y)
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()

    net.train()
    train_flops = count_flops(step) / batch_train  # Adam's elementwise ops are not counted (negligible)
    t_train = timed(step, seconds)

    net.eval()
    xi = torch.randn(batch_infer, 2, 64, 64, device=device)

    def infer():
        with torch.no_grad():
            net(xi)
        if device == "cuda":
            torch.cuda.synchronize()

    infer_flops = count_flops(infer) / batch_infer
    t_infer = timed(infer, seconds)
    return {
        "model": name,
        "device": device,
        "parameters": count_parameters(net),
        "train_batch": batch_train,
        "train_samples_per_s": batch_train / t_train,
        "train_flops_per_sample": train_flops,
        "train_gflops_per_s": train_flops * batch_train / t_train / 1e9,
        "infer_batch": batch_infer,
        "infer_tiles_per_s": batch_infer / t_infer,
        "infer_flops_per_tile": infer_flops,
        "infer_gflops_per_s": infer_flops * batch_infer / t_infer / 1e9,
    }


def input_check(seconds: float, batch: int = 32, device: str = "cpu") -> dict:
    """The model input's preparation for one training batch with and without the scaling check (a median over the
    batch's valid pixels: ``no2hotspots.model.inputs.check_scaling``), ms per batch. Training runs the check on each
    epoch's first batch only; detection on every overpass."""
    from no2hotspots.model.inputs import prepare_input

    g = torch.Generator().manual_seed(0)
    no2 = (torch.rand(batch, 64, 64, generator=g) * 4e-5 + 1e-5).numpy()
    valid = (torch.rand(batch, 64, 64, generator=g) > 0.2).numpy().astype("uint8")
    t_check = timed(lambda: prepare_input(no2, valid, 1e5, check=True, device=device), seconds)
    t_plain = timed(lambda: prepare_input(no2, valid, 1e5, check=False, device=device), seconds)
    return {"batch": batch, "ms_with_check": 1e3 * t_check, "ms_without_check": 1e3 * t_plain}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["demo", "paper"])
    ap.add_argument("--seconds", type=float, default=6.0, help="timing window per measurement")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--refine-widths", type=int, nargs="*", default=[], help="demo with head.refine_width=W")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "train.json"))
    args = ap.parse_args(argv)
    global LOAD0
    LOAD0 = os.getloadavg()[0]
    torch.set_num_threads(args.threads)

    base = conv_baseline(args.seconds)
    rows = []
    # the configs first, then the demo with each refinement (timed against the demo row of the same run)
    for name, refine in [(n, 0) for n in args.models] + [("demo", w) for w in args.refine_widths]:
        r = bench_model(name, args.seconds, refine=refine)
        r["train_share_of_conv"] = r["train_gflops_per_s"] / base["gflops_per_s"]
        r["infer_share_of_conv"] = r["infer_gflops_per_s"] / base["gflops_per_s"]
        demo = next((x for x in rows if x["model"] == "demo"), None)
        if refine and demo is not None:
            r["train_rate_vs_demo"] = r["train_samples_per_s"] / demo["train_samples_per_s"]
            r["infer_rate_vs_demo"] = r["infer_tiles_per_s"] / demo["infer_tiles_per_s"]
        rows.append(r)
    prep = input_check(args.seconds)
    demo = next((x for x in rows if x["model"] == "demo"), None)
    if demo is not None:  # the check's cost as a share of a demo training step of the same run
        prep["check_ms_share_of_demo_step"] = (prep["ms_with_check"] - prep["ms_without_check"]) / (
            1e3 * demo["train_batch"] / demo["train_samples_per_s"]
        )
    cuda = []
    if torch.cuda.is_available():
        gbase = conv_baseline(args.seconds, "cuda")
        r = bench_model("paper", args.seconds, "cuda")
        r["train_share_of_conv"] = r["train_gflops_per_s"] / gbase["gflops_per_s"]
        r["infer_share_of_conv"] = r["infer_gflops_per_s"] / gbase["gflops_per_s"]
        cuda = [{"baseline": gbase, **r, "gpu": torch.cuda.get_device_name(0)}]

    print(
        f"baseline {base['what']}: {base['gflops_per_s']:.1f} GFLOP/s ({args.threads} threads; "
        f"load average {LOAD0:.1f} -> {os.getloadavg()[0]:.1f}: other processes distort timings)"
    )
    hdr = (
        f"{'model':<9}{'dev':<5}{'params':>10}{'train/s':>9}{'MFLOP/s.':>10}{'GFLOP/s':>9}{'share':>7}"
        f"{'infer/s':>9}{'GFLOP/s':>9}{'share':>7}"
    )
    print(hdr)
    for r in rows + cuda:
        print(
            f"{r['model']:<9}{r['device']:<5}{r['parameters']:>10,}{r['train_samples_per_s']:>9.0f}"
            f"{r['train_flops_per_sample'] / 1e6:>10.1f}{r['train_gflops_per_s']:>9.1f}"
            f"{r['train_share_of_conv']:>7.0%}{r['infer_tiles_per_s']:>9.0f}{r['infer_gflops_per_s']:>9.1f}"
            f"{r['infer_share_of_conv']:>7.0%}"
            + (
                f"   vs demo: train {r['train_rate_vs_demo']:.2f}x, infer {r['infer_rate_vs_demo']:.2f}x"
                if "train_rate_vs_demo" in r
                else ""
            )
        )
    print(
        f"input preparation, batch {prep['batch']}: {prep['ms_with_check']:.2f} ms with the scaling check, "
        f"{prep['ms_without_check']:.2f} ms without"
        + (
            f" (the check: {prep['check_ms_share_of_demo_step']:.1%} of a demo training step)"
            if "check_ms_share_of_demo_step" in prep
            else ""
        )
    )
    result = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "threads": args.threads,
            "torch": torch.__version__,
            "loadavg_1min_at_start": LOAD0,
            "loadavg_1min_at_end": os.getloadavg()[0],
        },
        "baseline": base,
        "models": rows,
        "input_check": prep,
        "cuda": cuda,
        "goals_demo": {"train_share_of_conv": 0.40, "infer_tiles_per_s": 1000},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
