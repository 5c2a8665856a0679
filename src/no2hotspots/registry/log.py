"""Log a trained model to the active MLflow run as a pyfunc "model from code" that serves anywhere.

The logged model holds ``pyfunc_model.py`` (the model code, no pickled objects), a copy of the ``no2hotspots``
package (``code_paths``: the tiling, stitching and hotspot code the detect stage uses), the artifacts
``state_dict.pt`` + ``model.json``, exact pip requirements (:func:`pip_requirements`), a signature (a grid of NO2
cells in, relative emission + hotspots out; params with the detect stage's defaults) and an input example in
physical units. ``mlflow models serve -m <model>`` then works in a fresh environment built from its
``requirements.txt`` (docs/serving.md).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: artifact names inside the logged model (``<model>/artifacts/<file>``)
STATE_DICT = "state_dict.pt"
MODEL_JSON = "model.json"
#: distributions the served model imports (the package's serving path: model, detect, contracts, registry)
SERVING_DISTRIBUTIONS = (
    "torch",
    "numpy",
    "scipy",
    "pandas",
    "xarray",
    "hydra-core",
    "omegaconf",
    "tqdm",
    "mlflow-skinny",
)


def _pin(dist: str) -> str:
    from importlib.metadata import version

    v = re.sub(r"\+.*$", "", version(dist))  # drop local build tags such as +cpu
    return f"{dist}=={v}"


def pip_requirements() -> list[str]:
    """Exact pins (the versions installed here) of everything the served model imports; mlflow-skinny holds
    ``mlflow models serve`` and its scoring server (FastAPI/uvicorn) without the tracking server's dependencies."""
    return [_pin(d) for d in SERVING_DISTRIBUTIONS]


def _package_copy(dst: Path) -> Path:
    """The no2hotspots package without caches, for ``code_paths``."""
    target = dst / PACKAGE_DIR.name
    shutil.copytree(PACKAGE_DIR, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    return target


def example_input(model_dir: str | Path, input_example=None):
    """The request table used as input example: ``input_example`` itself when it is a table, else the first scene
    of a prepared model input ``(N, 2, H, W)`` (channel 0 = NO2 x input_scale, channel 1 = valid mask) converted
    back to mol m-2 on a 0.05 degree grid at an arbitrary place (the equator)."""
    import json

    import pandas as pd

    from .serving import example_frame

    if isinstance(input_example, pd.DataFrame):
        return input_example.reset_index(drop=True)
    meta = json.loads((Path(model_dir) / MODEL_JSON).read_text())
    tile = int(meta.get("tile_size", 64))
    if input_example is None:
        x = np.zeros((1, 2, tile, tile), np.float32)
    else:
        x = np.asarray(input_example, dtype=np.float64)
    if x.ndim != 4 or x.shape[1] != 2:
        raise ValueError(f"input_example: expected a request table or a model input (N, 2, H, W), got {x.shape}")
    valid = x[0, 1] > 0.5
    return example_frame(x[0, 0] / float(meta["input_scale"]), valid)


def model_signature(example, output):
    """Input: the request table's columns (``coverage``, ``overpass`` optional); params with the detect stage's
    defaults; output: the answer's structure (inferred from the example's answer)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    from .serving import PARAM_DEFAULTS

    inputs = Schema(
        [
            ColSpec("double", "lat"),
            ColSpec("double", "lon"),
            ColSpec("double", "no2"),
            ColSpec("double", "coverage", required=False),
            ColSpec("string", "overpass", required=False),
        ]
    )
    kinds = {bool: "boolean", int: "long", float: "double", str: "string"}
    params = ParamSchema([ParamSpec(k, kinds[type(v)], v) for k, v in PARAM_DEFAULTS.items()])
    try:
        from mlflow.types.utils import _infer_schema

        outputs = _infer_schema(output)
    except Exception:  # noqa: BLE001 - the output schema documents; inputs and params are what MLflow enforces
        outputs = None
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def log_model(
    model_dir: str | Path,
    input_example=None,
    output_example=None,
    name: str = "model",
):
    """Log ``model_dir/{state_dict.pt,model.json}`` to the active run; return MLflow's ``ModelInfo``.

    ``input_example``: a request table (pandas DataFrame: ``lat``, ``lon``, ``no2`` [mol m-2], ``coverage``), or,
    as the training code passes it, a prepared model input ``(N, 2, H, W)`` whose first scene becomes the example
    (:func:`example_input`). ``output_example`` is not used (kept for callers of the former signature): the output
    example is the model's own answer to the input example, computed here with the served code.
    """
    import mlflow

    from ..logs import progress_disabled
    from .load import from_dir
    from .serving import predict_frame

    del output_example
    if progress_disabled():
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    model_dir = Path(model_dir)
    example = example_input(model_dir, input_example)
    answer = predict_frame(from_dir(model_dir), example)
    with tempfile.TemporaryDirectory() as d:
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(PYFUNC_CODE),
            artifacts={"state_dict": str(model_dir / STATE_DICT), "model_json": str(model_dir / MODEL_JSON)},
            code_paths=[str(_package_copy(Path(d)))],
            signature=model_signature(example, answer),
            input_example=example,
            pip_requirements=pip_requirements(),
        )
