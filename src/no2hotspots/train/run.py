"""The ``train`` stage: fit the CNN on the simulated shards, track it in MLflow, evaluate it on the test split.

``run(cfg)`` is called by ``python -m no2hotspots train`` (DVC, params.yaml) and by ``python -m no2hotspots.train``
(Hydra, sweeps); it returns the sweep objective (``train.objective`` at the selected epoch).

Outputs: ``<train.out_dir>/model/{state_dict.pt,model.json}``, ``<train.out_dir>/checkpoints/{last,best}.pt``,
``<train.out_dir>/run.json``, ``<paths.metrics>/train.json``, ``<paths.plots>/train/{learning_curve,table1}.csv``.
MLflow: one run (a child of the sweep's parent run when ``NO2HOTSPOTS_PARENT_RUN_ID`` is set) with the flattened
config as params, per-epoch ``train/loss``, ``val/loss``, ``val/<metric>``, ``lr``, final ``test/<metric>``, figures,
Table 1 and the model (pyfunc from code).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from ..atomic import write_csv, write_json, write_text
from ..config import flatten, require, to_container
from ..errors import ConfigError
from . import checkpoint as ckpt
from .data import ShardStream, check_dataset, split_shards

log = logging.getLogger(__name__)

PARENT_ENV = "NO2HOTSPOTS_PARENT_RUN_ID"  # set by the sweep callback: trials become child runs
#: train.loss values: MSE (the paper's), MSE with extra weight on emitting pixels, either plus a soft-Dice term
LOSSES = ("mse", "weighted_mse", "mse_dice", "weighted_mse_dice")
#: test metrics copied into metrics/train.json and the summary line
HEADLINE = ("acc_q1_all", "acc_q2_all", "acc_q2_high", "precision_q2_all", "source_f1")


def _validate(cfg: DictConfig) -> None:
    t = "train."
    require(cfg, t + "epochs", lambda v: int(v) >= 1 and not isinstance(v, bool), "must be an integer >= 1")
    require(cfg, t + "batch_size", lambda v: int(v) >= 2, "must be an integer >= 2 (batch norm)")
    require(cfg, t + "eval_batch_size", lambda v: int(v) >= 1, "must be an integer >= 1")
    require(cfg, t + "lr", lambda v: float(v) > 0, "must be > 0")
    require(cfg, t + "lr_schedule.min_lr", lambda v: 0 <= float(v) <= float(cfg.train.lr), "must be in [0, train.lr]")
    require(cfg, t + "lr_schedule.factor", lambda v: 0 < float(v) < 1, "must be in (0, 1)")
    require(cfg, t + "lr_schedule.patience", lambda v: int(v) >= 0, "must be >= 0")
    require(
        cfg,
        t + "loss",
        lambda v: v in LOSSES,
        "must be 'mse' (the paper's), 'weighted_mse', 'mse_dice' or 'weighted_mse_dice'",
    )
    require(cfg, t + "positive_weight", lambda v: float(v) >= 0, "must be >= 0")
    if str(OmegaConf.select(cfg, t + "loss", default="mse")).endswith("_dice"):
        require(cfg, t + "dice_weight", lambda v: float(v) >= 0, "must be >= 0")
        require(cfg, t + "dice_temperature", lambda v: float(v) > 0, "must be > 0")
        require(cfg, t + "dice_beta", lambda v: 0 < float(v) < 1, "must be in (0, 1) (0.5 = Dice)")
    require(cfg, t + "select", lambda v: v in ("best", "last"), "must be 'best' or 'last'")
    require(cfg, t + "threshold", lambda v: 0 < float(v) < 1, "must be in (0, 1)")
    require(cfg, t + "min_visible_fraction", lambda v: 0 <= float(v) <= 1, "must be in [0, 1]")
    require(cfg, t + "min_scored_r", lambda v: 0 <= float(v) <= 1, "must be in [0, 1]")
    require(cfg, t + "num_threads", lambda v: int(v) >= 1, "must be an integer >= 1")
    require(
        cfg, t + "objective", lambda v: str(v).startswith("val/"), "must name a validation metric, e.g. val/source_f1"
    )


def _lr(opt: torch.optim.Optimizer) -> float:
    return float(opt.param_groups[0]["lr"])


def _history_row(epoch: int, train_loss: float, val, lr: float) -> dict:
    row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val.loss, "lr": lr}
    for k, v in val.metrics.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            row[f"val_{k}"] = float(v)
    return row


def _mlflow_metrics(prefix: str, metrics: dict) -> dict:
    out = {}
    for k, v in metrics.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v)):
            out[f"{prefix}/{k}"] = float(v)
    return out


def _run_name(cfg: DictConfig) -> str:
    t = cfg.train
    widths = OmegaConf.select(cfg, "model.stages.widths", default=None)
    w = "-".join(str(x) for x in widths) if widths is not None else "?"
    name = OmegaConf.select(cfg, "model.name", default="cnn")
    head = OmegaConf.select(cfg, "model.head.kind", default="?")
    return (
        f"train model={name} widths={w} head={head} lr={float(t.lr):g} bs={int(t.batch_size)} "
        f"ep={int(t.epochs)} seed={int(t.seed)}"
    )


def run(cfg: DictConfig) -> float:
    """Train, evaluate and track one model; return the sweep objective (higher is better)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    _validate(cfg)
    from ..model.net import build_model, count_parameters

    t = cfg.train
    seed = int(t.seed)
    torch.set_num_threads(int(t.num_threads))
    sim_dir = Path(str(cfg.paths.simulated))
    tile = int(OmegaConf.select(cfg, "model.tile_size", default=64))
    in_ch = int(OmegaConf.select(cfg, "model.in_channels", default=2))

    shards = {s: split_shards(sim_dir, s) for s in ("train", "val", "test")}
    data_meta = check_dataset(shards["train"], tile, in_ch)
    for s in ("val", "test"):
        check_dataset(shards[s], tile, in_ch, input_scale=data_meta["input_scale"])
    scale = data_meta["input_scale"]

    train_stream = ShardStream(
        shards["train"], int(t.batch_size), shuffle=True, seed=seed, max_scenes=t.max_train_scenes, drop_last=True
    )
    if train_stream.n_batches() == 0:
        raise ConfigError("train.batch_size", f"{t.batch_size} exceeds the {train_stream.n_scenes()} training scenes")
    val_stream = ShardStream(shards["val"], int(t.eval_batch_size), shuffle=False, max_scenes=t.max_eval_scenes)
    test_stream = ShardStream(shards["test"], int(t.eval_batch_size), shuffle=False, max_scenes=t.max_eval_scenes)

    torch.manual_seed(seed)
    model = build_model(cfg.model)
    n_params = count_parameters(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(t.lr), weight_decay=float(t.weight_decay))
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="min",
        factor=float(t.lr_schedule.factor),
        patience=int(t.lr_schedule.patience),
        min_lr=float(t.lr_schedule.min_lr),
    )

    out_dir = Path(str(t.out_dir))
    ckpt_dir = out_dir / "checkpoints"
    start_epoch, history, best_loss, best_epoch, run_id, stale = 0, [], math.inf, -1, None, 0
    last_path = ckpt_dir / ckpt.LAST
    if bool(t.resume) and last_path.exists():
        state = ckpt.load(last_path)
        ckpt.load_state_dict_checked(model, state["model"], last_path)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch = int(state["epoch"]) + 1
        history = list(state["history"])
        best_loss, best_epoch = float(state["best_loss"]), int(state["best_epoch"])
        stale, run_id = int(state.get("stale", 0)), state.get("run_id") or None
        log.info("resuming from %s after epoch %d", last_path, start_epoch - 1)
    else:
        if bool(t.resume):
            log.warning("train.resume=true but %s does not exist: starting afresh", last_path)
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        for stale_out in (out_dir / "model", out_dir / "run.json"):
            if stale_out.is_dir():
                shutil.rmtree(stale_out)
            elif stale_out.exists():
                stale_out.unlink()
    ckpt_dir.mkdir(parents=True, exist_ok=True)

    import mlflow

    from .. import tracking

    exp_id = tracking.setup(cfg)
    data_version = tracking.data_version(sim_dir)
    commit = tracking.git_commit()
    parent = os.environ.get(PARENT_ENV) or None
    tags = {"data_version": data_version, "git_commit": commit, "stage": "train", "n_parameters": str(n_params)}
    if parent:
        tags["sweep_parent"] = parent
    if run_id is not None:
        active = mlflow.start_run(run_id=run_id)
    else:
        active = mlflow.start_run(
            experiment_id=exp_id,
            run_name=_run_name(cfg),
            tags=tags,
            parent_run_id=parent,
            log_system_metrics=_system_metrics(t),
        )
    with active as mlrun:
        run_id = mlrun.info.run_id
        if start_epoch == 0:
            params = {
                k: ("null" if v is None else str(v))[:6000]
                for k, v in flatten(to_container(cfg)).items()
                if not k.startswith("hydra.")
            }
            params.update(
                {
                    "data.n_train": train_stream.n_scenes(),
                    "data.n_val": val_stream.n_scenes(),
                    "data.n_test": test_stream.n_scenes(),
                    "model.n_parameters": n_params,
                    **{f"data.{k}": v for k, v in data_meta.items()},
                }
            )
            mlflow.log_params(params)
        _log_config(cfg)

        log.info(
            "training %d parameters on %d scenes (%d batches/epoch), %d val, %d test scenes; run %s",
            n_params,
            train_stream.n_scenes(),
            train_stream.n_batches(),
            val_stream.n_scenes(),
            test_stream.n_scenes(),
            run_id,
        )
        from .loop import evaluate, train_epoch

        epochs = int(t.epochs)
        es = t.early_stopping
        loss_kind = str(t.loss)
        pos_weight = float(t.positive_weight) if loss_kind.startswith("weighted_mse") else 0.0
        dice_weight = float(t.dice_weight) if loss_kind.endswith("_dice") else 0.0
        dice_temperature = float(OmegaConf.select(cfg, "train.dice_temperature", default=0.5))
        dice_beta = float(OmegaConf.select(cfg, "train.dice_beta", default=0.5))
        for epoch in range(start_epoch, epochs):
            if bool(es.enabled) and stale >= int(es.patience):
                log.info("early stopping: no better validation loss for %d epochs", stale)
                break
            t0 = time.perf_counter()
            lr = _lr(optimizer)
            train_loss = train_epoch(
                model,
                optimizer,
                train_stream,
                epoch=epoch,
                seed=seed,
                input_scale=scale,
                positive_weight=pos_weight,
                dice_weight=dice_weight,
                threshold=float(t.threshold),
                dice_temperature=dice_temperature,
                dice_beta=dice_beta,
                desc=f"epoch {epoch + 1}/{epochs}",
            )
            t_train = time.perf_counter() - t0
            val = evaluate(
                model,
                val_stream,
                input_scale=scale,
                threshold=float(t.threshold),
                match_distance_px=float(t.match_distance_px),
                min_visible_fraction=float(t.min_visible_fraction),
                min_scored_r=float(t.min_scored_r),
                desc="validate",
            )
            scheduler.step(val.loss)
            row = _history_row(epoch, train_loss, val, lr)
            row["epoch_seconds"] = time.perf_counter() - t0
            row["train_seconds"] = t_train
            history.append(row)
            if val.loss < best_loss - float(es.min_delta):
                best_loss, best_epoch, stale = val.loss, epoch, 0
                ckpt.save(ckpt_dir / ckpt.BEST, {"model": model.state_dict(), "epoch": epoch})
            else:
                stale += 1
            mlflow.log_metrics(
                {
                    "train/loss": train_loss,
                    "val/loss": val.loss,
                    "lr": lr,
                    "epoch_seconds": row["epoch_seconds"],
                    **_mlflow_metrics("val", val.metrics),
                },
                step=epoch,
            )
            ckpt.save(
                last_path,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "epoch": epoch,
                    "best_loss": best_loss,
                    "best_epoch": best_epoch,
                    "stale": stale,
                    "history": history,
                    "run_id": run_id,
                },
            )
            log.info(
                "epoch %d/%d: train loss %.5g, val loss %.5g, val median acc %s, val source F1 %s, lr %.2g (%.1f s)",
                epoch + 1,
                epochs,
                train_loss,
                val.loss,
                _fmt(val.metrics.get("acc_q2_all")),
                _fmt(val.metrics.get("source_f1")),
                lr,
                row["epoch_seconds"],
            )

        selected = best_epoch if (str(t.select) == "best" and best_epoch >= 0) else history[-1]["epoch"]
        if selected != history[-1]["epoch"]:
            best = ckpt.load(ckpt_dir / ckpt.BEST)
            ckpt.load_state_dict_checked(model, best["model"], ckpt_dir / ckpt.BEST)
        sel_row = next(h for h in history if h["epoch"] == selected)
        objective_key = "val_" + str(t.objective)[len("val/") :]
        objective = float(sel_row.get(objective_key, float("nan")))

        test = evaluate(
            model,
            test_stream,
            input_scale=scale,
            threshold=float(t.threshold),
            match_distance_px=float(t.match_distance_px),
            min_visible_fraction=float(t.min_visible_fraction),
            min_scored_r=float(t.min_scored_r),
            keep_examples=int(t.panel_scenes),
            desc="test",
        )
        test_metrics = {"loss": test.loss, **test.metrics}
        mlflow.log_metrics(
            {**_mlflow_metrics("test", test_metrics), "selected_epoch": selected, "objective": objective}
        )
        log.info(
            "test (epoch %d weights): %s", selected + 1, ", ".join(f"{k} {_fmt(test.metrics.get(k))}" for k in HEADLINE)
        )

        meta = {
            "model": to_container(cfg.model),
            "input_scale": scale,
            "emission_min_t_per_yr": data_meta["emission_min_t_per_yr"],
            "emission_max_t_per_yr": data_meta["emission_max_t_per_yr"],
            "pixel_size_m": data_meta["pixel_size_m"],
            "tile_size": tile,
            "in_channels": in_ch,
            "threshold": float(t.threshold),
            "match_distance_px": float(t.match_distance_px),
            "min_visible_fraction": float(t.min_visible_fraction),
            "min_scored_r": float(t.min_scored_r),
            "run_id": run_id,
            "selected_epoch": selected,
            "n_parameters": n_params,
            "data_version": data_version,
        }
        model_dir = out_dir / "model"
        from ..atomic import atomic_path

        with atomic_path(model_dir, is_dir=True) as tmp:
            torch.save(model.state_dict(), tmp / "state_dict.pt")
            write_json(tmp / "model.json", meta)

        _write_outputs(cfg, history, test, test_metrics, selected)
        model_uri = None
        if bool(t.log_model):
            from ..model.inputs import prepare_input
            from ..registry.log import log_model

            ex = test.examples
            x = prepare_input(ex["no2"][:1], ex["valid"][:1], scale).numpy()
            info = log_model(model_dir, x, ex["pred"][:1])
            model_uri = info.model_uri
        run_info = {
            "run_id": run_id,
            "experiment": str(cfg.tracking.experiment),
            "experiment_id": exp_id,
            "tracking_uri": str(cfg.tracking.uri),
            "model_uri": model_uri,
            "data_version": data_version,
            "git_commit": commit,
            "parent_run_id": parent,
            "objective": objective,
            "objective_key": str(t.objective),
            "selected_epoch": selected,
        }
        write_json(out_dir / "run.json", run_info)
    return objective


