"""``no2hotspots detect-files``: the user's granules -> grids, hotspots and a map in a folder they name, without
touching the pipeline's DVC-tracked outputs; bad paths, boxes and dates are one-line errors naming them.

Runs inside a temporary git + DVC repository with a real (tiny) pipeline, so ``dvc status`` is real."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import xarray as xr

from no2hotspots.detect.files import main

TINY_MODEL = ["model.stem.width=8", "model.stages.widths=[8,16]", "model.head.width=8"]
SYNC = ["--set", "parallel.scheduler=sync"]
STAGE = """stages:
  detect:
    cmd: mkdir -p outputs/detect && echo x > outputs/detect/hotspots.csv
    outs:
      - outputs/detect
"""


def _dvc(repo: Path, *args: str) -> str:
    p = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True, check=True)
    return p.stdout


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A real (untrained, seeded) tiny network saved as the train stage saves models: model.json + state_dict.pt."""
    from omegaconf import OmegaConf

    from no2hotspots.config import compose
    from no2hotspots.model.net import build_model

    cfg = compose(TINY_MODEL)
    torch.manual_seed(0)
    net = build_model(cfg.model)
    d = tmp_path_factory.mktemp("model")
    torch.save(net.state_dict(), d / "state_dict.pt")
    meta = {
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "input_scale": 1.0e5,
        "tile_size": 64,
        "emission_min_t_per_yr": 100.0,
        "emission_max_t_per_yr": 50000.0,
        "pixel_size_m": 5500.0,
        "run_id": "seeded",
    }
    (d / "model.json").write_text(json.dumps(meta))
    return d


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory) -> Path:
    """A git + DVC repository whose pipeline has run: data/ tracked by data.dvc, outputs/detect a stage output."""
    repo = tmp_path_factory.mktemp("repo")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    _dvc(repo, "init", "-q")
    (repo / "data").mkdir()
    (repo / "data" / "note.txt").write_text("tracked data\n")
    _dvc(repo, "add", "-q", "data")
    (repo / "dvc.yaml").write_text(STAGE)
    _dvc(repo, "repro", "-q")
    assert json.loads(_dvc(repo, "status", "--json") or "{}") == {}
    return repo


