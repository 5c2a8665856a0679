"""The logged model serves anywhere: NO2 on a grid in physical units in, the detect stage's numbers out.

The fast tests run the served code in process on the real Matimba TROPOMI overpass (gridded by the ingest code) and
compare it with the detect stage's own unit (``detect_overpass``); the slow test builds a fresh virtualenv from the
model's requirements.txt alone, runs ``mlflow models serve`` from it on 127.0.0.1 and POSTs the same grid.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from no2hotspots.detect.field import NUMBERS
from no2hotspots.registry.serving import (
    PARAM_DEFAULTS,
    ServingInputError,
    grid_frame,
    predict_frame,
    request_body,
)
from no2hotspots.registry.serving import settings as serving_settings

TINY_MODEL = ["model.stem.width=8", "model.stages.widths=[8,16]", "model.head.width=8"]


# ------------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def matimba_overpass(matimba_l2, tmp_path_factory) -> Path:
    """The real Matimba granule gridded at 0.05 degree by the ingest stage's unit: one ingest overpass file."""
    from no2hotspots.contracts.grid import overpass_key
    from no2hotspots.ingest.run import GranuleTask, grid_granule

    d = tmp_path_factory.mktemp("matimba_grid")
    key = overpass_key(matimba_l2)
    grid_granule(GranuleTask(str(matimba_l2), key, str(d), None, 0.05, 0.75, 64, "h"))
    return d / f"{key}.nc"


@pytest.fixture(scope="module")
def seeded_model_dir(tmp_path_factory) -> Path:
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
        "in_channels": 2,
        "emission_min_t_per_yr": 100.0,
        "emission_max_t_per_yr": 50000.0,
        "pixel_size_m": 5500.0,
        "run_id": "seeded",
    }
    (d / "model.json").write_text(json.dumps(meta))
    return d


def stage_detection(loaded, overpass: Path, units_dir: Path, **params) -> tuple[dict, object]:
    """The detect stage's own unit on the ingest overpass file: (its result, its overpass detection file)."""
    from no2hotspots.config import compose
    from no2hotspots.contracts import detections
    from no2hotspots.detect.overpass import OverpassTask, detect_overpass
    from no2hotspots.detect.run import settings

    s = settings(compose([f"detect.{k}={v}" for k, v in params.items()]))
    units_dir.mkdir(parents=True, exist_ok=True)
    result = detect_overpass(OverpassTask(overpass.stem, str(overpass), str(units_dir), "h"), loaded=loaded, s=s)
    return result, detections.open_overpass(units_dir / f"{overpass.stem}.nc")


def tie_free_threshold(rel: np.ndarray, q: float = 0.97) -> float:
    """A threshold midway between two distinct map values near quantile ``q`` (no cell sits near it)."""
    v = np.unique(rel[np.isfinite(rel)])
    k = int(q * (v.size - 1))
    while k + 1 < v.size and v[k + 1] - v[k] < 1e-4:
        k += 1
    return float(round((v[k] + v[k + 1]) / 2, 6))


