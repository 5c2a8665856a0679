from __future__ import annotations

from pathlib import Path

import pytest

from .simdata import write_dataset

#: a tiny model (~10k parameters) so each test trains in seconds
TINY_MODEL = ["model.stem.width=8", "model.stages.widths=[8,16]", "model.head.width=8"]


def tiny_overrides(out: Path, sim: Path, *extra: str) -> list[str]:
    return [
        f"paths.outputs={out}/outputs",
        f"paths.metrics={out}/metrics",
        f"paths.plots={out}/plots",
        f"paths.mlruns={out}/mlruns",
        f"paths.simulated={sim}",
        "train.epochs=2",
        "train.batch_size=16",
        "train.num_threads=1",
        "train.panel_scenes=2",
        *TINY_MODEL,
        *extra,
    ]


@pytest.fixture(scope="session")
def tiny_sim(tmp_path_factory) -> Path:
    """64 train / 32 val / 32 test scenes in shards of 24 (so batches span shards)."""
    return write_dataset(tmp_path_factory.mktemp("sim"), {"train": 64, "val": 32, "test": 32}, seed=3, shard_size=24)


@pytest.fixture(autouse=True)
def _no_inherited_tracking_uri(monkeypatch):
    """mlflow.set_tracking_uri() also exports MLFLOW_TRACKING_URI; keep one test's store out of the next test's
    subprocesses."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
