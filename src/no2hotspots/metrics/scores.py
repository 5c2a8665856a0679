"""Per-sample and per-source scores of predicted relative-emission maps against the true emission maps.

The convention, in five lines (pred, target: (N, H, W) relative emission; valid: (N, H, W) observed-pixel mask):
1. A source is an 8-connected footprint of ``target > 0``; a pixel is *marked* when ``pred >= threshold``.
2. Pixel recall (the paper's "recognition accuracy", Table 1) = |marked ∩ true| / |true| per scene with sources;
   pixel precision = |marked ∩ true| / |marked|; classes by the scene's largest true r (low < 0.33, high > 0.66).
3. ``every``: every source counts (the headline). ``visible``: sources with true r < ``min_scored_r`` or less than
   ``min_visible_fraction`` of the footprint observed are *hidden* (left out), and so are marked pixels within
   ``dilate_px`` of a hidden footprint; a predicted blob counts unless it lies wholly inside that region.
4. A blob (split at prominent peaks as hotspots are) is found when its peak lies within ``match_distance_px`` of
   a footprint centre (one-to-one, nearest pairs first); source recall/precision/F1 follow; an unmatched blob is a
   false alarm.
5. False-alarm rate = share of scenes without a scored source (empty, and for ``visible`` also hidden-only
   scenes) that hold any counted blob. Nothing else is dropped.
Where the scenes list their sources (:class:`Sources`: positions, r), sources are those positions and their k x k
blocks, not the connected components of the target: footprints of sources 1-3 px apart touch. Table 1's true pixels
are then those blocks too, whatever the target holds in them (the same as ``target > 0`` for the targets simulate
writes; a target with a 0 border between touching footprints, the experiment of ``fec457d``, scores the same).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..labelstats import half_peak_centroid, label_centroid, label_max

CLASS_EDGES = (0.33, 0.66)
# 8-connectivity within each image, none across the batch axis
_STRUCTURE = np.zeros((3, 3, 3), dtype=bool)
_STRUCTURE[1] = True


def label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of an (N, H, W) bool mask, per image."""
    from scipy import ndimage

    lab, n = ndimage.label(np.asarray(mask, dtype=bool), structure=_STRUCTURE)
    return lab, int(n)


def hidden_mask(target, min_scored_r: float, valid=None, min_visible_fraction: float = 0.5) -> np.ndarray:
    """(N, H, W) bool: the footprint pixels of hidden sources (true r < ``min_scored_r``, or, given ``valid``, less
    than ``min_visible_fraction`` of the footprint observed)."""
    from scipy import ndimage

    target = np.asarray(target, dtype=np.float64)
    src_lab, n_src = label(target > 0)
    if n_src == 0:
        return np.zeros(target.shape, dtype=bool)
    idx = np.arange(1, n_src + 1)
    hidden = label_max(target, src_lab, n_src) < min_scored_r
    if valid is not None and min_visible_fraction > 0:
        visible = np.asarray(ndimage.mean(np.asarray(valid, dtype=np.float64), src_lab, idx), dtype=np.float64)
        hidden |= visible < min_visible_fraction
    return np.concatenate([[False], hidden])[src_lab]


def ignore_region(target, hidden, dilate_px: int) -> np.ndarray:
    """(N, H, W) bool: hidden footprints dilated by ``dilate_px`` (a square, per image), minus scored footprints."""
    from scipy import ndimage

    hidden = np.asarray(hidden, dtype=bool)
    region = hidden
    if dilate_px > 0 and hidden.any():
        k = 2 * int(dilate_px) + 1
        region = ndimage.binary_dilation(hidden, structure=np.ones((1, k, k), dtype=bool))
    scored = (np.asarray(target) > 0) & ~hidden
    return region & ~scored


def counted_blobs(marked: np.ndarray, region: np.ndarray | None) -> np.ndarray:
    """``marked`` without the blobs (8-connected) that lie wholly inside ``region``; other blobs stay whole."""
    marked = np.asarray(marked, dtype=bool)
    if region is None or not region.any():
        return marked
    lab, n = label(marked)
    if n == 0:
        return marked
    size = np.bincount(lab.ravel(), minlength=n + 1)
    inside = np.bincount(lab[region], minlength=n + 1)
    drop = inside == size
    drop[0] = False
    return marked & ~drop[lab]