def assert_same_detection(answer: dict, result: dict, det, ny: int, nx: int, key: str = "0") -> None:
    """The served answer for the whole overpass grid (posted row-major) equals the detect stage's unit."""
    rel = np.array([np.nan if v is None else v for v in answer["cells"]["relative_emission"]]).reshape(ny, nx)
    np.testing.assert_allclose(rel, det["relative_emission"].values, rtol=0, atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(np.array(answer["cells"]["hotspot"]).reshape(ny, nx), det["hotspot_id"].values)
    got = answer["hotspots"]
    want = pd.DataFrame(result["hotspots"]).to_dict("records")  # the unit returns its rows as columns
    assert len(got) == len(want) > 0
    for g, w in zip(got, want):
        assert g["overpass"] == key and g["overpass_hotspot"] == w["overpass_hotspot"]
        for k in ("peak_lat", "peak_lon", "n_cells", "gap_cells"):
            assert g[k] == w[k], k
        for k in ("peak_rel_emission", "sum_rel_emission", "nox_rate_estimate_t_per_yr", "area_km2"):
            assert g[k] == pytest.approx(w[k], rel=1e-5, abs=1e-6), k
        assert g["background_shift_mol_m2"] == pytest.approx(w["background_shift_mol_m2"], rel=1e-6, abs=1e-12)


# --------------------------------------------------------------------------------------------------- fast tests


@pytest.mark.parametrize("key", sorted(NUMBERS))
def test_the_stage_and_the_served_model_check_each_numeric_detect_setting_alike(key):
    """Both read detect.field.NUMBERS: a bool, a string, NaN, a value below every setting's range and (int settings)
    2.5 are refused by both, each naming the key with the table's problem; the default passes both, as the right
    type; a whole float (2.0, as JSON may send an integer) is an int setting's integer when served, not in config."""
    from omegaconf import OmegaConf

    from no2hotspots.config import compose
    from no2hotspots.detect.run import settings as stage_settings
    from no2hotspots.errors import ConfigError

    spec, base = NUMBERS[key], compose()
    low = -(10**9) if spec.kind is int else -1.0e9
    for v in (True, "1", float("nan"), low, *((2.5,) if spec.kind is int else ())):
        cfg = OmegaConf.merge(base, {})
        OmegaConf.update(cfg, f"detect.{key}", v)
        with pytest.raises(ConfigError) as stage:
            stage_settings(cfg)
        with pytest.raises(ServingInputError) as served:
            serving_settings({key: v})
        assert str(stage.value).startswith(f"config detect.{key}: {spec.problem} (got ")
        assert str(served.value).startswith(f"params.{key}: {spec.problem} (got ")
    default = stage_settings(base)[key]
    assert type(default) is spec.kind and serving_settings({})[key] == default
    assert type(serving_settings({key: default})[key]) is spec.kind
    if spec.kind is int and spec.value(2):
        assert serving_settings({key: 2.0})[key] == 2
        cfg = OmegaConf.merge(base, {})
        OmegaConf.update(cfg, f"detect.{key}", 2.0)
        with pytest.raises(ConfigError):
            stage_settings(cfg)


def test_param_defaults_are_the_detect_stage_defaults():
    from no2hotspots.config import compose

    detect = compose().detect
    flat = {**{k: v for k, v in detect.items() if k not in ("peaks", "context")}, **detect.peaks}
    flat.update({f"context_{k}": v for k, v in detect.context.items()})
    shared = [k for k in PARAM_DEFAULTS if k in flat]
    assert set(shared) >= {"threshold", "stride", "window_floor", "coverage_min", "min_cells", "mask_invalid"}
    assert set(shared) >= {"prominence", "min_separation_px", "batch_size", "max_resolution_ratio"}
    assert set(shared) >= {"tiling", "context_core", "context_margin", "resample", "edge_cells"}
    assert {k: PARAM_DEFAULTS[k] for k in shared} == {k: flat[k] for k in shared}
    # every detect setting is either served or named here as not a property of one field's detection, so a new
    # detect option fails this test until it is added to the served params (or here)
    not_served = {"model_uri", "register_file", "collections", "collection", "ingest_dir", "out_dir", "units_dir"}
    not_served |= {"num_threads", "device", "composite", "overlay_inventory", "inventory_csv"}
    not_served |= {"overlay_min_nox_t_per_yr", "winds", "wind_paths"}  # winds: the composite's downwind test
    assert set(flat) - set(PARAM_DEFAULTS) == not_served & set(flat)


@pytest.mark.parametrize(
    ("tiling", "resample"), [("blend", "none"), ("context", "none"), ("auto", "none"), ("blend", "model_pixel")]
)
def test_posted_grid_gives_the_detect_stage_numbers(matimba_overpass, seeded_model_dir, tmp_path, tiling, resample):
    """The whole Matimba grid posted cell by cell, or only its observed cells, gives exactly the stage's map and
    hotspots (either tiling or auto, either resampling); a cell the request leaves out is unobserved."""
    from no2hotspots.contracts.grid import open_overpass
    from no2hotspots.registry.load import from_dir

    torch.set_num_threads(1)
    loaded = from_dir(seeded_model_dir)
    ds = open_overpass(matimba_overpass)
    ny, nx = ds.sizes["lat"], ds.sizes["lon"]
    _, first = stage_detection(loaded, matimba_overpass, tmp_path / "u0", tiling=tiling, resample=resample)
    threshold = tie_free_threshold(first["relative_emission"].values)
    opts = {"tiling": tiling, "resample": resample}
    result, det = stage_detection(loaded, matimba_overpass, tmp_path / "u1", threshold=threshold, **opts)

    answer = predict_frame(loaded, grid_frame(ds), {"threshold": threshold, **opts})
    assert_same_detection(answer, result, det, ny, nx)
    assert answer["params"]["threshold"] == threshold and answer["overpasses"][0]["n_lat"] == ny
    # the Highveld's merged plumes lie above the training range: the served overpass and the stage's file record
    # the same largest background shift
    top = answer["overpasses"][0]["background_shift_max_mol_m2"]
    assert 1.0e-4 < top == pytest.approx(det.attrs["background_shift_max_mol_m2"], rel=1e-6)
    assert answer["params"]["tiling"] == ("context" if tiling == "auto" else tiling)  # the demo net: ShuffleHead
    assert json.loads(json.dumps(answer, allow_nan=False)) == answer  # plain JSON: no NaN anywhere
    if resample != "none":  # the observed cells span a smaller grid, whose lattice (and tiles) differ
        return

    observed = grid_frame(ds, "matimba", only_valid=True)
    assert 0 < len(observed) < ny * nx
    sparse = predict_frame(loaded, observed, {"threshold": threshold, "tiling": tiling})
    assert sparse["hotspots"] == [{**h, "overpass": "matimba"} for h in answer["hotspots"]]
    i = np.rint((observed["lat"].to_numpy() - float(ds["lat"][0])) / 0.05).astype(int)
    j = np.rint((observed["lon"].to_numpy() - float(ds["lon"][0])) / 0.05).astype(int)
    np.testing.assert_array_equal(sparse["cells"]["relative_emission"], det["relative_emission"].values[i, j])


def test_two_overpasses_in_one_request_are_detected_separately(matimba_overpass, seeded_model_dir):
    from no2hotspots.contracts.grid import open_overpass
    from no2hotspots.registry.load import from_dir

    loaded = from_dir(seeded_model_dir)
    ds = open_overpass(matimba_overpass)
    one = grid_frame(ds, "a", only_valid=True)
    two = grid_frame(ds, "b", only_valid=True)
    two["no2"] = two["no2"] * 0.5
    both = predict_frame(loaded, pd.concat([one, two], ignore_index=True), {"threshold": 0.1})
    alone = predict_frame(loaded, two, {"threshold": 0.1})
    assert [o["overpass"] for o in both["overpasses"]] == ["a", "b"]
    assert both["cells"]["relative_emission"][len(one) :] == alone["cells"]["relative_emission"]
    assert [h for h in both["hotspots"] if h["overpass"] == "b"] == alone["hotspots"]


@pytest.mark.parametrize(
    ("change", "params", "names"),
    [
        (lambda df: df.drop(columns="no2"), {}, "'no2'"),
        (lambda df: df.assign(lat=df["lat"] + np.where(np.arange(len(df)) == 3, 0.013, 0.0)), {}, "regular grid"),
        (lambda df: pd.concat([df, df.iloc[:1]], ignore_index=True), {}, "more than once"),
        (lambda df: df.assign(coverage=df["coverage"] * 3), {}, "'coverage'"),
        (lambda df: df.assign(flux=1.0), {}, "'flux'"),
        (lambda df: df, {"threshold": 1.5}, "params.threshold"),
        (lambda df: df, {"stride": 100}, "params.stride"),
        (lambda df: df, {"tiling": "tiles"}, "params.tiling"),
        (lambda df: df, {"resample": "bilinear"}, "params.resample"),
        (lambda df: df, {"context_margin": 2.5}, "params.context_margin"),
        (lambda df: df, {"context_core": float("inf")}, "params.context_core"),
        (lambda df: df, {"context_margin": float("nan")}, "params.context_margin"),
        (lambda df: df, {"edge_cells": -1}, "params.edge_cells"),
        (lambda df: df, {"min_gap_cells_shifted": 0.5}, "params.min_gap_cells_shifted"),
        (lambda df: df, {"gap_shift_min_mol_m2": -1.0e-5}, "params.gap_shift_min_mol_m2"),
        (lambda df: df, {"background_max_mol_m2": -1.0e-5}, "params.background_max_mol_m2"),
        (lambda df: df, {"background_sigma_km": 0.0}, "params.background_sigma_km"),
        (lambda df: df, {"background_mask_z": -1.0}, "params.background_mask_z"),
        (lambda df: df.assign(lat=df["lat"] * 4 + 70, lon=df["lon"] * 4 - 90), {}, "params.max_resolution_ratio"),
        (lambda df: df.assign(lat=df["lat"] * 0.2, lon=df["lon"] * 0.2), {}, "or set params.resample=model_pixel"),
    ],
)
def test_bad_requests_are_one_line_errors_naming_the_column_or_param(
    matimba_overpass, seeded_model_dir, change, params, names
):
    from no2hotspots.contracts.grid import open_overpass
    from no2hotspots.registry.load import from_dir

    df = change(grid_frame(open_overpass(matimba_overpass), only_valid=True).iloc[:400].copy())
    with pytest.raises(ServingInputError) as e:
        predict_frame(from_dir(seeded_model_dir), df, params)
    assert names in str(e.value) and "\n" not in str(e.value)


def test_a_fine_grid_is_served_with_resample_model_pixel(matimba_overpass, seeded_model_dir):
    from no2hotspots.contracts.grid import open_overpass
    from no2hotspots.registry.load import from_dir

    df = grid_frame(open_overpass(matimba_overpass), only_valid=True).iloc[:400].copy()
    fine = df.assign(lat=df["lat"] * 0.2, lon=df["lon"] * 0.2)  # 0.01 deg cells
    answer = predict_frame(from_dir(seeded_model_dir), fine, {"resample": "model_pixel"})
    rel = np.array([np.nan if v is None else v for v in answer["cells"]["relative_emission"]])
    assert answer["params"]["resample"] == "model_pixel" and np.isfinite(rel).mean() > 0.9


def test_logged_model_carries_its_code_requirements_and_signature(seeded_model_dir, matimba_overpass, tmp_path):
    """log_model as the training code calls it (a prepared (N, 2, 64, 64) input): the logged model holds the package
    code, exact pins, a physical-units signature with params and example; loaded as pyfunc it gives the same answer
    as the library function."""
    import mlflow

    from no2hotspots.contracts.grid import open_overpass
    from no2hotspots.registry.load import from_dir
    from no2hotspots.registry.log import log_model

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_experiment("serve")
    prepared = np.zeros((1, 2, 64, 64), np.float32)
    prepared[0, 0, 20:50, 10:60] = 3.0
    prepared[0, 1, 20:50, 10:60] = 1.0
    with mlflow.start_run():
        info = log_model(seeded_model_dir, prepared, np.zeros((1, 64, 64), np.float32))
    local = Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / "dl")))
    reqs = (local / "requirements.txt").read_text().split()
    assert "torch==2.13.0" in reqs and any(r.startswith("mlflow-skinny==") for r in reqs)
    assert all("==" in r for r in reqs) and not any("no2hotspots" in r for r in reqs)
    assert (local / "code" / "no2hotspots" / "detect" / "tiles.py").is_file()
    assert not list((local / "code").rglob("__pycache__"))
    example = json.loads((local / "serving_input_example.json").read_text())["dataframe_split"]
    assert example["columns"] == ["lat", "lon", "no2", "coverage"] and len(example["data"]) == 30 * 50
    assert example["data"][0][2] == pytest.approx(3.0 / 1e5)

    model = mlflow.pyfunc.load_model(str(local))
    sig = model.metadata.signature
    assert sig.inputs.input_names() == ["lat", "lon", "no2", "coverage", "overpass"]
    assert {p.name: p.default for p in sig.params} == PARAM_DEFAULTS
    df = grid_frame(open_overpass(matimba_overpass), only_valid=True)
    assert model.predict(df, params={"threshold": 0.12}) == predict_frame(
        from_dir(seeded_model_dir), df, {"threshold": 0.12}
    )


