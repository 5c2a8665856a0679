"""Hydra entry point: ``python -m no2hotspots.train [key=value ...] [--multirun hparams_search=optuna]``.

Composes ``conf/config.yaml`` (the same tree params.yaml is made from), calls the same ``run(cfg)`` as the DVC stage
and returns its objective, which the Optuna sweeper maximises.
"""

from __future__ import annotations

import sys
import warnings

import hydra
from omegaconf import DictConfig

from no2hotspots.config import CONF_DIR
from no2hotspots.errors import UserError

# The Optuna sweeper (written for optuna 2) and optuna 4's TPE sampler emit deprecation FutureWarnings for every
# sweep; filter exactly those (optuna's own and the sweeper's), nothing else.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"optuna(\.|$)")
warnings.filterwarnings("ignore", category=FutureWarning, module=r"hydra_plugins\.hydra_optuna_sweeper")


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    from no2hotspots import logs
    from no2hotspots.train.run import run

    logs.setup()
    try:
        return run(cfg)
    except UserError as e:
        print(f"no2hotspots.train: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