def _system_metrics(t) -> bool | None:
    if not bool(t.system_metrics):
        return None
    try:
        import psutil  # noqa: F401
    except ImportError:
        log.info("psutil not installed: no MLflow system metrics")
        return None
    return True


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) else str(v)


def _log_config(cfg: DictConfig) -> None:
    import mlflow

    mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config/resolved.yaml")


def _write_outputs(cfg: DictConfig, history: list[dict], test, test_metrics: dict, selected: int) -> None:
    import mlflow
    import pandas as pd

    from ..metrics import table1
    from .plots import learning_curve_png, panel_png

    metrics_dir = Path(str(cfg.paths.metrics))
    plots_dir = Path(str(cfg.paths.plots)) / "train"
    flat = dict(_mlflow_metrics("test", test_metrics))  # same keys as in MLflow: test/acc_q1_all, ...
    flat["selected_epoch"] = selected
    flat["epochs_run"] = len(history)
    write_json(metrics_dir / "train.json", flat)
    curve = pd.DataFrame(history)
    write_csv(curve, plots_dir / "learning_curve.csv")
    t1 = table1(test.metrics).reset_index()  # column "emission class": all, low, mid, high
    write_csv(t1, plots_dir / "table1.csv")
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        learning_curve_png(history, d / "learning_curve.png")
        if test.examples:
            panel_png(test.examples, d / "test_panel.png", float(cfg.train.threshold))
        write_text(d / "table1.csv", t1.to_csv(index=False))
        write_text(d / "learning_curve.csv", curve.to_csv(index=False))
        mlflow.log_artifacts(str(d), "figures")
