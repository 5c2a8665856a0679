"""Training: stream the simulated shards, fit the CNN (MSE, Adam, ReduceLROnPlateau), checkpoint every epoch,
track in MLflow, evaluate on the test split. ``run.run(cfg)`` is the stage; ``python -m no2hotspots.train`` is the
Hydra entry point (sweeps: ``--multirun hparams_search=optuna``)."""
