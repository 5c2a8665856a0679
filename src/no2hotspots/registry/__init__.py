"""MLflow model logging, the Model Registry (``register`` stage) and model loading for detection.

``log.log_model`` logs a trained model as an MLflow pyfunc "model from code" (``pyfunc_model.py``) whose artifacts are
a state dict and ``model.json``; ``run.run(cfg)`` registers a training run's model and moves the ``champion`` alias
only to a better model; ``load.load_model(uri)`` gives a :class:`~no2hotspots.registry.load.LoadedModel`.
"""
