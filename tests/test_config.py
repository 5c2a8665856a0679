"""conf/ is the single source of truth: params.yaml is its composition, and DVC stages read only existing keys."""

from __future__ import annotations

import pytest
import yaml
from omegaconf import OmegaConf

from no2hotspots.config import compose, load_config, load_params, require
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


def test_composed_overrides_reach_derived_keys_and_groups_switch():
    cfg = load_config(["seed=7"])
    assert cfg.seed == 7 and cfg.train.seed == 7 and cfg.simulate.seed == 7 and cfg.osse.seed == 7
    moved = load_config(["paths.outputs=/tmp/elsewhere"])
    assert moved.paths.simulated == "/tmp/elsewhere/simulated" and moved.detect.out_dir == "/tmp/elsewhere/detect"
    assert load_config(["osse=china_year"]).osse.region.name == "china"


@pytest.mark.parametrize(
    "override, key, hint",
    [
        ("detect.treshold=0.3", "detect.treshold", "did you mean detect.threshold?"),
        ("foo.bar=1", "foo.bar", "unknown key"),
        ("osse=no_such_region", "osse", "no_such_region"),
    ],
)
def test_unknown_keys_and_options_are_refused_naming_them(override, key, hint):
    with pytest.raises(ConfigError) as e:
        load_config([override])
    assert str(e.value).startswith(f"config {key}:") and hint in str(e.value) and "\n" not in str(e.value)


def test_a_composed_file_takes_leaf_overrides_only(repo_root):
    cfg = load_params(repo_root / "params.yaml", ["seed=7", "detect.threshold=0.3"])
    assert cfg.seed == 7 and cfg.detect.threshold == 0.3
    for bad, key in (("detect.treshold=0.3", "detect.treshold"), ("osse=china_year", "osse"), ("+a.b=1", "a.b")):
        with pytest.raises(ConfigError, match=f"config {key}:"):
            load_params(repo_root / "params.yaml", [bad])


def test_presets_are_compositions():
    paper, demo = load_config(["simulate=paper", "train=paper", "model=paper"]), load_config([])
    assert paper.simulate.n_scenes == 210000 and paper.train.epochs == 200 and paper.train.loss == "mse"
    assert paper.train.batch_size == demo.train.batch_size  # inherited from the demo recipe
    assert paper.model.head._target_.endswith("FCHead") and paper.model.dropout == demo.model.dropout


def test_overrides_and_require(tmp_path, repo_root):
    cfg = load_params(repo_root / "params.yaml", ["seed=7"])
    assert cfg.seed == 7
    with pytest.raises(ConfigError, match="seed"):
        require(cfg, "seed", lambda v: v < 0, "must be negative")
    with pytest.raises(ConfigError, match="nope.key: missing"):
        require(cfg, "nope.key", lambda v: True, "")
