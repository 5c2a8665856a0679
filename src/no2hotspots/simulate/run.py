"""``python -m no2hotspots simulate``: write train/val/test (and pairs) shards of simulated scenes and a manifest.

Each shard is simulated and written by one worker from its own seed,
``np.random.SeedSequence(seed, spawn_key=(split_index, shard_index))``, so the output is byte-identical for any
``simulate.workers``; a worker holds one shard at a time, so memory stays flat as ``n_scenes`` grows. Shards are
written atomically inside a temporary output folder that replaces ``paths.simulated`` only when all succeeded.
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
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from ..atomic import atomic_path
from ..contracts import shards as contract
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
    """Simulate one shard and write it atomically to ``out_dir/<split>/shard-NNNNN.nc`` (``paper``: the world of
    the paper_world split, :func:`~.scenes.load_paper_world`)."""
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
    rel = contract.shard_relpath(task["split"], task["shard"])
    path = out_dir / rel
    contract.write_shard(ds, path, st.compression_level)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"split": task["split"], "path": rel, "n": task["n"], "bytes": path.stat().st_size, "peak_rss_mb": rss_mb}


_WORKER: dict = {}
#: figures of the last :func:`write_dataset` in this process (not written anywhere; for benchmarks and logs)
LAST_RUN_STATS: dict = {}


def _init_worker(st, world, out_dir, paper):
    _WORKER.update(st=st, world=world, out_dir=out_dir, paper=paper)


def _work(task):
    return simulate_shard(task, _WORKER["st"], _WORKER["world"], _WORKER["out_dir"], _WORKER["paper"])


def write_dataset(st: Settings, world: World, out_dir: Path, paper: World | None = None) -> dict:
    """Simulate all shards into the (existing) folder ``out_dir`` and write its manifest; return the manifest.
    ``paper``: the paper_world split's world (loaded here when that split is on and it is not given)."""
    if st.paper_world.n_scenes and paper is None:
        paper = load_paper_world(st, world)
    tasks = plan_shards(st)
    workers = min(st.workers, len(tasks))
    bar = tqdm(total=len(tasks), desc="simulate", unit="shard", disable=progress_disabled())
    results = []
    if workers <= 1:
        for t in tasks:
            results.append(simulate_shard(t, st, world, out_dir, paper))
            bar.update()
    else:
        ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
        with ctx.Pool(workers, initializer=_init_worker, initargs=(st, world, out_dir, paper)) as pool:
            for res in pool.imap_unordered(_work, tasks):
                results.append(res)
                bar.update()
    bar.close()
    order = {(t["split"], t["shard"]): i for i, t in enumerate(tasks)}
    results.sort(key=lambda r: order[(r["split"], int(Path(r["path"]).stem.split("-")[1]))])
    LAST_RUN_STATS.update(
        n_shards=len(results),
        bytes=sum(r["bytes"] for r in results),
        peak_worker_rss_mb=max(r["peak_rss_mb"] for r in results),
    )
    sizes = split_sizes(st)
    splits = {s: {"n_scenes": sizes[s], "shards": [r["path"] for r in results if r["split"] == s]} for s in sizes}
    pop = world.pop
    return contract.write_manifest(out_dir, splits, global_attrs(st, pop.emission_min, pop.emission_max))


def run(cfg: DictConfig) -> dict:
    st = from_config(cfg)
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
    with atomic_path(target, is_dir=True) as tmp:
        manifest = write_dataset(st, world, tmp, paper)
    log.info("wrote %s", target / contract.MANIFEST)
    return manifest
