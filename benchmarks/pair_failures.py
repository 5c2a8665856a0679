"""Why pairs are not resolved: each pair of a ``pairs`` split whose two true r are >= the detection threshold (those
a perfect estimate of r would show as two hotspots) in one of four classes, by separation:

* ``resolved``: both sources matched by distinct hotspot blobs (the score stage's pair rule);
* ``weak_under_threshold``: the predicted r over one source's k x k block stays below the threshold;
* ``merged``: both blocks reach the threshold but they lie in one blob (no prominent peak splits it);
* ``split_unmatched``: two or more blobs, but not one within the match distance of each source.

The blobs are the product's (``pred >= threshold``, split at prominent peaks, located at their half-peak centroid,
matched one-to-one within ``match_distance_px``: :mod:`no2hotspots.metrics.scores`). Writes nothing; prints one
line per separation and the totals over the pairs >= 3 px apart, and with ``--out`` a JSON of the same.

    .venv/bin/python benchmarks/pair_failures.py --model outputs/train/model --simulated outputs/simulated \
        [--threshold 0.2 --match-px 2 --prominence 0.2 --min-separation-px 2] [--out F]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from no2hotspots.contracts import shards as contract
from no2hotspots.metrics.scores import Sources, source_scores_at
from no2hotspots.model.inputs import prepare_input
from no2hotspots.score.evaluate import listed_sources
from no2hotspots.score.pairs import both_above
from no2hotspots.score.run import load_trained
from no2hotspots.train.data import ShardStream, split_shards

CLASSES = ("resolved", "weak_under_threshold", "merged", "split_unmatched")


def predictions(model_dir: Path, shards: list[Path], batch: int = 128) -> np.ndarray:
    loaded = load_trained(model_dir)
    loaded.net.eval()
    scale = float(loaded.meta["input_scale"])
    out = []
    with torch.no_grad():
        for b in ShardStream(shards, batch, shuffle=False).batches(0):
            out.append(loaded.net(prepare_input(b.no2, b.valid, scale)).numpy())
    return np.concatenate(out).astype(np.float64)


def classify(pred: np.ndarray, sources: Sources, threshold: float, match_px: float, split: dict) -> np.ndarray:
    """(N,) class index (:data:`CLASSES`) per two-source scene; -1 where a scene does not list two sources. One pass
    of the score stage's rule over the whole stack (its regions never span two maps)."""
    n = len(pred)
    s = source_scores_at(pred, sources, pred >= threshold, match_px, split=split)
    i, _, r0, r1, c0, c1 = sources.blocks(n, pred.shape[1:])
    weakest = np.full(n, np.inf)  # the lower of the predicted maxima over the scene's source blocks
    block_max = [pred[a, b:c, d:e].max(initial=0.0) for a, b, c, d, e in zip(i, r0, r1, c0, c1)]
    np.minimum.at(weakest, i, np.asarray(block_max, dtype=np.float64))
    cls = np.select([s.n_matched >= 2, weakest < threshold, s.n_blobs < 2], [0, 1, 2], default=3)
    return np.where(s.n_sources == 2, cls, -1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True, help="a trained model folder (outputs/train/model)")
    ap.add_argument("--simulated", type=Path, required=True, help="a simulated dataset with a pairs split")
    ap.add_argument("--threshold", type=float, default=0.2)
    ap.add_argument("--match-px", type=float, default=2.0)
    ap.add_argument("--prominence", type=float, default=0.2)
    ap.add_argument("--min-separation-px", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shards = split_shards(args.simulated, "pairs")
    sources = listed_sources(shards)
    if sources is None:
        raise SystemExit(f"{args.simulated}: the pairs split lists no sources")
    sep = np.concatenate([contract.load_arrays(s, ("pair_separation",))["pair_separation"] for s in shards])
    sep = np.rint(sep).astype(np.int64)
    pred = predictions(args.model, shards)
    split = {"prominence": args.prominence, "min_separation_px": args.min_separation_px}
    cls = classify(pred, sources, args.threshold, args.match_px, split)
    both = both_above(sources.r[: len(pred)], args.threshold)
    rows = {}
    for d in [*np.unique(sep[both]).tolist(), "ge3"]:
        sel = both & ((sep >= 3) if d == "ge3" else (sep == d))
        counts = {c: int((cls[sel] == k).sum()) for k, c in enumerate(CLASSES)}
        rows[str(d)] = {"n": int(sel.sum()), **counts}
        label = ">= 3 px" if d == "ge3" else f"{d} px"
        print(f"{label:>8}: {sel.sum():3d} pairs, " + ", ".join(f"{c} {n}" for c, n in counts.items()))
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "model": str(args.model),
                    "settings": vars(args) | {"model": None, "simulated": str(args.simulated), "out": None},
                    "pairs_both_above_threshold": rows,
                },
                indent=1,
                default=str,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
