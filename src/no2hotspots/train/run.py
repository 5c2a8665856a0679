"""The ``train`` stage: fit the CNN on the simulated shards and track it in MLflow.

``run(cfg)`` is called by ``python -m no2hotspots train`` (DVC, params.yaml) and by ``python -m no2hotspots.train``
(Hydra, sweeps); it returns the sweep objective (``train.objective`` at the selected epoch). The official scores of
the trained model (Table 1 on the test split, the validation score the registry compares) come from the ``score``
stage; training monitors the validation split per epoch with the same definitions (``train.monitor``).

Outputs: ``<train.out_dir>/model/{state_dict.pt,model.json}``, ``<train.out_dir>/checkpoints/{last,best}.pt``,
``<train.out_dir>/run.json``, ``<paths.metrics>/train.json``, ``<paths.plots>/train/learning_curve.csv``. The
previous model and run.json are replaced only when the new training has finished. MLflow: one run (a child of the
sweep's parent run when ``NO2HOTSPOTS_PARENT_RUN_ID`` is set) with a curated set of params, the full config as an
artifact, per-epoch ``train/loss``, ``val/loss``, ``val/<monitor metric>``, ``lr``, figures and the model.

Several processes: ``torchrun --nproc_per_node=K -m no2hotspots train ...`` runs this same ``run(cfg)`` in K
processes (DistributedDataParallel; no2hotspots.train.distributed). ``train.batch_size`` is the global batch, split
evenly over the ranks; rank 0 alone validates, checkpoints, logs to MLflow and writes the outputs above.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig

from ..atomic import Group, atomic_group, write_json
from ..config import require, require_bool, require_int, require_odd_int, to_container
from ..errors import ConfigError
from . import checkpoint as ckpt
from . import distributed
from .data import ShardStream, check_dataset, split_shards
from .distributed import Dist
from .loop import LOSSES

log = logging.getLogger(__name__)

PARENT_ENV = "NO2HOTSPOTS_PARENT_RUN_ID"  # set by the sweep callback: trials become child runs
#: monitor metrics logged per epoch (all are computed; the objective may name any of them)
EPOCH_METRICS = (
    "mark/every/pixel_recall_q1_all",
    "mark/every/pixel_recall_q2_all",
    "mark/visible/pixel_recall_q2_all",
    "mark/every/pixel_precision_q2_all",
    "detect/every/source_recall",
    "detect/every/source_precision",
    "detect/every/source_f1",
)


def _validate(cfg: DictConfig) -> None:
    t = "train."
    require_int(cfg, t + "epochs", 1)
    require_int(cfg, t + "batch_size", 2)
    require_int(cfg, t + "eval_batch_size", 1)
    require_int(cfg, t + "num_threads", 1)
    require(cfg, t + "lr", lambda v: float(v) > 0, "must be > 0")
    for key in ("optimizer", "lr_schedule"):
        require(
            cfg,
            t + key + "._target_",
            lambda v: isinstance(v, str) and v.startswith("torch.optim."),
            "must name a torch.optim class",
        )
    require(
        cfg,
        t + "loss",
        lambda v: v in LOSSES,
        "must be 'mse' (the paper's), 'weighted_mse', 'mse_dice' or 'weighted_mse_dice'",
    )
    require(cfg, t + "positive_weight", lambda v: float(v) >= 0, "must be >= 0")
    require(cfg, t + "dice_weight", lambda v: float(v) >= 0, "must be >= 0")
    require(cfg, t + "dice_threshold", lambda v: 0 < float(v) < 1, "must be in (0, 1)")
    require(cfg, t + "dice_temperature", lambda v: float(v) > 0, "must be > 0")
    require(cfg, t + "dice_beta", lambda v: 0 < float(v) < 1, "must be in (0, 1) (0.5 = Dice)")
    require(cfg, t + "peak_weight", lambda v: float(v) >= 0, "must be >= 0 (0 = no peak term)")
    require_bool(cfg, t + "peak_within_footprint")
    require_odd_int(cfg, t + "peak_window_px")
    require(cfg, t + "select", lambda v: v in ("best", "last"), "must be 'best' or 'last'")
    require(cfg, t + "ema_decay", lambda v: v is None or 0 <= float(v) < 1, "must be null (off) or in [0, 1)")
    require(
        cfg,
        t + "objective",
        lambda v: str(v).startswith("val/"),
        "must name a validation metric, e.g. val/detect/every/source_f1",
    )
    for key in ("max_train_scenes", "max_eval_scenes"):
        require(cfg, t + key, lambda v: v is None or (isinstance(v, int) and v >= 1), "must be null or an integer")
    from ..metrics import Scoring

    try:
        Scoring.from_config(cfg.train.monitor)
    except (KeyError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(t + "monitor", f"needs the keys of no2hotspots.metrics.Scoring ({first})") from None
    distributed.validate(cfg)


@dataclass
class Data:
    """The three streams and what the model keeps about the data (scaling, emission range, version)."""

    train: ShardStream
    val: ShardStream
    meta: dict
    version: str


@dataclass
class State:
    """Everything an epoch changes; saved in ``checkpoints/last.pt`` after every epoch."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    epoch: int = 0  # next epoch to run
    history: list = field(default_factory=list)
    best_loss: float = math.inf
    best_epoch: int = -1
    stale: int = 0
    run_id: str | None = None
    ema: torch.nn.Module | None = None  # AveragedModel (train.ema_decay): validated, selected and saved