def blob_labels(pred: np.ndarray, blobs: np.ndarray, split: dict | None = None) -> tuple[np.ndarray, int]:
    """Labels of the (N, H, W) ``blobs``, unique across the batch: 8-connected components, each split at prominent
    peaks of ``pred`` when ``split`` (``prominence``, ``min_separation_px``; :func:`no2hotspots.peaks.split_peaks`)
    asks for it."""
    lab, n = label(blobs)
    if n == 0 or not split or float(split["prominence"]) >= 1.0:
        return lab, n
    from ..peaks import split_peaks_stack

    return split_peaks_stack(pred, lab, **split)


def blob_points_every_and_counted(
    pred: np.ndarray, marked: np.ndarray, region: np.ndarray | None, split: dict | None = None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The blob positions (:func:`blob_positions`) of ``marked`` (the ``every`` convention) and of
    :func:`counted_blobs` ``(marked, region)`` (``visible``), labelled, split and located once: a component wholly
    inside ``region`` drops with every blob split from it, the others keep theirs (the split of one component does
    not depend on the others, and its blobs keep their row-major order), so the second is a subset of the first,
    in the same order: what blob_positions(pred, *blob_labels(pred, counted_blobs(marked, region), split)) gives."""
    pred = np.asarray(pred, dtype=np.float64)
    marked = np.asarray(marked, dtype=bool)
    comp, n_comp = label(marked)
    lab, n = comp, n_comp
    if n_comp and split and float(split["prominence"]) < 1.0:
        from ..peaks import split_peaks_stack

        lab, n = split_peaks_stack(pred, comp, **split)
    every = blob_positions(pred, lab, n)
    if region is None or n == 0 or not region.any():
        return every, every
    size = np.bincount(comp.ravel(), minlength=n_comp + 1)
    inside = np.bincount(comp[region], minlength=n_comp + 1)
    drop = inside == size
    drop[0] = False
    parent = np.zeros(n + 1, np.int64)
    parent[lab.ravel()] = comp.ravel()  # every cell of a split blob lies in one component
    keep = ~drop[parent[1:]]
    return every, (every[0][keep], every[1][keep])


def count_components(mask) -> np.ndarray:
    """(N,) int64: 8-connected components of the (N, H, W) bool ``mask`` per sample."""
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    lab, n = label(mask)
    if n == 0:
        return np.zeros(mask.shape[0], dtype=np.int64)
    sample = np.asarray([sl[0].start for sl in ndimage.find_objects(lab)], dtype=np.int64)  # one image each
    return np.bincount(sample, minlength=mask.shape[0]).astype(np.int64)


def emission_class(target: np.ndarray, edges=CLASS_EDGES) -> np.ndarray:
    """(N,) int64 by the largest r of ``target`` (already restricted to the scored sources): 0 no source,
    1 low (< edges[0]), 2 mid, 3 high (> edges[1])."""
    rmax = np.asarray(target, dtype=np.float64).reshape(len(target), -1).max(axis=1, initial=0.0)
    cls = np.where(rmax < edges[0], 1, np.where(rmax > edges[1], 3, 2))
    return np.where(rmax > 0, cls, 0).astype(np.int64)


def pixel_scores(marked: np.ndarray, true: np.ndarray, ignored: np.ndarray | None = None):
    """Per-sample (recall, precision, iou) float64 (N,); NaN for samples without true pixels. ``ignored`` pixels
    are neither true nor marked. Precision is 0 when nothing is marked in a scene with sources."""
    t = np.asarray(true, dtype=bool)
    p = np.asarray(marked, dtype=bool)
    if ignored is not None:
        t, p = t & ~ignored, p & ~ignored
    n = len(t)
    t, p = t.reshape(n, -1), p.reshape(n, -1)
    n_true, n_pred = t.sum(1).astype(float), p.sum(1).astype(float)
    inter, union = (t & p).sum(1).astype(float), (t | p).sum(1).astype(float)
    has = n_true > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(has, inter / np.maximum(n_true, 1), np.nan)
        precision = np.where(has, inter / np.maximum(n_pred, 1), np.nan)
        iou = np.where(has, inter / np.maximum(union, 1), np.nan)
    return recall, precision, iou


@dataclass(frozen=True)
class Sources:
    """The listed point sources of a batch (from the shards): float pixel positions and true r, (N, S) NaN-padded,
    and the footprint size. Scoring from positions keeps sources 1-3 px apart apart (their footprints touch and would
    be one connected component)."""

    row: np.ndarray
    col: np.ndarray
    r: np.ndarray
    footprint_px: int = 4

    def blocks(self, n: int, shape: tuple[int, int]):
        """(scene, source index, r0, r1, c0, c1) of every listed source's k x k block, clipped to the image."""
        k = int(self.footprint_px)
        i, j = np.nonzero(np.isfinite(self.row[:n]))
        r0 = np.floor(self.row[i, j] - (k - 1) / 2 + 0.5).astype(np.int64)
        c0 = np.floor(self.col[i, j] - (k - 1) / 2 + 0.5).astype(np.int64)
        return (
            i,
            j,
            np.clip(r0, 0, shape[0]),
            np.clip(r0 + k, 0, shape[0]),
            np.clip(c0, 0, shape[1]),
            np.clip(c0 + k, 0, shape[1]),
        )


def source_masks(sources: Sources, target, valid, min_scored_r: float, min_visible_fraction: float):
    """From listed sources: (hidden pixel mask, per-source hidden flags (N, S), true pixel mask: the whole block of
    every listed source with r > 0, whatever the target holds there). A source is hidden when its r is below
    ``min_scored_r`` or less than ``min_visible_fraction`` of its block is observed; its pixels count as hidden
    unless a scored source's block covers them too."""
    n, h, w = np.asarray(target).shape
    hidden_flag = np.zeros(sources.row.shape, dtype=bool)
    scored_px = np.zeros((n, h, w), dtype=bool)
    hidden_px = np.zeros((n, h, w), dtype=bool)
    true_px = np.zeros((n, h, w), dtype=bool)
    for i, j, r0, r1, c0, c1 in zip(*sources.blocks(n, (h, w))):
        seen = 1.0 if valid is None else float(np.mean(valid[i, r0:r1, c0:c1])) if r1 > r0 and c1 > c0 else 0.0
        hide = sources.r[i, j] < min_scored_r or (valid is not None and seen < min_visible_fraction)
        hidden_flag[i, j] = hide
        (hidden_px if hide else scored_px)[i, r0:r1, c0:c1] = True
        if sources.r[i, j] > 0:  # as target > 0: a source at r = 0 (normalise_from population_min) has no pixels
            true_px[i, r0:r1, c0:c1] = True
    return hidden_px & ~scored_px, hidden_flag, true_px


def source_scores_at(
    pred: np.ndarray,
    sources: Sources,
    blobs: np.ndarray | None,
    match_distance_px: float,
    skip: np.ndarray | None = None,
    split: dict | None = None,
    *,
    blob_points: tuple[np.ndarray, np.ndarray] | None = None,
) -> SourceScores:
    """Source-level scores with sources at their listed positions (block centres); ``skip`` (N, S) leaves sources
    out (hidden ones in the ``visible`` convention); ``split``: see :func:`blob_labels`. ``blob_points``: the blobs'
    positions already found (:func:`blob_points_every_and_counted`; ``blobs`` and ``split`` are then not read)."""

    pred = np.asarray(pred, dtype=np.float64)
    n, h, w = pred.shape
    i, j, r0, r1, c0, c1 = sources.blocks(n, (h, w))
    keep = np.ones(i.size, bool) if skip is None else ~skip[i, j]
    i, j, r0, r1, c0, c1 = (a[keep] for a in (i, j, r0, r1, c0, c1))
    centres = np.stack([0.5 * (r0 + r1) - 0.5, 0.5 * (c0 + c1) - 0.5], axis=1)
    pmax = np.array([pred[a, b:c, d:e].max(initial=0.0) for a, b, c, d, e in zip(i, r0, r1, c0, c1)])
    abs_error = np.abs(pmax - sources.r[i, j])
    blob_p, blob_sample = _points_of(pred, blobs, split, blob_points)
    return match_per_sample(centres, i.astype(np.int64), blob_p, blob_sample, n, match_distance_px, abs_error)


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
    blobs: np.ndarray | None,
    match_distance_px: float,
    split: dict | None = None,
    *,
    blob_points: tuple[np.ndarray, np.ndarray] | None = None,
) -> SourceScores:
    """Source-level scores: sources are the components of ``target > 0``, blobs those of the bool ``blobs`` mask
    (split at prominent peaks: :func:`blob_labels`), or ``blob_points`` as in :func:`source_scores_at`."""

    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    n = pred.shape[0]
    src_lab, n_src = label(target > 0)
    src_c, src_sample, abs_error = np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros(0)
    if n_src:
        src_c = label_centroid(np.ones_like(target), src_lab, n_src)
        src_r = label_max(target, src_lab, n_src)
        src_pmax = label_max(pred, src_lab, n_src)
        src_sample = np.rint(src_c[:, 0]).astype(np.int64)
        abs_error = np.abs(src_pmax - src_r)
    blob_p, blob_sample = _points_of(pred, blobs, split, blob_points)
    return match_per_sample(src_c[:, 1:], src_sample, blob_p, blob_sample, n, match_distance_px, abs_error)


