"""The loss and one training epoch (the evaluation pass is no2hotspots.score.evaluate).

Determinism: before each epoch the torch RNG is seeded from ``(seed, epoch)`` (dropout masks; under torchrun with
``train.distributed.global_batch: false`` from ``(seed, epoch, rank)`` on ranks > 0) and the data order comes from
the same pair (``ShardStream``), so an epoch redone after a crash repeats exactly what the lost attempt did.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from ..errors import UserError
from ..logs import progress_disabled
from ..model.inputs import prepare_input
from .data import ShardStream
from .distributed import Dist

log = logging.getLogger(__name__)

#: train.loss values: MSE (the paper's), MSE with extra weight on emitting pixels, either plus a soft-Dice term
LOSSES = ("mse", "weighted_mse", "mse_dice", "weighted_mse_dice")


class NonFiniteLoss(UserError):
    """Training produced a NaN/inf loss (diverged, or bad data): stop, keep the last good checkpoint."""


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The torch seed of one epoch: a fixed function of (seed, epoch) only (and of the rank on ranks > 0, so that
    processes draw different dropout masks)."""
    entropy = [int(seed), int(epoch), 7] + ([int(rank)] if rank else [])
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint32)[0])


@dataclass(frozen=True)
class Loss:
    """MSE (the paper's loss); with ``positive_weight`` > 0 the squared errors on emitting pixels (target > 0)
    weigh ``1 + positive_weight`` (sources cover < 1 % of the pixels, so plain MSE favours predicting zero).

    With ``dice_weight`` > 0 a soft-Dice term on the *marked-pixel mask* is added, ``dice_weight * (1 - Dice)``
    over the whole batch, between the true footprints ``target > 0`` and the soft mask
    ``sigmoid((logit(pred) - logit(dice_threshold)) / dice_temperature)``, a smooth version of the marking rule
    ``pred >= threshold`` taken in logit space (so background pixels far below the threshold count ~0 and the
    gradient does not vanish for footprints predicted near 0). MSE still fits the emission amplitude; the Dice term
    asks that every true footprint ends above the threshold and the background below it, which plain MSE does not
    ask for weak sources (r near the threshold).

    ``dice_beta`` makes it a Tversky index, ``(2 TP + 1) / (2 TP + 2 (1 - beta) FP + 2 beta FN + 1)`` with soft
    counts: 0.5 is the Dice coefficient (false positives and false negatives weigh alike); above 0.5 missed
    footprint pixels cost more than extra marked pixels, which favours pixel recall over pixel precision.

    With ``peak_weight`` > 0 a *peak* term asks that each source shows its own maximum: on every emitting pixel,
    ``relu(target - max(pred over the peak_window_px x peak_window_px window around it))^2``, averaged over all
    pixels like the MSE; with ``peak_within_footprint`` the maximum is taken over the window's emitting pixels only
    (a high pixel beside the footprint does not count). The window around any pixel of a k x k footprint holds its
    centre when it is 3 wide for k = 3 and 5 wide for k = 4, and reaches at most 1 (2) pixels into a neighbour's
    footprint: the predicted maximum at each source must reach its r (MSE alone spreads an uncertain source thin,
    below the threshold), and a neighbour's peak cannot stand in for it.
    """

    positive_weight: float = 0.0
    dice_weight: float = 0.0
    dice_threshold: float = 0.02
    dice_temperature: float = 0.5
    dice_beta: float = 0.5
    peak_weight: float = 0.0
    peak_window_px: int = 3
    peak_within_footprint: bool = False

    @classmethod
    def from_config(cls, t) -> Loss:
        kind = str(t.loss)
        dice = kind.endswith("_dice")
        return cls(
            positive_weight=float(t.positive_weight) if kind.startswith("weighted_mse") else 0.0,
            dice_weight=float(t.dice_weight) if dice else 0.0,
            dice_threshold=float(t.dice_threshold),
            dice_temperature=float(t.dice_temperature),
            dice_beta=float(t.dice_beta),
            peak_weight=float(t.peak_weight),
            peak_window_px=int(t.peak_window_px),
            peak_within_footprint=bool(t.peak_within_footprint),
        )

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        sq, counts = self.parts(pred, target)
        return sq if counts is None else sq + self.dice_weight * self.tversky(counts)

    def parts(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The (weighted) mean squared error (plus the peak term) and, with a Tversky term, its soft counts
        ``[tp, fp, fn]`` over the batch (the term is not a mean over scenes: K ranks add their counts to get the
        global batch's term)."""
        err = (pred - target) ** 2
        if self.positive_weight > 0:
            err = err * (1.0 + self.positive_weight * (target > 0).to(err.dtype))
        sq = err.mean()
        if self.peak_weight > 0:
            sq = sq + self.peak_weight * self.peak_deficit(pred, target)
        if self.dice_weight <= 0:
            return sq, None
        eps = 1e-7
        z = torch.logit(pred.clamp(eps, 1.0 - eps))
        z0 = math.log(self.dice_threshold / (1.0 - self.dice_threshold))
        soft = torch.sigmoid((z - z0) / self.dice_temperature)
        true = (target > 0).to(soft.dtype)
        tp = (soft * true).sum()
        return sq, torch.stack([tp, soft.sum() - tp, true.sum() - tp])

    def peak_deficit(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean over all pixels of ``relu(target - local max of pred)^2`` on emitting pixels (0 elsewhere); the local
        max over the window (its emitting pixels only with ``peak_within_footprint``)."""
        # The window's maximum is gathered at the emitting pixels only (a few % of the map): max_pool2d's values and
        # gradients (the first maximum in row-major order takes it) at ~40 % of its cost (benchmarks/peak_loss.py)
        w, h = self.peak_window_px, self.peak_window_px // 2
        emitting = (target > 0).reshape(-1, *target.shape[-2:])
        seen = pred.reshape(emitting.shape)
        if self.peak_within_footprint:
            seen = seen.masked_fill(~emitting, float("-inf"))
        padded = torch.nn.functional.pad(seen, (h, h, h, h), value=float("-inf"))
        rows, cols = padded.shape[-2:]
        n, i, j = emitting.nonzero(as_tuple=True)
        offsets = torch.tensor([a * cols + b for a in range(w) for b in range(w)], device=pred.device)
        local = padded.reshape(-1)[((n * rows + i) * cols + j)[:, None] + offsets].max(dim=-1).values
        r = target.reshape(emitting.shape)[n, i, j]
        return (torch.relu(r - local) ** 2).sum() / seen.numel()

    def tversky(self, counts: torch.Tensor) -> torch.Tensor:
        """``1 - Tversky index`` of soft counts ``[tp, fp, fn]``."""
        tp, fp, fn = counts[0], counts[1], counts[2]
        b = self.dice_beta
        return 1.0 - (2.0 * tp + 1.0) / (2.0 * tp + 2.0 * (1.0 - b) * fp + 2.0 * b * fn + 1.0)


def step_loss(loss: Loss, pred: torch.Tensor, y: torch.Tensor, dist: Dist) -> tuple[torch.Tensor, list[float]]:
    """What to back-propagate on this rank, and the step's sums over all ranks ``[loss x n, MSE x n, n]``.

    One process: the loss. K ranks with ``dist.global_batch``: the global batch's loss as one process computes it,
    split so that DDP's gradient average gives its gradient: each rank's squared-error mean (the average of equal
    slices is the global mean) plus the Tversky term of the summed counts, linearised at those counts and scaled
    by K (its gradient reaches each rank's predictions through that rank's counts). Otherwise each rank's own loss.
    """
    k = float(len(y))
    mse = float(((pred.detach() - y) ** 2).mean()) * k
    if not (dist.enabled and dist.global_batch):
        value = loss(pred, y)
        return value, dist.sum([float(value.detach()) * k, mse, k])
    sq, counts = loss.parts(pred, y)
    extra = [] if counts is None else counts.detach().tolist()
    sums = dist.sum([float(sq.detach()) * k, mse, k, *extra])
    if counts is None:
        return sq, sums[:3]
    c = torch.tensor(sums[3:], dtype=counts.dtype, device=counts.device, requires_grad=True)
    term = loss.tversky(c)
    (grad,) = torch.autograd.grad(term, c)
    back = sq + loss.dice_weight * dist.world * (grad * counts).sum()
    return back, [sums[0] + loss.dice_weight * float(term.detach()) * sums[2], sums[1], sums[2]]


def train_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    stream: ShardStream,
    loss: Loss,
    *,
    epoch: int,
    seed: int,
    input_scale: float,
    desc: str = "train",
    dist: Dist | None = None,
    after_step=None,
) -> tuple[float, float]:
    """Train for one pass over ``stream``; return the mean (per-scene) training loss and its MSE part (comparable
    with the validation loss, which is the MSE). A NaN/inf loss stops training with :class:`NonFiniteLoss` before
    the optimizer applies it.

    Under torchrun (``dist``): ``model`` is the DDP wrapper, ``stream`` yields this rank's slice of each global
    batch, and each step's loss sums are added over the ranks before the backward pass (:func:`step_loss`), so
    every rank sees a NaN of any rank and all stop together (none is left waiting in a gradient all-reduce); the
    returned means are over the global batches. With ``dist.global_batch`` every rank seeds torch alike (its
    dropout draws the global batch's masks, no2hotspots.train.distributed.GlobalDropout). ``after_step`` is called
    after every optimizer step (the weight average of ``train.ema_decay``)."""
    dist = dist or Dist()
    torch.manual_seed(epoch_seed(seed, epoch, 0 if dist.global_batch else dist.rank))
    model.train()
    total, total_mse, n = 0.0, 0.0, 0
    bar = tqdm(
        stream.batches(epoch),
        total=stream.n_batches(),
        desc=desc,
        unit="batch",
        leave=False,
        disable=progress_disabled(),
    )
    for i, b in enumerate(bar):
        # the scaling check (a median over the batch: ~2 ms a batch of 32 on 2 cores, benchmarks/train.py's
        # input_check) on the epoch's first batch only: every shard carries the one input_scale (check_dataset) and
        # passed the validate stage's ranges
        x = prepare_input(b.no2, b.valid, input_scale, check=i == 0, device=dist.device)
        y = torch.as_tensor(b.emission).to(dist.device)
        optimizer.zero_grad(set_to_none=True)
        pred = model(x)
        value, step = step_loss(loss, pred, y, dist)
        if not math.isfinite(step[0]):
            raise NonFiniteLoss(
                f"training loss became {step[0] / step[2]} in epoch {epoch + 1} (batch {i + 1}); "
                "lower train.lr or check the data; the last good checkpoint is kept"
            )
        value.backward()
        optimizer.step()
        if after_step is not None:  # the weight average (train.ema_decay)
            after_step()
        total, total_mse, n = total + step[0], total_mse + step[1], n + int(step[2])
        bar.set_postfix(loss=f"{total / n:.4g}")
    if n == 0:
        raise RuntimeError("the training stream yielded no batch")
    return total / n, total_mse / n
