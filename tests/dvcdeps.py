"""The code each DVC stage runs, derived from imports: what `dvc.yaml` must list as the stage's code deps.

A stage's command is ``python -m no2hotspots STAGE``: that executes the package's ``__init__``/``__main__``/``cli``
and the stage's module (``no2hotspots.cli.STAGES``), and everything they import, at module level or inside
functions (a lazy import runs too). The closure over ``import`` statements (read with ``ast``, relative imports
resolved, a package's ``__init__`` counted whenever one of its modules is) is the stage's code. ``dvc.yaml`` lists
it compactly: a folder when every module in it is used, single files otherwise (:func:`compact`).

``python tests/dvcdeps.py`` prints the compact list per stage; ``--write`` puts it into dvc.yaml (the code deps of
every stage replaced, other deps and comments kept): ``make dvc-deps``.
"""

from __future__ import annotations

import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

from no2hotspots.imports import PKG, closure  # noqa: E402 (the closure the unit hashes use too)


def stage_code(stage: str) -> set[Path]:
    from no2hotspots.cli import STAGES

    return closure(f"{PKG}.__main__", f"{PKG}.cli", STAGES[stage][0])


def compact(files: set[Path]) -> list[str]:
    """Folders whose .py files are all used, else the files; paths relative to the repository root."""
    root = SRC.parent
    out: list[str] = []
    by_dir: dict[Path, set[Path]] = {}
    for f in files:
        by_dir.setdefault(f.parent, set()).add(f)
    for d in sorted(by_dir):
        every = set(d.glob("*.py"))
        nested = [p for p in d.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
        if d != SRC / PKG and by_dir[d] == every and all(set(n.rglob("*.py")) <= files for n in nested):
            out.append(str(d.relative_to(root)))
        else:
            out.extend(str(f.relative_to(root)) for f in sorted(by_dir[d]))
    # drop entries inside a listed folder
    folders = [o for o in out if not o.endswith(".py")]
    return sorted(o for o in out if not any(o != f and o.startswith(f + "/") for f in folders))


def expand(deps: list[str]) -> set[Path]:
    """dvc.yaml deps under src/ as the set of .py files they cover."""
    root = SRC.parent
    out: set[Path] = set()
    for d in deps:
        p = root / d
        if not str(d).startswith("src/"):
            continue
        out.update(p.rglob("*.py") if p.is_dir() else [p])
    return out


def stage_name(cmd: str) -> str:
    """The CLI stage a dvc.yaml command runs (``python -m no2hotspots STAGE ...``)."""
    parts = cmd.split()
    return parts[parts.index("no2hotspots") + 1]


def write_dvc_yaml(path: Path) -> None:
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 120
    yaml.indent(mapping=2, sequence=4, offset=2)
    doc = yaml.load(path)
    for stage in doc["stages"].values():
        body = stage.get("do", stage)
        code = compact(stage_code(stage_name(body["cmd"])))
        others = [d for d in body.get("deps", []) if not str(d).startswith("src/")]
        body["deps"] = code + others
    yaml.dump(doc, path)


if __name__ == "__main__":
    if "--write" in sys.argv:
        write_dvc_yaml(SRC.parent / "dvc.yaml")
        sys.exit(0)
    from no2hotspots.cli import STAGES

    for stage in STAGES:
        print(f"{stage}:")
        for dep in compact(stage_code(stage)):
            print(f"  - {dep}")
