"""dvc.yaml lists as each stage's code deps exactly the project files the stage runs (derived from its imports by
tests/dvcdeps.py): a change to code a stage does not run never re-runs it, and a change to code it runs always
does. `make dvc-deps` rewrites the lists."""

from __future__ import annotations

import yaml
from dvcdeps import SRC, expand, stage_code, stage_name


def test_every_stage_lists_exactly_the_code_it_imports():
    doc = yaml.safe_load((SRC.parent / "dvc.yaml").read_text())
    wrong = {}
    for name, stage in doc["stages"].items():
        body = stage.get("do", stage)
        listed = expand(body["deps"])
        needed = stage_code(stage_name(body["cmd"]))
        if listed != needed:
            root = SRC.parent
            wrong[name] = {
                "missing": sorted(str(p.relative_to(root)) for p in needed - listed),
                "extra": sorted(str(p.relative_to(root)) for p in listed - needed),
            }
    assert not wrong, f"dvc.yaml code deps differ from the imports (run `make dvc-deps`): {wrong}"
