"""Units on Dask: a LocalCluster with 2 workers gives the same files as in process; a run killed with SIGKILL and
run again gives identical outputs and computes no unit twice."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from ingest.conftest import write_s5p_l2

from no2hotspots.config import compose, to_container

pytestmark = pytest.mark.slow


def _digests(folder: Path) -> dict[str, str]:
    """sha256 of every product file (detect.json without the input folder's path, which names the run's folder)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix in (".nc", ".csv", ".json", ".geojson"):
            data = p.read_bytes()
            if p.name == "detect.json":
                data = json.dumps({k: v for k, v in json.loads(data).items() if k != "input"}, sort_keys=True).encode()
            out[str(p.relative_to(folder))] = hashlib.sha256(data).hexdigest()
    return out


@pytest.fixture(scope="module")
def granules(tmp_path_factory, matimba_l2) -> Path:
    """Six S5P L2 granules (the real Matimba crop, six overpass times)."""
    d = tmp_path_factory.mktemp("granules")
    for k in range(6):
        start = dt.datetime(2021, 7, 25 + k, 11, 7, 15)
        write_s5p_l2(d / f"S5P_OFFL_L2__NO2____202107{25 + k}T110715.nc", matimba_l2, start=start)
    return d


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from no2hotspots.model.net import build_model

    cfg = compose()
    torch.manual_seed(0)
    net = build_model(cfg.model)
    d = tmp_path_factory.mktemp("model")
    torch.save(net.state_dict(), d / "state_dict.pt")
    meta = {
        "model": to_container(cfg.model),
        "input_scale": 1e4,
        "emission_min_t_per_yr": 0.0,
        "emission_max_t_per_yr": 30000.0,
        "pixel_size_m": 5500.0,
        "tile_size": 64,
        "in_channels": 2,
    }
    (d / "model.json").write_text(json.dumps(meta))
    return d


def _cfg(out: Path, granules: Path, model_dir: Path, *extra: str):
    return compose(
        [
            f"paths.outputs={out}",
            f"paths.mlruns={out}/mlruns",
            "ingest.collection=test",
            f"+ingest.collections.test.inputs={granules}/*.nc",
            "+ingest.collections.test.bbox=null",
            "detect.collection=test",
            f"detect.model_uri={model_dir}",
            "detect.overlay_inventory=false",
            "detect.threshold=0.1",
            *extra,
        ]
    )


def test_a_local_cluster_gives_the_same_files_as_in_process(tmp_path, granules, model_dir):
    from no2hotspots.detect.run import run as detect
    from no2hotspots.ingest.run import run as ingest

    got = {}
    for mode, extra in (
        ("sync", ["parallel.scheduler=sync"]),
        ("dask", ["parallel.scheduler=local", "parallel.n_workers=2", "parallel.min_units=1"]),
    ):
        cfg = _cfg(tmp_path / mode, granules, model_dir, *extra)
        summary = ingest(cfg)["test"]
        assert summary["n_overpasses"] == 6 and summary["n_computed"] == 6
        assert detect(cfg)["test"]["units_computed"] == 6
        got[mode] = {stage: _digests(tmp_path / mode / stage) for stage in ("ingest", "detect")}
    assert got["dask"] == got["sync"] and len(got["sync"]["ingest"]) >= 6 + 2 and len(got["sync"]["detect"]) >= 6 + 4


def _units_done(units_dir: Path) -> int:
    return len(list(units_dir.glob("*.done.json")))


def _killed_after_a_unit(stage: str, params: Path, env: dict, units_dir: Path):
    """Start the stage, SIGKILL it once a unit has finished; (the process, units done when it died)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "no2hotspots", stage, "--params", str(params)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while _units_done(units_dir) < 1:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no unit finished"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc, _units_done(units_dir)


@pytest.mark.parametrize("stage", ["ingest", "detect"])
def test_sigkill_then_rerun_gives_identical_outputs_and_no_unit_twice(tmp_path, granules, model_dir, stage):
    from no2hotspots.config import params_yaml_text

    ref = _cfg(tmp_path / "ref", granules, model_dir, "parallel.scheduler=sync")
    cut = _cfg(tmp_path / "cut", granules, model_dir, "parallel.scheduler=sync")
    env = {**os.environ, "NO2HOTSPOTS_PROGRESS": "0", "PYTHONUNBUFFERED": "1"}
    for cfg, name in ((ref, "ref"), (cut, "cut")):
        (tmp_path / f"{name}.yaml").write_text(params_yaml_text(cfg))
        if stage == "detect":  # the collection to detect on, complete
            subprocess.run(
                [sys.executable, "-m", "no2hotspots", "ingest", "--params", str(tmp_path / f"{name}.yaml")],
                env=env,
                check=True,
                capture_output=True,
                timeout=300,
            )
    subprocess.run(
        [sys.executable, "-m", "no2hotspots", stage, "--params", str(tmp_path / "ref.yaml")],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    units_dir = tmp_path / "cut" / ".units" / stage / "test"
    for _attempt in range(3):  # on a loaded box the last units can finish before the kill lands: start again
        shutil.rmtree(units_dir, ignore_errors=True)
        proc, done_before = _killed_after_a_unit(stage, tmp_path / "cut.yaml", env, units_dir)
        if done_before < 6:
            break
    assert proc.returncode == -signal.SIGKILL and done_before < 6, "the run finished before it could be killed"
    rerun = subprocess.run(
        [sys.executable, "-m", "no2hotspots", stage, "--params", str(tmp_path / "cut.yaml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    computed, reused = map(int, re.search(r"(\d+) computed, (\d+) reused", rerun.stderr).groups())
    assert (computed, reused) == (6 - done_before, done_before)  # no unit computed twice
    assert _digests(tmp_path / "cut" / stage) == _digests(tmp_path / "ref" / stage)
    leftovers = [p for p in (tmp_path / "cut").rglob(".*tmp-*")]
    assert not leftovers
