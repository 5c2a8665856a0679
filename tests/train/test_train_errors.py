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


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.epochs=2.5", "train.epochs"),  # refused, never truncated to 2
        ("train.batch_size=true", "train.batch_size"),
        ("train.optimizer._target_=os.system", "train.optimizer._target_"),
        ("train.objective=test/source_f1", "train.objective"),
        ("train.dice_beta=1.5", "train.dice_beta"),
        ("train.ema_decay=1.0", "train.ema_decay"),  # an average that never moves
        ("train.peak_window_px=4", "train.peak_window_px"),  # an even window has no centre pixel
        ("train.peak_weight=-1", "train.peak_weight"),
        ("train.peak_within_footprint=yes", "train.peak_within_footprint"),  # a string, not a boolean
    ],
)
def test_bad_train_config_names_the_key(tmp_path, tiny_sim, override, key):
    from no2hotspots.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        run(compose(tiny_overrides(tmp_path, tiny_sim, override)))
    assert str(e.value).startswith(f"config {key}:") and "\n" not in str(e.value)
    assert not (tmp_path / "outputs" / "train").exists()
