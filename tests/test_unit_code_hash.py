"""The code part of the resumable stages' unit hashes (no2hotspots.units.code_digest) covers every project module a
unit runs, also those its own modules only import: a change there recomputes the units, one elsewhere does not."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

DETECT = "'no2hotspots.detect.overpass', 'no2hotspots.model'"  # what detect/run.py hashes
OSSE = "'no2hotspots.osse'"


def _digest(src: Path, modules: str) -> str:
    code = f"from no2hotspots import units; print(units.code_digest({modules}))"
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(src)}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _touch(src: Path, module_path: str) -> None:
    f = src / "no2hotspots" / module_path
    f.write_text(f.read_text() + "\n# changed\n")


def test_a_change_in_an_imported_module_recomputes_the_units_and_one_elsewhere_does_not(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(SRC / "no2hotspots", src / "no2hotspots", ignore=shutil.ignore_patterns("__pycache__"))
    d0, o0 = _digest(src, DETECT), _digest(src, OSSE)
    _touch(src, "labelstats.py")  # peaks' region statistics: detect imports it through no2hotspots.peaks
    d1 = _digest(src, DETECT)
    assert d1 != d0
    _touch(src, "model/inputs.py")  # the model input's scaling and mask
    d2 = _digest(src, DETECT)
    assert d2 != d1
    _touch(src, "model/net.py")  # the network's own code (not imported by detect: hashed as a package)
    d3 = _digest(src, DETECT)
    assert d3 != d2
    assert _digest(src, OSSE) == o0  # none of those is the OSSE's code
    _touch(src, "inventory/load.py")  # the OSSE's sources come through it
    assert _digest(src, OSSE) != o0
    _touch(src, "evaluate/tables.py")  # neither's code
    assert _digest(src, DETECT) == d3
