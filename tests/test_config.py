"""conf/ is the single source of truth: params.yaml is its composition, and DVC stages read only existing keys."""

from __future__ import annotations

import pytest
import yaml
from omegaconf import OmegaConf

from no2hotspots.config import compose, load_params, require
from no2hotspots.errors import ConfigError


def test_params_yaml_is_the_composition_of_conf(repo_root):
    composed = OmegaConf.to_container(compose(), resolve=True)
    on_disk = yaml.safe_load((repo_root / "params.yaml").read_text())
    assert on_disk == composed, "params.yaml drifted from conf/: run `make params` and commit it"


def _stage_params(dvc_yaml):
    for name, stage in dvc_yaml["stages"].items():
        body = stage.get("do", stage)
        for p in body.get("params", []):
            if isinstance(p, str):
                yield name, p


def test_every_stage_param_key_exists(repo_root):
    params = OmegaConf.load(repo_root / "params.yaml")
    dvc_yaml = yaml.safe_load((repo_root / "dvc.yaml").read_text())
    keys = list(_stage_params(dvc_yaml))
    assert keys
    for stage, key in keys:
        assert OmegaConf.select(params, key, default="__missing__") != "__missing__", f"{stage}: params key {key}"


def test_training_params_are_not_simulator_inputs(repo_root):
    dvc_yaml = yaml.safe_load((repo_root / "dvc.yaml").read_text())
    sim = dvc_yaml["stages"]["simulate"]["params"]
    assert not any(str(p).startswith(("train", "model", "register", "detect")) for p in sim)


def test_overrides_and_require(tmp_path, repo_root):
    cfg = load_params(repo_root / "params.yaml", ["seed=7"])
    assert cfg.seed == 7
    with pytest.raises(ConfigError, match="seed"):
        require(cfg, "seed", lambda v: v < 0, "must be negative")
    with pytest.raises(ConfigError, match="nope.key: missing"):
        require(cfg, "nope.key", lambda v: True, "")
