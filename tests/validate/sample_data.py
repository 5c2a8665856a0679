"""Small contract-conforming simulated datasets and grids, written directly with xarray (no simulator needed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

from no2hotspots.contracts.shards import shard_relpath, write_manifest, write_shard

N = 64
K = 3  # footprint_px
REL = {1: 0.12, 2: 0.5, 3: 0.9}  # class -> largest relative emission in the scene


def _scene(rng, cls: int):
    """One scene of class ``cls`` (0 empty, 1 low, 2 mid, 3 high): NO2, valid, emission and sources."""
    yy, xx = np.mgrid[0:N, 0:N].astype(float)
    no2 = 2e-5 + 2e-6 * np.sin(yy / 9.0) + rng.normal(0, 1e-5, (N, N))
    emission = np.zeros((N, N), np.float32)
    sources = []
    if cls:
        n_src = 1 + int(rng.random() < 0.5)
        rels = [REL[cls]] + [0.05] * (n_src - 1)
        spots = [(16.0 + rng.integers(0, 8), 16.0 + rng.integers(0, 8)), (44.0 + rng.integers(0, 8), 44.0)]
        wdir = rng.uniform(0, 2 * np.pi)
        for (r, c), q in zip(spots, rels):
            i, j = int(round(r)), int(round(c))
            emission[i - K // 2 : i + K // 2 + 1, j - K // 2 : j + K // 2 + 1] = q
            # a crude plume: an elongated Gaussian downwind of the source
            along = (xx - c) * np.cos(wdir) + (yy - r) * np.sin(wdir)
            across = -(xx - c) * np.sin(wdir) + (yy - r) * np.cos(wdir)
            sig = 1.0 + 0.2 * np.clip(along, 0, None)
            no2 += (
                (q * 8e-4 + 2e-5)
                * np.exp(-(across**2) / (2 * sig**2))
                * np.exp(-np.clip(along, 0, None) / 15)
                * (along > -2)
                / sig
            )
            sources.append((r, c, q))
    valid = np.ones((N, N), np.uint8)
    r0, c0 = rng.integers(0, N - 8, 2)
    valid[r0 : r0 + 6, c0 : c0 + 10] = 0  # a cloud gap
    no2 = np.where(valid == 1, no2, np.nan).astype(np.float32)
    return no2, valid, emission, sources


def _pair_scene(rng, sep: float):
    """A pairs-split scene: two sources ``sep`` px apart (overlapping footprints take the larger r)."""
    no2 = 2e-5 + rng.normal(0, 1e-5, (N, N))
    emission = np.zeros((N, N), np.float32)
    sources = [(30.0, 20.0, 0.5), (30.0, 20.0 + sep, 0.2)]
    for r, c, q in sources:
        i, j = int(round(r)), int(round(c))
        blk = emission[i - K // 2 : i + K // 2 + 1, j - K // 2 : j + K // 2 + 1]
        np.maximum(blk, q, out=blk)
        no2[i, j] += q * 1e-3
    valid = np.ones((N, N), np.uint8)
    return no2.astype(np.float32), valid, emission, sources


#: separations of the sample pairs split (one scene each)
PAIR_SEPARATIONS = (2.0, 5.0)
#: the sample datasets' split sizes (32/4/4 scenes + 2 pairs) as config overrides, so the suite expects them
SPLIT_OVERRIDES = [
    "simulate.splits.train=0.8",
    "simulate.splits.val=0.1",
    "simulate.splits.test=0.1",
    "simulate.pairs.n_per_separation=1",
    f"simulate.pairs.separations_px=[{','.join(str(v) for v in PAIR_SEPARATIONS)}]",
    "simulate.paper_world.n_scenes=0",  # the hand-made dataset has no paper_world split
]


def write_dataset(
    root: Path,
    counts=None,
    shard_size: int = 12,
    seed: int = 0,
    corrupt: Callable[[str, int, dict], None] | None = None,
) -> Path:
    """Write ``root/{split}/shard-NNNNN.nc`` + ``root/manifest.json`` following docs/contracts.md.

    ``corrupt(split, shard_index, arrays)`` may edit the numpy arrays of a shard before it is written.
    """
    counts = counts or {"train": 32, "val": 4, "test": 4, "pairs": len(PAIR_SEPARATIONS)}
    rng = np.random.default_rng(seed)
    root = Path(root)
    manifest = {"splits": {}, "attrs": {}}
    sid = 0
    attrs = {
        "Conventions": "CF-1.10",
        "emission_min_t_per_yr": 10.0,
        "emission_max_t_per_yr": 50000.0,
        "input_scale": 1e4,
        "pixel_size_m": 5500.0,
        "footprint_px": K,
        "seed": seed,
    }
    for split, n in counts.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        shards = []
        for s, start in enumerate(range(0, n, shard_size)):
            m = min(shard_size, n - start)
            a = {k: [] for k in ("no2", "valid", "emission", "srow", "scol", "srel")}
            classes = []
            for i in range(m):
                if split == "pairs":
                    cls = 2
                    no2, valid, em, src = _pair_scene(rng, PAIR_SEPARATIONS[(start + i) % len(PAIR_SEPARATIONS)])
                else:
                    cls = (start + i) % 4
                    no2, valid, em, src = _scene(rng, cls)
                a["no2"].append(no2)
                a["valid"].append(valid)
                a["emission"].append(em)
                pad = [(np.nan, np.nan, np.nan)] * (2 - len(src))
                rows = src + pad
                a["srow"].append([r[0] for r in rows])
                a["scol"].append([r[1] for r in rows])
                a["srel"].append([r[2] for r in rows])
                classes.append(cls)
            arrays = {k: np.array(v) for k, v in a.items()}
            arrays["scene_id"] = np.arange(sid, sid + m, dtype=np.int64)
            arrays["emission_class"] = np.array(classes, np.int8)
            arrays["n_sources"] = np.isfinite(arrays["srow"]).sum(axis=1).astype(np.int8)
            # an unmarked area source ("distractor") far from the sources in every fifth scene
            with_dis = (np.arange(start, start + m) % 5 == 0)[:, None]
            arrays["drow"] = np.where(with_dis, 56.0, np.nan)
            arrays["dcol"] = np.where(with_dis, 8.0, np.nan)
            sid += m
            if corrupt is not None:
                corrupt(split, s, arrays)
            ds = xr.Dataset(
                {
                    "no2": (
                        ("scene", "y", "x"),
                        arrays["no2"].astype(np.float32),
                        {"units": "mol m-2", "long_name": "tropospheric NO2 column"},
                    ),
                    "valid": (("scene", "y", "x"), arrays["valid"].astype(np.uint8), {"long_name": "observed pixel"}),
                    "emission": (
                        ("scene", "y", "x"),
                        arrays["emission"].astype(np.float32),
                        {"units": "1", "long_name": "relative emission"},
                    ),
                    "scene_id": (("scene",), arrays["scene_id"]),
                    "wind_speed": (("scene",), rng.uniform(2, 10, m), {"units": "m s-1"}),
                    "wind_from_direction": (("scene",), rng.uniform(0, 360, m), {"units": "degree"}),
                    "stability_class": (
                        ("scene",),
                        rng.integers(0, 6, m).astype(np.int8),
                        {"flag_meanings": "A B C D E F", "flag_values": np.arange(6, dtype=np.int8)},
                    ),
                    "no2_lifetime": (("scene",), rng.uniform(2, 8, m), {"units": "h"}),
                    "cloud_fraction": (("scene",), rng.uniform(0, 0.1, m), {"units": "1"}),
                    "noise_std": (("scene",), np.full(m, 1e-5), {"units": "mol m-2"}),
                    "background_mean": (("scene",), np.full(m, 2e-5), {"units": "mol m-2"}),
                    "n_sources": (("scene",), arrays["n_sources"]),
                    "emission_class": (("scene",), arrays["emission_class"]),
                    "source_row": (("scene", "source"), arrays["srow"]),
                    "source_col": (("scene", "source"), arrays["scol"]),
                    "source_rel_emission": (("scene", "source"), arrays["srel"], {"units": "1"}),
                    "distractor_row": (("scene", "distractor"), arrays["drow"].astype(np.float32)),
                    "distractor_col": (("scene", "distractor"), arrays["dcol"].astype(np.float32)),
                },
                attrs={**attrs, "split": split, "shard": s},
            )
            rel = shard_relpath(split, s)
            write_shard(ds, root / rel, strict=False)
            shards.append(rel)
        manifest["splits"][split] = {"n_scenes": n, "shards": shards}
    write_manifest(root, manifest["splits"], attrs)
    return root


def make_grid(nt: int = 3, ny: int = 8, nx: int = 10, seed: int = 0) -> xr.Dataset:
    """A small gridded-TROPOMI dataset following docs/contracts.md."""
    rng = np.random.default_rng(seed)
    lat = 23.0 + 0.05 * np.arange(ny) + 0.025
    lon = 27.0 + 0.05 * np.arange(nx) + 0.025
    cov = rng.uniform(0, 1, (nt, ny, nx))
    cov[:, :2, :2] = 0.0
    no2 = np.where(cov > 0, rng.normal(5e-5, 2e-5, (nt, ny, nx)), np.nan)
    prec = np.where(cov > 0, 1e-5, np.nan)
    counted = cov > 0.75
    obs = counted.sum(axis=0).astype(np.int32)
    with np.errstate(invalid="ignore"):
        mean = np.where(obs > 0, np.nansum(np.where(counted, no2, 0), axis=0) / np.maximum(obs, 1), np.nan)
    res = 0.05
    return xr.Dataset(
        {
            "no2": (("time", "lat", "lon"), no2, {"units": "mol m-2"}),
            "no2_precision": (("time", "lat", "lon"), prec, {"units": "mol m-2"}),
            "coverage": (("time", "lat", "lon"), cov, {"units": "1"}),
            "obs_count": (("lat", "lon"), obs),
            "no2_mean": (("lat", "lon"), mean, {"units": "mol m-2"}),
            "lat_bnds": (("lat", "bnds"), np.stack([lat - res / 2, lat + res / 2], 1)),
            "lon_bnds": (("lon", "bnds"), np.stack([lon - res / 2, lon + res / 2], 1)),
        },
        coords={
            "time": np.array(["2021-07-25T11:07", "2021-07-26T10:48", "2021-07-27T11:27"][:nt], dtype="datetime64[ns]"),
            "lat": ("lat", lat, {"units": "degrees_north"}),
            "lon": ("lon", lon, {"units": "degrees_east"}),
        },
        attrs={"resolution_deg": res, "qa_threshold": 0.75, "source_files": "a.nc b.nc c.nc", "collection": "test"},
    )
