"""Atomic writes: every output goes to a temporary sibling first and is renamed into place on success.

A failed stage therefore never leaves a half-written file or folder behind. Temporary siblings carry the writing
process's id (``.<name>.tmp-<pid>-...``); one left by a killed process (its id no longer running) is removed by the
next write of the same path.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on clean exit rename it onto ``path``, else delete it.

    For ``is_dir=True`` the yielded path is an (empty, existing) directory which replaces ``path`` as a whole.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    prefix = f".{path.name}.tmp-{os.getpid()}-"
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=path.suffix, dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        # mkstemp/mkdtemp create 0600 files and 0700 folders: give results the user's usual permissions
        os.chmod(tmp, (0o777 if is_dir else 0o666) & ~_UMASK)
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(path: str | os.PathLike) -> int:
    """Delete temporary siblings of ``path`` left by processes that are gone (killed mid-write); return how many."""
    path = Path(path)
    n = 0
    for kind in ("tmp", "old"):
        n += _remove_dead(path, kind)
    return n


def _remove_dead(path: Path, kind: str) -> int:
    n = 0
    for tmp in path.parent.glob(f".{path.name}.{kind}-*"):
        pid = tmp.name[len(f".{path.name}.{kind}-") :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            n += 1
    return n


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
