"""``python -m no2hotspots simulate``: write train/val/test (and pairs) shards of simulated scenes and a manifest.

Each shard is simulated and written by one worker from its own seed,
``np.random.SeedSequence(seed, spawn_key=(split_index, shard_index))``, so the output is byte-identical for any
``simulate.workers``; a worker holds one shard at a time, so memory stays flat as ``n_scenes`` grows. Shards are
units (no2hotspots.units): each is written atomically to ``simulate.units_dir`` (``outputs/.units/simulate``, not
a DVC output) with a marker holding a hash of the settings, seed, inventory file, code and its place in the plan;
a rerun after a kill reuses every finished shard and simulates the rest, and units of other settings are pruned.
The shards are then hard-linked, with the manifest, into a temporary folder that replaces ``paths.simulated`` in one
rename, so the published dataset is byte-identical to an uninterrupted run's.
With ``simulate.pairs.n_per_separation`` > 0 the manifest has a fourth split, ``pairs`` (scenes of two sources at
the configured separations, scene ids after the test split's), for pair recall by separation; with
``simulate.paper_world.n_scenes`` > 0 another, ``paper_world`` (scenes of the paper's world drawn with the training
settings plus ``simulate.paper_world.overrides``, ids after those), a second held-out split scored like test.
Each split's seed stream is fixed by its name (:data:`SPLIT_INDEX`), so an extra split never changes another.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import resource
from dataclasses import asdict
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from .. import units
from ..atomic import atomic_path, remove_stale_temps
from ..config import require
from ..contracts import shards as contract
from ..errors import ConfigError
from ..logs import progress_disabled
from .dataset import global_attrs, make_dataset
from .scenes import World, load_paper_world, load_world, sample_pairs, sample_scenes, simulate_batch
from .settings import PAIRS_SPLIT, PAPER_WORLD_SPLIT, Settings, from_config

log = logging.getLogger(__name__)

#: the seed stream of each split (``spawn_key[0]``), fixed by name
SPLIT_INDEX = {"train": 0, "val": 1, "test": 2, PAIRS_SPLIT: 3, PAPER_WORLD_SPLIT: 4}


def split_sizes(st: Settings) -> dict[str, int]:
    n = st.n_scenes
    val = int(round(n * st.split_fractions[1]))
    test = int(round(n * st.split_fractions[2]))
    sizes = {"train": n - val - test, "val": val, "test": test}
    if st.pairs.n_scenes:
        sizes[PAIRS_SPLIT] = st.pairs.n_scenes
    if st.paper_world.n_scenes:
        sizes[PAPER_WORLD_SPLIT] = st.paper_world.n_scenes
    return sizes


def plan_shards(st: Settings) -> list[dict]:
    """One task per shard: split, shard index, first global scene_id, number of scenes."""
    tasks, first = [], 0
    for split, n in split_sizes(st).items():
        si = SPLIT_INDEX[split]
        for k, lo in enumerate(range(0, n, st.shard_size)):
            m = min(st.shard_size, n - lo)
            tasks.append({"split": split, "split_index": si, "shard": k, "first_id": first + lo, "n": m})
        first += n
    return tasks


def shard_seed(seed: int, split_index: int, shard: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(split_index, shard))


def simulate_shard(task: dict, st: Settings, world: World, out_dir: Path, paper: World | None = None) -> dict:
    """Simulate one shard and write it atomically to ``out_dir/<unit key>.nc`` (``paper``: the world of the
    paper_world split, :func:`~.scenes.load_paper_world`)."""
    rng = np.random.default_rng(shard_seed(st.seed, task["split_index"], task["shard"]))
    if task["split"] == PAPER_WORLD_SPLIT:
        st, world = st.paper_world.world, paper
    pop = world.pop
    if task["split"] == PAIRS_SPLIT:
        params = sample_pairs(rng, task["n"], st, world, first=task["shard"] * st.shard_size)
    else:
        params = sample_scenes(rng, task["n"], st, world)
    out = simulate_batch(params, st, rng)
    attrs = global_attrs(st, pop.emission_min, pop.emission_max) | {"split": task["split"], "shard": int(task["shard"])}
    ids = np.arange(task["first_id"], task["first_id"] + task["n"], dtype=np.int64)
    ds = make_dataset(params, out, ids, attrs)
    path = out_dir / f"{unit_key(task)}.nc"
    contract.write_shard(ds, path, st.compression_level)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rel = contract.shard_relpath(task["split"], task["shard"])
    return {"split": task["split"], "path": rel, "n": task["n"], "bytes": path.stat().st_size, "peak_rss_mb": rss_mb}


# ---------------------------------------------------------------------------------------------------------------
# shards as units (no2hotspots.units): a killed run's finished shards are kept and reused by the rerun

#: the code a shard is computed with: a change to any of it recomputes every shard
UNIT_CODE = (
    "no2hotspots.simulate",
    "no2hotspots.osse.geometry",
    "no2hotspots.osse.transport",
    "no2hotspots.osse.weather",
    "no2hotspots.contracts.shards",
    "no2hotspots.inventory",
)


def unit_key(task: dict) -> str:
    """``<split>-shard-NNNNN``: the shard's file (``.nc``) and marker (``.done.json``) in the unit folder."""
    return f"{task['split']}-shard-{int(task['shard']):05d}"


