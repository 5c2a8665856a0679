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
    sources=None,
    curve: tuple[float, ...] = (),
    desc: str = "eval",
) -> EvalResult:
    """Mean MSE and the scores of :class:`no2hotspots.metrics.Scoring` at both of its thresholds over ``stream``
    (in its fixed order). ``sources``: the listed sources of every scene of the stream, in stream order
    (:func:`listed_sources`), so source-level scores use their positions. ``curve``: more thresholds, scored as
    ``t<value>/...`` (the threshold curve users choose detect.threshold from)."""
    model.eval()
    metrics = {name: scoring.metrics(name) for name in scoring.thresholds}
    metrics.update({f"t{t:g}": scoring.metrics(float(t)) for t in curve})
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
        batch_sources = _slice(sources, n - len(y), n)
        for m in metrics.values():
            m.update(pred, y, b.valid, batch_sources)
        if n_kept < keep_examples:
            k = min(keep_examples - n_kept, len(y))
            for key, v in (("no2", b.no2), ("valid", b.valid), ("emission", b.emission), ("pred", pred.numpy())):
                kept[key].append(v[:k])
            n_kept += k
    values = {f"{name}/{k}": float(v) for name, m in metrics.items() for k, v in m.compute().items()}
    examples = {k: np.concatenate(v) for k, v in kept.items() if v}
    return EvalResult(loss=total / max(n, 1), metrics=values, examples=examples)


def _slice(sources, lo: int, hi: int):
    if sources is None:
        return None
    from ..metrics.scores import Sources

    return Sources(sources.row[lo:hi], sources.col[lo:hi], sources.r[lo:hi], sources.footprint_px)


def listed_sources(shards, max_scenes: int | None = None):
    """The point sources every scene of ``shards`` lists (positions, r; in stream order), or None when the shards
    do not list them."""
    from ..contracts import shards as contract
    from ..metrics.scores import Sources

    parts, k = [], None
    for shard in shards:
        info = contract.read_info(shard)
        if "source_row" not in info["shapes"]:
            return None
        k = int(info["attrs"].get("footprint_px", 4))
        parts.append(contract.load_arrays(shard, ("source_row", "source_col", "source_rel_emission")))
    width = max(p["source_row"].shape[1] for p in parts)

    def cat(name):
        return np.concatenate(
            [
                np.pad(p[name].astype(np.float64), ((0, 0), (0, width - p[name].shape[1])), constant_values=np.nan)
                for p in parts
            ]
        )[:max_scenes]

    return Sources(cat("source_row"), cat("source_col"), cat("source_rel_emission"), k)