def averaged(model: torch.nn.Module, decay) -> torch.nn.Module | None:
    """The exponential moving average of ``model``'s weights and BatchNorm statistics (``train.ema_decay``), or None
    when the decay is null. Step t (t updates so far) does ``avg = d * avg + (1 - d) * weights`` with
    ``d = min(decay, (1 + t) / (10 + t))``: TensorFlow's ``ExponentialMovingAverage(num_updates=...)`` warm-up, so a
    short run follows its recent weights instead of staying near the initial ones (d reaches 0.995 after ~1,800
    steps). The count is the average's ``n_averaged``, saved with it, so a resumed run continues the same schedule."""
    if decay is None:
        return None
    from torch.optim.swa_utils import AveragedModel

    update = _WarmupEMA(float(decay))
    avg = AveragedModel(model, multi_avg_fn=update, use_buffers=True)
    update.owner = avg
    return avg


class _WarmupEMA:
    """``AveragedModel``'s ``multi_avg_fn`` with the warm-up of :func:`averaged`. It reads t from the average's own
    ``n_averaged`` (a host tensor), not from the copy on the weights' device that ``AveragedModel`` passes, whose read
    would wait for the GPU. ``AveragedModel`` itself still synchronises 2-3 times per CUDA update (it copies its
    count to the device); measured on an H200 this costs nothing visible (benchmarks/gpu.py ``--parts ema``)."""

    def __init__(self, decay: float):
        self.decay, self.owner = decay, None  # owner: the AveragedModel, set by averaged() once it exists

    def __call__(self, averages: list[torch.Tensor], weights: list[torch.Tensor], _n_on_device: torch.Tensor) -> None:
        ema_step_(averages, weights, warmup_decay(self.decay, int(self.owner.n_averaged)))


def warmup_decay(decay: float, t: int) -> float:
    """The decay of the update that has ``t`` updates before it (:func:`averaged`)."""
    return min(decay, (1 + t) / (10 + t))


@torch.no_grad()
def ema_step_(averages: list[torch.Tensor], weights: list[torch.Tensor], d: float) -> None:
    """``avg = d * avg + (1 - d) * weights`` in place, for tensors of one dtype (AveragedModel groups them so)."""
    if averages[0].is_floating_point():
        torch._foreach_lerp_(averages, weights, 1 - d)
    else:  # integer buffers (BatchNorm's num_batches_tracked), as torch's own EMA does them
        for a, w in zip(averages, weights, strict=True):
            a.copy_(a * d + w * (1 - d))


def weights_of(state: State) -> torch.nn.Module:
    """The network that is validated, selected and saved: the average when ``train.ema_decay`` is set."""
    return state.model if state.ema is None else state.ema.module