def unit_hashes(st: Settings, tasks: list[dict]) -> dict[str, str]:
    """Per shard, a hash of what it is computed from: every setting but ``workers`` (the output is the same for
    any), the seed, the inventory file (name, size, modification time), the code, and the shard's own place."""
    settings = asdict(st)
    settings.pop("workers")
    if settings["paper_world"]["world"] is not None:
        settings["paper_world"]["world"].pop("workers")
    fixed = {
        "settings": settings,
        "inventory": units.file_identity(st.inventory_csv),
        "code": units.code_digest(*UNIT_CODE),
    }
    return {unit_key(t): units.digest([fixed, {k: t[k] for k in ("split", "shard", "first_id", "n")}]) for t in tasks}


def _unit(task: dict, st: Settings, world: World, units_dir: Path, paper: World | None, unit_hash: str) -> dict:
    """Simulate one shard into the unit folder and mark it done (after its file is complete)."""
    res = simulate_shard(task, st, world, units_dir, paper)
    key = unit_key(task)
    result = {"key": key, **{k: res[k] for k in ("split", "path", "n", "bytes")}}
    units.mark_done(units_dir, key, unit_hash, [f"{key}.nc"], result)
    return {**result, "peak_rss_mb": res["peak_rss_mb"]}


_WORKER: dict = {}
#: figures of the last :func:`simulate_units` in this process (not written anywhere; for benchmarks and logs)
LAST_RUN_STATS: dict = {}


def _init_worker(st, world, units_dir, paper):
    _WORKER.update(st=st, world=world, units_dir=units_dir, paper=paper)


def _work(item):
    task, unit_hash = item
    return _unit(task, _WORKER["st"], _WORKER["world"], _WORKER["units_dir"], _WORKER["paper"], unit_hash)


