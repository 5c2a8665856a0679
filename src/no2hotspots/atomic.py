"""Atomic writes: every output goes to a temporary sibling first and is renamed into place on success.

A failed stage therefore never leaves a half-written file or folder behind. Temporary siblings carry the writing
process's id (``.<name>.tmp-<pid>-...``); one left by a killed process (its id no longer running) is removed by the
next write of the same path.

- :func:`atomic_path` replaces one file or folder. A folder is replaced in two renames (the old one aside as
  ``.<name>.old-<pid>``, the new one into place); a process killed between them leaves no folder, and the next
  write of the path puts the old one back (it is complete, and it is what the rest of the workspace was made with;
  the killed run's new folder cannot be told from a half-written one and is removed).
- :func:`atomic_group` replaces several outputs together (a stage's folder and its metrics and plot files): each is
  written to its temporary sibling, then a journal naming every pair (``.<name>.commit-<pid>.json`` beside each
  target) is written, then they are renamed into place one after another and the journals removed. A process
  killed during those renames leaves the journals; the next write of any of the targets completes the renames
  (all the new files were complete when the journals were written), so the outputs are never left half old, half
  new for a later run to read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


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
    tmp = _new_temp(path, is_dir)
    try:
        yield tmp
        _chmod(tmp, is_dir)
        _replace(tmp, path, is_dir)
    except BaseException:
        _delete(tmp, path)
        raise


class Group:
    """Outputs staged by :func:`atomic_group`: ask for a temporary folder or file per target, write into it."""

    def __init__(self) -> None:
        self.items: list[tuple[Path, Path, bool]] = []  # (temporary, target, is_dir)

    def folder(self, path: str | os.PathLike) -> Path:
        """An empty temporary folder that replaces the folder ``path`` as a whole."""
        return self._add(Path(path), True)

    def file(self, path: str | os.PathLike) -> Path:
        """A temporary file (empty, same suffix) that replaces the file ``path``; write it in place."""
        return self._add(Path(path), False)

    def write_text(self, path: str | os.PathLike, text: str) -> None:
        self.file(path).write_text(text)

    def write_json(self, path: str | os.PathLike, obj, *, indent: int = 2) -> None:
        self.write_text(path, _json_text(obj, indent))

    def write_csv(self, df, path: str | os.PathLike, **kwargs) -> None:
        kwargs.setdefault("index", False)
        df.to_csv(self.file(path), **kwargs)

    def _add(self, path: Path, is_dir: bool) -> Path:
        if any(t == path for _, t, _ in self.items):
            raise ValueError(f"{path} is already staged in this group")
        tmp = _new_temp(path, is_dir)
        self.items.append((tmp, path, is_dir))
        return tmp

    def commit(self) -> None:
        """Journals first (all or none: until the last is written, a failure discards the group), then the
        renames; a failure or kill after that leaves the journals for the next write to complete from."""
        journals: list[Path] = []
        try:
            for tmp, _, is_dir in self.items:
                _chmod(tmp, is_dir)
            for _, target, _ in self.items:
                journals.append(_write_journal(target, self.items))
        except BaseException:
            for j in journals:
                j.unlink(missing_ok=True)
            self.discard()
            raise
        olds = [(_swap(tmp, target, is_dir), target) for tmp, target, is_dir in self.items]
        for j in journals:
            j.unlink(missing_ok=True)
        for old, target in olds:
            if old is not None:
                _delete(old, target)

    def discard(self) -> None:
        for tmp, target, _ in self.items:
            _delete(tmp, target)


@contextlib.contextmanager
def atomic_group() -> Iterator[Group]:
    """Stage several outputs and replace them together on clean exit (else delete every temporary):

    ``with atomic_group() as out: tmp = out.folder(d); ...; out.write_json(metrics, m)``. See the module docstring
    for what a kill during the final renames leaves and how the next write completes it."""
    group = Group()
    try:
        yield group
    except BaseException:
        group.discard()
        raise
    group.commit()


def _new_temp(path: Path, is_dir: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    prefix = f".{path.name}.tmp-{os.getpid()}-"
    if is_dir:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=path.suffix, dir=path.parent)
    os.close(fd)
    return Path(name)


def _chmod(tmp: Path, is_dir: bool) -> None:
    # mkstemp/mkdtemp create 0600 files and 0700 folders: give results the user's usual permissions
    os.chmod(tmp, (0o777 if is_dir else 0o666) & ~_UMASK)


def _swap(tmp: Path, path: Path, is_dir: bool) -> Path | None:
    """Rename ``tmp`` onto ``path``; a folder already there is first renamed aside (returned, for deletion)."""
    if is_dir and path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        if old.exists():  # an earlier replacement in this process could not delete it
            _delete(old, path)
        os.replace(path, old)
        os.replace(tmp, path)
        return old
    os.replace(tmp, path)
    return None


def _replace(tmp: Path, path: Path, is_dir: bool) -> None:
    """Rename ``tmp`` onto ``path`` and delete the folder it replaced, if any."""
    old = _swap(tmp, path, is_dir)
    if old is not None:
        _delete(old, path)


def _delete(p: Path, target: Path) -> None:
    """Remove ``p``, a temporary or old sibling of ``target``; a folder is first renamed to ``.<name>.del-...`` so
    that a ``.old-`` sibling always means a complete previous output (a kill while deleting leaves a ``.del-`` one,
    removed later like a temporary)."""
    if p.is_dir() and not p.is_symlink():
        gone = target.with_name(f".{target.name}.del-{os.getpid()}-{os.urandom(4).hex()}")
        try:
            os.replace(p, gone)
        except OSError:
            gone = p
        shutil.rmtree(gone, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _write_journal(target: Path, items: list[tuple[Path, Path, bool]]) -> Path:
    """``.<name>.commit-<pid>.json`` beside ``target``: every (temporary, target, is_dir) of the group, relative to
    the journal's folder (so a moved checkout still finds them). Written whole or not at all."""
    here = target.parent
    body = {
        "pid": os.getpid(),
        "items": [[os.path.relpath(t, here), os.path.relpath(p, here), d] for t, p, d in items],
    }
    journal = target.with_name(f".{target.name}.commit-{os.getpid()}.json")
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-journal")
    tmp.write_text(json.dumps(body))
    os.replace(tmp, journal)
    return journal


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dead_pid(p: Path, path: Path, kind: str) -> int | None:
    """The writer's process id in the sibling ``p`` (``.<name>.<kind>-<pid>...``) if that process is gone."""
    pid = p.name[len(f".{path.name}.{kind}-") :].split("-", 1)[0].split(".", 1)[0]
    if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
        return int(pid)
    return None


