"""The project code a module runs: the closure over its ``import`` statements (read with ``ast``, at module level
or inside functions, since a lazy import runs too; relative imports resolved; a package's ``__init__`` counted
whenever one of its modules is). One definition for two readers: the unit hashes of the resumable stages
(:func:`no2hotspots.units.code_digest`: a unit computed by other code is computed again) and the code deps that
``dvc.yaml`` lists per stage (``tests/dvcdeps.py``)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = "no2hotspots"
#: the folder holding the package (``src``)
SRC = Path(__file__).resolve().parents[1]


def module_file(name: str, src: Path = SRC) -> Path | None:
    """The file of project module ``name`` (a package's ``__init__.py``), None if it is not a module."""
    base = src / Path(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def project_imports(path: Path, module: str) -> set[str]:
    """The project modules (and ``from module import name`` candidates) that the file of ``module`` imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import submodule`
    return {m for m in out if m == PKG or m.startswith(PKG + ".")}


def closure(*modules: str, src: Path = SRC) -> set[Path]:
    """Files of every project module that importing ``modules`` executes."""
    todo, seen, files = list(modules), set(), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name, src)
        if path is None:
            continue  # `from pkg import function`: not a module
        files.add(path)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages' __init__ run first
        todo.extend(project_imports(path, name))
    return files
