"""Training's per-epoch validation pass on the CPU: what the monitor's scoring adds to the bare forward pass.

Training validates after every epoch (``score.evaluate.evaluate``: the MSE and the monitor's scores at the marking
and the detection threshold, blobs split at their peaks). On a GPU the forward pass is fast and the scoring stays on
the host's CPU, so the scoring's time per scene, times the validation scenes, times the epochs, is what the GPU
cannot shorten. This measures, on the scenes of a ``make demo`` workspace and in one process:

- the baseline: the same ``evaluate`` loop with no scores (shards read, input prepared, forward pass, MSE);
- the full pass, as training runs it (``train.monitor`` of the default config);

with the workspace's trained model (sparse maps, the steady state of a run) and with the same network untrained
(smooth maps above the marking level nearly everywhere: the first epochs), on the validation split (demo world) and
on ``paper_world`` (the paper's kind of scene). It prints ms per scene and the scoring's share, and what the scoring
alone costs per epoch and over a run at the paper's size (27,300 validation scenes, 200 epochs; ``--val-scenes``,
``--epochs``). In the same run it times the scores' blob centroids on the first 256 maps: scipy's ``center_of_mass``
(the code before) against ``labelstats.label_centroid`` (same bits, checked). Writes
benchmarks/results/validation.json (``--out``).

    .venv/bin/python benchmarks/validation.py [--workspace DIR] [--scenes 1000] [--threads 1] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np
import torch
from peaks_split import best_of  # benchmarks/ is on sys.path: the script's folder
from scipy import ndimage

from no2hotspots.config import compose
from no2hotspots.labelstats import half_peak_weights, label_centroid
from no2hotspots.metrics import Scoring
from no2hotspots.metrics.scores import label
from no2hotspots.model.net import build_model
from no2hotspots.registry.load import load_model
from no2hotspots.score.evaluate import evaluate
from no2hotspots.train.data import ShardStream, split_shards

ROOT = Path(__file__).resolve().parents[1]


class NoScores:
    """A monitor without thresholds: ``evaluate`` then computes the MSE only (the forward-pass baseline)."""

    thresholds: dict[str, float] = {}


def centroid_timing(pred: np.ndarray, level: float, repeat: int) -> dict:
    """The scores' blob positions on these maps (the pred-weighted centroid of each blob's cells at >= half its
    peak, ``metrics.scores``): scipy's ``center_of_mass``, the code before, against ``labelstats.label_centroid``,
    in this run; the two must agree bit for bit."""
    lab, n = label(pred >= level)
    idx = np.arange(1, n + 1)
    top = half_peak_weights(pred, lab, n)
    want = np.asarray(ndimage.center_of_mass(top, lab, idx), dtype=np.float64).reshape(-1, 3)
    if not np.array_equal(label_centroid(top, lab, n), want):
        raise SystemExit("label_centroid differs from scipy's center_of_mass")
    t_scipy = best_of(lambda: ndimage.center_of_mass(top, lab, idx), repeat)
    t_ours = best_of(lambda: label_centroid(top, lab, n), repeat)
    return {
        "centroid_maps": len(pred),
        "centroid_blobs": int(n),
        "scipy_ms_per_map": 1e3 * t_scipy / len(pred),
        "label_centroid_ms_per_map": 1e3 * t_ours / len(pred),
        "centroid_speedup": t_scipy / t_ours,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--workspace", default=str(ROOT), help="a make demo workspace (outputs/simulated, outputs/train/model)"
    )
    ap.add_argument("--scenes", type=int, default=1000, help="scenes per split (the first ones, in stream order)")
    ap.add_argument("--splits", nargs="+", default=["val", "paper_world"])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (one per worker process on CPU)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--val-scenes", type=int, default=27300, help="validation scenes of the run to extrapolate to")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "validation.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ws = Path(args.workspace)
    if not (ws / "outputs" / "train" / "model").is_dir():
        raise SystemExit(f"{ws}: no outputs/train/model (run `make demo` there first, or pass --workspace)")
    cfg = compose([])
    loaded = load_model(str(ws / "outputs" / "train" / "model"))
    torch.manual_seed(0)
    models = {"trained": loaded.net.eval(), "untrained": build_model(cfg.model).eval()}
    scoring = Scoring.from_config(cfg.train.monitor)
    rows = []
    for split in args.splits:
        shards = split_shards(ws / "outputs" / "simulated", split)
        for name, net in models.items():

            def one(scores, net=net, shards=shards, split=split):
                stream = ShardStream(shards, int(cfg.train.eval_batch_size), shuffle=False, max_scenes=args.scenes)
                return evaluate(net, stream, input_scale=loaded.input_scale, scoring=scores, desc=split)

            n = ShardStream(shards, 1, shuffle=False, max_scenes=args.scenes).n_scenes()
            full = one(scoring)  # warm-up, and the figures the scores come to
            first = ShardStream(shards, int(cfg.train.eval_batch_size), shuffle=False, max_scenes=min(args.scenes, 256))
            maps = evaluate(net, first, input_scale=loaded.input_scale, scoring=NoScores(), keep_examples=256)
            centroids = centroid_timing(maps.examples["pred"], float(scoring.mark_threshold), args.repeat)
            t_base = best_of(lambda one=one: one(NoScores()), args.repeat)
            t_full = best_of(lambda one=one: one(scoring), args.repeat)
            score_ms = 1e3 * (t_full - t_base) / n
            row = {
                "split": split,
                "model": name,
                "scenes": n,
                "forward_ms_per_scene": 1e3 * t_base / n,
                "full_ms_per_scene": 1e3 * t_full / n,
                "scoring_ms_per_scene": score_ms,
                "scoring_share": (t_full - t_base) / t_full,
                "val_source_f1": full.metrics.get("detect/every/source_f1"),
                "scoring_s_per_epoch_at_val_scenes": score_ms * args.val_scenes / 1e3,
                "scoring_h_per_run": score_ms * args.val_scenes * args.epochs / 3.6e6,
                **centroids,
            }
            rows.append(row)
            print(
                f"{split:12s} {name:9s} {n} scenes: forward {row['forward_ms_per_scene']:.2f} ms/scene, with the "
                f"scores {row['full_ms_per_scene']:.2f} (scoring {score_ms:.2f} ms/scene, "
                f"{100 * row['scoring_share']:.0f} % of the pass); at {args.val_scenes} scenes the scoring alone is "
                f"{row['scoring_s_per_epoch_at_val_scenes']:.0f} s/epoch, {row['scoring_h_per_run']:.1f} h over "
                f"{args.epochs} epochs; blob centroids of {centroids['centroid_maps']} maps "
                f"({centroids['centroid_blobs']} blobs): scipy {centroids['scipy_ms_per_map']:.3f} ms/map, "
                f"label_centroid {centroids['label_centroid_ms_per_map']:.3f} ({centroids['centroid_speedup']:.1f}x)"
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    info = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_avg": os.getloadavg(),
        "torch_threads": args.threads,
        "workspace_model": loaded.meta.get("run_id"),
        "val_scenes": args.val_scenes,
        "epochs": args.epochs,
    }
    out.write_text(json.dumps({**info, "results": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
