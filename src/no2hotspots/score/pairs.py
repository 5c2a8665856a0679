"""Pair recall on the simulated ``pairs`` split: scenes with two point sources 1-8 px apart (issue 12). A pair is
resolved when both sources are found by distinct hotspot blobs at the product's detection threshold (blobs split at
prominent peaks as the product's hotspots are; one-to-one
matching within ``match_distance_px`` of each source's position, as in :mod:`no2hotspots.metrics.scores`)."""

from __future__ import annotations

import numpy as np
import torch

from ..metrics.scores import Sources, source_scores_at


@torch.no_grad()
def pair_recall(
    model, stream, shards, *, input_scale: float, threshold: float, match_distance_px: float, split: dict | None = None
) -> dict:
    """``pair_recall_ge3px`` (separations >= 3 px), ``pair_recall_all`` and ``pair_recall_<d>px`` per separation,
    with the number of pairs behind each."""
    from ..contracts import shards as contract
    from ..model.inputs import prepare_input
    from .evaluate import listed_sources

    sources = listed_sources(shards)
    if sources is None:
        return {}
    sep = np.concatenate([contract.load_arrays(s, ("pair_separation",))["pair_separation"] for s in shards])
    model.eval()
    matched, n = [], 0
    for b in stream.batches(0):
        pred = model(prepare_input(b.no2, b.valid, input_scale)).numpy()
        lo, n = n, n + len(pred)
        batch = Sources(sources.row[lo:n], sources.col[lo:n], sources.r[lo:n], sources.footprint_px)
        s = source_scores_at(pred, batch, pred >= threshold, match_distance_px, split=split)
        matched.append((s.n_matched >= 2) & (s.n_sources == 2))
    found = np.concatenate(matched)
    sep = np.rint(sep[: len(found)]).astype(int)
    out = {"pair_recall_all": float(found.mean()), "n_pairs": float(len(found))}
    ge3 = sep >= 3
    out["pair_recall_ge3px"] = float(found[ge3].mean()) if ge3.any() else float("nan")
    for d in np.unique(sep):
        out[f"pair_recall_{d}px"] = float(found[sep == d].mean())
    return out
