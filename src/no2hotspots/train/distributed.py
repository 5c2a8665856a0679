"""Training on several processes: ``torchrun --nproc_per_node=K -m no2hotspots train ...`` (DistributedDataParallel).

:func:`session` is the one place that knows about processes. Started by torchrun (``WORLD_SIZE`` > 1 in the
environment) it joins the process group (``train.distributed.backend``: gloo on CPU, nccl on GPU), pins each
process to its device (``train.device``; ``cuda:LOCAL_RANK`` on GPUs), sets its torch threads and yields a
:class:`Dist`; a plain ``python -m no2hotspots train`` gets a :class:`Dist` of one process that does nothing
(rank 0, no collectives, no wrapper), so a single process runs exactly the code it ran before torchrun existed.

What each rank does (train.run):

- data: every rank streams the *same* global batches as a single process (``train.batch_size`` is the global
  batch; order a pure function of (seed, epoch)) and trains on its own contiguous slice of each, ``batch_size / K``
  scenes, so every scene is seen once per epoch across ranks and the optimizer steps on the same samples as a
  single process would;
- gradients: averaged across ranks by DDP (the gradient of the global batch's mean loss);
- validation, checkpoints, MLflow, the model and run.json: rank 0 only; rank 0 sends each epoch's validation row to
  the others (:meth:`Dist.broadcast`), so every rank steps its scheduler and stops early alike;
- resume: rank 0 reads ``checkpoints/last.pt`` and sends it to every rank (other ranks never open the outputs).

A rank that loses its peers (one crashed, was killed, or torchrun stopped the job) stops with one line
(:class:`RankFailed`) saying so and how to continue (``train.resume=true``).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from ..config import require
from ..errors import ConfigError, UserError

log = logging.getLogger(__name__)

DEVICES = ("cpu", "cuda", "auto")
BACKENDS = ("auto", "gloo", "nccl")


class RankFailed(UserError):
    """This rank lost its peers (another rank failed or was killed) or torchrun stopped it."""


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: rank, number of processes, device. ``world == 1``: a plain process."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    sync_batchnorm: bool = False

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module to train: DistributedDataParallel over ``model`` (its parameters are broadcast from rank 0),
        or ``model`` itself in a single process."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks (float64; the values themselves in a single process)."""
        if not self.enabled:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return t.tolist()

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank (pickled: only for the project's own data)."""
        if not self.enabled:
            return obj
        box = [obj if self.is_main else None]
        torch.distributed.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    def describe(self) -> str:
        return f"rank {self.rank} of {self.world}"


def world_from_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) in a plain process."""
    env = os.environ
    world = int(env.get("WORLD_SIZE", "1") or 1)
    return int(env.get("RANK", "0") or 0), world, int(env.get("LOCAL_RANK", "0") or 0)


def validate(cfg: DictConfig) -> None:
    """The ``train.device`` and ``train.distributed.*`` keys (one line naming the key)."""
    t = "train."
    require(cfg, t + "device", lambda v: v in DEVICES, "must be 'cpu', 'cuda' or 'auto'")
    require(cfg, t + "distributed.backend", lambda v: v in BACKENDS, "must be 'auto', 'gloo' or 'nccl'")
    require(
        cfg,
        t + "distributed.threads_per_rank",
        lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1),
        "must be null (train.num_threads) or an integer >= 1",
    )
    require(
        cfg,
        t + "distributed.sync_batchnorm",
        lambda v: v in ("auto", True, False),
        "must be auto, true or false",
    )
    require(cfg, t + "distributed.timeout_s", lambda v: float(v) > 0, "must be > 0")
    if cfg.train.distributed.backend == "nccl" and cfg.train.device == "cpu":
        raise ConfigError("train.distributed.backend", "nccl needs train.device=cuda (gloo runs on CPU)")


def resolve_device(cfg: DictConfig, local_rank: int) -> torch.device:
    want = str(cfg.train.device)
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("train.device", f"cuda is not available here (torch {torch.__version__}); use cpu or auto")
    n = torch.cuda.device_count()
    if local_rank >= n:
        raise ConfigError("train.device", f"local rank {local_rank} has no GPU ({n} visible): --nproc_per_node <= {n}")
    return torch.device("cuda", local_rank)


def resolve_backend(cfg: DictConfig, device: torch.device) -> str:
    backend = str(cfg.train.distributed.backend)
    if backend == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and device.type != "cuda":
        raise ConfigError("train.distributed.backend", "nccl needs train.device=cuda (gloo runs on CPU)")
    if backend == "nccl" and not torch.distributed.is_nccl_available():
        raise ConfigError("train.distributed.backend", "this torch build has no nccl; use gloo or auto")
    return backend


def threads(cfg: DictConfig, world: int) -> int:
    """Torch threads of this process: ``train.num_threads`` alone, ``train.distributed.threads_per_rank`` (1 by
    default) when K > 1 processes share the machine."""
    tpr = cfg.train.distributed.threads_per_rank
    return int(cfg.train.num_threads) if world == 1 or tpr is None else int(tpr)


def _sync_batchnorm(cfg: DictConfig, device: torch.device, world: int) -> bool:
    want = cfg.train.distributed.sync_batchnorm
    if want is True and device.type != "cuda":
        raise ConfigError("train.distributed.sync_batchnorm", "SyncBatchNorm runs on GPUs only (train.device=cuda)")
    return world > 1 and (want is True or (want == "auto" and device.type == "cuda"))


@contextlib.contextmanager
def session(cfg: DictConfig) -> Iterator[Dist]:
    """Join torchrun's process group (if any) for the duration of one training; see the module docstring."""
    validate(cfg)
    rank, world, local_rank = world_from_env()
    device = resolve_device(cfg, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.set_num_threads(threads(cfg, world))
    dist = Dist(rank, world, local_rank, device, _sync_batchnorm(cfg, device, world))
    if not dist.enabled:
        yield dist
        return
    backend = resolve_backend(cfg, device)
    timeout = datetime.timedelta(seconds=float(cfg.train.distributed.timeout_s))
    torch.distributed.init_process_group(backend, timeout=timeout, device_id=device if device.type == "cuda" else None)
    log.info("%s: %s on %s, %d torch threads", dist.describe(), backend, device, torch.get_num_threads())
    quiet = _quiet_followers(dist)
    stop = _Stop(_resume_hint(dist, cfg, "stopped by torchrun (SIGTERM: another rank failed or the job ended)"))
    previous = signal.signal(signal.SIGTERM, stop.handler)
    finished = False
    try:
        yield dist
        finished = True
    except RankFailed:
        raise
    except UserError as e:
        e.args = (f"{e} ({dist.describe()})",)  # every rank prints its line: say whose it is
        raise
    except RuntimeError as e:
        if not _is_lost_peer(e):
            raise
        raise RankFailed(_resume_hint(dist, cfg, "lost contact with another rank (it failed or was killed)")) from e
    finally:
        stop.failing = not finished  # a failing rank ignores torchrun's SIGTERM until it has printed its one line
        if finished:
            signal.signal(signal.SIGTERM, previous)
        quiet.close()
        with contextlib.suppress(Exception):
            torch.distributed.destroy_process_group()


class _Stop:
    """SIGTERM from torchrun (it stops the other ranks when one fails) becomes :class:`RankFailed` once."""

    def __init__(self, message: str):
        self.message, self.failing = message, False

    def handler(self, signum, frame) -> None:
        if self.failing:
            return
        self.failing = True
        raise RankFailed(self.message)


def _is_lost_peer(e: RuntimeError) -> bool:
    if isinstance(e, torch.distributed.DistError):
        return True
    text = str(e).lower()
    return any(w in text for w in ("gloo", "nccl", "connection closed", "connection reset", "broken pipe"))


def _resume_hint(dist: Dist, cfg: DictConfig, what: str) -> str:
    ckpt = os.path.join(str(cfg.train.out_dir), "checkpoints", "last.pt")
    return f"{dist.describe()}: {what}; continue from the last finished epoch ({ckpt}) with train.resume=true"


def _quiet_followers(dist: Dist) -> contextlib.ExitStack:
    """Ranks > 0 log warnings only and show no progress bars (rank 0 speaks for the job)."""
    stack = contextlib.ExitStack()
    if dist.is_main:
        return stack
    logger = logging.getLogger("no2hotspots")
    level, progress = logger.level, os.environ.get("NO2HOTSPOTS_PROGRESS")
    logger.setLevel(logging.WARNING)
    os.environ["NO2HOTSPOTS_PROGRESS"] = "0"

    def restore():
        logger.setLevel(level)
        if progress is None:
            os.environ.pop("NO2HOTSPOTS_PROGRESS", None)
        else:
            os.environ["NO2HOTSPOTS_PROGRESS"] = progress

    stack.callback(restore)
    return stack


class OnDevice(torch.nn.Module):
    """``model`` on an accelerator seen from CPU code: inputs go to its device, outputs come back to the CPU (the
    validation pass, no2hotspots.score.evaluate, works on CPU tensors)."""

    def __init__(self, model: torch.nn.Module, device: torch.device):
        super().__init__()
        self.model, self.device = model, device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(self.device, non_blocking=True)).cpu()


def for_cpu_callers(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    return model if device.type == "cpu" else OnDevice(model, device)


def _never() -> bool:
    return False


class RankLocalScoring:
    """A :class:`no2hotspots.metrics.Scoring` whose metrics compute on this process's data only.

    torchmetrics gathers a metric's states from every rank inside ``compute()`` whenever a process group exists; rank
    0 validates alone, so that gather would wait forever for ranks that never call it."""

    def __init__(self, scoring):
        self.scoring = scoring

    @property
    def thresholds(self) -> dict[str, float]:
        return self.scoring.thresholds

    def metrics(self, threshold):
        m = self.scoring.metrics(threshold)
        m.distributed_available_fn = _never
        return m


def rank_local(scoring, dist: Dist):
    return RankLocalScoring(scoring) if dist.enabled else scoring
