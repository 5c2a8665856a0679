"""The ``score`` stage: the trained model's Table 1 and source scores on the simulated validation and test splits.

- :mod:`.evaluate`  one pass of a model over a split: MSE and the scores at both thresholds (also used by training
                    to monitor the validation split per epoch);
- :mod:`.report`    score.json, Table 1 CSVs, the DVC metrics, the MLflow logging;
- :mod:`.run`       ``run(cfg)``.
"""
