"""MLflow "model from code": the pyfunc wrapper logged with every trained model.

MLflow stores this file itself (not a pickle) as the model's code, and the ``no2hotspots`` package beside it
(``code_paths``), so the model loads and serves in any environment that has the pinned requirements logged with it
(``requirements.txt``: torch, numpy, scipy, pandas, xarray, hydra-core, mlflow-skinny ...), without installing this
project. Its artifacts are ``state_dict.pt`` (loaded with ``torch.load(weights_only=True)``) and ``model.json`` (the
model config and the data scaling).

Input: NO2 in physical units on a lat/lon grid, one row per cell (``lat``, ``lon``, ``no2`` [mol m-2], optional
``coverage`` and ``overpass``); params ``threshold``, ``stride``, ... Output: relative emission per cell and the
hotspots, computed by the detect stage's own code. See :mod:`no2hotspots.registry.serving` and docs/serving.md.
"""

from pathlib import Path

import mlflow.pyfunc
import pandas as pd


class HotspotPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from no2hotspots.registry.load import from_dir

        self.loaded = from_dir(Path(context.artifacts["model_json"]).parent)

    # a DataFrame type hint: MLflow takes the signature logged with the model (no2hotspots.registry.log)
    def predict(self, context, model_input: pd.DataFrame, params=None):
        from no2hotspots.registry.serving import predict_frame

        if isinstance(model_input, dict):
            model_input = pd.DataFrame(model_input)
        return predict_frame(self.loaded, model_input, params)


mlflow.models.set_model(HotspotPyfunc())
