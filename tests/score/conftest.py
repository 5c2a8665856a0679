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


@pytest.fixture(scope="module")
def paper_world_cfg(tmp_path_factory, ddeq_data):
    """A tiny real simulation (the project's simulator) with the held-out paper_world split, and a tiny model
    trained one epoch on it (not yet scored): its config."""
    from no2hotspots.config import compose
    from no2hotspots.simulate.run import run as simulate
    from no2hotspots.train.run import run as train

    root: Path = tmp_path_factory.mktemp("score_paper_world")
    cfg = compose(
        tiny_overrides(
            root,
            root / "sim",
            "train.epochs=1",
            "score.panel_scenes=2",
            f"paths.data={ddeq_data}",
            "simulate.n_scenes=48",
            "simulate.shard_size=32",
            "simulate.workers=1",
            "simulate.pairs.n_per_separation=0",
            "simulate.paper_world.n_scenes=24",
        )
    )
    simulate(cfg)
    train(cfg)
    return cfg