@pytest.fixture
def in_repo(dvc_repo, monkeypatch) -> Path:
    monkeypatch.chdir(dvc_repo)
    return dvc_repo


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_help_lists_the_options(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for opt in ("--out", "--bbox", "--start", "--end", "--model", "--threshold", "--set", "PATH"):
        assert opt in out


@pytest.mark.slow
def test_detects_the_matimba_file_and_a_folder_without_touching_dvc(in_repo, matimba_l2, model_dir, capsys):
    """Default model = the registry's champion (a temporary MLflow store in the repository, as `make demo` leaves
    it); then a folder and a glob with --model, a period and a box. dvc status and outputs/ do not change."""
    import mlflow

    from no2hotspots import tracking
    from no2hotspots.config import compose
    from no2hotspots.registry.log import log_model

    cfg = compose()
    tracking.setup(cfg)
    with mlflow.start_run():
        info = log_model(model_dir)
    version = mlflow.register_model(info.model_uri, "no2hotspots-cnn").version
    mlflow.MlflowClient().set_registered_model_alias("no2hotspots-cnn", "champion", version)
    before = _tree(in_repo / "outputs"), _tree(in_repo / "data")

    assert main([str(matimba_l2), "--out", "results", "--threshold", "0.1", *SYNC]) == 0
    res = in_repo / "results"
    run = json.loads((res / "run.json").read_text())
    assert run["model_uri"] == "models:/no2hotspots-cnn@champion" and run["model_version"] == int(version)
    assert run["n_granules"] == run["n_overpasses"] == 1
    hot = pd.read_csv(res / "detections" / "hotspots.csv")
    assert len(hot) == run["n_hotspots"] > 0 and hot["peak_rel_emission"].min() >= 0.1
    grid = xr.open_dataset(res / "grid" / "grid.nc")
    assert hot["peak_lat"].isin(grid["lat"].values.round(6)).all() and grid["lat"].size > 64
    assert hot["peak_lon"].isin(grid["lon"].values.round(6)).all() and grid["lon"].size > 64
    grid.close()
    for f in ("detections/map.png", "detections/period.nc", "detections/hotspots.geojson", "grid/grid.nc"):
        assert (res / f).stat().st_size > 0, f

    # a folder and a glob of it, a period that holds the granule, a box inside it; the same folder again
    folder = in_repo.parent / "granules"
    folder.mkdir(exist_ok=True)
    shutil.copy(matimba_l2, folder / matimba_l2.name)
    shutil.copy(matimba_l2, folder / "copy_of_matimba.nc")
    box = ["--bbox", "27", "-24.5", "28.5", "-23"]
    period = ["--start", "2021-07-25T10:00:00Z", "--end", "2021-07-25"]
    args = ["--out", "other", "--model", str(model_dir), *box, *period, *SYNC]
    assert main([str(folder), *args]) == 0
    run = json.loads((in_repo / "other" / "run.json").read_text())
    assert run["n_overpasses"] == 2 and run["bbox"] == [27, -24.5, 28.5, -23]
    boxed = pd.read_csv(in_repo / "other" / "detections" / "hotspots.csv")
    assert boxed["peak_lat"].between(-24.5, -23).all() and boxed["peak_lon"].between(27, 28.5).all()
    assert main([str(folder / "*.nc"), *args]) == 0
    assert json.loads((in_repo / "other" / "run.json").read_text())["n_overpasses"] == 2
    capsys.readouterr()

    assert json.loads(_dvc(in_repo, "status", "--json") or "{}") == {}
    assert (_tree(in_repo / "outputs"), _tree(in_repo / "data")) == before

    # nothing is written into a tracked or pipeline path
    for out in ("outputs", "outputs/detect/mine", "outputs/other", "data", "data/mine", "mlruns", ".", ".dvc/x"):
        assert main([str(matimba_l2), "--out", out, "--model", str(model_dir), *SYNC]) == 2
        assert "--out" in _error_line(capsys)
    assert (_tree(in_repo / "outputs"), _tree(in_repo / "data")) == before


def test_a_file_that_is_not_netcdf_is_named_as_the_user_gave_it(in_repo, model_dir, tmp_path, capsys):
    """A corrupt granule fails the run with one line naming the user's file, not the link to it in --out."""
    bad = tmp_path / "mine" / "S5P_corrupt.nc"
    bad.parent.mkdir()
    bad.write_bytes(b"not a NetCDF file")
    out = tmp_path / "results"
    assert main([str(bad), "--out", str(out), "--model", str(model_dir), *SYNC]) == 2
    line = _error_line(capsys)
    assert f"{bad}: cannot be opened as NetCDF" in line and ".inputs" not in line, line


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["no/such/file.nc"], "no/such/file.nc: no such file or folder"),
        (["{matimba}", "--bbox", "30", "-24", "27", "-22"], "--bbox 30 -24 27 -22"),
        (["{matimba}", "--bbox", "a", "b", "c", "d"], "--bbox a b c d"),
        (["{matimba}", "--bbox", "1", "2"], "--bbox"),
        (["{matimba}", "--start", "2021-13-01"], "--start 2021-13-01"),
        (["{matimba}", "--start", "2021-07-26", "--end", "2021-07-25"], "--start 2021-07-26 is after --end"),
        (["{matimba}", "--start", "2021-07-26"], "--start"),
        (["{matimba}", "--threshold", "2"], "--threshold"),
        (["{matimba}", "--out", "outputs/mine"], "--out"),
        (["{matimba}", "--set", "detect.treshold=0.3"], "detect.threshold"),
        (["{matimba}", "--bbox", "100", "10", "101", "11"], "--bbox 100 10 101 11"),
    ],
)
def test_bad_path_box_date_or_folder_is_one_line_naming_it(in_repo, matimba_l2, model_dir, capsys, args, names):
    args = [a.replace("{matimba}", str(matimba_l2)) for a in args]
    before = _tree(in_repo / "outputs")
    assert main([*args, "--model", str(model_dir), *SYNC]) == 2
    assert names in _error_line(capsys)
    assert _tree(in_repo / "outputs") == before


@pytest.mark.slow
def test_a_corrupt_granule_among_many_on_dask_is_one_line(in_repo, matimba_l2, model_dir, tmp_path):
    """A granule and a corrupt one on a local Dask cluster (as a folder of >= parallel.min_units granules runs):
    stderr holds our one line naming the user's file, not the worker's "Compute Failed" log with a traceback."""
    mine = tmp_path / "mine"
    mine.mkdir()
    shutil.copy(matimba_l2, mine / "S5P_copy.nc")
    bad = mine / "S5P_corrupt.nc"
    bad.write_bytes(b"not a NetCDF file")
    cmd = [sys.executable, "-m", "no2hotspots", "detect-files", str(mine), "--out", str(tmp_path / "out")]
    dask = ["--set", "parallel.n_workers=2", "--set", "parallel.min_units=2"]
    r = subprocess.run(
        [*cmd, "--model", str(model_dir), *dask], capture_output=True, text=True, timeout=600, cwd=in_repo
    )
    errors = [line for line in r.stderr.splitlines() if "error" in line.lower()]
    assert r.returncode == 2 and "Traceback" not in r.stderr and "Compute Failed" not in r.stderr, r.stderr
    assert len(errors) == 1 and f"{bad}: cannot be opened as NetCDF" in errors[0], r.stderr