def remove_stale_temps(path: str | os.PathLike) -> int:
    """Clean up after processes that were killed while writing ``path`` (their id no longer running): complete an
    interrupted :func:`atomic_group` (from its journal), put back a folder whose replacement was cut between its
    two renames, then delete their temporary siblings. Returns how many siblings went."""
    path = Path(path)
    if not _has_siblings(path):  # the common case: one listing instead of a glob per kind of sibling
        return 0
    _complete_groups(path)
    _restore_old(path)
    return sum(_remove_dead(path, kind) for kind in ("tmp", "old", "del"))


def _has_siblings(path: Path) -> bool:
    """Whether the folder of ``path`` holds any hidden sibling ``.<name>.*`` (temporary, aside, journal)."""
    prefix = f".{path.name}."
    try:
        with os.scandir(path.parent) as it:
            return any(e.name.startswith(prefix) for e in it)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _complete_groups(path: Path) -> None:
    for journal in sorted(path.parent.glob(f".{path.name}.commit-*.json")):
        pid = _dead_pid(journal, path, "commit")
        if pid is None:
            continue
        try:
            items = json.loads(journal.read_text())["items"]
        except (OSError, ValueError, KeyError, TypeError):
            journal.unlink(missing_ok=True)
            continue
        here = journal.parent
        done = []
        for tmp_rel, target_rel, is_dir in items:
            tmp, target = here / tmp_rel, here / target_rel
            if tmp.exists():
                _replace(tmp, target, bool(is_dir))
                done.append(str(target))
        for _, target_rel, _ in items:
            target = here / target_rel
            target.with_name(f".{target.name}.commit-{pid}.json").unlink(missing_ok=True)
        if done:
            log.warning("completed the replacement of %s cut short by a killed process (%d)", ", ".join(done), pid)


def _restore_old(path: Path) -> None:
    if os.path.lexists(path):
        return
    olds = [p for p in path.parent.glob(f".{path.name}.old-*") if p.is_dir() and _dead_pid(p, path, "old")]
    if olds:
        old = max(olds, key=lambda p: p.stat().st_mtime_ns)
        os.replace(old, path)
        log.warning("restored %s from %s (a process was killed while replacing it)", path, old.name)


def _remove_dead(path: Path, kind: str) -> int:
    n = 0
    for tmp in path.parent.glob(f".{path.name}.{kind}-*"):
        if _dead_pid(tmp, path, kind) is not None:
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
    write_text(path, _json_text(obj, indent))


def _json_text(obj, indent: int = 2) -> str:
    return json.dumps(obj, indent=indent, sort_keys=True, default=_json_default) + "\n"


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
