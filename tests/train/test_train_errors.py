"""Data that does not fit the model gives one line naming the file and what differs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from no2hotspots.config import compose, params_yaml_text
from no2hotspots.errors import InputFileError
from no2hotspots.train.run import run

from .conftest import tiny_overrides
from .simdata import write_dataset

SMALL = {"train": 16, "val": 8, "test": 8}


@pytest.mark.parametrize(
    "kwargs, expect",
    [
        ({"tile": 32}, ["shape", "(scene, 64, 64)"]),
        ({"input_scale": None}, ["input_scale", "missing"]),
        ({"no2_factor": 1e-5}, ["input_scale", "raw mol m-2"]),
    ],
)
def test_unfit_dataset_is_one_line(tmp_path, kwargs, expect):
    sim = write_dataset(tmp_path / "sim", SMALL, **kwargs)
    with pytest.raises(InputFileError) as e:
        run(compose(tiny_overrides(tmp_path, sim)))
    msg = str(e.value)
    assert "\n" not in msg and "shard-00000.nc" in msg
    for word in expect:
        assert word in msg


def test_cli_prints_one_line_and_exits_nonzero(tmp_path):
    sim = write_dataset(tmp_path / "sim", SMALL, input_scale=None)
    params = tmp_path / "params.yaml"
    params.write_text(params_yaml_text(compose(tiny_overrides(tmp_path, sim))))
    p = subprocess.run(
        [sys.executable, "-m", "no2hotspots", "train", "--params", str(params)],
        env={**os.environ, "NO2HOTSPOTS_PROGRESS": "0"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.splitlines() if "error" in ln]
    assert len(lines) == 1 and "input_scale" in lines[0] and "Traceback" not in p.stderr


def test_bad_train_config_names_the_key(tmp_path, tiny_sim):
    from no2hotspots.errors import ConfigError

    with pytest.raises(ConfigError, match="train.lr_schedule.min_lr"):
        run(compose(tiny_overrides(tmp_path, tiny_sim, "train.lr_schedule.min_lr=0.1")))
