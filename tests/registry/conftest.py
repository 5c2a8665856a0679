from __future__ import annotations

from pathlib import Path

import pytest
from train.conftest import tiny_overrides  # noqa: F401
from train.simdata import write_dataset  # noqa: F401  (re-exported for the registry tests)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny trained and scored run with a logged model: (cfg, tmp root)."""
    from no2hotspots.config import compose
    from no2hotspots.score.run import run as score
    from no2hotspots.train.run import run

    root: Path = tmp_path_factory.mktemp("reg")
    sim = write_dataset(root / "sim", {"train": 48, "val": 16, "test": 40}, seed=11, shard_size=32)
    cfg = compose(tiny_overrides(root, sim, "train.epochs=2", "register.model_name=test-cnn"))
    run(cfg)
    score(cfg)
    return cfg, root
