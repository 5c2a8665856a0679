"""Per-sample and per-source scores of predicted relative-emission maps against the true emission maps.

Definitions (pred, target: (N, H, W) relative emission in [0, 1]; valid: (N, H, W) observed-pixel mask):
- sources: 8-connected components of ``target > 0`` (the sources' footprints). A source is *hidden* (not scored)
  when its true r is below ``min_scored_r`` (normally the detection threshold: a perfect prediction of r would not
  mark it either) or, given
  ``valid``, when less than ``min_visible_fraction`` of its footprint is observed (under a cloud gap). Hidden
  footprints are left out of every score: their pixels are neither true nor counted as predicted, and they are
  neither sources to find nor false alarms;
- true emission pixels: the footprints of the scored sources; predicted emission pixels: ``pred >= threshold``
  outside hidden footprints;
- recognition accuracy (the paper's): |pred ∩ true| / |true|, for samples with true pixels (else NaN);
- pixel precision: |pred ∩ true| / |pred| (0 when nothing is predicted in a scene with sources; NaN without
  sources); IoU: |pred ∩ true| / |pred ∪ true| (NaN without sources);
- emission class by the sample's largest scored true r: 0 empty (no source at all), 1 low (< 0.33), 2 mid, 3 high
  (> 0.66), -1 sources but all hidden;
- sources: 8-connected components of ``target > 0``; predicted blobs: 8-connected components of
  ``pred >= threshold``. A source is found when a blob's peak (pred-weighted centroid of the blob's pixels at
  >= half its maximum) lies within
  ``match_distance_px`` of the source's footprint centroid; sources and blobs are matched one-to-one, nearest
  pairs first. Localisation error = that distance [px]. Emission error at a source = |max pred over the footprint
  - true r| for every source, found or not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

CLASS_EDGES = (0.33, 0.66)
# 8-connectivity within each image, none across the batch axis
_STRUCTURE = np.zeros((3, 3, 3), dtype=bool)
_STRUCTURE[1] = True


def hidden_mask(target, min_scored_r: float, valid=None, min_visible_fraction: float = 0.5) -> np.ndarray:
    """(N, H, W) bool: the footprint pixels of hidden sources (true r < ``min_scored_r``, or, given ``valid``, less
    than ``min_visible_fraction`` of the footprint observed). See the module docstring."""
    from scipy import ndimage

    target = np.asarray(target, dtype=np.float64)
    src_lab, n_src = ndimage.label(target > 0, structure=_STRUCTURE)
    if n_src == 0:
        return np.zeros(target.shape, dtype=bool)
    idx = np.arange(1, n_src + 1)
    hidden = np.asarray(ndimage.maximum(target, src_lab, idx), dtype=np.float64) < min_scored_r
    if valid is not None and min_visible_fraction > 0:
        visible = np.asarray(ndimage.mean(np.asarray(valid, dtype=np.float64), src_lab, idx), dtype=np.float64)
        hidden |= visible < min_visible_fraction
    return np.concatenate([[False], hidden])[src_lab]


def ignored_mask(pred, target, threshold: float, hidden) -> np.ndarray:
    """(N, H, W) bool: predicted pixels left out of the scores: the ``hidden`` footprints, and every predicted blob
    (8-connected ``pred >= threshold``) that touches a hidden footprint but no scored one."""
    from scipy import ndimage

    hidden = np.asarray(hidden, dtype=bool)
    if not hidden.any():
        return hidden.copy()
    marked = np.asarray(pred) >= threshold
    blob_lab, n_blob = ndimage.label(marked, structure=_STRUCTURE)
    if n_blob == 0:
        return hidden.copy()
    scored = (np.asarray(target) > 0) & ~hidden
    touches_hidden = np.bincount(blob_lab[hidden], minlength=n_blob + 1) > 0
    touches_scored = np.bincount(blob_lab[scored], minlength=n_blob + 1) > 0
    drop = touches_hidden & ~touches_scored
    drop[0] = False
    return hidden | drop[blob_lab]


def count_sources(mask) -> np.ndarray:
    """(N,) int64: 8-connected components of the (N, H, W) bool ``mask`` per sample."""
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    lab, n = ndimage.label(mask, structure=_STRUCTURE)
    if n == 0:
        return np.zeros(mask.shape[0], dtype=np.int64)
    sample = np.asarray([sl[0].start for sl in ndimage.find_objects(lab)], dtype=np.int64)  # one image each
    return np.bincount(sample, minlength=mask.shape[0]).astype(np.int64)


def emission_class(target: torch.Tensor, edges=CLASS_EDGES, hidden: torch.Tensor | None = None) -> torch.Tensor:
    """(N,) int64: 0 empty, 1 low (max scored r < edges[0]), 2 mid, 3 high (max scored r > edges[1]), -1 when
    every source of the sample is hidden."""
    scored = target if hidden is None else torch.where(hidden, torch.zeros_like(target), target)
    rmax = scored.flatten(1).amax(dim=1)
    cls = torch.full_like(rmax, 2, dtype=torch.int64)
    cls[rmax < edges[0]] = 1
    cls[rmax > edges[1]] = 3
    cls[~(scored.flatten(1) > 0).any(dim=1)] = -1
    cls[~(target.flatten(1) > 0).any(dim=1)] = 0
    return cls


def pixel_scores(
    pred: torch.Tensor,
    target: torch.Tensor,
    threshold: float,
    hidden: torch.Tensor | None = None,
    ignored: torch.Tensor | None = None,
):
    """Per-sample (accuracy, precision, iou) as float64 tensors (N,); NaN for samples without true pixels.

    ``hidden`` (bool, like ``target``): footprints left out of the true pixels (see :func:`hidden_mask`);
    ``ignored``: pixels left out of the predicted ones (see :func:`ignored_mask`; default ``hidden``)."""
    t = target > 0
    p = pred >= threshold
    if hidden is not None:
        t = t & ~hidden
        p = p & ~(hidden if ignored is None else ignored)
    t, p = t.flatten(1), p.flatten(1)
    n_true = t.sum(1).double()
    n_pred = p.sum(1).double()
    inter = (t & p).sum(1).double()
    union = (t | p).sum(1).double()
    nan = torch.full_like(n_true, float("nan"))
    has = n_true > 0
    acc = torch.where(has, inter / n_true.clamp(min=1), nan)
    prec = torch.where(has, inter / n_pred.clamp(min=1), nan)  # 0 when nothing predicted
    iou = torch.where(has, inter / union.clamp(min=1), nan)
    return acc, prec, iou


@dataclass
class SourceScores:
    n_sources: np.ndarray  # (N,) int64 true sources per sample
    n_blobs: np.ndarray  # (N,) int64 predicted blobs per sample
    n_matched: np.ndarray  # (N,) int64 matched source-blob pairs per sample
    loc_error: np.ndarray  # (M,) float64 px, one per matched pair
    abs_error: np.ndarray  # (S,) float64, |max pred over footprint - true r| per true source


def source_scores(
    pred: np.ndarray,
    target: np.ndarray,
    threshold: float,
    match_distance_px: float,
    hidden: np.ndarray | None = None,
    ignored: np.ndarray | None = None,
) -> SourceScores:
    """Source-level scores (see the module docstring); ``hidden`` footprints are no sources, ``ignored`` pixels
    (default ``hidden``) belong to no blob."""
    from scipy import ndimage

    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if hidden is not None:
        hidden = np.asarray(hidden, dtype=bool)
        ignored = hidden if ignored is None else np.asarray(ignored, dtype=bool)
        target = np.where(hidden, 0.0, target)
        pred = np.where(ignored, 0.0, pred)
    n = pred.shape[0]
    src_lab, n_src = ndimage.label(target > 0, structure=_STRUCTURE)
    blob_lab, n_blob = ndimage.label(pred >= threshold, structure=_STRUCTURE)
    empty_i = np.zeros(0, dtype=np.int64)
    if n_src:
        idx = np.arange(1, n_src + 1)
        src_c = np.asarray(ndimage.center_of_mass(np.ones_like(target), src_lab, idx)).reshape(-1, 3)
        src_r = np.asarray(ndimage.maximum(target, src_lab, idx), dtype=np.float64)
        src_pmax = np.asarray(ndimage.maximum(pred, src_lab, idx), dtype=np.float64)
        src_sample = np.rint(src_c[:, 0]).astype(np.int64)
        abs_error = np.abs(src_pmax - src_r)
    else:
        src_c, src_sample, abs_error = np.zeros((0, 3)), empty_i, np.zeros(0)
    if n_blob:
        idx = np.arange(1, n_blob + 1)
        # blob location: pred-weighted centroid of the blob's pixels at >= half its peak (the peak, robust to
        # flat tops and not dragged downwind by a plume-shaped tail)
        peak = np.concatenate([[0.0], np.asarray(ndimage.maximum(pred, blob_lab, idx), dtype=np.float64)])
        top = np.where(pred >= 0.5 * peak[blob_lab], pred, 0.0) * (blob_lab > 0)
        blob_p = np.asarray(ndimage.center_of_mass(top, blob_lab, idx), dtype=np.float64).reshape(-1, 3)
        blob_sample = np.rint(blob_p[:, 0]).astype(np.int64)
    else:
        blob_p, blob_sample = np.zeros((0, 3)), empty_i
    n_sources = np.bincount(src_sample, minlength=n).astype(np.int64)
    n_blobs = np.bincount(blob_sample, minlength=n).astype(np.int64)
    n_matched = np.zeros(n, dtype=np.int64)
    loc = []
    for i in np.flatnonzero((n_sources > 0) & (n_blobs > 0)):
        s = src_c[src_sample == i, 1:]
        b = blob_p[blob_sample == i, 1:]
        d = np.hypot(s[:, None, 0] - b[None, :, 0], s[:, None, 1] - b[None, :, 1])
        si, bi = np.nonzero(d <= match_distance_px)
        order = np.argsort(d[si, bi], kind="stable")
        used_s, used_b = set(), set()
        for k in order:
            a, c = si[k], bi[k]
            if a in used_s or c in used_b:
                continue
            used_s.add(a)
            used_b.add(c)
            loc.append(d[a, c])
        n_matched[i] = len(used_s)
    return SourceScores(n_sources, n_blobs, n_matched, np.asarray(loc, dtype=np.float64), abs_error)
