"""Per-sample and per-source scores of predicted relative-emission maps against the true emission maps.

Definitions (pred, target: (N, H, W) relative emission in [0, 1]):
- true emission pixels: ``target > 0`` (the sources' footprints); predicted emission pixels: ``pred >= threshold``;
- recognition accuracy (the paper's): |pred ∩ true| / |true|, for samples with true pixels (else NaN);
- pixel precision: |pred ∩ true| / |pred| (0 when nothing is predicted in a scene with sources; NaN without
  sources); IoU: |pred ∩ true| / |pred ∪ true| (NaN without sources);
- emission class by the sample's largest true r: 0 empty, 1 low (< 0.33), 2 mid, 3 high (> 0.66);
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


def emission_class(target: torch.Tensor, edges=CLASS_EDGES) -> torch.Tensor:
    """(N,) int64: 0 empty, 1 low (max r < edges[0]), 2 mid, 3 high (max r > edges[1])."""
    rmax = target.flatten(1).amax(dim=1)
    cls = torch.full_like(rmax, 2, dtype=torch.int64)
    cls[rmax < edges[0]] = 1
    cls[rmax > edges[1]] = 3
    cls[~(target.flatten(1) > 0).any(dim=1)] = 0
    return cls


def pixel_scores(pred: torch.Tensor, target: torch.Tensor, threshold: float):
    """Per-sample (accuracy, precision, iou) as float64 tensors (N,); NaN for samples without true pixels."""
    t = (target > 0).flatten(1)
    p = (pred >= threshold).flatten(1)
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


def source_scores(pred: np.ndarray, target: np.ndarray, threshold: float, match_distance_px: float) -> SourceScores:
    from scipy import ndimage

    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
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