def simulate_units(st: Settings, world: World, units_dir: Path, paper: World | None = None) -> list[dict]:
    """Every shard of the plan as a finished unit in ``units_dir`` (reused where its marker matches, simulated
    otherwise; units of other plans or settings pruned); the shards' results in plan order."""
    tasks = plan_shards(st)
    hashes = unit_hashes(st, tasks)
    units_dir.mkdir(parents=True, exist_ok=True)
    gone = units.prune(units_dir, hashes)
    done = {k: units.load_done(units_dir, k, h) for k, h in hashes.items()}
    todo = [t for t in tasks if done[unit_key(t)] is None]
    for t in todo:  # temporary files of a killed run (its shards not finished) go before they are written again
        remove_stale_temps(units_dir / f"{unit_key(t)}.nc")
    log.info(
        "simulate: %d of %d shard(s) already simulated with these settings (%s), %d to simulate%s",
        len(tasks) - len(todo),
        len(tasks),
        units_dir,
        len(todo),
        f"; {gone} unit(s) of other settings removed" if gone else "",
    )
    workers = min(st.workers, len(todo))
    bar = tqdm(total=len(todo), desc="simulate", unit="shard", disable=progress_disabled())
    fresh = []
    items = [(t, hashes[unit_key(t)]) for t in todo]
    if workers <= 1:
        for task, unit_hash in items:
            fresh.append(_unit(task, st, world, units_dir, paper, unit_hash))
            bar.update()
    else:
        ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
        with ctx.Pool(workers, initializer=_init_worker, initargs=(st, world, units_dir, paper)) as pool:
            for res in pool.imap_unordered(_work, items):
                fresh.append(res)
                bar.update()
    bar.close()
    by_key = {r["key"]: r for r in fresh}
    LAST_RUN_STATS.clear()
    LAST_RUN_STATS.update(
        n_shards=len(tasks),
        n_reused=len(tasks) - len(todo),
        bytes=sum((by_key.get(k) or done[k])["bytes"] for k in hashes),
        peak_worker_rss_mb=max((r["peak_rss_mb"] for r in fresh), default=0.0),
    )
    return [by_key.get(k) or done[k] for k in hashes]


def publish(st: Settings, world: World, units_dir: Path, results: list[dict], target: Path) -> dict:
    """Replace ``target`` in one rename by a folder of the unit files (hard links) and the manifest."""
    sizes = split_sizes(st)
    splits = {s: {"n_scenes": sizes[s], "shards": [r["path"] for r in results if r["split"] == s]} for s in sizes}
    pop = world.pop
    with atomic_path(target, is_dir=True) as tmp:
        for r in results:
            units.link_into(units_dir / f"{r['key']}.nc", tmp / r["path"])
        return contract.write_manifest(tmp, splits, global_attrs(st, pop.emission_min, pop.emission_max))


def units_folder(cfg: DictConfig) -> Path:
    """``simulate.units_dir``: a folder path outside ``paths.simulated`` (which is replaced as a whole)."""
    value = require(cfg, "simulate.units_dir", lambda v: isinstance(v, str) and v.strip(), "must be a folder path")
    out, cache = Path(str(cfg.paths.simulated)).resolve(), Path(value).resolve()
    if out == cache or out in cache.parents or cache in out.parents:
        raise ConfigError("simulate.units_dir", f"must lie outside paths.simulated and not contain it (got {value})")
    return Path(value)


def run(cfg: DictConfig) -> dict:
    st = from_config(cfg)
    units_dir = units_folder(cfg)
    world = load_world(st)
    paper = load_paper_world(st, world)
    pop = world.pop
    target = Path(cfg.paths.simulated)
    sizes = split_sizes(st)
    log.info(
        "simulating %d scenes (train %d, val %d, test %d, pairs %d, paper_world %d) in shards of %d with %d worker(s) "
        "-> %s; "
        "population %d CoCO2 sites, NOx %.0f-%.0f t/yr (r = 0 at %.0f t/yr), %d cluster windows",
        st.n_scenes,
        sizes["train"],
        sizes["val"],
        sizes["test"],
        sizes.get(PAIRS_SPLIT, 0),
        sizes.get(PAPER_WORLD_SPLIT, 0),
        st.shard_size,
        st.workers,
        target,
        pop.nox_t_per_yr.size,
        pop.nox_t_per_yr[0],
        pop.emission_max,
        pop.emission_min,
        0 if world.windows is None else world.windows.n,
    )
    os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
    results = simulate_units(st, world, units_dir, paper)
    manifest = publish(st, world, units_dir, results, target)
    log.info("wrote %s", target / contract.MANIFEST)
    return manifest
