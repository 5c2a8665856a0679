"""The validate stage inside a real DVC pipeline: a failing suite stops `dvc repro` with a readable report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from no2hotspots.config import compose, params_yaml_text

from .sample_data import SPLIT_OVERRIDES, write_dataset
from .test_simulated import _emission_13

DVC_YAML = """\
stages:
  validate:
    cmd: {python} -m no2hotspots validate --params params.yaml
    deps:
      - outputs/simulated
    params:
      - validate
    outs:
      - outputs/validate/simulated_report.json:
          cache: false
      - outputs/validate/simulated_report.md:
          cache: false
      - outputs/validate/simulated_scenes.csv:
          cache: false
"""


@pytest.mark.slow
def test_dvc_repro_fails_on_corrupted_dataset(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "NO2HOTSPOTS_PROGRESS": "0", "GIT_TERMINAL_PROMPT": "0"}
    dvc = str(Path(sys.executable).with_name("dvc"))

    def sh(*cmd, check=True):
        return subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, check=check, timeout=300)

    sh("git", "init", "-q")
    sh(dvc, "init", "-q")
    write_dataset(repo / "outputs" / "simulated", corrupt=_emission_13)
    (repo / "params.yaml").write_text(
        params_yaml_text(compose(SPLIT_OVERRIDES))
    )  # default paths are relative to the repo root
    (repo / "dvc.yaml").write_text(DVC_YAML.format(python=sys.executable))

    proc = sh(dvc, "repro", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    expected = "expect_column_max_to_be_between(emission_max <= 1): observed 1.3"
    assert "no2hotspots validate: error: suite 'simulated'" in out and expected in out, out
    md = (repo / "outputs" / "validate" / "simulated_report.md").read_text()
    assert "**FAILED**" in md and expected in md
    assert not (repo / "dvc.lock").exists()  # the failed stage was not recorded as done