def _points_of(pred, blobs, split, blob_points) -> tuple[np.ndarray, np.ndarray]:
    """``blob_points`` when given, else the positions of the ``blobs`` mask's blobs (split by ``split``)."""
    return blob_points if blob_points is not None else blob_positions(pred, *blob_labels(pred, blobs, split))


def blob_positions(pred: np.ndarray, blob_lab: np.ndarray, n_blob: int) -> tuple[np.ndarray, np.ndarray]:
    """Each blob's half-peak centroid (sample, row, col) (:func:`no2hotspots.labelstats.half_peak_centroid`) and
    its sample index."""
    if not n_blob:
        return np.zeros((0, 3)), np.zeros(0, np.int64)
    blob_p = half_peak_centroid(pred, blob_lab, n_blob)
    return blob_p, np.rint(blob_p[:, 0]).astype(np.int64)


def match_per_sample(
    src_points: np.ndarray,
    src_sample: np.ndarray,
    blob_p: np.ndarray,
    blob_sample: np.ndarray,
    n: int,
    match_distance_px: float,
    abs_error: np.ndarray,
) -> SourceScores:
    """Sources (``src_points`` (row, col), their sample in ``src_sample``) matched one to one with the blobs
    (``blob_p`` (sample, row, col), ``blob_sample``) of the same sample within ``match_distance_px``
    (:func:`match_nearest`), over ``n`` samples."""
    n_sources = np.bincount(src_sample, minlength=n).astype(np.int64)
    n_blobs = np.bincount(blob_sample, minlength=n).astype(np.int64)
    n_matched = np.zeros(n, dtype=np.int64)
    loc: list[float] = []
    for s in np.flatnonzero((n_sources > 0) & (n_blobs > 0)):
        pairs = match_nearest(src_points[src_sample == s], blob_p[blob_sample == s, 1:], match_distance_px)
        n_matched[s] = len(pairs)
        loc.extend(d for _, _, d in pairs)
    return SourceScores(n_sources, n_blobs, n_matched, np.asarray(loc, dtype=np.float64), abs_error)


def match_nearest(a: np.ndarray, b: np.ndarray, max_distance: float) -> list[tuple[int, int, float]]:
    """One-to-one matches (i, j, distance) between points ``a`` (n, 2) and ``b`` (m, 2) within ``max_distance``,
    nearest pairs first (ties broken by index, the same on every machine)."""
    d = np.hypot(a[:, None, 0] - b[None, :, 0], a[:, None, 1] - b[None, :, 1])
    ai, bi = np.nonzero(d <= max_distance)
    order = np.lexsort((bi, ai, d[ai, bi]))
    used_a, used_b, out = set(), set(), []
    for k in order:
        i, j = int(ai[k]), int(bi[k])
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        out.append((i, j, float(d[i, j])))
    return out
