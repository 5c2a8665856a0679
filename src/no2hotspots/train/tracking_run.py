"""The MLflow side of a training run: start or resume the run, a curated set of params, figures, the model."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..config import flatten, to_container

log = logging.getLogger(__name__)


def run_name(cfg: DictConfig) -> str:
    """What tells runs apart at a glance: model, widths, lr, batch, epochs, seed."""
    t, m = cfg.train, cfg.model
    widths = "-".join(str(w) for w in m.stages.widths)
    return f"{m.name} w{widths} lr{float(t.lr):g} bs{int(t.batch_size)} ep{int(t.epochs)} {t.loss} s{int(t.seed)}"


def curated_params(cfg: DictConfig, data) -> dict[str, str]:
    """The training recipe and the model, flattened (``_target_`` as its class name); the data's size and
    scaling. The full resolved config goes to the run as the artifact ``config/resolved.yaml``."""
    out: dict[str, object] = {}
    for group in ("train", "model"):
        for k, v in flatten({group: to_container(cfg[group])}).items():
            if k.endswith("._partial_") or k.endswith(".out_dir"):
                continue
            if k.endswith("._target_"):
                k, v = k[: -len("._target_")] or k, str(v).rsplit(".", 1)[-1]
            out[k] = v
    out.update(
        {
            "data.n_train": data.train.n_scenes(),
            "data.n_val": data.val.n_scenes(),
            "data.input_scale": data.meta["input_scale"],
            "data.version": data.version,
        }
    )
    return {k: ("null" if v is None else str(v))[:500] for k, v in out.items()}


@contextlib.contextmanager
def start(cfg: DictConfig, state, data) -> Iterator[str]:
    """Start (or, resuming, reopen) the training run; yield its id."""
    import mlflow

    from .. import tracking
    from .run import PARENT_ENV

    exp_id = tracking.setup(cfg)
    parent = os.environ.get(PARENT_ENV) or None
    if state.run_id is not None:
        active = mlflow.start_run(run_id=state.run_id)
    else:
        tags = {
            "data_version": data.version,
            "git_commit": tracking.git_commit(),
            "stage": "train",
            **({"sweep_parent": parent} if parent else {}),
        }
        active = mlflow.start_run(
            experiment_id=exp_id,
            run_name=run_name(cfg),
            tags=tags,
            parent_run_id=parent,
            log_system_metrics=_system_metrics(cfg.train),
        )
    with active as mlrun:
        if state.epoch == 0:
            mlflow.log_params(curated_params(cfg, data))
            mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config/resolved.yaml")
        log.info(
            "training on %d scenes (%d batches/epoch), validating on %d; MLflow run %s",
            data.train.n_scenes(),
            data.train.n_batches(),
            data.val.n_scenes(),
            mlrun.info.run_id,
        )
        yield mlrun.info.run_id


def log_results(cfg: DictConfig, history: list[dict], selected: int, objective: float) -> None:
    """Selected epoch, objective, the learning curve (PNG + CSV) as run artifacts."""
    import mlflow
    import pandas as pd

    from .plots import learning_curve_png

    mlflow.log_metrics({"selected_epoch": selected, "objective": objective})
    with tempfile.TemporaryDirectory() as d:
        learning_curve_png(history, Path(d) / "learning_curve.png")
        pd.DataFrame(history).to_csv(Path(d) / "learning_curve.csv", index=False)
        mlflow.log_artifacts(d, "figures")


def log_model(model_dir: Path, model, data) -> str:
    """Log the model (pyfunc from code) with a real validation scene as input example; return its URI."""
    import torch

    from ..model.inputs import prepare_input
    from ..registry.log import log_model as log_pyfunc

    batch = next(iter(data.val.batches(0)))
    net_input = prepare_input(batch.no2[:1], batch.valid[:1], data.meta["input_scale"])
    model.eval()
    with torch.no_grad():
        pred = model(net_input).numpy()
    return log_pyfunc(model_dir, net_input.numpy(), pred).model_uri


def _system_metrics(t) -> bool | None:
    if not bool(t.system_metrics):
        return None
    try:
        import psutil  # noqa: F401
    except ImportError:
        log.info("psutil not installed: no MLflow system metrics")
        return None
    return True
