"""``EmissionMetrics``: a torchmetrics ``Metric`` accumulating per-sample/per-source scores over batches."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from .scores import (
    Sources,
    blob_points_every_and_counted,
    count_components,
    emission_class,
    hidden_mask,
    ignore_region,
    pixel_scores,
    source_masks,
    source_scores,
    source_scores_at,
)
from .summary import CONVENTIONS, summarize

#: accumulated per convention (per sample, except loc_error: per matched pair, abs_error: per source)
_STATES = ("recall", "precision", "iou", "cls", "n_sources", "n_blobs", "n_matched", "loc_error", "abs_error")


class EmissionMetrics(Metric):
    """Table 1 (pixel recall quartiles), pixel precision/IoU and source scores of relative-emission maps at one
    marking ``threshold``, under both conventions of :mod:`no2hotspots.metrics.scores` (``every`` source counted,
    the headline; ``visible`` sources only).

    ``update(pred, target, valid=None)`` with (N, H, W) tensors or arrays (or (N, 1, H, W)); ``valid`` is the
    observed-pixel mask of the input (without it no source counts as clouded). ``compute()`` returns a flat
    ``dict[str, float]`` keyed ``<convention>/<metric>`` (see :func:`no2hotspots.metrics.summary.summarize`).
    States are lists concatenated with ``dim_zero_cat``, so they accumulate over batches and processes (only
    per-sample scalars are kept, not maps). Labelling runs on CPU (scipy.ndimage).
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(
        self,
        threshold: float,
        match_distance_px: float = 2.0,
        min_visible_fraction: float = 0.5,
        min_scored_r: float = 0.02,
        dilate_px: int = 1,
        peak_prominence: float = 1.0,
        peak_min_separation_px: int = 2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value, lo, hi in (
            ("threshold", threshold, 0.0, 1.0),
            ("min_visible_fraction", min_visible_fraction, 0.0, 1.0),
            ("min_scored_r", min_scored_r, 0.0, 1.0),
        ):
            if not lo <= float(value) <= hi or (name == "threshold" and float(value) == 0.0):
                raise ValueError(f"{name} must be in ({lo}, {hi}], got {value}")
        if float(match_distance_px) < 0 or int(dilate_px) < 0:
            raise ValueError("match_distance_px and dilate_px must be >= 0")
        self.threshold = float(threshold)
        self.match_distance_px = float(match_distance_px)
        self.min_visible_fraction = float(min_visible_fraction)
        self.min_scored_r = float(min_scored_r)
        self.dilate_px = int(dilate_px)
        self.split = {"prominence": float(peak_prominence), "min_separation_px": int(peak_min_separation_px)}
        for conv in CONVENTIONS:
            for name in _STATES:
                self.add_state(f"{conv}_{name}", default=[], dist_reduce_fx="cat")
        self.add_state("n_hidden", default=[], dist_reduce_fx="cat")

    @staticmethod
    def _maps(x) -> np.ndarray:
        x = x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)
        return x[:, 0] if x.ndim == 4 and x.shape[1] == 1 else x

    def update(self, pred, target, valid=None, sources: Sources | None = None) -> None:
        """Add a batch. ``sources`` (the scenes' listed sources: positions, r) makes source-level scores use them
        instead of the connected components of ``target``."""
        pred, target = self._maps(pred), self._maps(target)
        if pred.shape != target.shape or pred.ndim != 3:
            raise ValueError(f"pred and target must both be (N, H, W); got {pred.shape}, {target.shape}")
        if valid is not None:
            valid = self._maps(valid) > 0
            if valid.shape != target.shape:
                raise ValueError(f"valid must be shaped like target {target.shape}; got {valid.shape}")
        marked = pred >= self.threshold
        if sources is None:
            true = target > 0
            hidden = hidden_mask(target, self.min_scored_r, valid, self.min_visible_fraction)
            n_hidden, flags = count_components(hidden), None
        else:  # true pixels: the listed sources' blocks
            hidden, flags, true = source_masks(sources, target, valid, self.min_scored_r, self.min_visible_fraction)
            n_hidden = flags[: len(target)].sum(axis=1)
        region = ignore_region(true, hidden, self.dilate_px)
        scored = np.where(hidden, 0.0, target)
        every, counted = blob_points_every_and_counted(pred, marked, region, self.split)  # labelled once for both
        self._add("every", pred, target, true, marked, every, None, sources, None)
        self._add("visible", pred, scored, true & ~hidden, marked, counted, region, sources, flags)
        self.n_hidden.append(torch.as_tensor(np.asarray(n_hidden, dtype=np.int64)))

    def _add(self, conv: str, pred, target, true, marked, points, ignored, sources, skip) -> None:
        recall, precision, iou = pixel_scores(marked, true, ignored)
        if sources is None:
            s = source_scores(pred, target, None, self.match_distance_px, blob_points=points)
        else:
            s = source_scores_at(pred, sources, None, self.match_distance_px, skip, blob_points=points)
        values = {
            "recall": recall,
            "precision": precision,
            "iou": iou,
            "cls": emission_class(target),
            "n_sources": s.n_sources,
            "n_blobs": s.n_blobs,
            "n_matched": s.n_matched,
            "loc_error": s.loc_error,
            "abs_error": s.abs_error,
        }
        for name, v in values.items():
            getattr(self, f"{conv}_{name}").append(torch.as_tensor(np.asarray(v)))

    def _array(self, name: str) -> np.ndarray:
        val = getattr(self, name)
        if isinstance(val, list):
            val = dim_zero_cat(val) if val else torch.zeros(0, dtype=torch.float64)
        return val.detach().cpu().numpy()

    def compute(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for conv in CONVENTIONS:
            arrays = {name: self._array(f"{conv}_{name}") for name in _STATES}
            arrays["cls"] = arrays["cls"].astype(np.int64)
            out.update({f"{conv}/{k}": v for k, v in summarize(**arrays).items()})
        out["visible/n_sources_hidden"] = float(self._array("n_hidden").sum())
        return out
