"""``EmissionMetrics``: a torchmetrics ``Metric`` accumulating per-sample/per-source scores over batches."""

from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from . import DEFAULT_MATCH_DISTANCE_PX, DEFAULT_MIN_VISIBLE_FRACTION, DEFAULT_THRESHOLD
from .scores import CLASS_EDGES, count_sources, emission_class, hidden_mask, ignored_mask, pixel_scores, source_scores
from .summary import summarize

_STATES = (
    "acc",
    "acc_with_hidden",
    "prec",
    "iou",
    "cls",
    "n_hidden",
    "n_sources",
    "n_blobs",
    "n_matched",
    "loc_error",
    "abs_error",
)


class EmissionMetrics(Metric):
    """Recognition accuracy (the paper's Table 1) and source-level metrics of relative-emission maps.

    ``update(pred, target, valid=None)`` with (N, 64, 64) tensors (or (N, 1, 64, 64)); ``valid`` is the observed-
    pixel mask of the input. Sources whose true r is below ``min_scored_r`` (default: the threshold) or, given
    ``valid``, whose footprint is less than ``min_visible_fraction`` observed are *hidden*: left out of every score
    below (see :mod:`no2hotspots.metrics.scores`); with ``min_scored_r >= threshold`` a perfect prediction scores
    100 %. ``compute()`` returns a flat ``dict[str, float]``:

    - ``acc_{q1,q2,q3}_{all,low,mid,high}``: quartiles of the per-sample recognition accuracy
      |pred ∩ true| / |true| (fractions in [0, 1]); ``precision_*`` and ``iou_*`` likewise for pixel precision and
      IoU; classes by the sample's largest scored true r (low < 0.33, high > 0.66); NaN for a class without
      samples; predicted blobs that mark only hidden sources are left out (neither hits nor false alarms);
    - ``acc_with_hidden_{q1,q2,q3}_all``: the recognition accuracy with every source counted, hidden ones too
      (true pixels ``target > 0``), over all samples with sources;
    - ``n_samples`` (samples with scored sources), ``n_samples_{low,mid,high,empty}``, ``n_samples_hidden``
      (samples whose sources are all hidden); ``n_sources_hidden``;
    - ``source_recall``, ``source_precision``, ``source_f1`` (sources = connected true footprints, matched to
      predicted blobs within ``match_distance_px``), ``n_sources``, ``n_blobs``, ``n_sources_found``;
    - ``loc_error_px_median``/``_mean`` over matched sources; ``mae_at_sources`` (|max pred over footprint - r|
      over all scored sources); ``false_alarm_rate`` (share of empty scenes with any predicted blob).

    ``threshold`` (default 0.05): a pixel is predicted as emitting when pred >= threshold. The background target
    is exactly 0 and the sigmoid output sits far below the threshold there. ``min_scored_r`` is kept separate from
    the threshold so that a sweep over the detection threshold scores every trial against the same true sources.
    The demo config (``conf/train/demo.yaml``) uses 0.02 for both: with the demo population (CoCO2 sites of
    3,000-30,900 t/yr NOx) r = 0.02 is ~3,560 t/yr. ``match_distance_px`` (default 2): the largest
    peak-to-footprint-centre distance [px] at which a blob counts as finding a source.

    States are lists concatenated with ``dim_zero_cat``, so they accumulate over batches and processes (only
    per-sample scalars are kept, not maps). Source labelling runs on CPU (scipy.ndimage).
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        match_distance_px: float = DEFAULT_MATCH_DISTANCE_PX,
        class_edges: tuple[float, float] = CLASS_EDGES,
        min_visible_fraction: float = DEFAULT_MIN_VISIBLE_FRACTION,
        min_scored_r: float | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0.0 < float(threshold) <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if float(match_distance_px) < 0:
            raise ValueError(f"match_distance_px must be >= 0, got {match_distance_px}")
        if not 0.0 <= float(min_visible_fraction) <= 1.0:
            raise ValueError(f"min_visible_fraction must be in [0, 1], got {min_visible_fraction}")
        self.threshold = float(threshold)
        self.min_visible_fraction = float(min_visible_fraction)
        self.min_scored_r = float(threshold if min_scored_r is None else min_scored_r)
        if not 0.0 <= self.min_scored_r <= 1.0:
            raise ValueError(f"min_scored_r must be in [0, 1], got {min_scored_r}")
        self.match_distance_px = float(match_distance_px)
        self.class_edges = tuple(float(e) for e in class_edges)
        for name in _STATES:
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> None:
        pred = torch.as_tensor(pred).detach()
        target = torch.as_tensor(target).detach()
        if pred.ndim == 4 and pred.shape[1] == 1:
            pred = pred[:, 0]
        if target.ndim == 4 and target.shape[1] == 1:
            target = target[:, 0]
        if pred.shape != target.shape or pred.ndim != 3:
            raise ValueError(f"pred and target must both be (N, H, W); got {tuple(pred.shape)}, {tuple(target.shape)}")
        target_np = target.float().cpu().numpy()
        if valid is not None:
            valid = torch.as_tensor(valid).detach()
            if valid.ndim == 4 and valid.shape[1] == 1:
                valid = valid[:, 0]
            if valid.shape != target.shape:
                raise ValueError(f"valid must be shaped like target {tuple(target.shape)}; got {tuple(valid.shape)}")
            valid = valid.cpu().numpy() > 0
        hidden_np = hidden_mask(target_np, self.min_scored_r, valid, self.min_visible_fraction)
        pred_np = pred.float().cpu().numpy()
        ignored_np = ignored_mask(pred_np, target_np, self.threshold, hidden_np)
        hidden = torch.as_tensor(hidden_np, device=target.device)
        ignored = torch.as_tensor(ignored_np, device=target.device)
        acc, prec, iou = pixel_scores(pred, target, self.threshold, hidden, ignored)
        self.acc.append(acc)
        self.acc_with_hidden.append(pixel_scores(pred, target, self.threshold)[0])
        self.prec.append(prec)
        self.iou.append(iou)
        self.cls.append(emission_class(target, self.class_edges, hidden))
        s = source_scores(pred_np, target_np, self.threshold, self.match_distance_px, hidden_np, ignored_np)
        n_hidden = count_sources(hidden_np)
        dev = acc.device
        self.n_hidden.append(torch.as_tensor(n_hidden, device=dev))
        self.n_sources.append(torch.as_tensor(s.n_sources, device=dev))
        self.n_blobs.append(torch.as_tensor(s.n_blobs, device=dev))
        self.n_matched.append(torch.as_tensor(s.n_matched, device=dev))
        self.loc_error.append(torch.as_tensor(s.loc_error, device=dev))
        self.abs_error.append(torch.as_tensor(s.abs_error, device=dev))

    def compute(self) -> dict[str, float]:
        arrays = {}
        for name in _STATES:
            val = getattr(self, name)
            if isinstance(val, list):
                val = dim_zero_cat(val) if val else torch.zeros(0, dtype=torch.float64)
            arrays[name] = val.detach().cpu().numpy()
        return summarize(
            arrays["acc"],
            arrays["prec"],
            arrays["iou"],
            arrays["cls"].astype("int64"),
            arrays["n_sources"],
            arrays["n_blobs"],
            arrays["n_matched"],
            arrays["loc_error"],
            arrays["abs_error"],
            acc_with_hidden=arrays["acc_with_hidden"],
            n_hidden=arrays["n_hidden"],
        )
