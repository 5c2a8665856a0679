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

from ..atomic import atomic_path, write_csv, write_json
from ..config import require, require_int, to_container
from ..errors import ConfigError
from . import checkpoint as ckpt
from .data import ShardStream, check_dataset, split_shards
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
    require(cfg, t + "select", lambda v: v in ("best", "last"), "must be 'best' or 'last'")
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
        raise ConfigError(t + "monitor", f"needs the keys of no2hotspots.metrics.Scoring ({e})") from None


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


def open_data(cfg: DictConfig) -> Data:
    """Check the shards against the model (tile, variables, one scaling) and open the streams."""
    from .. import tracking

    t = cfg.train
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
    )
    if train.n_batches() == 0:
        raise ConfigError("train.batch_size", f"{t.batch_size} exceeds the {train.n_scenes()} training scenes")
    val = ShardStream(shards["val"], int(t.eval_batch_size), shuffle=False, max_scenes=t.max_eval_scenes)
    return Data(train, val, meta, tracking.data_version(sim_dir))


def build(cfg: DictConfig) -> State:
    """The network, optimiser and scheduler, each instantiated from its ``_target_`` config."""
    from hydra.utils import instantiate

    from ..model.net import build_model

    torch.manual_seed(int(cfg.train.seed))
    model = build_model(cfg.model)
    optimizer = instantiate(cfg.train.optimizer)(model.parameters())
    scheduler = instantiate(cfg.train.lr_schedule)(optimizer)
    return State(model, optimizer, scheduler)


def resume_or_start(cfg: DictConfig, state: State) -> State:
    """Continue from ``checkpoints/last.pt`` with ``train.resume``; else start afresh (old checkpoints go, the
    previous model and run.json stay until this training has finished)."""
    ckpt_dir = Path(str(cfg.train.out_dir)) / "checkpoints"
    last = ckpt_dir / ckpt.LAST
    if bool(cfg.train.resume) and last.exists():
        saved = ckpt.load(last)
        ckpt.load_state_dict_checked(state.model, saved["model"], last)
        state.optimizer.load_state_dict(saved["optimizer"])
        state.scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["torch_rng"])
        state.epoch = int(saved["epoch"]) + 1
        state.history = list(saved["history"])
        state.best_loss, state.best_epoch = float(saved["best_loss"]), int(saved["best_epoch"])
        state.stale, state.run_id = int(saved.get("stale", 0)), saved.get("run_id") or None
        log.info("resuming from %s after epoch %d", last, state.epoch)
        return state
    if bool(cfg.train.resume):
        log.warning("train.resume=true but %s does not exist: starting afresh", last)
    for name in (ckpt.LAST, ckpt.BEST):
        (ckpt_dir / name).unlink(missing_ok=True)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    return state


def save_checkpoint(cfg: DictConfig, state: State, best: bool) -> None:
    ckpt_dir = Path(str(cfg.train.out_dir)) / "checkpoints"
    if best:
        ckpt.save(ckpt_dir / ckpt.BEST, {"model": state.model.state_dict(), "epoch": state.epoch})
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
        },
    )


