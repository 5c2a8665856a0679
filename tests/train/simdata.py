"""Tiny, contract-conforming simulated shards (docs/contracts.md) for the train/registry tests.

Not the project's simulator: a quick plume-like generator (elongated Gaussian blobs downwind of k x k emission
footprints, smooth background, noise, a cloud gap) so a small CNN learns something in a few epochs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from no2hotspots.contracts.shards import shard_relpath, write_manifest, write_shard

TILE = 64
INPUT_SCALE = 1.0e5
EMIN, EMAX = 100.0, 50000.0


def make_scenes(n: int, rng: np.random.Generator, max_sources: int = 3, tile: int = TILE):
    yy, xx = np.mgrid[0:tile, 0:tile].astype(np.float64)
    no2 = np.empty((n, tile, tile), np.float32)
    valid = np.ones((n, tile, tile), np.uint8)
    emis = np.zeros((n, tile, tile), np.float32)
    rows = np.full((n, max_sources), np.nan)
    cols = np.full((n, max_sources), np.nan)
    rel = np.full((n, max_sources), np.nan)
    n_src = np.zeros(n, np.int8)
    eclass = np.zeros(n, np.int8)
    for i in range(n):
        k = int(rng.integers(0, max_sources + 1))
        theta = rng.uniform(0, 2 * np.pi)
        field = np.full((tile, tile), 2e-5) + 5e-6 * np.sin(xx / 17 + rng.uniform(0, 6))
        for s in range(k):
            r0, c0 = rng.uniform(8, tile - 8, 2)
            r = float(rng.uniform(0.05, 1.0))
            ri, ci = int(r0), int(c0)
            emis[i, ri : ri + 2, ci : ci + 2] = r
            dy, dx = yy - r0, xx - c0
            along = dx * np.cos(theta) + dy * np.sin(theta)
            across = -dx * np.sin(theta) + dy * np.cos(theta)
            sig = 1.0 + 0.15 * np.clip(along, 0, None)
            plume = np.exp(-(across**2) / (2 * sig**2)) * np.exp(-np.clip(along, 0, None) / 12) / sig
            plume *= along > -1.5
            field += (2e-5 + 1.5e-4 * r) * plume
            rows[i, s], cols[i, s], rel[i, s] = r0, c0, r
        field += rng.normal(0, 3e-6, field.shape)
        if rng.random() < 0.3:  # a cloud gap
            r0, c0 = rng.integers(0, tile - 12, 2)
            valid[i, r0 : r0 + 10, c0 : c0 + 10] = 0
        field[valid[i] == 0] = np.nan
        no2[i] = field
        n_src[i] = k
        m = np.nanmax(rel[i]) if k else 0.0
        eclass[i] = 0 if k == 0 else (1 if m < 0.33 else (3 if m > 0.66 else 2))
    return no2, valid, emis, rows, cols, rel, n_src, eclass


def write_dataset(
    root: Path,
    n: dict[str, int],
    seed: int = 0,
    shard_size: int = 64,
    tile: int = TILE,
    input_scale: float | None = INPUT_SCALE,
    no2_factor: float = 1.0,
) -> Path:
    """Write ``root/{train,val,test}/shard-NNNNN.nc`` + ``root/manifest.json``; return ``root``."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    manifest = {"splits": {}, "attrs": {}}
    scene0 = 0
    for split, total in n.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        shards = []
        for j, start in enumerate(range(0, total, shard_size)):
            m = min(shard_size, total - start)
            no2, valid, emis, rows, cols, rel, n_src, eclass = make_scenes(m, rng, tile=tile)
            attrs = {
                "Conventions": "CF-1.10",
                "emission_min_t_per_yr": EMIN,
                "emission_max_t_per_yr": EMAX,
                "pixel_size_m": 5500.0,
                "footprint_px": 2,
                "split": split,
                "seed": seed,
                "shard": j,
            }
            if input_scale is not None:
                attrs["input_scale"] = input_scale
            ds = xr.Dataset(
                {
                    "no2": (("scene", "y", "x"), no2 * no2_factor, {"units": "mol m-2"}),
                    "valid": (("scene", "y", "x"), valid),
                    "emission": (("scene", "y", "x"), emis, {"units": "1"}),
                    "scene_id": (("scene",), np.arange(scene0, scene0 + m, dtype=np.int64)),
                    "n_sources": (("scene",), n_src),
                    "emission_class": (("scene",), eclass),
                    "source_row": (("scene", "source"), rows),
                    "source_col": (("scene", "source"), cols),
                    "source_rel_emission": (("scene", "source"), rel),
                },
                attrs=attrs,
            )
            scene0 += m
            rel = shard_relpath(split, j)
            write_shard(ds, root / rel, strict=False)
            shards.append(rel)
        manifest["splits"][split] = {"n_scenes": total, "shards": shards}
    attrs = {"input_scale": input_scale, "emission_min_t_per_yr": EMIN, "emission_max_t_per_yr": EMAX}
    write_manifest(root, manifest["splits"], attrs)
    return root
