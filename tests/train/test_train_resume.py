"""A run killed with SIGKILL mid-epoch and resumed with train.resume=true ends with the same weights as one that was
never interrupted (CPU, 1 thread: bitwise identical; data order and dropout depend only on seed + epoch)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from no2hotspots.config import compose, params_yaml_text
from no2hotspots.train.run import run

from .conftest import tiny_overrides


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path, tiny_sim):
    common = ["train.epochs=3", "train.log_model=false", "model.dropout=0.2"]
    # the uninterrupted reference, in process
    ref_cfg = compose(tiny_overrides(tmp_path / "ref", tiny_sim, *common))
    run(ref_cfg)
    ref = torch.load(tmp_path / "ref/outputs/train/model/state_dict.pt", weights_only=True)

    # the same run in a subprocess, killed with SIGKILL once the first epoch's checkpoint exists
    params = tmp_path / "params.yaml"
    params.write_text(params_yaml_text(compose(tiny_overrides(tmp_path / "cut", tiny_sim, *common))))
    last = tmp_path / "cut/outputs/train/checkpoints/last.pt"
    env = {**os.environ, "NO2HOTSPOTS_PROGRESS": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "no2hotspots", "train", "--params", str(params)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while not last.exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    cut_epoch = torch.load(last, weights_only=True)["epoch"]
    assert cut_epoch < 2, "the run finished before it could be killed"
    assert not (tmp_path / "cut/outputs/train/model").exists()

    cfg = compose(tiny_overrides(tmp_path / "cut", tiny_sim, *common, "train.resume=true"))
    run(cfg)
    got = torch.load(tmp_path / "cut/outputs/train/model/state_dict.pt", weights_only=True)
    assert got.keys() == ref.keys()
    for k in ref:
        assert torch.equal(got[k], ref[k]), k  # tolerance: none (bitwise) on CPU with 1 thread
    hist = torch.load(last, weights_only=True)["history"]
    assert [h["epoch"] for h in hist] == [0, 1, 2]


def test_resume_with_a_checkpoint_of_another_model_is_one_line(tmp_path, tiny_sim):
    from no2hotspots.errors import InputFileError

    run(compose(tiny_overrides(tmp_path, tiny_sim, "train.epochs=1", "train.log_model=false")))
    cfg = compose(
        tiny_overrides(
            tmp_path,
            tiny_sim,
            "train.epochs=2",
            "train.log_model=false",
            "train.resume=true",
            "model.stages.widths=[8,24]",
        )
    )
    with pytest.raises(InputFileError) as e:
        run(cfg)
    msg = str(e.value)
    assert "\n" not in msg and "last.pt" in msg and "shape" in msg and "stages" in msg


@pytest.mark.slow  # two tiny trainings (~60-120 s on 2 shared cores)
def test_model_run_json_metrics_and_curve_are_replaced_together(tmp_path, tiny_sim):
    """``model/``, ``run.json``, ``metrics/train.json`` and ``plots/train/learning_curve.csv`` are one atomic group:
    a training that cannot write its learning curve (the plots folder is a file) leaves all four as the previous
    training wrote them (the model and run.json used to be replaced first, the metrics after)."""
    import hashlib

    def digests():
        files = [tmp_path / "outputs/train/model/state_dict.pt", tmp_path / "outputs/train/model/model.json",
                 tmp_path / "outputs/train/run.json", tmp_path / "metrics/train.json",
                 tmp_path / "plots/train/learning_curve.csv"]  # fmt: skip
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}

    run(compose(tiny_overrides(tmp_path, tiny_sim, "train.epochs=1", "train.log_model=false")))
    before = digests()
    (tmp_path / "blocked").write_text("a file where the plots folder should be")
    other = ["train.epochs=1", "train.log_model=false", "train.seed=5", f"paths.plots={tmp_path}/blocked/plots"]
    with pytest.raises(OSError):
        run(compose(tiny_overrides(tmp_path, tiny_sim, *other)))
    assert digests() == before
    hidden = [p.name for d in ("outputs/train", "metrics") for p in (tmp_path / d).iterdir() if p.name.startswith(".")]
    assert hidden == []
