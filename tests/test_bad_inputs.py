"""The bad-input matrix (issue 14): every case runs the real entry point on a real file made by a fixture and must
(a) exit non-zero, (b) say so in ONE line that names the file or config key, and (c) leave the good output of an
earlier run byte-for-byte as it was. The downloader's hostile cases (names, redirects, retries) are in
tests/download/test_hostile.py; training/scoring cases with the model in tests/train and tests/score.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from ingest.conftest import write_s5p_l2

from no2hotspots.cli import main

HARP = "S5P_NRTI_L3__NO2____20211218T112745_20211218T113245_21665_02_020301_20211218T124629.nc"


def checksums(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def run_cli(capsys, *argv: str) -> tuple[int, list[str]]:
    capsys.readouterr()
    rc = main(list(argv))
    err = capsys.readouterr().err
    return rc, [ln for ln in err.splitlines() if ": error: " in ln or "Traceback" in ln]


def in_params_file(args: list[str], override: str, tmp_path: Path) -> list[str]:
    """``args`` (``STAGE --params FILE ...``) with ``override`` added; a key other keys are derived from cannot be
    set with --params (refused, config.load_params), so its bad value goes into a copy of FILE instead, as
    ``dvc exp run -S`` would write it, and the stage's own check of the value is what the case tests."""
    from omegaconf import OmegaConf

    from no2hotspots.config import interpolation_sources

    key, value = override.split("=", 1)
    if not any(key == s or key.startswith(s + ".") for s in interpolation_sources()):
        return [*args, override]
    i = args.index("--params") + 1
    cfg = OmegaConf.load(args[i])
    OmegaConf.update(cfg, key, yaml.safe_load(value), merge=False)
    OmegaConf.save(cfg, tmp_path / "bad_params.yaml")
    return [*args[:i], str(tmp_path / "bad_params.yaml"), *args[i + 1 :]]


def assert_one_line(rc: int, lines: list[str], stage: str, *names: str) -> None:
    assert rc != 0, "exited 0 on bad input"
    assert len(lines) == 1 and lines[0].startswith(f"no2hotspots {stage}: error:"), lines
    assert any(n in lines[0] for n in names), (names, lines[0])


# --- granules into ingest -------------------------------------------------------------------------------------


def _set(path: Path, var: str, fn) -> Path:
    """Rewrite variable ``var`` (a group path such as ``PRODUCT/name``) of a NetCDF file in place."""
    *groups, name = var.split("/")
    with netCDF4.Dataset(path, "a") as nc:
        node = nc
        for g in groups:
            node = node.groups[g]
        v = node[name]
        v.set_auto_mask(False)
        v[:] = fn(np.array(v[:]))
    return path


