"""Simulated scenes on disk (simulate -> validate, train, score; docs/contracts.md, "Simulated dataset").

``<root>/manifest.json`` lists the shards of each split as paths relative to ``<root>`` in POSIX form
(``train/shard-00000.nc``); each shard is a NetCDF4 file with dims ``scene, y, x, source`` holding at least
:data:`REQUIRED_VARS` and the global attributes :data:`REQUIRED_ATTRS`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, write_json
from ..errors import InputFileError

SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"
#: variables every shard holds (the model's input and target, and what the validation suite checks)
REQUIRED_VARS = (
    "no2",
    "valid",
    "emission",
    "scene_id",
    "n_sources",
    "emission_class",
    "source_row",
    "source_col",
    "source_rel_emission",
)
#: global attributes every shard carries: the scaling of model inputs and the emission range r maps back to
REQUIRED_ATTRS = ("input_scale", "emission_min_t_per_yr", "emission_max_t_per_yr", "pixel_size_m")


def shard_relpath(split: str, index: int) -> str:
    """The one path form of a shard in the manifest: relative to the dataset root, POSIX separators."""
    return f"{split}/shard-{int(index):05d}.nc"


def write_shard(ds, path: str | Path, compression_level: int = 0, *, strict: bool = True) -> None:
    """Write one shard atomically (NetCDF4); integer variables without fill values, optional zlib on the maps.
    ``strict=False`` lets test fixtures write deliberately incomplete shards."""
    missing = [v for v in REQUIRED_VARS if v not in ds]
    missing += [a for a in REQUIRED_ATTRS if a not in ds.attrs]
    if missing and strict:
        raise ValueError(f"shard {path} lacks {', '.join(missing)} (contract: no2hotspots.contracts.shards)")
    enc = {v: {"_FillValue": None} for v in ds.variables if ds[v].dtype.kind in "iu"}
    if compression_level:
        for v in ("no2", "emission", "valid"):
            chunks = (min(ds.sizes["scene"], 64),) + ds[v].shape[1:]
            enc.setdefault(v, {}).update(zlib=True, complevel=compression_level, shuffle=True, chunksizes=chunks)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=enc)


def write_manifest(root: str | Path, splits: dict[str, dict], attrs: dict) -> dict:
    """Write ``<root>/manifest.json`` atomically and return it."""
    # splits: {split: {"n_scenes": n, "shards": [relpath, ...]}}; relpaths must exist under root
    root = Path(root)
    for split, entry in splits.items():
        for rel in entry["shards"]:
            if Path(rel).is_absolute() or ".." in Path(rel).parts or not (root / rel).is_file():
                raise ValueError(f"manifest shard {rel!r} of split {split!r} is not a file under {root}")
    manifest = {"splits": splits, "attrs": attrs}
    write_json(root / MANIFEST, manifest)
    return manifest


def read_manifest(root: str | Path) -> dict:
    path = Path(root) / MANIFEST
    if not path.exists():
        raise InputFileError(path, "not found; run the simulate stage first (python -m no2hotspots simulate)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputFileError(path, f"not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("splits"), dict):
        raise InputFileError(path, "has no 'splits' mapping (not a simulated-dataset manifest?)")
    return manifest


def shard_paths(root: str | Path, split: str) -> list[Path]:
    """The shard files of one split, in the manifest's order."""
    root = Path(root)
    manifest = read_manifest(root)
    entry = manifest["splits"].get(split)
    if not entry or not entry.get("shards"):
        raise InputFileError(root / MANIFEST, f"lists no shard for split {split!r}")
    out = []
    for rel in entry["shards"]:
        p = root / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts or not p.is_file():
            raise InputFileError(root / MANIFEST, f"lists shard {rel} of split {split!r}, which does not exist")
        out.append(p)
    return out


def read_info(shard: str | Path) -> dict:
    """Global attributes, variable shapes and dimension sizes of one shard (cheap: no data read)."""
    import netCDF4

    try:
        with netCDF4.Dataset(shard) as nc:
            attrs = {k: nc.getncattr(k) for k in nc.ncattrs()}
            shapes = {v: tuple(nc.variables[v].shape) for v in nc.variables}
            dims = {d: len(nc.dimensions[d]) for d in nc.dimensions}
    except OSError as e:
        raise InputFileError(shard, f"cannot open as NetCDF ({e})") from None
    return {"attrs": attrs, "shapes": shapes, "dims": dims}


def load_arrays(shard: str | Path, variables=("no2", "valid", "emission"), n: int | None = None) -> dict:
    """The named variables of one shard as numpy arrays (the first ``n`` scenes, or all)."""
    import netCDF4

    dtypes = {"no2": np.float32, "valid": np.uint8, "emission": np.float32}
    try:
        with netCDF4.Dataset(shard) as nc:
            nc.set_auto_mask(False)
            sl = slice(None) if n is None else slice(0, n)
            return {v: np.asarray(nc.variables[v][sl], dtype=dtypes.get(v)) for v in variables}
    except (OSError, KeyError) as e:
        raise InputFileError(shard, f"cannot read {', '.join(variables)} ({e})") from None


def open_shard(shard: str | Path):
    """One shard as an xarray Dataset, loaded into memory."""

    from ..readfile import open_netcdf

    return open_netcdf(shard, load=True, engine="netcdf4", what="simulated shard")


def open_split(root: str | Path, split: str):
    """All shards of one split concatenated along ``scene`` (in memory: for tests and small sets; stream with
    :func:`shard_paths` otherwise)."""
    import xarray as xr

    parts = [open_shard(p) for p in shard_paths(root, split)]
    out = xr.concat(
        parts, dim="scene", data_vars="all", coords="minimal", compat="override", combine_attrs="drop_conflicts"
    )
    out.attrs["split"] = split
    return out
