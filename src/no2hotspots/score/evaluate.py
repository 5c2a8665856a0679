"""One evaluation pass of a model over a stream of simulated scenes: the MSE and the scores of
:class:`no2hotspots.metrics.Scoring` at both of its thresholds (the score stage, and training's per-epoch monitor)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from ..logs import progress_disabled
from ..model.inputs import prepare_input
from ..train.data import ShardStream


@dataclass
class EvalResult:
    loss: float
    metrics: dict  # "<threshold>/<convention>/<metric>" -> float
    examples: dict = field(default_factory=dict)  # first k scenes: no2, valid, emission, pred (numpy)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    stream: ShardStream,
    *,
    input_scale: float,
    scoring,
    keep_examples: int = 0,
    desc: str = "eval",
) -> EvalResult:
    """Mean MSE and the scores of :class:`no2hotspots.metrics.Scoring` at both of its thresholds over ``stream``
    (in its fixed order)."""
    model.eval()
    metrics = {name: scoring.metrics(name) for name in scoring.thresholds}
    total, n = 0.0, 0
    kept: dict[str, list] = {"no2": [], "valid": [], "emission": [], "pred": []}
    n_kept = 0
    batches = tqdm(
        stream.batches(0), total=stream.n_batches(), desc=desc, unit="batch", leave=False, disable=progress_disabled()
    )
    for b in batches:
        x = prepare_input(b.no2, b.valid, input_scale)
        y = torch.as_tensor(b.emission)
        pred = model(x)
        total += float(torch.nn.functional.mse_loss(pred, y, reduction="sum")) / (y.shape[1] * y.shape[2])
        n += len(y)
        for m in metrics.values():
            m.update(pred, y, b.valid)
        if n_kept < keep_examples:
            k = min(keep_examples - n_kept, len(y))
            for key, v in (("no2", b.no2), ("valid", b.valid), ("emission", b.emission), ("pred", pred.numpy())):
                kept[key].append(v[:k])
            n_kept += k
    values = {f"{name}/{k}": float(v) for name, m in metrics.items() for k, v in m.compute().items()}
    examples = {k: np.concatenate(v) for k, v in kept.items() if v}
    return EvalResult(loss=total / max(n, 1), metrics=values, examples=examples)