def open_data(cfg: DictConfig, dist: Dist) -> Data:
    """Check the shards against the model (tile, variables, one scaling) and open the streams (this rank's slice
    of the training batches; the validation stream whole, rank 0 validates)."""
    from .. import tracking

    t = cfg.train
    if int(t.batch_size) % dist.world:
        raise ConfigError(
            "train.batch_size",
            f"{t.batch_size} is the global batch and must split evenly over the {dist.world} processes",
        )
    sim_dir = Path(str(cfg.paths.simulated))
    tile, in_ch = int(cfg.model.tile_size), int(cfg.model.in_channels)
    shards = {s: split_shards(sim_dir, s) for s in ("train", "val")}
    meta = check_dataset(shards["train"], tile, in_ch)
    check_dataset(shards["val"], tile, in_ch, input_scale=meta["input_scale"])
    train = ShardStream(
        shards["train"],
        int(t.batch_size),
        shuffle=True,
        seed=int(t.seed),
        max_scenes=t.max_train_scenes,
        drop_last=True,
        rank=dist.rank,
        world=dist.world,
        prefetch=dist.device.type == "cuda",  # 1.2-1.3x at batch >= 256 on an H200 (benchmarks/gpu.py)
    )
    if train.n_batches() == 0:
        raise ConfigError("train.batch_size", f"{t.batch_size} exceeds the {train.n_scenes()} training scenes")
    val = ShardStream(shards["val"], int(t.eval_batch_size), shuffle=False, max_scenes=t.max_eval_scenes)
    return Data(train, val, meta, tracking.data_version(sim_dir) if dist.is_main else "")


def build(cfg: DictConfig, dist: Dist) -> State:
    """The network (on this rank's device; batch-wide operations over the global batch under torchrun), optimiser and
    scheduler, each instantiated from its ``_target_`` config; the same seed gives every rank the same weights."""
    from hydra.utils import instantiate

    from ..model.net import build_model

    torch.manual_seed(int(cfg.train.seed))
    model = build_model(cfg.model)
    if dist.global_batch:
        model = distributed.as_one_process(model, dist)
    model = model.to(dist.device)
    optimizer = instantiate(cfg.train.optimizer)(model.parameters())
    scheduler = instantiate(cfg.train.lr_schedule)(optimizer)
    return State(model, optimizer, scheduler, ema=averaged(model, cfg.train.ema_decay))


def resume_or_start(cfg: DictConfig, state: State, dist: Dist) -> State:
    """Continue from ``checkpoints/last.pt`` with ``train.resume``; else start afresh (old checkpoints go, the
    previous model and run.json stay until this training has finished). Rank 0 reads the checkpoint and sends it
    to every rank: all continue from the same state, and other ranks never open the outputs."""
    last = Path(str(cfg.train.out_dir)) / "checkpoints" / ckpt.LAST
    saved = dist.broadcast(_read_last_or_clear(cfg) if dist.is_main else None)
    if saved is None:
        return state
    ckpt.load_state_dict_checked(state.model, saved["model"], last)
    decay = cfg.train.ema_decay
    if saved.get("ema_decay") != (None if decay is None else float(decay)):
        raise ConfigError(
            "train.ema_decay", f"{decay} differs from the {saved.get('ema_decay')} of {last}: resume with that value"
        )
    if state.ema is not None:
        state.ema.load_state_dict(saved["ema"])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["torch_rng"])
    state.epoch = int(saved["epoch"]) + 1
    state.history = list(saved["history"])
    state.best_loss, state.best_epoch = float(saved["best_loss"]), int(saved["best_epoch"])
    state.stale, state.run_id = int(saved.get("stale", 0)), saved.get("run_id") or None
    log.info("resuming from %s after epoch %d", last, state.epoch)
    return state


def _read_last_or_clear(cfg: DictConfig) -> dict | None:
    """``last.pt`` when resuming and it exists; else None, with the old checkpoints removed."""
    ckpt_dir = Path(str(cfg.train.out_dir)) / "checkpoints"
    last = ckpt_dir / ckpt.LAST
    if bool(cfg.train.resume) and last.exists():
        return ckpt.load(last)
    if bool(cfg.train.resume):
        log.warning("train.resume=true but %s does not exist: starting afresh", last)
    for name in (ckpt.LAST, ckpt.BEST):
        (ckpt_dir / name).unlink(missing_ok=True)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    return None


def save_checkpoint(cfg: DictConfig, state: State, best: bool) -> None:
    ckpt_dir = Path(str(cfg.train.out_dir)) / "checkpoints"
    if best:
        ckpt.save(ckpt_dir / ckpt.BEST, {"model": weights_of(state).state_dict(), "epoch": state.epoch})
    ckpt.save(
        ckpt_dir / ckpt.LAST,
        {
            "model": state.model.state_dict(),
            "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "epoch": state.epoch,
            "best_loss": state.best_loss,
            "best_epoch": state.best_epoch,
            "stale": state.stale,
            "history": state.history,
            "run_id": state.run_id,
            "ema_decay": None if state.ema is None else float(cfg.train.ema_decay),
            "ema": None if state.ema is None else state.ema.state_dict(),
        },
    )