def fit(cfg: DictConfig, state: State, data: Data) -> State:
    """The epoch loop: train, monitor on the validation split, step the scheduler, checkpoint, log."""
    import mlflow

    from ..metrics import Scoring
    from ..score.evaluate import evaluate
    from .loop import Loss, train_epoch

    t, es = cfg.train, cfg.train.early_stopping
    loss, scoring, epochs = Loss.from_config(t), Scoring.from_config(t.monitor), int(t.epochs)
    scale = data.meta["input_scale"]
    while state.epoch < epochs:
        if bool(es.enabled) and state.stale >= int(es.patience):
            log.info("early stopping: no better validation loss for %d epochs", state.stale)
            break
        t0, lr = time.perf_counter(), float(state.optimizer.param_groups[0]["lr"])
        train_loss, train_mse = train_epoch(
            state.model,
            state.optimizer,
            data.train,
            loss,
            epoch=state.epoch,
            seed=int(t.seed),
            input_scale=scale,
            desc=f"epoch {state.epoch + 1}/{epochs}",
        )
        val = evaluate(state.model, data.val, input_scale=scale, scoring=scoring, desc="validate")
        state.scheduler.step(val.loss)
        row = {
            "epoch": state.epoch,
            "train_loss": train_loss,
            "train_mse": train_mse,
            "val_loss": val.loss,
            "lr": lr,
            **{f"val/{k}": v for k, v in val.metrics.items()},
            "epoch_seconds": time.perf_counter() - t0,
        }
        state.history.append(row)
        better = val.loss < state.best_loss - float(es.min_delta)
        if better:
            state.best_loss, state.best_epoch, state.stale = val.loss, state.epoch, 0
        else:
            state.stale += 1
        save_checkpoint(cfg, state, better)
        state.epoch += 1
        mlflow.log_metrics(
            {
                "train/loss": train_loss,
                "train/mse": train_mse,
                "val/loss": val.loss,
                "lr": lr,
                "epoch_seconds": row["epoch_seconds"],
                **{f"val/{k}": v for k in EPOCH_METRICS if math.isfinite(v := val.metrics[k])},
            },
            step=row["epoch"],
        )
        log.info(
            "epoch %d/%d: train loss %.5g, val loss %.5g, val median pixel recall %.3f, val source F1 %.3f (%.1f s)",
            state.epoch,
            epochs,
            train_loss,
            val.loss,
            val.metrics[EPOCH_METRICS[1]],
            val.metrics["detect/every/source_f1"],
            row["epoch_seconds"],
        )
    return state


def select_weights(cfg: DictConfig, state: State) -> tuple[int, float]:
    """Load the selected epoch's weights (``train.select``); return (epoch, objective value at that epoch)."""
    last = state.history[-1]["epoch"]
    selected = state.best_epoch if (str(cfg.train.select) == "best" and state.best_epoch >= 0) else last
    if selected != last:
        best = Path(str(cfg.train.out_dir)) / "checkpoints" / ckpt.BEST
        ckpt.load_state_dict_checked(state.model, ckpt.load(best)["model"], best)
    row = next(h for h in state.history if h["epoch"] == selected)
    key = str(cfg.train.objective)
    if key not in row:
        raise ConfigError("train.objective", f"{key!r} is not a monitored validation metric")
    return selected, float(row[key])


def model_meta(cfg: DictConfig, state: State, data: Data, selected: int) -> dict:
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
        "n_parameters": count_parameters(state.model),
        "data_version": data.version,
    }


def save_model(cfg: DictConfig, state: State, meta: dict) -> Path:
    """``<out_dir>/model/{state_dict.pt,model.json}``, replaced as a whole."""
    model_dir = Path(str(cfg.train.out_dir)) / "model"
    with atomic_path(model_dir, is_dir=True) as tmp:
        torch.save(state.model.state_dict(), tmp / "state_dict.pt")
        write_json(tmp / "model.json", meta)
    return model_dir


def run(cfg: DictConfig) -> float:
    """Train and track one model; return the sweep objective (higher is better)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    _validate(cfg)
    torch.set_num_threads(int(cfg.train.num_threads))
    data = open_data(cfg)
    state = resume_or_start(cfg, build(cfg))
    from . import tracking_run

    with tracking_run.start(cfg, state, data) as run_id:
        state.run_id = run_id
        state = fit(cfg, state, data)
        selected, objective = select_weights(cfg, state)
        model_dir = save_model(cfg, state, model_meta(cfg, state, data, selected))
        tracking_run.log_results(cfg, state.history, selected, objective)
        model_uri = tracking_run.log_model(model_dir, state.model, data) if bool(cfg.train.log_model) else None
        write_outputs(cfg, state, data, selected, objective, model_uri)
    log.info("selected epoch %d; objective %s = %.4f", selected + 1, cfg.train.objective, objective)
    return objective


def write_outputs(cfg: DictConfig, state: State, data: Data, selected: int, objective: float, model_uri) -> None:
    """metrics/train.json, plots/train/learning_curve.csv and run.json (last: it marks a finished training)."""
    import pandas as pd

    from .. import tracking

    sel = next(h for h in state.history if h["epoch"] == selected)
    write_json(
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
    write_csv(curve, Path(str(cfg.paths.plots)) / "train" / "learning_curve.csv")
    write_json(
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
