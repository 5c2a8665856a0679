"""Load a trained model from MLflow for detection: ``load_model("models:/no2hotspots-cnn@champion")``.

The logged model's artifacts are downloaded and read directly: ``model.json`` (model config, data scaling) and
``state_dict.pt`` with ``torch.load(weights_only=True)``; neither a pickle nor the logged code is executed.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputFileError, UserError

_MODELS_ALIAS = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)$")
_MODELS_VERSION = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")
_RUNS = re.compile(r"^runs:/(?P<run_id>[^/]+)/(?P<path>.+)$")


class LoadedModel:
    """A network in eval mode plus its metadata; ``predict`` maps NO2 [mol m-2] + valid mask to relative emission."""

    def __init__(self, net: torch.nn.Module, meta: dict[str, Any]):
        self.net = net.eval()
        self.meta = dict(meta)

    @property
    def input_scale(self) -> float:
        return float(self.meta["input_scale"])

    def predict(self, no2, valid, batch_size: int = 256) -> np.ndarray:
        """(N, 64, 64) or (64, 64) NO2 columns and validity mask -> (N, 64, 64) relative emission (numpy float32)."""
        from ..model.inputs import prepare_input

        x = prepare_input(no2, valid, self.input_scale)
        out = []
        self.net.eval()
        with torch.no_grad():
            for i in range(0, x.shape[0], batch_size):
                out.append(self.net(x[i : i + batch_size]).numpy())
        if not out:
            return np.zeros((0,) + tuple(x.shape[2:]), dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)


def _tracking_uri(tracking) -> str | None:
    if tracking is None:
        return None
    if isinstance(tracking, str):
        return tracking
    from ..tracking import resolve_uri

    return resolve_uri(tracking)


def _find(model_dir: Path, name: str) -> Path | None:
    """The shallowest ``name`` under ``model_dir``, outside the logged package copy (``code/``)."""
    found = [p for p in model_dir.rglob(name) if "code" not in p.relative_to(model_dir).parts[:-1]]
    return min(found, key=lambda p: (len(p.parts), str(p)), default=None)


def from_dir(model_dir: str | Path, extra_meta: dict | None = None) -> LoadedModel:
    """Build a LoadedModel from a folder holding ``model.json`` and ``state_dict.pt`` (searched recursively).

    Everything is checked before use, each problem a one-line error naming the file: model.json must be JSON with a
    buildable ``model`` config and finite, positive scalings; the state dict must load with ``weights_only``, fit
    the network exactly and hold only finite numbers (NaN weights would silently detect nothing)."""
    from ..model.net import build_model

    model_dir = Path(model_dir)
    mj, sd = _find(model_dir, "model.json"), _find(model_dir, "state_dict.pt")
    if mj is None or sd is None:
        raise InputFileError(model_dir, "no model.json/state_dict.pt in the model artifacts (not a no2hotspots model?)")
    meta = read_meta(mj)
    try:
        net = build_model(meta["model"])
    except UserError as e:
        raise InputFileError(mj, str(e)) from None
    load_weights(net, sd)
    meta.update(extra_meta or {})
    return LoadedModel(net, meta)


def read_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise InputFileError(path, f"not valid JSON ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), dict):
        raise InputFileError(path, 'has no "model" config (not a no2hotspots model.json?)')
    for key in ("input_scale", "pixel_size_m", "emission_max_t_per_yr"):
        v = meta.get(key)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v) or v <= 0:
            raise InputFileError(path, f"{key} must be a finite number > 0 (got {v!r})")
    v = meta.get("emission_min_t_per_yr")
    if not isinstance(v, (int, float)) or not np.isfinite(v) or not 0 <= v < meta["emission_max_t_per_yr"]:
        raise InputFileError(path, f"emission_min_t_per_yr must be finite, >= 0 and below emission_max (got {v!r})")
    return meta


def load_weights(net: torch.nn.Module, path: Path) -> None:
    """``torch.load(weights_only=True)``, then checked against the network and for finite values."""
    from ..model.net import check_state_dict

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise InputFileError(path, f"not a readable state dict ({str(e).splitlines()[0] if str(e) else e!r})") from None
    if not isinstance(state, dict):
        raise InputFileError(path, f"holds a {type(state).__name__}, not a state dict of tensors")
    try:
        check_state_dict(net, state)
    except UserError as e:
        raise InputFileError(path, str(e)) from None
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise InputFileError(
            path, f"parameter {bad[0]!r} holds NaN/inf ({len(bad)} such tensor(s)): a diverged or corrupt model"
        )
    net.load_state_dict(state)


def load_model(uri: str, tracking=None) -> LoadedModel:
    """Load ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``runs:/RUN_ID/model`` (or a local folder).

    ``tracking``: the tracking URI (str), the ``tracking`` config group or the whole config; ``None`` keeps MLflow's
    current URI. ``meta`` gets ``name``/``version`` (registry URIs) and ``run_id``.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if "://" not in uri and ":/" not in uri and Path(uri).is_dir():
        return from_dir(uri)
    import mlflow
    from mlflow.exceptions import MlflowException

    from ..logs import progress_disabled

    if progress_disabled():
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    turi = _tracking_uri(tracking)
    if turi:
        mlflow.set_tracking_uri(turi)
        mlflow.set_registry_uri(turi)
    client = mlflow.MlflowClient()
    extra: dict[str, Any] = {"uri": uri, "name": None, "version": None}
    try:
        if m := _MODELS_ALIAS.match(uri):
            mv = client.get_model_version_by_alias(m["name"], m["alias"])
            extra.update(name=mv.name, version=int(mv.version), run_id=mv.run_id, alias=m["alias"])
            source = f"models:/{mv.name}/{mv.version}"
        elif m := _MODELS_VERSION.match(uri):
            mv = client.get_model_version(m["name"], m["version"])
            extra.update(name=mv.name, version=int(mv.version), run_id=mv.run_id)
            source = uri
        elif m := _RUNS.match(uri):
            extra["run_id"] = m["run_id"]
            source = _run_model_uri(client, m["run_id"], m["path"])
        else:
            raise UserError(
                f"model URI {uri!r}: expected models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID/model"
            )
        with tempfile.TemporaryDirectory() as d:
            local = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=d)
            return from_dir(local, {k: v for k, v in extra.items() if v is not None or k in ("name", "version")})
    except MlflowException as e:
        msg = str(e.message if hasattr(e, "message") else e).strip().splitlines()[0]
        raise UserError(f"model URI {uri!r}: {msg}") from None


def _run_model_uri(client, run_id: str, name: str) -> str:
    """MLflow 3 stores a run's logged models as LoggedModels; find the one named ``name`` for ``run_id``."""
    run = client.get_run(run_id)
    models = client.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'"
    )
    for lm in models:
        if lm.name == name:
            return f"models:/{lm.model_id}"
    return f"runs:/{run_id}/{name}"