def _granule(kind: str, d: Path, crop: Path, harp_dir: Path) -> tuple[Path, str]:
    """Write the bad granule ``kind`` into ``d``; return its path and a word the error must contain."""
    s5p = d / f"S5P_OFFL_L2__NO2____{kind}.nc"
    if kind.startswith("trunc4_"):
        good = write_s5p_l2(d / "full.nc", crop)
        cut = int(kind.split("_")[1])
        s5p.write_bytes(good.read_bytes()[: max(cut, 0)] if cut >= 0 else good.read_bytes()[:cut])
        good.unlink()
        return s5p, s5p.name
    if kind.startswith("trunc3_"):
        src = (harp_dir / HARP).read_bytes()
        frac = float(kind.split("_")[1])
        f = d / f"S5P_NRTI_L3__NO2____{kind}.nc"
        f.write_bytes(src[: int(len(src) * frac)])
        return f, f.name
    if kind == "zero_byte":
        s5p.write_bytes(b"")
        return s5p, s5p.name
    if kind == "text_file":
        s5p.write_text("this is not a NetCDF file\n")
        return s5p, s5p.name
    if kind == "wrong_product":
        return write_s5p_l2(d / "S5P_OFFL_L2__CO_____x.nc", crop, product_type="L2__CO____"), "L2__CO____"
    if kind == "missing_no2":
        return write_s5p_l2(s5p, crop, drop_no2=True), "nitrogendioxide_tropospheric_column"
    if kind == "nan_corners":
        return write_s5p_l2(s5p, crop, nan_corners="all"), "corner coordinates are NaN"
    if kind == "all_qa_filtered":
        return write_s5p_l2(s5p, crop, qa_all=0.5), "no pixel passes qa"
    write_s5p_l2(s5p, crop)
    no2 = "PRODUCT/nitrogendioxide_tropospheric_column"
    edits = {
        "all_nan_no2": (no2, lambda a: np.full_like(a, np.float32(9.96921e36)), "with a finite no2"),
        "no2_times_1e6": (no2, lambda a: a * 1e6, "outside"),
        "no2_molecules_cm2": (no2, lambda a: a * 6.022e19, "wrong units"),
        "lat_out_of_range": (
            "PRODUCT/SUPPORT_DATA/GEOLOCATIONS/latitude_bounds",
            lambda a: np.where(np.abs(a) < 1e30, a + 120.0, a),
            "off the globe",
        ),
        "antimeridian": ("PRODUCT/SUPPORT_DATA/GEOLOCATIONS/longitude_bounds", _across_antimeridian, "antimeridian"),
        # netCDF's default int32 fill: no scanline has an observation time
        "all_delta_time_fill": ("PRODUCT/delta_time", lambda a: np.full_like(a, -2147483647), "delta_time"),
    }
    var, fn, word = edits[kind]
    return _set(s5p, var, fn), word


def _across_antimeridian(a):
    a = a - np.nanmedian(a) + 179.98  # the crop moved onto the dateline: some footprints straddle +-180
    return np.where(a > 180, a - 360, a)


INGEST_CASES = [
    "trunc4_0",
    "trunc4_1000",
    "trunc4_20000",
    "trunc4_100000",
    "trunc4_-50000",
    "trunc4_-2000",
    "trunc3_0.0",
    "trunc3_0.1",
    "trunc3_0.5",
    "trunc3_0.9",
    "trunc3_0.99",
    "zero_byte",
    "text_file",
    "wrong_product",
    "missing_no2",
    "nan_corners",
    "all_qa_filtered",
    "all_nan_no2",
    "no2_times_1e6",
    "no2_molecules_cm2",
    "lat_out_of_range",
    "antimeridian",
    "all_delta_time_fill",
]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, matimba_l2):
    """A good collection `test` ingested first: its folder is what no bad run may change."""
    from no2hotspots.config import compose, params_yaml_text

    root = tmp_path_factory.mktemp("bad_ingest")
    good = root / "good"
    good.mkdir()
    write_s5p_l2(good / "S5P_OFFL_L2__NO2____good.nc", matimba_l2)
    params = root / "params.yaml"
    cfg = compose(
        [
            f"paths.outputs={root}/outputs",
            "ingest.collection=test",
            "parallel.scheduler=sync",
            f"+ingest.collections.test.inputs={good}/*.nc",
            "+ingest.collections.test.bbox=null",
        ]
    )
    params.write_text(params_yaml_text(cfg))
    assert main(["ingest", "--params", str(params)]) == 0
    return root, params


@pytest.mark.parametrize("kind", INGEST_CASES)
def test_bad_granule(kind, ingested, tmp_path, matimba_l2, shared_dir, capsys):
    root, params = ingested
    before = checksums(root / "outputs" / "ingest" / "test")
    path, word = _granule(kind, tmp_path, matimba_l2, shared_dir / "realdata" / "tropomi_l3_harp_nl")
    rc, lines = run_cli(capsys, "ingest", "--params", str(params), f"ingest.collections.test.inputs={path}")
    assert_one_line(rc, lines, "ingest", path.name, str(path.parent))
    assert word.lower() in lines[0].lower(), lines[0]
    assert checksums(root / "outputs" / "ingest" / "test") == before


