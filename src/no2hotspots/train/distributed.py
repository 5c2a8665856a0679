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
- gradients: averaged across ranks by DDP; with ``train.distributed.global_batch`` (default) BatchNorm statistics,
  dropout masks and the loss's Tversky term cover the global batch too (:func:`as_one_process`,
  no2hotspots.train.loop.step_loss), so K ranks compute the gradient one process computes, to float rounding;
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
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from ..config import require, require_bool
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
    global_batch: bool = False  # BatchNorm, dropout and the Tversky term over the global batch (K > 1 only)

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
    require_bool(cfg, t + "distributed.global_batch")
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


def as_one_process(model: torch.nn.Module, dist: Dist) -> torch.nn.Module:
    """``model`` whose batch-wide operations cover the global batch, so that K ranks compute what one process
    computes: BatchNorm statistics (torch's SyncBatchNorm on GPUs, :class:`GlobalBatchNorm2d` on CPU, where
    SyncBatchNorm has no kernels) and dropout masks (:class:`GlobalDropout`). Parameters and buffers stay the same
    tensors; the state dict keeps its keys."""
    if dist.device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    else:
        model = global_batchnorm(model)
    return global_dropout(model, dist.rank, dist.world)


class GlobalDropout(torch.nn.Dropout):
    """Dropout that draws the mask of the whole global batch (every rank alike: they share the torch seed) and
    applies this rank's rows of it: on CPU the masks are those one process draws for the same batch."""

    def __init__(self, p: float, rank: int, world: int):
        super().__init__(p)
        self.rank, self.world = rank, world

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.numel() == 0:
            return x
        n = x.shape[0]
        noise = torch.empty((n * self.world, *x.shape[1:]), dtype=x.dtype, device=x.device).bernoulli_(1 - self.p)
        noise.div_(1 - self.p)  # as torch's CPU dropout: mask / (1 - p), then times the input
        return x * noise[self.rank * n : (self.rank + 1) * n]


def global_dropout(module: torch.nn.Module, rank: int, world: int) -> torch.nn.Module:
    out = GlobalDropout(module.p, rank, world) if type(module) is torch.nn.Dropout else module
    if out is not module:
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, global_dropout(child, rank, world))
    return out


class SumOverRanks(torch.autograd.Function):
    """Sum of a tensor over all ranks; the backward pass sums the gradients over the ranks likewise."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        t = t.clone(memory_format=torch.contiguous_format)
        torch.distributed.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)
        torch.distributed.all_reduce(grad)
        return grad


class GlobalBatchNorm2d(torch.nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics (and running averages) cover the global batch of all ranks.

    Per channel, the sums of x and x² and the count go through one differentiable all-reduce (float64), so the
    backward pass sums the gradients of the statistics over the ranks as well: with DDP averaging the parameter
    gradients, K ranks compute the gradient of the global batch's loss, as one process would. Outside training or
    without a process group it is a plain BatchNorm2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and torch.distributed.is_available() and torch.distributed.is_initialized()):
            return super().forward(x)
        c, xd = x.shape[1], x.double()
        count = xd.new_full((1,), x.numel() // c)
        stats = SumOverRanks.apply(torch.cat([xd.sum((0, 2, 3)), (xd * xd).sum((0, 2, 3)), count]))
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c : 2 * c] / n - mean * mean).clamp_min(0.0)  # biased, as batch norm normalises
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1.0 - m).add_(mean.to(x.dtype), alpha=m)
                self.running_var.mul_(1.0 - m).add_((var * n / (n - 1)).to(x.dtype), alpha=m)
        shape = (1, c, 1, 1)
        y = (x - mean.to(x.dtype).view(shape)) * torch.rsqrt(var + self.eps).to(x.dtype).view(shape)
        return y * self.weight.view(shape) + self.bias.view(shape) if self.affine else y


def global_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """Every ``nn.BatchNorm2d`` of ``module`` as a :class:`GlobalBatchNorm2d` on the same tensors."""
    out = module
    if type(module) is torch.nn.BatchNorm2d:
        m = module
        out = GlobalBatchNorm2d(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
        if m.affine:
            out.weight, out.bias = m.weight, m.bias
        if m.track_running_stats:
            out.running_mean, out.running_var = m.running_mean, m.running_var
            out.num_batches_tracked = m.num_batches_tracked
        out.train(m.training)
    for name, child in module.named_children():
        out.add_module(name, global_batchnorm(child))
    return out


@contextlib.contextmanager
def session(cfg: DictConfig) -> Iterator[Dist]:
    """Join torchrun's process group (if any) for the duration of one training; see the module docstring."""
    validate(cfg)
    rank, world, local_rank = world_from_env()
    device = resolve_device(cfg, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.set_num_threads(threads(cfg, world))
    dist = Dist(rank, world, local_rank, device, world > 1 and bool(cfg.train.distributed.global_batch))
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
    except UserError as e:
        stop.failing = True  # from here on this rank ignores torchrun's SIGTERM: its own line comes next
        e.args = (f"{e} ({dist.describe()})",)  # every rank prints its line: say whose it is
        raise
    except RuntimeError as e:
        stop.failing = True
        if not _is_lost_peer(e):
            raise
        raise RankFailed(_resume_hint(dist, cfg, "lost contact with another rank (it failed or was killed)")) from e
    finally:
        stop.failing = not finished
        if finished:
            signal.signal(signal.SIGTERM, previous)
        quiet.close()
        with contextlib.suppress(Exception):
            torch.distributed.destroy_process_group()


class _Stop:
    """torchrun's SIGTERM (it stops the other ranks when one fails): print one line and leave at once.

    Raising from a signal handler would surface inside whatever library call was running (an MLflow database
    commit, a gloo wait) and come out wrapped or as a traceback, so the handler writes the line itself and exits
    (status 2, like every user error): outputs are written atomically (a temp file left behind is removed by the
    next write), the last checkpoint stays, and the MLflow run stays RUNNING until ``train.resume=true`` reopens
    and finishes it. A rank already failing on its own error ignores the signal and prints that error instead."""

    def __init__(self, message: str):
        self.message, self.failing = message, False

    def handler(self, signum, frame) -> None:
        if self.failing:
            return
        self.failing = True
        with contextlib.suppress(Exception):
            sys.stderr.write(f"no2hotspots train: error: {self.message}\n")
            sys.stderr.flush()
        os._exit(RankFailed.exit_code)


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