# --------------------------------------------------------------------------------------------------- slow test


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory) -> Path:
    """A tiny model trained by the train stage, which logs it (no2hotspots.registry.log via the training code);
    its MLflow model folder, downloaded."""
    import mlflow
    from train.conftest import tiny_overrides
    from train.simdata import write_dataset

    from no2hotspots import tracking
    from no2hotspots.config import compose
    from no2hotspots.train.run import run

    root = tmp_path_factory.mktemp("served")
    sim = write_dataset(root / "sim", {"train": 48, "val": 16, "test": 16}, seed=5, shard_size=32)
    cfg = compose(tiny_overrides(root, sim, "train.epochs=1", "parallel.scheduler=sync"))
    run(cfg)
    uri = json.loads((root / "outputs" / "train" / "run.json").read_text())["model_uri"]
    mlflow.set_tracking_uri(tracking.resolve_uri(cfg))
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(root / "model")))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise AssertionError(f"HTTP {e.code}: {e.read()[:2000]!r}") from None


@pytest.fixture(scope="module")
def fresh_venv(trained_model, tmp_path_factory):
    """A new virtualenv holding only the model's requirements.txt (torch from the machine's local wheel via pip's
    own configuration); pip runs from this environment against it (``pip --python``), no bytecode compiled."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    cmd = [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-compile", "-q"]
    cmd += ["-r", str(trained_model / "requirements.txt")]
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PIP_NO_INPUT": "1"})
    assert p.returncode == 0, f"pip install of the model's requirements failed:\n{p.stderr[-3000:]}"
    # the package is not installed there: the served model runs on the code it carries
    assert subprocess.run([str(py), "-c", "import no2hotspots"], capture_output=True, cwd=venv).returncode != 0
    yield venv
    shutil.rmtree(venv, ignore_errors=True)  # ~1.1 GB; pytest keeps the temporary folders of recent sessions


@pytest.mark.slow
def test_mlflow_models_serve_in_a_fresh_venv_answers_a_real_scene(
    trained_model, fresh_venv, matimba_overpass, tmp_path, request
):
    from no2hotspots.contracts.grid import open_overpass
    from no2hotspots.registry.load import from_dir

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(
        PATH=f"{fresh_venv / 'bin'}{os.pathsep}{os.defpath}",  # uvicorn is found on PATH: only the fresh venv's
        MLFLOW_DISABLE_TELEMETRY="true",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        OMP_NUM_THREADS="1",  # as the in-process run below
    )
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            [str(fresh_venv / "bin" / "mlflow"), "models", "serve", "-m", str(trained_model)]
            + ["--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    request.addfinalizer(stop)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, f"server exited:\n{log_path.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(url + "/ping", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, f"server not ready in 180 s:\n{log_path.read_text()[-3000:]}"
        time.sleep(1)

    # the logged input example is a valid request
    example = json.loads((trained_model / "serving_input_example.json").read_text())
    assert set(_post(url + "/invocations", example)["predictions"]) >= {"cells", "hotspots", "overpasses"}

    # the real Matimba overpass, every cell of its grid (null where unobserved), against the detect stage's unit
    torch.set_num_threads(1)
    loaded = from_dir(trained_model / "artifacts")
    ds = open_overpass(matimba_overpass)
    _, first = stage_detection(loaded, matimba_overpass, tmp_path / "u0")
    threshold = tie_free_threshold(first["relative_emission"].values)
    result, det = stage_detection(loaded, matimba_overpass, tmp_path / "u1", threshold=threshold)
    answer = _post(url + "/invocations", request_body(grid_frame(ds), {"threshold": threshold}))["predictions"]
    assert_same_detection(answer, result, det, ds.sizes["lat"], ds.sizes["lon"])
    assert answer["model"]["run_id"] == loaded.meta["run_id"] and answer["params"]["threshold"] == threshold

    # a request the model cannot use is a 400 naming the problem
    bad = request_body(grid_frame(ds, only_valid=True).iloc[:50], {"stride": 100})
    req = urllib.request.Request(url + "/invocations", json.dumps(bad).encode(), {"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=60)
    assert e.value.code == 400 and "params.stride" in e.value.read().decode()
