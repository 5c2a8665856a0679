from __future__ import annotations

from pathlib import Path

import pytest
from train.conftest import tiny_overrides
from train.simdata import write_dataset


@pytest.fixture(scope="module")
def trained_cfg(tmp_path_factory):
    """One tiny trained run (not yet scored): its config."""
    from no2hotspots.config import compose
    from no2hotspots.train.run import run

    root: Path = tmp_path_factory.mktemp("score")
    sim = write_dataset(root / "sim", {"train": 48, "val": 24, "test": 40}, seed=5, shard_size=32)
    cfg = compose(tiny_overrides(root, sim, "train.epochs=2", "score.panel_scenes=2"))
    run(cfg)
    return cfg
