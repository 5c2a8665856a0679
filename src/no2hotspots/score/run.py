"""``python -m no2hotspots score``: Table 1 and source scores of the trained model on the validation and test splits
(and on the held-out ``paper_world`` split, scored exactly like test, when simulated; pair recall on ``pairs``).

Reads ``score.model_dir`` (the train stage's ``model/``: weights + model.json) and the simulated shards; writes
``<score.out_dir>/`` (full scores per split, Table 1 CSVs, a figure), ``<paths.metrics>/score.json`` (Table 1 at both
thresholds, every source and visible sources only, for ``dvc metrics``), ``<paths.plots>/score/table1.csv``, and
logs the same to the model's MLflow run with the tags ``scoring_version`` and ``data_version`` that the registry
compares.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig

from ..config import require, require_int
from ..errors import ConfigError, InputFileError

log = logging.getLogger(__name__)

#: splits the score stage knows; ``paper_world`` and ``pairs`` are optional (skipped when not simulated)
SPLITS = ("val", "test", "pairs", "paper_world")
OPTIONAL = ("pairs", "paper_world")


def settings(cfg: DictConfig):
    """The checked ``score`` settings and the :class:`~no2hotspots.metrics.Scoring` they define."""
    from ..metrics import Scoring

    s = "score."
    require(
        cfg,
        s + "splits",
        lambda v: len(v) >= 1 and all(x in SPLITS for x in v),
        f"must list splits among {', '.join(SPLITS)}",
    )
    for key in ("mark_threshold", "detect_threshold", "min_scored_r"):
        require(cfg, s + key, lambda v: 0 < float(v) < 1, "must be in (0, 1)")
    require(cfg, s + "min_visible_fraction", lambda v: 0 <= float(v) <= 1, "must be in [0, 1]")
    require(cfg, s + "match_distance_px", lambda v: float(v) >= 0, "must be >= 0")
    require_int(cfg, s + "dilate_px", 0)
    require(cfg, s + "peak_prominence", lambda v: float(v) > 0, "must be > 0 (>= 1: never split)")
    require_int(cfg, s + "peak_min_separation_px", 1)
    require_int(cfg, s + "batch_size", 1)
    require_int(cfg, s + "num_threads", 1)
    require_int(cfg, s + "panel_scenes", 0)
    require(cfg, s + "max_scenes", lambda v: v is None or (isinstance(v, int) and v >= 1), "must be null or >= 1")
    return Scoring.from_config(cfg.score)


def load_trained(model_dir: Path):
    """The trained model and its metadata (weights-only load; one-line error if the folder is not a model)."""
    from ..registry.load import from_dir

    if not (model_dir / "model.json").exists():
        raise InputFileError(model_dir, "no trained model here; run the train stage first")
    return from_dir(model_dir)


def score_split(cfg: DictConfig, loaded, scoring, split: str, keep: int = 0):
    """One split through the model: an :class:`~no2hotspots.score.evaluate.EvalResult`."""
    from ..train.data import ShardStream, check_dataset, split_shards
    from .evaluate import evaluate, listed_sources

    sim = Path(str(cfg.paths.simulated))
    shards = split_shards(sim, split)
    meta = loaded.meta
    check_dataset(shards, int(meta["tile_size"]), int(meta.get("in_channels", 2)), input_scale=meta["input_scale"])
    stream = ShardStream(shards, int(cfg.score.batch_size), shuffle=False, max_scenes=cfg.score.max_scenes)
    log.info("scoring %s: %d scenes", split, stream.n_scenes())
    return evaluate(
        loaded.net,
        stream,
        input_scale=float(meta["input_scale"]),
        scoring=scoring,
        keep_examples=keep,
        sources=listed_sources(shards, cfg.score.max_scenes),
        curve=tuple(float(t) for t in cfg.score.curve_thresholds) if split == "val" else (),
        desc=f"score {split}",
    )


def score_pairs(cfg: DictConfig, loaded, scoring) -> dict:
    """Pair recall by separation on the `pairs` split (absent from the manifest: skipped with a warning)."""
    from ..train.data import ShardStream, split_shards
    from .pairs import pair_recall

    sim = Path(str(cfg.paths.simulated))
    if not simulated(sim, "pairs"):
        return {}
    shards = split_shards(sim, "pairs")
    stream = ShardStream(shards, int(cfg.score.batch_size), shuffle=False)
    return pair_recall(
        loaded.net,
        stream,
        shards,
        input_scale=float(loaded.meta["input_scale"]),
        threshold=scoring.detect_threshold,
        match_distance_px=scoring.match_distance_px,
        split={"prominence": scoring.peak_prominence, "min_separation_px": scoring.peak_min_separation_px},
    )


def simulated(sim: Path, split: str) -> bool:
    """Is ``split`` in the dataset's manifest (an optional split that is not: skipped with a warning)."""
    from ..contracts.shards import read_manifest

    if split in read_manifest(sim)["splits"]:
        return True
    log.warning("score.splits lists %s but %s has no %s split: skipped", split, sim, split)
    return False


def run(cfg: DictConfig) -> dict:
    scoring = settings(cfg)
    torch.set_num_threads(int(cfg.score.num_threads))
    loaded = load_trained(Path(str(cfg.score.model_dir)))
    splits = [str(s) for s in cfg.score.splits]
    if not splits:
        raise ConfigError("score.splits", "empty")
    sim = Path(str(cfg.paths.simulated))
    results = {
        s: score_split(cfg, loaded, scoring, s, int(cfg.score.panel_scenes) if s == "test" else 0)
        for s in splits
        if s != "pairs" and (s != "paper_world" or simulated(sim, s))
    }
    pairs = score_pairs(cfg, loaded, scoring) if "pairs" in splits else {}
    from . import report

    summary = report.write(cfg, scoring, loaded.meta, results, pairs)
    if bool(cfg.score.log_to_mlflow) and loaded.meta.get("run_id"):
        report.log_to_mlflow(cfg, scoring, loaded.meta, results, pairs)
    log.info("score (%s): %s", scoring.version, report.headline_line(results))
    return summary
