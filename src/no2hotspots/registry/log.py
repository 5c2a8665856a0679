"""Log a trained model to the active MLflow run as a pyfunc "model from code" (no pickled objects)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
#: artifact names inside the logged model (``<model>/artifacts/<file>``)
STATE_DICT = "state_dict.pt"
MODEL_JSON = "model.json"


def _pin(dist: str) -> str:
    from importlib.metadata import version

    v = re.sub(r"\+.*$", "", version(dist))  # drop local build tags such as +cpu
    return f"{dist}=={v}"


def pip_requirements() -> list[str]:
    return [_pin("torch"), _pin("mlflow"), _pin("numpy")]


def log_model(model_dir: str | Path, input_example: np.ndarray, output_example: np.ndarray, name: str = "model"):
    """Log ``model_dir/{state_dict.pt,model.json}`` to the active run; return MLflow's ``ModelInfo``."""
    import mlflow
    from mlflow.models import infer_signature

    from ..logs import progress_disabled

    if progress_disabled():
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    model_dir = Path(model_dir)
    signature = infer_signature(input_example.astype(np.float32), output_example.astype(np.float32))
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=str(PYFUNC_CODE),
        artifacts={"state_dict": str(model_dir / STATE_DICT), "model_json": str(model_dir / MODEL_JSON)},
        signature=signature,
        input_example=input_example.astype(np.float32),
        pip_requirements=pip_requirements(),
    )
