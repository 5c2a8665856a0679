"""Pair recall on the simulated ``pairs`` split: scenes with two point sources 1-8 px apart (issue 12). A pair is
resolved when both sources are found by distinct hotspot blobs at the product's detection threshold (blobs split at
prominent peaks as the product's hotspots are; one-to-one
matching within ``match_distance_px`` of each source's position, as in :mod:`no2hotspots.metrics.scores`).

Every pair counts in ``pair_recall_*`` (the headline). The split draws each source's rate log-uniformly, so in many
pairs one source's true relative emission r is below the detection threshold: such a source is no hotspot even
alone, and the pair is unresolved whatever the separation. ``pair_recall_ge3px_both_above_threshold`` is the same
recall over the pairs whose two true r are both >= the threshold (those a perfect estimate of r would show as two
hotspots): it reads the separation alone; its pair count is beside it."""

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
    return recall_table(found, sep[: len(found)], sources.r[: len(found)], threshold)


def both_above(r: np.ndarray, threshold: float) -> np.ndarray:
    """Per pair scene (N,): both of its two listed sources have a true r >= ``threshold`` (``r`` (N, S) NaN-padded;
    a scene listing other than two sources is False)."""
    listed = np.isfinite(r)
    return (listed.sum(axis=1) == 2) & (np.where(listed, r, np.inf).min(axis=1) >= threshold)


def recall_table(found: np.ndarray, separation_px: np.ndarray, r: np.ndarray, threshold: float) -> dict:
    """The pair figures from per-pair outcomes ``found`` (N,), separations (N,) and true r (N, S) NaN-padded."""
    sep = np.rint(separation_px).astype(int)
    both = both_above(r, threshold)
    out = {"pair_recall_all": float(found.mean()), "n_pairs": float(len(found))}
    ge3 = sep >= 3
    out["pair_recall_ge3px"] = float(found[ge3].mean()) if ge3.any() else float("nan")
    out["pair_recall_ge3px_both_above_threshold"] = (
        float(found[ge3 & both].mean()) if (ge3 & both).any() else float("nan")
    )
    out["n_pairs_ge3px_both_above_threshold"] = float((ge3 & both).sum())
    for d in np.unique(sep):
        out[f"pair_recall_{d}px"] = float(found[sep == d].mean())
    return out
