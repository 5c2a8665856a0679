"""Atomic writes: every output goes to a temporary sibling first and is renamed into place on success.

A failed stage therefore never leaves a half-written file or folder behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on clean exit rename it onto ``path``, else delete it.

    For ``is_dir=True`` the yielded path is an (empty, existing) directory which replaces ``path`` as a whole.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.tmp-"
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=path.suffix, dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if is_dir:
            if path.exists():
                old = path.with_name(f".{path.name}.old-{os.getpid()}")
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj, *, indent: int = 2) -> None:
    write_text(path, json.dumps(obj, indent=indent, sort_keys=True, default=_json_default) + "\n")


def write_netcdf(ds, path: str | os.PathLike, **kwargs) -> None:
    """Write an xarray Dataset atomically (NetCDF4 via netCDF4 engine unless told otherwise)."""
    kwargs.setdefault("engine", "netcdf4")
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, **kwargs)


def write_csv(df, path: str | os.PathLike, **kwargs) -> None:
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, **kwargs)


def save_figure(fig, path: str | os.PathLike, **kwargs) -> None:
    kwargs.setdefault("dpi", 120)
    kwargs.setdefault("bbox_inches", "tight")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", **kwargs)


def to_builtin(o):
    """numpy scalars/arrays and paths as plain Python values (JSON- and NetCDF-attribute-friendly); others unchanged."""
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return o


def _json_default(o):
    converted = to_builtin(o)
    if converted is o:
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")
    return converted
