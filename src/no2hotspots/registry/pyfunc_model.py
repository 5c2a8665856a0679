"""MLflow "model from code": the pyfunc wrapper logged with every trained model.

MLflow stores this file itself (not a pickle) as the model's code; its artifacts are ``state_dict.pt`` (loaded with
``torch.load(weights_only=True)``) and ``model.json`` (the model config and the data scaling). Input: the prepared
model input ``(N, 2, 64, 64)`` float32 (``no2hotspots.model.inputs.prepare_input``); output ``(N, 64, 64)``
relative emission in [0, 1]. Needs the ``no2hotspots`` package installed where it is loaded.
"""

import json

import mlflow.pyfunc
import numpy as np


class HotspotPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import torch

        from no2hotspots.model.net import build_model, check_state_dict

        with open(context.artifacts["model_json"]) as f:
            self.meta = json.load(f)
        net = build_model(self.meta["model"])
        state = torch.load(context.artifacts["state_dict"], map_location="cpu", weights_only=True)
        check_state_dict(net, state)
        net.load_state_dict(state)
        self.net = net.eval()

    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        import torch

        x = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        with torch.no_grad():
            return self.net(x).numpy()


mlflow.models.set_model(HotspotPyfunc())