@pytest.mark.parametrize(
    "override, key",
    [
        ("ingest.collections.test.bbox=[0.0,40.0,1.0,41.0]", "ingest.collections.test.bbox"),
        ("ingest.collections.test.bbox=[10,0,5,1]", "ingest.collections.test.bbox"),
        ("ingest.collections.test.bbox=[170,0,190,1]", "ingest.collections.test.bbox"),
        ("ingest.collection=nowhere", "ingest.collection"),
        ("ingest.collection=../../tmp/x", "ingest.collection"),
        ("ingest.qa_threshold=1.5", "ingest.qa_threshold"),
        ("ingest.max_cells_per_pixel=2.5", "ingest.max_cells_per_pixel"),
        ("ingest.resolution_deg=0", "ingest.resolution_deg"),
        ("ingest.treshold=0.5", "ingest.treshold"),
    ],
)
def test_bad_ingest_config(override, key, ingested, capsys):
    root, params = ingested
    before = checksums(root / "outputs" / "ingest" / "test")
    rc, lines = run_cli(capsys, "ingest", "--params", str(params), override)
    assert_one_line(rc, lines, "ingest", key)
    assert checksums(root / "outputs" / "ingest" / "test") == before


# --- models into detect -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def detected(ingested, tmp_path_factory):
    """A good model folder and the detections made with it."""
    from no2hotspots.config import compose, to_container
    from no2hotspots.model.net import build_model

    root, params = ingested
    cfg = compose()
    torch.manual_seed(0)
    net = build_model(cfg.model)
    model = tmp_path_factory.mktemp("model")
    torch.save(net.state_dict(), model / "state_dict.pt")
    meta = {
        "model": to_container(cfg.model),
        "input_scale": 1e4,
        "emission_min_t_per_yr": 0.0,
        "emission_max_t_per_yr": 30000.0,
        "pixel_size_m": 5500.0,
        "tile_size": 64,
        "in_channels": 2,
    }
    (model / "model.json").write_text(json.dumps(meta))
    args = ["detect", "--params", str(params), "detect.collection=test", "detect.overlay_inventory=false"]
    assert main([*args, f"detect.model_uri={model}"]) == 0
    return root, model, args