def fit(cfg: DictConfig, state: State, data: Data, dist: Dist) -> State:
    """The epoch loop: train, monitor on the validation split, step the scheduler, checkpoint, log."""
    from ..metrics import Scoring
    from .loop import Loss

    t, es = cfg.train, cfg.train.early_stopping
    loss, scoring = Loss.from_config(t), distributed.rank_local(Scoring.from_config(t.monitor), dist)
    net = dist.wrap(state.model)
    while state.epoch < int(t.epochs):
        if bool(es.enabled) and state.stale >= int(es.patience):
            log.info("early stopping: no better validation loss for %d epochs", state.stale)
            break
        row = run_epoch(cfg, state, data, dist, net, loss, scoring)
        if dist.is_main:  # logged before the checkpoint: a kill in between repeats an epoch, it never loses one
            log_epoch(row, int(t.epochs))
        record_epoch(cfg, state, row, dist)
    return state


def run_epoch(cfg: DictConfig, state: State, data: Data, dist: Dist, net, loss, scoring) -> dict:
    """One training pass (every rank) and the validation pass (rank 0, which sends its row to every rank)."""
    from ..score.evaluate import evaluate
    from .loop import train_epoch

    t0, lr = time.perf_counter(), float(state.optimizer.param_groups[0]["lr"])
    scale = data.meta["input_scale"]
    train_loss, train_mse = train_epoch(
        net,
        state.optimizer,
        data.train,
        loss,
        epoch=state.epoch,
        seed=int(cfg.train.seed),
        input_scale=scale,
        desc=f"epoch {state.epoch + 1}/{cfg.train.epochs}",
        dist=dist,
        after_step=None if state.ema is None else lambda: state.ema.update_parameters(state.model),
    )
    row = None
    if dist.is_main:
        model = distributed.for_cpu_callers(weights_of(state), dist.device)
        val = evaluate(model, data.val, input_scale=scale, scoring=scoring, desc="validate")
        row = {
            "epoch": state.epoch,
            "train_loss": train_loss,
            "train_mse": train_mse,
            "val_loss": val.loss,
            "lr": lr,
            **{f"val/{k}": v for k, v in val.metrics.items()},
            "epoch_seconds": time.perf_counter() - t0,
        }
    return dist.broadcast(row)


def record_epoch(cfg: DictConfig, state: State, row: dict, dist: Dist) -> None:
    """Step the scheduler on the validation loss, keep the history and the best epoch, checkpoint (rank 0)."""
    state.scheduler.step(row["val_loss"])
    state.history.append(row)
    better = row["val_loss"] < state.best_loss - float(cfg.train.early_stopping.min_delta)
    if better:
        state.best_loss, state.best_epoch, state.stale = row["val_loss"], state.epoch, 0
    else:
        state.stale += 1
    if dist.is_main:
        save_checkpoint(cfg, state, better)
    state.epoch += 1


def log_epoch(row: dict, epochs: int) -> None:
    import mlflow

    mlflow.log_metrics(
        {
            "train/loss": row["train_loss"],
            "train/mse": row["train_mse"],
            "val/loss": row["val_loss"],
            "lr": row["lr"],
            "epoch_seconds": row["epoch_seconds"],
            **{f"val/{k}": v for k in EPOCH_METRICS if math.isfinite(v := row[f"val/{k}"])},
        },
        step=row["epoch"],
    )
    log.info(
        "epoch %d/%d: train loss %.5g, val loss %.5g, val median pixel recall %.3f, val source F1 %.3f (%.1f s)",
        row["epoch"] + 1,
        epochs,
        row["train_loss"],
        row["val_loss"],
        row[f"val/{EPOCH_METRICS[1]}"],
        row["val/detect/every/source_f1"],
        row["epoch_seconds"],
    )


def select_weights(cfg: DictConfig, state: State) -> tuple[int, float]:
    """The selected epoch (``train.select``) and the objective's value at that epoch (from the history)."""
    last = state.history[-1]["epoch"]
    selected = state.best_epoch if (str(cfg.train.select) == "best" and state.best_epoch >= 0) else last
    row = next(h for h in state.history if h["epoch"] == selected)
    key = str(cfg.train.objective)
    if key not in row:
        raise ConfigError("train.objective", f"{key!r} is not a monitored validation metric")
    return selected, float(row[key])


