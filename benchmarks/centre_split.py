"""Source F1 and pair recall when hotspot regions are split at the peaks of a source-centre map instead of r's.

The scores of ``benchmarks/results/centre_heatmap.json``: the validation split's every-source F1 (the score stage's
rule: regions of r >= 0.2, split at prominent peaks, located at their half-peak centroid, matched one-to-one within
2 px of a listed source) and the recall of a ``pairs`` split (both sources matched by distinct regions; overall,
>= 3 px apart, and >= 3 px with both sources' true r >= 0.2, by separation), for the variants:

* ``r_split_0.2``: the product's rule (split at r's peaks, prominence 0.2);
* ``heat_split_P`` / ``heat_split_P_pos_r``: split at the centre map's peaks (prominence P = 0.2, 0.4), regions
  located at the centre map's half-peak centroid / at r's.

The centre map exists only for a model trained with it, which needs the code of ``bcdaf1a`` (``model.head.centres``,
reverted since); with any other model the script scores ``r_split_0.2`` alone, which is how the models without it
were scored. Prints one JSON line.

    .venv/bin/python benchmarks/centre_split.py --model outputs/train/model --simulated outputs/simulated \
        --pairs VALIDATION_PAIRS_DATASET [--threads 1]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from no2hotspots.contracts import shards as contract
from no2hotspots.metrics.scores import Sources, blob_labels, blob_positions, match_per_sample
from no2hotspots.model.inputs import prepare_input
from no2hotspots.score.evaluate import listed_sources
from no2hotspots.score.pairs import both_above
from no2hotspots.score.run import load_trained
from no2hotspots.train.data import ShardStream, split_shards

THRESHOLD, MATCH_PX, MIN_SEP = 0.2, 2.0, 2


def run_model(loaded, shards: list[Path]) -> tuple[np.ndarray, np.ndarray | None]:
    """r maps and, for a model with a centre map, the centre maps (else None)."""
    net, scale = loaded.net.eval(), float(loaded.meta["input_scale"])
    centres = bool(getattr(net, "has_centres", False))
    rs, hs = [], []
    with torch.no_grad():
        for b in ShardStream(shards, 128, shuffle=False).batches(0):
            x = prepare_input(b.no2, b.valid, scale)
            if centres:
                r, h = net(x, with_centres=True)
                hs.append(h.numpy())
            else:
                r = net(x)
            rs.append(r.numpy())
    return np.concatenate(rs).astype(np.float64), (np.concatenate(hs).astype(np.float64) if hs else None)


def scores(pred, split_values, position_values, src: Sources, prominence: float):
    """Per scene: listed sources, regions, matched sources."""
    n = len(pred)
    lab, nb = blob_labels(split_values, pred >= THRESHOLD, {"prominence": prominence, "min_separation_px": MIN_SEP})
    i, _, r0, r1, c0, c1 = src.blocks(n, pred.shape[1:])
    centres = np.stack([0.5 * (r0 + r1) - 0.5, 0.5 * (c0 + c1) - 0.5], axis=1)
    at, scene = blob_positions(position_values, lab, nb)
    sc = match_per_sample(centres, i, at, scene, n, MATCH_PX, np.zeros(0))
    return sc.n_sources, sc.n_blobs, sc.n_matched


def f1(n_src, n_reg, n_match) -> dict:
    r, p = n_match.sum() / n_src.sum(), n_match.sum() / max(n_reg.sum(), 1)
    return {"f1": round(2 * r * p / (r + p), 4) if r + p else 0.0, "recall": round(r, 4), "precision": round(p, 4)}


def pair_rows(n_src, n_match, sep, r) -> dict:
    found = (n_match >= 2) & (n_src == 2)
    both = both_above(r, THRESHOLD)
    out = {
        "ge3": round(found[sep >= 3].mean(), 4),
        "ge3_both_above": round(found[(sep >= 3) & both].mean(), 4),
        "n_ge3_both": int(((sep >= 3) & both).sum()),
    }
    for d in np.unique(sep):
        sel = (sep == d) & both
        out[f"{d}px_both"] = round(found[sel].mean(), 3) if sel.any() else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--simulated", type=Path, required=True, help="a dataset with a val split")
    ap.add_argument("--pairs", type=Path, required=True, help="a dataset with a pairs split")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_trained(args.model)
    res: dict = {"model": str(args.model)}
    for name, root, split in (("val", args.simulated, "val"), ("vpairs", args.pairs, "pairs")):
        shards = split_shards(root, split)
        src = listed_sources(shards)
        if src is None:
            raise SystemExit(f"{root}: the {split} split lists no sources")
        pred, heat = run_model(loaded, shards)
        src = Sources(src.row[: len(pred)], src.col[: len(pred)], src.r[: len(pred)], src.footprint_px)
        if name == "vpairs":
            sep = [contract.load_arrays(s, ("pair_separation",))["pair_separation"] for s in shards]
            sep = np.rint(np.concatenate(sep)[: len(pred)]).astype(int)
        variants = {"r_split_0.2": (pred, pred, 0.2)}
        if heat is not None:
            for p in (0.2, 0.4):
                variants[f"heat_split_{p}"] = (heat, heat, p)
                variants[f"heat_split_{p}_pos_r"] = (heat, pred, p)
        for v, (split_values, position_values, p) in variants.items():
            n_src, n_reg, n_match = scores(pred, split_values, position_values, src, p)
            row = f1(n_src, n_reg, n_match)
            if name == "vpairs":
                row.update(pair_rows(n_src, n_match, sep, src.r))
            res.setdefault(name, {})[v] = row
    print(json.dumps(res))


if __name__ == "__main__":
    main()
