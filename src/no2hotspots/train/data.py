"""Streaming access to the simulated shards (``outputs/simulated/<split>/shard-*.nc``, see docs/contracts.md).

The training set is never loaded whole: :class:`ShardStream` opens one shard at a time, shuffles the shard order and
the scenes within each shard with a generator seeded by ``(seed, epoch)``, and yields fixed-size batches (a batch may
span two shards). The same seed and epoch therefore give the same batches, which is what lets an interrupted epoch be
redone identically after a resume.

Under torchrun (K processes) each rank builds the same global batches and keeps its own contiguous slice of
``batch_size / K`` scenes (``rank``, ``world``): every scene is seen once per epoch across the ranks, the order is
still a pure function of (seed, epoch), and a K-process step trains on exactly the scenes of a single-process step.
Each rank reads every shard (one at a time) and keeps 1/K of it.

With ``prefetch`` (the train stage sets it when it trains on a GPU) the next shard is read in a background thread
while the current one is used: the same shards in the same order, so the same batches, with one more shard in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..contracts import shards as shards_contract
from ..errors import InputFileError

#: what the model reads from each shard
MODEL_VARS = ("no2", "valid", "emission")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batch:
    no2: np.ndarray  # (n, y, x) float32 mol m-2, NaN where invalid
    valid: np.ndarray  # (n, y, x) uint8
    emission: np.ndarray  # (n, y, x) float32 relative emission (target)


def split_shards(sim_dir: str | Path, split: str) -> list[Path]:
    """The shard files of one split, in the manifest's order (no2hotspots.contracts.shards)."""
    return shards_contract.shard_paths(sim_dir, split)


def check_dataset(shards: list[Path], tile_size: int, in_channels: int = 2, input_scale: float | None = None) -> dict:
    """Check that every shard fits the model: 64x64 tiles, the variables the model needs, one input scaling.

    Returns the dataset attributes the model keeps (input_scale, emission min/max, pixel size, tile size). Raises a
    one-line :class:`InputFileError` naming the shard and what differs.
    """
    if in_channels != 2:
        raise InputFileError(
            shards[0],
            f"the model expects {in_channels} input channels but the data give 2 "
            "(NO2 and valid mask); set model.in_channels: 2",
        )
    ref: dict | None = None
    for shard in shards:
        info = shards_contract.read_info(shard)
        attrs, shapes = info["attrs"], info["shapes"]
        for v in MODEL_VARS:
            if v not in shapes:
                raise InputFileError(shard, f"variable {v!r} is missing")
            shp = shapes[v]
            if len(shp) != 3 or shp[1:] != (tile_size, tile_size):
                raise InputFileError(
                    shard,
                    f"variable {v!r} has shape {shp}, expected (scene, {tile_size}, "
                    f"{tile_size}) for model tile_size {tile_size}",
                )
        for a in shards_contract.REQUIRED_ATTRS:
            if a not in attrs:
                raise InputFileError(
                    shard,
                    f"global attribute {a!r} is missing (needed to scale model inputs "
                    "and map outputs back to emissions)",
                )
        scale = float(attrs["input_scale"])
        if not np.isfinite(scale) or scale <= 0:
            raise InputFileError(shard, f"input_scale is {attrs['input_scale']!r}, expected a positive number")
        cur = {
            "input_scale": scale,
            "emission_min_t_per_yr": float(attrs["emission_min_t_per_yr"]),
            "emission_max_t_per_yr": float(attrs["emission_max_t_per_yr"]),
            "pixel_size_m": float(attrs["pixel_size_m"]),
            "tile_size": int(tile_size),
        }
        if ref is None:
            ref = cur
        else:
            for k in ("input_scale", "emission_min_t_per_yr", "emission_max_t_per_yr", "pixel_size_m"):
                if not np.isclose(cur[k], ref[k], rtol=1e-9):
                    raise InputFileError(
                        shard,
                        f"{k} = {cur[k]!r} differs from {ref[k]!r} in {shards[0].name}; "
                        "all shards must share one scaling",
                    )
    assert ref is not None
    _check_scaling(shards[0], ref["input_scale"])
    if input_scale is not None and not np.isclose(ref["input_scale"], input_scale, rtol=1e-9):
        raise InputFileError(
            shards[0],
            f"input_scale = {ref['input_scale']!r} differs from the model's "
            f"{input_scale!r} (scaling mismatch between data sets)",
        )
    return ref


def _check_scaling(shard: Path, input_scale: float, n: int = 16) -> None:
    """Scale the first scenes of ``shard`` as training will and check the values look like a scaled NO2 field."""
    from ..errors import UserError
    from ..model.inputs import check_scaling

    a = shards_contract.load_arrays(shard, ("no2", "valid"), n=n)
    try:
        check_scaling(a["no2"].astype(np.float64) * input_scale, a["valid"])
    except UserError as e:
        raise InputFileError(shard, f"input_scale {input_scale!r}: {e}") from None


