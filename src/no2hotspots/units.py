"""Idempotent units of work: each unit (an OSSE day, a granule, an overpass) writes its files into a unit folder
and then a marker ``<key>.done.json`` holding its ``unit_hash`` (what it was computed from: inputs and settings)
and its small result. A rerun skips every unit whose marker matches, so a killed run resumes where it stopped and
computes no unit twice; units of other inputs or settings are pruned.

A stage's output folder is then *published* from the unit folder: its files are hard-linked (copied where links
are impossible) into a temporary folder together with the period products, which replaces the output folder in one
rename. A stage that fails (bad input, failed validation) therefore leaves the previous output as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from .atomic import to_builtin, write_json

DONE = ".done.json"


def digest(obj) -> str:
    """A short stable hash of a JSON-able object (settings, input identities)."""
    text = json.dumps(obj, sort_keys=True, default=to_builtin)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def code_digest(*modules: str) -> str:
    """A hash of the project code that ``modules`` (dotted names; a package counts with all its modules) run: their
    files and every project module they import, directly or not (:func:`no2hotspots.imports.closure`, what
    ``dvc.yaml`` lists as a stage's code): part of every unit hash, so a code change recomputes the units it could
    change, also one in a module the unit's own modules only import (a listed-modules hash missed those)."""
    from .imports import SRC, closure, module_file

    names = set(modules)
    for name in modules:
        path = module_file(name)
        if path is not None and path.name == "__init__.py":  # a package: every module in it, by its module name
            for f in path.parent.rglob("*.py"):
                parts = f.relative_to(SRC).with_suffix("").parts
                names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    h = hashlib.sha256()
    for f in sorted(closure(*names)):
        h.update(str(f.relative_to(SRC)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def file_identity(path: str | Path) -> dict:
    """What identifies an input file for a unit hash: name, size and modification time (ns)."""
    st = Path(path).stat()
    return {"name": Path(path).name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def load_done(folder: str | Path, key: str, unit_hash: str) -> dict | None:
    """The stored result of a finished unit computed from ``unit_hash``, else None."""
    marker = Path(folder) / f"{key}{DONE}"
    try:
        done = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if done.get("unit_hash") != unit_hash or not all((Path(folder) / f).is_file() for f in done.get("files", [])):
        return None
    return done.get("result")


def mark_done(folder: str | Path, key: str, unit_hash: str, files: Iterable[str], result: Mapping) -> None:
    """Record a finished unit (atomically, after its files are in place)."""
    write_json(Path(folder) / f"{key}{DONE}", {"unit_hash": unit_hash, "files": sorted(files), "result": result})


def prune(folder: str | Path, keep: Iterable[str]) -> int:
    """Remove the markers and files of units not in ``keep``; return how many units went."""
    folder = Path(folder)
    keep = set(keep)
    gone = 0
    for marker in folder.glob(f"*{DONE}"):
        key = marker.name[: -len(DONE)]
        if key in keep:
            continue
        try:
            files = json.loads(marker.read_text()).get("files", [])
        except (OSError, ValueError):
            files = []
        for f in files:
            (folder / f).unlink(missing_ok=True)
        marker.unlink(missing_ok=True)
        gone += 1
    return gone


def link_into(src: str | Path, dest: str | Path) -> None:
    """Hard-link ``src`` to ``dest`` (a copy where the file system cannot link)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)
