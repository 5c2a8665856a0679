"""The training loss's peak term (``train.peak_weight``): its gathered form against the dense max_pool2d form.

The term needs, at every emitting pixel, the prediction's maximum over a window around it. The dense form pools the
whole map (``max_pool2d``, then ``where`` on the emitting pixels); the gathered form (``Loss.peak_deficit``) reads the
window only at the emitting pixels (a few % of a map). Both give the same value and the same gradient (to 1e-6, checked
here on every timed batch, and in tests/train/test_loss.py). Timed in one process, forward and backward of the demo loss
(MSE + Tversky, ``train=demo``) on batches of the training split of a ``make demo`` workspace, with random
predictions in [0, 1]: the loss alone (the baseline), plus the pooled term, plus the gathered term; ms per batch
(min / median / max over repeats) and ratios. Writes benchmarks/results/peak_loss.json (``--out``).

    .venv/bin/python benchmarks/peak_loss.py [--simulated outputs/simulated] [--batches 50] [--repeat 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from no2hotspots.config import compose
from no2hotspots.train.data import ShardStream, split_shards
from no2hotspots.train.loop import Loss

REPO = Path(__file__).resolve().parents[1]


def pooled_deficit(loss: Loss, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The peak term with a dense max_pool2d over the whole map (the form before the gathered one)."""
    w, emitting = loss.peak_window_px, target > 0
    seen = pred.masked_fill(~emitting, float("-inf")) if loss.peak_within_footprint else pred
    flat = seen.reshape(-1, 1, *pred.shape[-2:])
    local = torch.nn.functional.max_pool2d(flat, w, stride=1, padding=w // 2).reshape(pred.shape)
    return torch.where(emitting, torch.relu(target - local) ** 2, 0.0).mean()


def step(loss: Loss, pred: torch.Tensor, target: torch.Tensor, term) -> torch.Tensor:
    """Forward and backward of the loss (+ ``term``); the prediction's gradient."""
    p = pred.clone().requires_grad_(True)
    value = loss(p, target)
    if term is not None:
        value = value + 5.0 * term(p, target)
    value.backward()
    return p.grad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--simulated", default=str(REPO / "outputs" / "simulated"))
    ap.add_argument("--batches", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "peak_loss.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = compose(["train.peak_weight=5"])
    loss = Loss.from_config(cfg.train)
    stream = ShardStream(split_shards(args.simulated, "train"), int(cfg.train.batch_size), shuffle=False)
    targets = []
    for b in stream.batches(0):
        targets.append(torch.as_tensor(b.emission))
        if len(targets) == args.batches:
            break
    g = torch.Generator().manual_seed(0)
    preds = [torch.rand(t.shape, generator=g) for t in targets]
    emitting = float(sum(int((t > 0).sum()) for t in targets)) / sum(t.numel() for t in targets)
    for p, t in zip(preds, targets):  # the same value and gradient, every batch
        a, b = p.clone().requires_grad_(True), p.clone().requires_grad_(True)
        va, vb = loss.peak_deficit(a, t), pooled_deficit(loss, b, t)
        va.backward()
        vb.backward()
        if not (torch.allclose(va, vb, rtol=1e-6, atol=0) and torch.allclose(a.grad, b.grad, rtol=1e-6, atol=1e-12)):
            raise SystemExit("the gathered and the pooled peak terms differ")
    arms = {
        "loss (MSE + Tversky), no peak term": None,
        "+ peak term, pooled (max_pool2d)": lambda p, t: pooled_deficit(loss, p, t),
        "+ peak term, gathered (Loss.peak_deficit)": loss.peak_deficit,
    }
    ms = {k: [] for k in arms}
    for _ in range(args.repeat):
        for name, term in arms.items():  # interleaved: a slow moment of the box hits every arm
            for p, t in zip(preds[:3], targets[:3]):
                step(loss, p, t, term)
            t0 = time.perf_counter()
            for p, t in zip(preds, targets):
                step(loss, p, t, term)
            ms[name].append((time.perf_counter() - t0) / len(preds) * 1e3)
    base = statistics.median(ms["loss (MSE + Tversky), no peak term"])
    rows = {}
    for name, v in ms.items():
        med = statistics.median(v)
        rows[name] = {"ms_per_batch": {"min": min(v), "median": med, "max": max(v)}, "ratio_to_loss_alone": med / base}
        spread = f"{min(v):6.2f} / {med:6.2f} / {max(v):6.2f}"
        print(f"{name:45s} {spread} ms per batch  x{med / base:.2f} of the loss alone")
    pooled = statistics.median(ms["+ peak term, pooled (max_pool2d)"]) - base
    gathered = statistics.median(ms["+ peak term, gathered (Loss.peak_deficit)"]) - base
    ratio = gathered / pooled
    print(f"the term's own cost: pooled {pooled:.2f} ms, gathered {gathered:.2f} ms per batch (x{ratio:.2f})")
    out = {
        "what": __doc__.splitlines()[0],
        "batch": int(cfg.train.batch_size),
        "batches": len(targets),
        "emitting_pixel_share": emitting,
        "threads": args.threads,
        "repeat": args.repeat,
        "rows": rows,
        "term_cost_ms_per_batch": {"pooled": pooled, "gathered": gathered, "ratio": ratio},
        "same_values_and_gradients": True,
        "machine": {"platform": platform.platform(), "torch": torch.__version__},
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
