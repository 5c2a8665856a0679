"""conf/ is the single source of truth: params.yaml is its composition, and DVC stages read only existing keys."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from omegaconf import OmegaConf

from no2hotspots.config import (
    compose,
    int_value,
    load_config,
    load_params,
    params_yaml_text,
    require,
    require_bool,
    require_int,
)
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


def test_a_bad_override_syntax_names_its_own_key_not_the_first():
    with pytest.raises(ConfigError) as e:
        load_config(["seed=3", "paths.outputs=/tmp/x[1,2]_y", "detect.threshold=0.3"])
    assert str(e.value).startswith("config paths.outputs: bad override syntax") and "\n" not in str(e.value)


def test_a_composed_file_takes_leaf_overrides_only(repo_root):
    cfg = load_params(repo_root / "params.yaml", ["detect.collection=osse", "detect.min_cells=3"])
    assert cfg.detect.collection == "osse" and cfg.detect.min_cells == 3
    for bad, key in (("detect.treshold=0.3", "detect.treshold"), ("osse=china_year", "osse"), ("+a.b=1", "a.b")):
        with pytest.raises(ConfigError, match=f"config {key}:"):
            load_params(repo_root / "params.yaml", [bad])


def test_presets_are_compositions():
    paper, demo = load_config(["simulate=paper", "train=paper", "model=paper"]), load_config([])
    assert paper.simulate.n_scenes == 210000 and paper.train.epochs == 200 and paper.train.loss == "mse"
    assert paper.train.batch_size == demo.train.batch_size  # inherited from the demo recipe
    assert paper.model.head._target_.endswith("FCHead") and paper.model.dropout == demo.model.dropout


def test_overrides_and_require(tmp_path, repo_root):
    cfg = load_params(repo_root / "params.yaml", ["detect.batch_size=7"])
    assert cfg.detect.batch_size == 7
    with pytest.raises(ConfigError, match="seed"):
        require(cfg, "seed", lambda v: v < 0, "must be negative")
    with pytest.raises(ConfigError, match="nope.key: missing"):
        require(cfg, "nope.key", lambda v: True, "")


@pytest.fixture(scope="module")
def composed_file(tmp_path_factory):
    """A params file composed from conf/ (as `make params` writes it), outputs under a temporary folder."""
    root = tmp_path_factory.mktemp("params")
    path = root / "params.yaml"
    path.write_text(params_yaml_text(compose([f"paths.outputs={root}/outputs", f"paths.metrics={root}/metrics"])))
    return path


@pytest.mark.parametrize(
    "override, derived",
    [
        ("paths.outputs=/tmp/elsewhere", "detect.out_dir"),
        ("paths.data=/tmp/elsewhere", "detect.inventory_csv"),
        ("seed=7", "simulate.seed"),
        ("detect.out_dir=/tmp/elsewhere", "evaluate.detect_dir"),
        ("train.lr=0.01", "train.optimizer.lr"),
        ("inventory.path=/tmp/x.csv", "quantify.collections.matimba.inventory"),  # inside an interpolated node
    ],
)
def test_a_composed_file_refuses_keys_that_other_keys_were_derived_from(composed_file, override, derived):
    key = override.split("=", 1)[0]
    with pytest.raises(ConfigError) as e:
        load_params(composed_file, [override])
    msg = str(e.value)
    assert msg.startswith(f"config {key}: other keys are derived from it") and "\n" not in msg
    assert "without --params" in msg and "override the derived keys" in msg
    if derived != "quantify.collections.matimba.inventory":
        assert derived in msg


def test_a_composed_file_still_takes_the_keys_dvc_passes(composed_file):
    """DVC's stage commands pass the collection with --params; keys nothing is derived from stay settable."""
    for override in ("ingest.collection=matimba", "detect.collection=osse", "evaluate.collection=osse",
                     "quantify.collection=osse", "baseline.collection=osse", "detect.overlay_inventory=false",
                     "simulate.n_scenes=30", "ingest.qa_threshold=0.5"):  # fmt: skip
        key, value = override.split("=", 1)
        cfg = load_params(composed_file, [override])
        assert str(OmegaConf.select(cfg, key)).lower() == value


def test_cli_with_params_refuses_a_path_override_in_one_line(composed_file, tmp_path):
    """`STAGE --params params.yaml paths.outputs=X` ran with the file's derived folders (outputs/...): refused."""
    cmd = [sys.executable, "-m", "no2hotspots", "quantify", "--params", str(composed_file),
           f"paths.outputs={tmp_path}/x", "quantify.collection=osse"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and lines[0].startswith("no2hotspots quantify: error: config paths.outputs:"), lines
    assert "without --params" in lines[0]
    assert not (tmp_path / "x").exists() and not (composed_file.parent / "outputs").exists()


def test_int_value_refuses_rather_than_truncates():
    assert int_value("a.b", 3, 1) == 3
    for bad in (2.5, "2", True, None, 0):
        with pytest.raises(ConfigError, match=r"^config a.b: must be an integer >= 1 \(got "):
            int_value("a.b", bad, 1)
    with pytest.raises(ConfigError, match=r"must be an integer in 1..3"):
        require_int(OmegaConf.create({"a": {"b": 4}}), "a.b", 1, 3)


def test_require_bool_takes_true_or_false_only():
    cfg = OmegaConf.create({"a": {"yes": True, "no": False, "text": "false", "one": 1, "none": None}})
    assert require_bool(cfg, "a.yes") is True and require_bool(cfg, "a.no") is False
    for key in ("a.text", "a.one", "a.none"):
        with pytest.raises(ConfigError, match=rf"^config {key}: must be true or false \(got "):
            require_bool(cfg, key)
    with pytest.raises(ConfigError, match=r"^config a.absent: missing$"):
        require_bool(cfg, "a.absent")
