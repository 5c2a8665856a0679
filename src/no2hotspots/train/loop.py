"""One training epoch and one evaluation pass.

Determinism: before each epoch the torch RNG is seeded from ``(seed, epoch)`` (dropout masks) and the data order comes
from the same pair (``ShardStream``), so an epoch redone after a crash repeats exactly what the lost attempt did.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from ..logs import progress_disabled
from ..model.inputs import prepare_input
from .data import ShardStream

log = logging.getLogger(__name__)


def epoch_seed(seed: int, epoch: int) -> int:
    """The torch seed of one epoch: a fixed function of (seed, epoch) only."""
    return int(np.random.SeedSequence([int(seed), int(epoch), 7]).generate_state(1, dtype=np.uint32)[0])


def loss_fn(
    pred: torch.Tensor,
    target: torch.Tensor,
    positive_weight: float = 0.0,
    dice_weight: float = 0.0,
    threshold: float = 0.05,
    dice_temperature: float = 0.5,
    dice_beta: float = 0.5,
) -> torch.Tensor:
    """MSE (the paper's loss); with ``positive_weight`` > 0 the squared errors on emitting pixels (target > 0)
    weigh ``1 + positive_weight`` (sources cover < 1 % of the pixels, so plain MSE favours predicting zero).

    With ``dice_weight`` > 0 a soft-Dice term on the *marked-pixel mask* is added, ``dice_weight * (1 - Dice)``
    over the whole batch, between the true footprints ``target > 0`` and the soft mask
    ``sigmoid((logit(pred) - logit(threshold)) / dice_temperature)``, a smooth version of the metric's detection
    rule ``pred >= threshold`` taken in logit space (so background pixels far below the threshold count ~0 and
    the gradient does not vanish for footprints predicted near 0). MSE still fits the emission amplitude; the Dice
    term asks that every true footprint ends above the detection threshold and the background below it, which
    plain MSE does not ask for weak sources (r near the threshold).

    ``dice_beta`` makes it a Tversky index, ``(2 TP + 1) / (2 TP + 2 (1 - beta) FP + 2 beta FN + 1)`` with soft
    counts: 0.5 is the Dice coefficient (false positives and false negatives weigh alike); above 0.5 missed
    footprint pixels cost more than extra marked pixels, which favours recall (the paper's recognition accuracy)
    over pixel precision."""
    err = (pred - target) ** 2
    if positive_weight > 0:
        err = err * (1.0 + positive_weight * (target > 0).to(err.dtype))
    loss = err.mean()
    if dice_weight > 0:
        eps = 1e-7
        z = torch.logit(pred.clamp(eps, 1.0 - eps))
        z0 = math.log(threshold / (1.0 - threshold))
        soft = torch.sigmoid((z - z0) / dice_temperature)
        true = (target > 0).to(soft.dtype)
        tp = (soft * true).sum()
        fp = soft.sum() - tp
        fn = true.sum() - tp
        index = (2.0 * tp + 1.0) / (2.0 * tp + 2.0 * (1.0 - dice_beta) * fp + 2.0 * dice_beta * fn + 1.0)
        loss = loss + dice_weight * (1.0 - index)
    return loss


def train_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    stream: ShardStream,
    *,
    epoch: int,
    seed: int,
    input_scale: float,
    positive_weight: float = 0.0,
    dice_weight: float = 0.0,
    threshold: float = 0.05,
    dice_temperature: float = 0.5,
    dice_beta: float = 0.5,
    desc: str = "train",
) -> float:
    """Train for one pass over ``stream``; return the mean (per-scene) training loss."""
    torch.manual_seed(epoch_seed(seed, epoch))
    model.train()
    total, n = 0.0, 0
    bar = tqdm(
        stream.batches(epoch),
        total=stream.n_batches(),
        desc=desc,
        unit="batch",
        leave=False,
        disable=progress_disabled(),
    )
    for b in bar:
        x = prepare_input(b.no2, b.valid, input_scale)
        y = torch.as_tensor(b.emission)
        optimizer.zero_grad(set_to_none=True)
        pred = model(x)
        loss = loss_fn(pred, y, positive_weight, dice_weight, threshold, dice_temperature, dice_beta)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(y)
        n += len(y)
        bar.set_postfix(loss=f"{total / n:.4g}")
    if n == 0:
        raise RuntimeError("the training stream yielded no batch")
    return total / n


@dataclass
class EvalResult:
    loss: float
    metrics: dict
    examples: dict = field(default_factory=dict)  # first k scenes: no2, valid, emission, pred (numpy)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    stream: ShardStream,
    *,
    input_scale: float,
    threshold: float,
    match_distance_px: float,
    min_visible_fraction: float = 0.5,
    min_scored_r: float | None = None,
    keep_examples: int = 0,
    desc: str = "eval",
) -> EvalResult:
    """Mean MSE and :class:`no2hotspots.metrics.EmissionMetrics` over ``stream`` (in its fixed order)."""
    from ..metrics import EmissionMetrics

    model.eval()
    metric = EmissionMetrics(
        threshold=threshold,
        match_distance_px=match_distance_px,
        min_visible_fraction=min_visible_fraction,
        min_scored_r=min_scored_r,
    )
    total, n = 0.0, 0
    kept: dict[str, list] = {"no2": [], "valid": [], "emission": [], "pred": []}
    n_kept = 0
    for b in tqdm(
        stream.batches(0), total=stream.n_batches(), desc=desc, unit="batch", leave=False, disable=progress_disabled()
    ):
        x = prepare_input(b.no2, b.valid, input_scale)
        y = torch.as_tensor(b.emission)
        pred = model(x)
        total += float(torch.nn.functional.mse_loss(pred, y, reduction="sum")) / (y.shape[1] * y.shape[2])
        n += len(y)
        metric.update(pred, y, torch.as_tensor(b.valid))
        if n_kept < keep_examples:
            k = min(keep_examples - n_kept, len(y))
            kept["no2"].append(b.no2[:k])
            kept["valid"].append(b.valid[:k])
            kept["emission"].append(b.emission[:k])
            kept["pred"].append(pred[:k].numpy())
            n_kept += k
    values = {k: _scalar(v) for k, v in metric.compute().items()}
    examples = {k: np.concatenate(v) for k, v in kept.items() if v}
    return EvalResult(loss=total / max(n, 1), metrics=values, examples=examples)


def _scalar(v):
    if isinstance(v, torch.Tensor):
        return float(v) if v.numel() == 1 else v.tolist()
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v