def final_model(cfg: DictConfig, state: State, selected: int) -> torch.nn.Module:
    """The selected epoch's weights in a plain CPU model (whatever device and BatchNorm flavour trained it)."""
    from ..model.net import build_model

    source: str | Path = "the trained model"
    weights = {k: v.detach().cpu() for k, v in weights_of(state).state_dict().items()}
    if selected != state.history[-1]["epoch"]:
        source = Path(str(cfg.train.out_dir)) / "checkpoints" / ckpt.BEST
        weights = ckpt.load(source)["model"]
    model = build_model(cfg.model)
    ckpt.load_state_dict_checked(model, weights, source)
    return model


def model_meta(cfg: DictConfig, model: torch.nn.Module, state: State, data: Data, selected: int) -> dict:
    from ..model.net import count_parameters

    m = data.meta
    return {
        "model": to_container(cfg.model),
        "input_scale": m["input_scale"],
        "tile_size": int(cfg.model.tile_size),
        "in_channels": int(cfg.model.in_channels),
        "emission_min_t_per_yr": m["emission_min_t_per_yr"],
        "emission_max_t_per_yr": m["emission_max_t_per_yr"],
        "pixel_size_m": m["pixel_size_m"],
        "run_id": state.run_id,
        "selected_epoch": selected,
        "n_parameters": count_parameters(model),
        "data_version": data.version,
    }


def save_model(out: Group, cfg: DictConfig, model: torch.nn.Module, meta: dict) -> Path:
    """``<out_dir>/model/{state_dict.pt,model.json}`` staged in ``out`` (replaced as a whole with the run's other
    outputs); returns the staged folder."""
    tmp = out.folder(Path(str(cfg.train.out_dir)) / "model")
    torch.save(model.state_dict(), tmp / "state_dict.pt")
    write_json(tmp / "model.json", meta)
    return tmp


def run(cfg: DictConfig) -> float:
    """Train and track one model; return the sweep objective (higher is better)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    _validate(cfg)
    with distributed.session(cfg) as dist:
        data = open_data(cfg, dist)
        state = resume_or_start(cfg, build(cfg, dist), dist)
        if not dist.is_main:  # ranks > 0 train and leave validation, tracking and outputs to rank 0
            return select_weights(cfg, fit(cfg, state, data, dist))[1]
        from . import tracking_run

        with tracking_run.start(cfg, state, data) as run_id:
            state.run_id = run_id
            state = fit(cfg, state, data, dist)
            selected, objective = select_weights(cfg, state)
            model = final_model(cfg, state, selected)
            with atomic_group() as out:  # model/, run.json, metrics and learning curve replaced together
                model_dir = save_model(out, cfg, model, model_meta(cfg, model, state, data, selected))
                tracking_run.log_results(cfg, state.history, selected, objective)
                model_uri = tracking_run.log_model(model_dir, model, data) if bool(cfg.train.log_model) else None
                write_outputs(out, cfg, state, data, selected, objective, model_uri)
    log.info("selected epoch %d; objective %s = %.4f", selected + 1, cfg.train.objective, objective)
    return objective


def write_outputs(
    out: Group, cfg: DictConfig, state: State, data: Data, selected: int, objective: float, model_uri
) -> None:
    """metrics/train.json, plots/train/learning_curve.csv and run.json (it marks a finished training), staged in
    ``out`` with the model folder."""
    import pandas as pd

    from .. import tracking

    sel = next(h for h in state.history if h["epoch"] == selected)
    out.write_json(
        Path(str(cfg.paths.metrics)) / "train.json",
        {
            "selected_epoch": selected,
            "epochs_run": len(state.history),
            "val_loss": sel["val_loss"],
            "objective": objective,
            "train_minutes": sum(h["epoch_seconds"] for h in state.history) / 60.0,
        },
    )
    keys = ("epoch", "train_loss", "train_mse", "val_loss", "lr")
    curve = pd.DataFrame([{k: h[k] for k in keys} for h in state.history])
    out.write_csv(curve, Path(str(cfg.paths.plots)) / "train" / "learning_curve.csv")
    out.write_json(
        Path(str(cfg.train.out_dir)) / "run.json",
        {
            "run_id": state.run_id,
            "experiment": str(cfg.tracking.experiment),
            "tracking_uri": tracking.resolve_uri(cfg),
            "model_uri": model_uri,
            "data_version": data.version,
            "git_commit": tracking.git_commit(),
            "parent_run_id": os.environ.get(PARENT_ENV) or None,
            "objective": objective,
            "objective_key": str(cfg.train.objective),
            "selected_epoch": selected,
        },
    )