def shard_scenes(shard: Path) -> int:
    return int(shards_contract.read_info(shard)["shapes"]["no2"][0])


def _load_shard(shard: Path) -> Batch:
    """One shard's arrays, checked: a NaN target or a non-finite observed column would poison the model."""
    a = shards_contract.load_arrays(shard)
    em = a["emission"]
    if not np.all(np.isfinite(em)) or em.min(initial=0.0) < 0 or em.max(initial=0.0) > 1:
        bad = int(np.sum(~np.isfinite(em) | (em < 0) | (em > 1)))
        raise InputFileError(
            shard, f"emission (the training target) has {bad} value(s) that are NaN/inf or outside 0..1"
        )
    if np.any(~np.isfinite(a["no2"]) & (a["valid"] > 0)):
        raise InputFileError(shard, "no2 is NaN/inf at pixels marked valid")
    return Batch(a["no2"], a["valid"], a["emission"])


class ShardStream:
    """Iterate over one split in batches, one shard in memory at a time.

    ``shuffle=True``: shard order and scene order within each shard come from ``np.random.default_rng([seed,
    epoch])``. ``max_scenes`` caps the scenes per pass (the first ones in stream order). ``world`` > 1: yield this
    ``rank``'s slice ``[rank * b, (rank + 1) * b)`` of every global batch, ``b = batch_size / world`` (needs
    ``drop_last`` and a batch size divisible by ``world``); ``n_scenes``/``n_batches`` stay the global counts.
    ``prefetch``: read the next shard in a background thread (module docstring).
    """

    def __init__(
        self,
        shards: list[Path],
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        max_scenes: int | None = None,
        drop_last: bool = False,
        rank: int = 0,
        world: int = 1,
        prefetch: bool = False,
    ):
        if world > 1 and (not drop_last or batch_size % world or not 0 <= rank < world):
            raise ValueError(f"rank {rank} of {world}: needs drop_last and a batch size divisible by {world}")
        self.rank, self.world = int(rank), int(world)
        self.shards = list(shards)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.max_scenes = max_scenes
        self.drop_last = drop_last
        self.prefetch = bool(prefetch)
        self._sizes: np.ndarray | None = None  # scenes per shard, read once

    def n_scenes(self) -> int:
        n = int(self._shard_sizes().sum())
        return n if self.max_scenes is None else min(n, int(self.max_scenes))

    def _shard_sizes(self) -> np.ndarray:
        if self._sizes is None:
            self._sizes = np.asarray([shard_scenes(s) for s in self.shards], dtype=np.int64)
        return self._sizes

    def n_batches(self) -> int:
        n = self.n_scenes()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def batches(self, epoch: int = 0) -> Iterator[Batch]:
        rng = np.random.default_rng([self.seed, int(epoch)]) if self.shuffle else None
        order = rng.permutation(len(self.shards)) if rng is not None else np.arange(len(self.shards))
        budget = self.n_scenes()
        sizes = self._shard_sizes()[order]
        needed = np.cumsum(sizes) - sizes < budget  # the shards that start before the budget is spent
        carry: list[Batch] = []
        n_carry = 0
        for data in self._loaded([self.shards[i] for i in order[needed]]):
            n = data.no2.shape[0]
            idx = rng.permutation(n) if rng is not None else np.arange(n)
            idx = idx[:budget]
            budget -= len(idx)
            part = Batch(data.no2[idx], data.valid[idx], data.emission[idx])
            carry.append(part)
            n_carry += len(idx)
            while n_carry >= self.batch_size:
                merged = _concat(carry)
                b = self.batch_size // self.world
                lo, hi = self.rank * b, (self.rank + 1) * b
                yield Batch(merged.no2[lo:hi], merged.valid[lo:hi], merged.emission[lo:hi])
                rest = Batch(
                    merged.no2[self.batch_size :], merged.valid[self.batch_size :], merged.emission[self.batch_size :]
                )
                carry, n_carry = [rest], rest.no2.shape[0]
        if n_carry and not self.drop_last:
            yield _concat(carry)

    def _loaded(self, shards: list[Path]) -> Iterator[Batch]:
        """The checked arrays of ``shards`` in order; with ``prefetch`` each next one is read while this is used."""
        if not self.prefetch or len(shards) < 2:
            yield from (_load_shard(s) for s in shards)
            return
        with ThreadPoolExecutor(1, thread_name_prefix="shard-prefetch") as pool:
            pending = pool.submit(_load_shard, shards[0])
            for k in range(len(shards)):
                data = pending.result()  # a bad shard raises its own one-line error here, in stream order
                if k + 1 < len(shards):
                    pending = pool.submit(_load_shard, shards[k + 1])
                yield data


def _concat(parts: list[Batch]) -> Batch:
    if len(parts) == 1:
        return parts[0]
    return Batch(
        np.concatenate([p.no2 for p in parts]),
        np.concatenate([p.valid for p in parts]),
        np.concatenate([p.emission for p in parts]),
    )