def _bad_model(kind: str, good: Path, d: Path) -> Path:
    bad = d / "model"
    shutil.copytree(good, bad)
    meta = json.loads((bad / "model.json").read_text())
    state = torch.load(bad / "state_dict.pt", weights_only=True)
    if kind == "nan_weights":
        state = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state.items()}
        torch.save(state, bad / "state_dict.pt")
    elif kind == "inf_weight":
        k = next(k for k, v in state.items() if v.is_floating_point())
        state[k].view(-1)[0] = float("inf")
        torch.save(state, bad / "state_dict.pt")
    elif kind == "truncated_state_dict":
        data = (bad / "state_dict.pt").read_bytes()
        (bad / "state_dict.pt").write_bytes(data[: len(data) // 2])
    elif kind == "model_json_not_json":
        (bad / "model.json").write_text("{ not json")
    elif kind == "model_json_without_model":
        meta.pop("model")
        (bad / "model.json").write_text(json.dumps(meta))
    elif kind == "model_json_arbitrary_target":
        meta["model"]["_target_"] = "os.system"
        (bad / "model.json").write_text(json.dumps(meta))
    elif kind == "other_architecture":
        meta["model"]["stages"]["widths"] = [16, 32]
        (bad / "model.json").write_text(json.dumps(meta))
    elif kind == "negative_refine_width":
        meta["model"]["head"]["refine_width"] = -1
        (bad / "model.json").write_text(json.dumps(meta))
    elif kind == "refinement_without_its_weights":  # model.json names a refinement the state dict lacks
        meta["model"]["head"]["refine_width"] = 12
        (bad / "model.json").write_text(json.dumps(meta))
    elif kind == "nan_input_scale":
        meta["input_scale"] = float("nan")
        (bad / "model.json").write_text(json.dumps(meta))
    elif kind == "pickled_module":
        torch.save(torch.nn.Linear(2, 2), bad / "state_dict.pt")  # a pickled module, not a state dict
    return bad


MODEL_CASES = [
    "nan_weights",
    "inf_weight",
    "truncated_state_dict",
    "model_json_not_json",
    "model_json_without_model",
    "model_json_arbitrary_target",
    "other_architecture",
    "negative_refine_width",
    "refinement_without_its_weights",
    "nan_input_scale",
    "pickled_module",
]


@pytest.mark.parametrize("kind", MODEL_CASES)
def test_bad_model(kind, detected, tmp_path, capsys):
    root, good, args = detected
    before = checksums(root / "outputs" / "detect" / "test")
    bad = _bad_model(kind, good, tmp_path)
    rc, lines = run_cli(capsys, *args, f"detect.model_uri={bad}")
    assert_one_line(rc, lines, "detect", str(bad), "model")
    assert checksums(root / "outputs" / "detect" / "test") == before


@pytest.mark.parametrize(
    "override, key",
    [
        ("detect.treshold=0.3", "detect.treshold"),
        ("detect.threshold=1.5", "detect.threshold"),
        ("detect.stride=2.5", "detect.stride"),
        ("detect.collection=../ingest/test", "detect.collection"),
        ("detect.device=tpu", "detect.device"),
        ("detect.resample=bilinear", "detect.resample"),
        ("detect.background_max_mol_m2=-1.0e-5", "detect.background_max_mol_m2"),
        ("detect.background_sigma_km=0", "detect.background_sigma_km"),
        ("detect.background_mask_z=-1", "detect.background_mask_z"),
        ("detect.model_uri=models:/no-such@champion", "no-such"),
        ("foo.bar=1", "foo.bar"),
    ],
)
def test_bad_detect_config(override, key, detected, capsys, tmp_path):
    root, good, args = detected
    before = checksums(root / "outputs" / "detect" / "test")
    rc, lines = run_cli(capsys, *in_params_file([*args, f"detect.model_uri={good}"], override, tmp_path))
    assert_one_line(rc, lines, "detect", key)
    assert checksums(root / "outputs" / "detect" / "test") == before


@pytest.mark.parametrize(
    "override, key",
    [
        ("hybrid.k_sigma=-1", "hybrid.k_sigma"),
        ("hybrid.candidates=mean", "hybrid.candidates"),
        ("hybrid.baseline_sites=maybe", "hybrid.baseline_sites"),
        ("hybrid.merge_km=0", "hybrid.merge_km"),
        ("hybrid.collection=../detect/test", "hybrid.collection"),
    ],
)
def test_bad_hybrid_config(override, key, detected, capsys, tmp_path):
    root, _, args = detected
    before = checksums(root / "outputs")
    params = args[args.index("--params") + 1]
    rc, lines = run_cli(capsys, *in_params_file(["hybrid", "--params", params], override, tmp_path))
    assert_one_line(rc, lines, "hybrid", key)
    assert checksums(root / "outputs") == before


# --- inventories into simulate (CoCO2 layout) ------------------------------------------------------------------


def _coco2(kind: str, good: Path, d: Path) -> tuple[Path, str]:
    df = pd.read_csv(good)
    path = d / f"coco2_{kind}.csv"
    if kind == "duplicated_rows":
        df = pd.concat([df, df.iloc[[5, 17]]], ignore_index=True)
        word = "repeats line"
    elif kind == "latitude_text":
        df["latitude"] = df["latitude"].astype(object)
        df.loc[3, "latitude"] = "north"
        word = "latitude"
    elif kind == "nox_text":
        df["nox_emis_ty"] = df["nox_emis_ty"].astype(object)
        df.loc[3, "nox_emis_ty"] = "n/a"
        word = "nox_emis_ty"
    elif kind == "negative_nox":
        df.loc[3, "nox_emis_ty"] = -5.0
        word = "nox_emis_ty"
    elif kind == "missing_column":
        df = df.drop(columns=["nox_emis_ty"])
        word = "nox_emis_ty"
    elif kind == "longitude_out_of_range":
        df.loc[3, "longitude"] = 270.0
        word = "longitude"
    elif kind == "empty_file":
        path.write_text("")
        return path, "empty"
    df.to_csv(path, index=False)
    return path, word


@pytest.fixture(scope="module")
def simulated(tmp_path_factory, coco2_csv):
    from no2hotspots.config import compose, params_yaml_text

    root = tmp_path_factory.mktemp("bad_sim")
    params = root / "params.yaml"
    cfg = compose(
        [
            f"paths.outputs={root}/outputs",
            "simulate.n_scenes=30",
            "simulate.paper_world.n_scenes=0",
            "simulate.shard_size=10",
            "simulate.workers=1",
            f"simulate.sources.inventory_csv={coco2_csv}",
        ]
    )
    params.write_text(params_yaml_text(cfg))
    assert main(["simulate", "--params", str(params)]) == 0
    return root, params


@pytest.mark.parametrize(
    "kind",
    [
        "duplicated_rows",
        "latitude_text",
        "nox_text",
        "negative_nox",
        "missing_column",
        "longitude_out_of_range",
        "empty_file",
    ],
)
def test_bad_coco2_inventory(kind, simulated, coco2_csv, tmp_path, capsys):
    root, params = simulated
    before = checksums(root / "outputs" / "simulated")
    path, word = _coco2(kind, coco2_csv, tmp_path)
    rc, lines = run_cli(capsys, "simulate", "--params", str(params), f"simulate.sources.inventory_csv={path}")
    assert_one_line(rc, lines, "simulate", path.name)
    assert word in lines[0]
    assert checksums(root / "outputs" / "simulated") == before


@pytest.mark.parametrize(
    "override, key",
    [
        ("simulate.n_scenes=2.5", "simulate.n_scenes"),
        ("simulate.seed=abc", "simulate.seed"),
        ("simulate.splits.train=1.5", "simulate.splits"),
        ("simulate.wind.speed_min=0", "simulate.wind.speed_min"),
        ("simulate.sources.max_per_scene=500", "simulate.sources.max_per_scene"),
        ("simulate.workers=0", "simulate.workers"),
    ],
)
def test_bad_simulate_config(override, key, simulated, capsys, tmp_path):
    root, params = simulated
    before = checksums(root / "outputs" / "simulated")
    rc, lines = run_cli(capsys, *in_params_file(["simulate", "--params", str(params)], override, tmp_path))
    assert_one_line(rc, lines, "simulate", key)
    assert checksums(root / "outputs" / "simulated") == before


# --- composed configuration (no --params): unknown keys and options ---------------------------------------------


@pytest.mark.parametrize(
    "stage, override, key",
    [
        ("detect", "detect.treshold=0.3", "detect.threshold"),
        ("train", "train.epoch=3", "train.epochs"),
        ("evaluate", "foo.bar=1", "foo.bar"),
        ("osse", "osse=no_such_region", "osse"),
        ("score", "score.mark_treshold=0.1", "score.mark_threshold"),
        ("ingest", "ingest.qa_treshold=0.5", "ingest.qa_threshold"),
    ],
)
def test_unknown_keys_name_the_nearest_valid_one(stage, override, key, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, lines = run_cli(capsys, stage, f"paths.outputs={tmp_path}/o", override)
    assert_one_line(rc, lines, stage, key)
    assert not (tmp_path / "o").exists()
