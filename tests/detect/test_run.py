"""The detect stage end to end on hand-made contract collections: products, scaling, units, errors."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from omegaconf import OmegaConf

from no2hotspots.contracts.detections import COLUMNS
from no2hotspots.detect.run import detect_collection, run, settings
from no2hotspots.errors import ConfigError, InputFileError, UserError

from .helpers import META, RampNet, Recorder, loaded_model, make_grid

PLUMES = ((30, 40, 3.0e-4), (55, 10, 1.5e-4))
GAP = (slice(0, 10), slice(60, 90))


def _inventory():
    return pd.DataFrame(
        {"lat": [-23.67, 10.0], "lon": [27.61, 10.0], "nox_t_per_yr": [50_000.0, 50_000.0], "id": ["a", "b"]}
    )


def _detect(cfg, folder, model, inventory=None, name="test"):
    return detect_collection(cfg, name, folder, loaded_model(model), settings(cfg), "test-uri", inventory)


def test_products_exist_and_are_valid(tmp_path, detect_cfg):
    folder = tmp_path / "outputs" / "ingest" / "test"
    ds_in = make_grid(folder, plumes=PLUMES, gap=GAP)
    summary = _detect(detect_cfg, folder, RampNet(), _inventory())
    out = tmp_path / "outputs" / "detect" / "test"
    assert sorted(p.name for p in out.iterdir()) == [
        "composite.csv",
        "detect.json",
        "hotspots.csv",
        "hotspots.geojson",
        "map.png",
        "overpasses",
        "period.nc",
    ]
    assert sorted(p.name for p in (out / "overpasses").iterdir()) == ["granule_000.nc", "granule_001.nc"]
    assert not list(out.parent.glob(".test.tmp-*"))  # atomic: no temp folder left

    # RampNet is local: r >= 0.2 exactly where no2 >= 1e-4 -> one region per blob per overpass
    df = pd.read_csv(out / "hotspots.csv")
    assert list(df.columns) == list(COLUMNS) and list(df.hotspot_id) == [1, 2, 3, 4]
    assert len(df) == 4 and summary["n_hotspots"] == 4 and summary["units_computed"] == 2
    lat, lon = ds_in["lat"].values, ds_in["lon"].values
    first = df[df.overpass == "granule_000"].sort_values("overpass_hotspot")
    assert (first.peak_lat.iloc[0], first.peak_lon.iloc[0]) == pytest.approx((lat[30], lon[40]))
    assert (first.peak_lat.iloc[1], first.peak_lon.iloc[1]) == pytest.approx((lat[55], lon[10]))
    r_peak = min(max((float(ds_in["no2"].values[0, 30, 40]) * 1e4 - 0.5) / 2.5, 0), 1)
    assert first.peak_rel_emission.iloc[0] == pytest.approx(r_peak, rel=1e-5)
    assert first.nox_rate_estimate_t_per_yr.iloc[0] == pytest.approx(100 + r_peak * 20000, rel=1e-5)
    assert (df.obs_count == 2).all() and (df.area_km2 > 0).all() and (df.n_cells >= 1).all()
    # cells to the nearest unobserved one: the gap (rows 0-9, columns 60-89) for the first, the grid's west edge for
    # the second (beyond the grid is unobserved)
    assert list(first.gap_cells) == [21, 11]

    em = xr.open_dataset(out / "overpasses" / "granule_000.nc")
    assert em["relative_emission"].dims == ("lat", "lon") and em["relative_emission"].attrs["units"] == "1"
    assert em["relative_emission"].attrs["grid_mapping"] == "crs" and em["lat"].attrs["standard_name"] == "latitude"
    rel = em["relative_emission"].values
    assert np.isnan(rel[0:10, 60:90]).all() and np.nanmax(rel) <= 1 and np.nanmin(rel) >= 0  # mask_invalid
    assert set(np.unique(em["hotspot_id"].values)) == {0, 1, 2}
    # the test field's background lies inside the training range: nothing taken off, and the file and table say so
    assert em.attrs["background_shift_max_mol_m2"] == 0.0 and (df.background_shift_mol_m2 == 0.0).all()
    em.close()
    period = xr.open_dataset(out / "period.nc")
    assert int(period["n_detections"].values[30, 40]) == 2 and int(period["n_valid"].values[0, 70]) == 0
    assert float(period["relative_emission_max"].values[30, 40]) == pytest.approx(r_peak, rel=1e-5)
    period.close()

    gj = json.loads((out / "hotspots.geojson").read_text())
    f = gj["features"][0]
    assert len(gj["features"]) == 4 and f["geometry"]["type"] == "Point" and set(COLUMNS) <= set(f["properties"])
    assert f["geometry"]["coordinates"] == [f["properties"]["peak_lon"], f["properties"]["peak_lat"]]
    assert "ESTIMATE" in gj["metadata"]["columns"]["nox_rate_estimate_t_per_yr"]
    summary_file = json.loads((out / "detect.json").read_text())
    for key in ("model_uri", "model_name", "model_version", "run_id", "n_hotspots", "threshold"):
        assert key in summary_file
    img = matplotlib.image.imread(out / "map.png")
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200 and img[..., :3].std() > 0.05


def test_a_rerun_computes_no_overpass_twice_and_gives_identical_files(tmp_path, detect_cfg):
    folder = tmp_path / "outputs" / "ingest" / "test"
    make_grid(folder, plumes=PLUMES, nt=3)
    first = _detect(detect_cfg, folder, RampNet())
    out = tmp_path / "outputs" / "detect" / "test"
    before = {p.name: p.read_bytes() for p in (out / "overpasses").iterdir()}
    before["hotspots.csv"] = (out / "hotspots.csv").read_bytes()
    second = _detect(detect_cfg, folder, RampNet())
    assert (first["units_computed"], second["units_computed"], second["units_reused"]) == (3, 0, 3)
    after = {p.name: p.read_bytes() for p in (out / "overpasses").iterdir()}
    after["hotspots.csv"] = (out / "hotspots.csv").read_bytes()
    assert after == before
    # another threshold is another unit hash: everything is recomputed
    other = OmegaConf.merge(detect_cfg, {"detect": {"threshold": 0.5}})
    assert _detect(other, folder, RampNet())["units_computed"] == 3


def test_input_is_exactly_prepare_input(tmp_path, detect_cfg):
    """The net receives exactly prepare_input(no2, valid, input_scale) of the tile (training scaling and mask)."""
    from no2hotspots.contracts import grid as contract
    from no2hotspots.model.inputs import prepare_input

    folder = tmp_path / "g"
    ds = make_grid(folder, ny=64, nx=64, nt=1, gap=(slice(5, 9), slice(5, 30)))
    path = contract.overpass_path(folder, "granule_000")
    one = xr.open_dataset(path).load()
    one["coverage"][40:44, 40:44] = 0.0  # finite NO2 but no coverage: invalid too
    path.unlink()
    one.to_netcdf(path)
    rec = Recorder(RampNet())
    _detect(detect_cfg, folder, rec, name="t")
    assert len(rec.inputs) == 1 and rec.inputs[0].shape == (1, 2, 64, 64)
    valid = np.isfinite(ds["no2"].values) & (one["coverage"].values[None] > 0)
    expected = prepare_input(ds["no2"].values, valid, META["input_scale"])
    assert torch.equal(rec.inputs[0], expected)
    assert rec.inputs[0][0, 1, 40:44, 40:44].sum() == 0 and rec.inputs[0][0, 0, 40:44, 40:44].abs().sum() == 0


@pytest.mark.parametrize("which", ["demo", "paper"])
def test_real_model_architectures_run_on_a_small_grid(tmp_path, which):
    from no2hotspots.config import compose
    from no2hotspots.model.net import build_model

    over = [f"model={which}", f"paths.outputs={tmp_path}", "detect.overlay_inventory=false", "detect.tiling=blend"]
    cfg = compose(over)  # the paper's tiles with either network (auto runs the demo one as context: tested below)
    torch.manual_seed(0)
    make_grid(tmp_path / "g", ny=40, nx=100, nt=1)
    summary = _detect(cfg, tmp_path / "g", build_model(cfg.model), name="g")
    em = xr.open_dataset(tmp_path / "detect" / "g" / "overpasses" / "granule_000.nc")
    r = em["relative_emission"].values
    assert r.shape == (40, 100) and np.isfinite(r).all() and (r >= 0).all() and (r <= 1).all()
    assert summary["tiles_run"] == 3  # 40 rows padded to one tile; columns 0, 32, 36
    em.close()


def test_context_tiling_runs_fully_convolutional_models_and_refuses_others(tmp_path):
    """tiling=context: the demo network (ShuffleHead) maps whole windows; the paper's FC head cannot (one-line
    error naming the key), nor can a margin short of the network's receptive field or off its alignment."""
    from no2hotspots.config import compose
    from no2hotspots.model.net import build_model

    make_grid(tmp_path / "g", ny=40, nx=100, nt=1)
    for which in ("demo", "paper"):
        cfg = compose([f"model={which}", f"paths.outputs={tmp_path}", "detect.overlay_inventory=false"])
        cfg.detect.tiling = "context"
        torch.manual_seed(0)
        net = build_model(cfg.model)
        if which == "paper":
            with pytest.raises(UserError, match="detect.tiling: context needs a fully convolutional model") as e:
                _detect(cfg, tmp_path / "g", net, name="g")
            assert "\n" not in str(e.value) and "FCHead" in str(e.value)
            continue
        summary = _detect(cfg, tmp_path / "g", net, name="g")
        em = xr.open_dataset(tmp_path / "detect" / "g" / "overpasses" / "granule_000.nc")
        r = em["relative_emission"].values
        assert r.shape == (40, 100) and np.isfinite(r).all() and (r >= 0).all() and (r <= 1).all()
        assert summary["tiles_run"] == 1  # one 128-cell core (+ 48 cells of margin) holds the whole 40 x 100 grid
        em.close()
        for key, value, problem in (("margin", 8, "receptive radius"), ("core", 100, "alignment 8")):
            bad = compose([f"model={which}", f"paths.outputs={tmp_path}/b", "detect.overlay_inventory=false"])
            bad.detect.tiling = "context"
            bad.detect.context[key] = value
            with pytest.raises(UserError, match=f"detect.context.{key}: .*{problem}"):
                _detect(bad, tmp_path / "g", net, name="g2")


def test_auto_tiling_is_context_for_fully_convolutional_models_and_blend_otherwise(tmp_path):
    """tiling=auto (the default) runs what the model can: the demo network (ShuffleHead) the context pass, the
    paper's FC head the blended tiles; the maps equal those of the explicit setting and detect.json names it."""
    from no2hotspots.config import compose
    from no2hotspots.model.net import build_model

    make_grid(tmp_path / "g", ny=40, nx=100, nt=1)
    assert compose([]).detect.tiling == "auto"
    maps = {}
    for which, tilings in (("demo", ("auto", "context", "blend")), ("paper", ("auto", "blend"))):
        torch.manual_seed(0)
        net = build_model(compose([f"model={which}"]).model)
        for tiling in tilings:
            out = tmp_path / f"{which}_{tiling}"
            cfg = compose([f"model={which}", f"paths.outputs={out}", "detect.overlay_inventory=false"])
            cfg.detect.tiling = tiling
            _detect(cfg, tmp_path / "g", net, name="g")
            with xr.open_dataset(out / "detect" / "g" / "overpasses" / "granule_000.nc") as em:
                maps[which, tiling] = em["relative_emission"].values
            ran = json.loads((out / "detect" / "g" / "detect.json").read_text())["params"]["tiling"]
            assert ran == (tilings[1] if tiling == "auto" else tiling)
    np.testing.assert_array_equal(maps["demo", "auto"], maps["demo", "context"])
    np.testing.assert_array_equal(maps["paper", "auto"], maps["paper", "blend"])
    # the two tilings give different maps on this grid, so the equalities above tell them apart
    assert np.nanmax(np.abs(maps["demo", "context"] - maps["demo", "blend"])) > 1e-4


def test_missing_ingest_collection_is_a_one_line_error(tmp_path, detect_cfg):
    with pytest.raises(InputFileError) as e:
        run(detect_cfg)
    msg = str(e.value)
    assert "\n" not in msg and "test/grid.nc" in msg and "ingest" in msg


def test_cli_reports_a_missing_collection_in_one_line(tmp_path, capsys):
    from no2hotspots.cli import main

    rc = main(["detect", f"paths.outputs={tmp_path}/o", "detect.collection=nowhere"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "nowhere/grid.nc" in err


@pytest.mark.parametrize("name", ["../ingest/matimba", "a/b", "..", ""])
def test_collection_names_must_be_plain(tmp_path, detect_cfg, name):
    cfg = OmegaConf.merge(detect_cfg, {"detect": {"collection": name or None, "collections": [name] if name else []}})
    with pytest.raises(ConfigError, match="detect.collection"):
        run(cfg)


def test_coarse_grid_is_refused(tmp_path, detect_cfg):
    make_grid(tmp_path / "coarse", ny=20, nx=20, nt=1, res=0.25)
    with pytest.raises(InputFileError, match="max_resolution_ratio"):
        _detect(detect_cfg, tmp_path / "coarse", RampNet(), name="c")
    assert not (tmp_path / "outputs" / "detect" / "c").exists()
    resampled = OmegaConf.merge(detect_cfg, {"detect": {"resample": "model_pixel"}})
    with pytest.raises(InputFileError, match="max_resolution_ratio") as e:  # too coarse for resampling as well
        _detect(resampled, tmp_path / "coarse", RampNet(), name="c")
    assert "resample" not in str(e.value)


def test_a_fine_grid_is_refused_as_it_is_and_averaged_onto_the_model_pixel_with_resample(tmp_path, detect_cfg):
    """0.01 deg cells (1.1 km, 5x finer than the 5.5 km pixel): refused with a hint; detect.resample=model_pixel
    averages them onto the pixel and finds the plume on the fine grid."""
    ds = make_grid(tmp_path / "fine", ny=200, nx=220, nt=1, res=0.01, plumes=((100, 110, 1.0e-3),), seed=2)
    with pytest.raises(InputFileError, match="max_resolution_ratio.*or set detect.resample=model_pixel") as e:
        _detect(detect_cfg, tmp_path / "fine", RampNet(), name="f")
    assert "\n" not in str(e.value)
    cfg = OmegaConf.merge(detect_cfg, {"detect": {"resample": "model_pixel"}})
    summary = _detect(cfg, tmp_path / "fine", RampNet(), name="f")
    hot = pd.read_csv(tmp_path / "outputs" / "detect" / "f" / "hotspots.csv")
    assert summary["grid_shape"] == [200, 220] and len(hot) >= 1
    top = hot.loc[hot["peak_rel_emission"].idxmax()]
    lat, lon = float(ds["lat"][100]), float(ds["lon"][110])
    assert abs(top.peak_lat - lat) < 0.05 and abs(top.peak_lon - lon) < 0.08  # within a model pixel of the plume


def test_bad_config_values_name_the_key(detect_cfg):
    for key, value in (
        ("stride", 0),
        ("threshold", 1.5),
        ("window_floor", 0),
        ("min_cells", 0),
        ("edge_cells", -1),
        ("edge_cells", 0.5),
        ("min_gap_cells_shifted", -1),
        ("min_gap_cells_shifted", 1.5),
        ("gap_shift_min_mol_m2", -1.0e-5),
        ("gap_shift_min_mol_m2", "3e-5"),
        ("stride", 2.5),
        ("tiling", "tiles"),
        ("resample", "bilinear"),
        ("context.core", 0),
        ("context.margin", -8),
        ("background_max_mol_m2", -1.0e-5),
        ("background_max_mol_m2", "3e-5"),
        ("background_sigma_km", 0),
        ("background_mask_z", -1.0),
        ("background_mask_z", "2.33"),
    ):
        cfg = OmegaConf.merge(detect_cfg, {})
        OmegaConf.update(cfg, f"detect.{key}", value)
        with pytest.raises(ConfigError, match=f"detect.{key}"):
            settings(cfg)
    for key, value in (
        ("rule", "median"),
        ("recurrence.alpha", 0),
        ("recurrence.alpha", 1.5),
        ("recurrence.min_peaks", 0),
        ("recurrence.separation_cells", 0),
        ("recurrence.level", 0),
        ("recurrence.level", 1.5),
        ("recurrence.level", True),
        ("recurrence.level", "0.1"),
        ("recurrence.position", "peak"),
        ("recurrence.ring_cells", 1),
        ("recurrence.ring_cells", -2),
        ("recurrence.ring_cells", 2.5),
        ("recurrence.downwind.alpha", 0),
        ("recurrence.downwind.alpha", "0.01"),
        ("recurrence.downwind.radius_km", 0),
        ("recurrence.downwind.half_angle_deg", 180),
    ):
        cfg = OmegaConf.merge(detect_cfg, {})
        OmegaConf.update(cfg, f"detect.composite.{key}", value)
        with pytest.raises(ConfigError, match=f"detect.composite.{key}"):
            settings(cfg)


def test_the_downwind_test_needs_the_maxima_it_tests(detect_cfg):
    cfg = OmegaConf.merge(detect_cfg, {})
    OmegaConf.update(cfg, "detect.composite.recurrence.level", None)
    OmegaConf.update(cfg, "detect.composite.recurrence.downwind.alpha", 0.01)
    with pytest.raises(ConfigError, match="detect.composite.recurrence.downwind.alpha: needs recurrence.level"):
        settings(cfg)
    OmegaConf.update(cfg, "detect.composite.recurrence.downwind.alpha", None)
    assert settings(cfg)["composite"]["recurrence"]["downwind"]["alpha"] is None


def test_not_a_grid_is_a_one_line_error(tmp_path, detect_cfg):
    bad = tmp_path / "bad"
    bad.mkdir()
    xr.Dataset({"x": ("a", [1, 2])}).to_netcdf(bad / "grid.nc")
    with pytest.raises(UserError, match="missing variable"):
        _detect(detect_cfg, bad, RampNet(), name="b")


@pytest.mark.slow  # MLflow import + tracking store set-up: ~10-45 s on the shared 2 cores
def test_run_stage_end_to_end_with_a_local_model_folder(tmp_path, detect_cfg):
    """run(cfg): load_model (a local model folder: model.json + state dict) -> every collection's products; the
    stitched map of a one-tile grid is exactly the net's prediction on prepare_input's tile."""
    from no2hotspots.model.inputs import prepare_input
    from no2hotspots.model.net import build_model

    torch.manual_seed(0)
    model_cfg = OmegaConf.to_container(detect_cfg.model, resolve=True)
    net = build_model(model_cfg).eval()
    mdir = tmp_path / "model"
    mdir.mkdir()
    torch.save(net.state_dict(), mdir / "state_dict.pt")
    (mdir / "model.json").write_text(json.dumps({**META, "model": model_cfg}))
    make_grid(tmp_path / "outputs" / "ingest" / "test", ny=50, nx=70, nt=1)
    other = make_grid(tmp_path / "outputs" / "ingest" / "other", ny=30, nx=30, nt=2)
    cfg = OmegaConf.merge(
        detect_cfg,
        {"detect": {"model_uri": str(mdir), "collections": ["test", "other"], "overlay_inventory": False}},
        {"detect": {"tiling": "blend"}},  # one 64x64 tile (auto would run this ShuffleHead net as one context window)
    )
    out = run(cfg)
    assert set(out) == {"test", "other"} and out["other"]["n_overpasses"] == 2
    em = xr.open_dataset(tmp_path / "outputs" / "detect" / "other" / "overpasses" / "granule_001.nc")
    no2 = np.full((1, 64, 64), np.nan, np.float32)
    no2[0, :30, :30] = other["no2"].values[1]
    with torch.no_grad():
        expected = net(prepare_input(no2, np.isfinite(no2), META["input_scale"])).numpy()[0, :30, :30]
    np.testing.assert_allclose(em["relative_emission"].values, expected, rtol=1e-5, atol=1e-6)
    em.close()


def _faint_source_and_one_off_blob(folder):
    """Ten overpasses of a faint source at cell (30, 40), and a strong blob at (55:57, 10:12) in granule_004 only."""
    from no2hotspots.contracts import grid as contract

    ds = make_grid(folder, nt=10, plumes=((30, 40, 0.6e-4),))
    blob = contract.overpass_path(folder, "granule_004")
    one = xr.open_dataset(blob).load()
    one["no2"][55:57, 10:12] = 3.0e-4
    blob.unlink()
    one.to_netcdf(blob)
    return ds


def test_composite_finds_a_faint_repeated_source_and_drops_a_one_off_alarm(tmp_path, detect_cfg):
    """Ten overpasses: a faint source (r ~ 0.1, below the per-overpass 0.2) in every one, a strong blob in one
    only. Per overpass: the strong blob once, the faint source never; composite (rule mean): the faint source, not
    the blob. (The recurrence rule needs per-overpass peaks: it finds neither, the blob's single peak is no site.)"""
    from omegaconf import OmegaConf

    OmegaConf.update(detect_cfg, "detect.composite.rule", "mean")

    folder = tmp_path / "outputs" / "ingest" / "test"
    ds = _faint_source_and_one_off_blob(folder)
    _detect(detect_cfg, folder, RampNet())
    out = tmp_path / "outputs" / "detect" / "test"
    per_overpass = pd.read_csv(out / "hotspots.csv")
    assert len(per_overpass) == 1 and per_overpass.overpass.iloc[0] == "granule_004"
    comp = pd.read_csv(out / "composite.csv")
    lat, lon = ds["lat"].values, ds["lon"].values
    res = abs(float(lat[1] - lat[0]))
    assert len(comp) == 1  # at the source: the centroid of the plume's top half lies within a cell of it
    assert abs(comp.peak_lat.iloc[0] - lat[30]) <= res and abs(comp.peak_lon.iloc[0] - lon[40]) <= res
    assert comp.n_valid.iloc[0] == 10 and comp.n_detections.iloc[0] == 0 and comp.peak_value.iloc[0] > 0.03
    assert json.loads((out / "detect.json").read_text())["n_composite_hotspots"] == 1


def test_recurrence_composite_is_the_cell_where_the_overpass_peaks_recur(tmp_path, detect_cfg):
    """detect.composite.rule=recurrence end to end: a source strong enough for a hotspot in each of ten overpasses
    gives one composite site, at the cell holding its peaks; period.nc counts every hotspot peak once."""
    from omegaconf import OmegaConf

    from no2hotspots.contracts import detections

    OmegaConf.update(detect_cfg, "detect.composite.rule", "recurrence")
    folder = tmp_path / "outputs" / "ingest" / "test"
    make_grid(folder, nt=10, plumes=((30, 40, 3.0e-4),))
    _detect(detect_cfg, folder, RampNet())
    out = tmp_path / "outputs" / "detect" / "test"
    hot = pd.read_csv(out / "hotspots.csv")
    assert hot.overpass.nunique() == 10
    period = detections.open_period(out)
    assert int(period["n_peaks"].sum()) == len(hot)
    comp = pd.read_csv(out / "composite.csv")
    top = hot.groupby(["peak_lat", "peak_lon"]).size().idxmax()
    assert len(comp) == 1 and (comp.peak_lat.iloc[0], comp.peak_lon.iloc[0]) == pytest.approx(top)
    n_top = hot.groupby(["peak_lat", "peak_lon"]).size().max()
    assert comp.peak_value.iloc[0] == pytest.approx(n_top / comp.n_valid.iloc[0]) and comp.n_valid.iloc[0] == 10


def test_recurrence_of_local_maxima_finds_the_faint_repeated_source_hotspot_peaks_miss(tmp_path, detect_cfg):
    """The faint source of the test above (r ~ 0.1 in each of ten overpasses, never a hotspot) and the one-off
    blob: with hotspot peaks the recurrence rule finds neither; with recurrence.level 0.05 it counts every local
    maximum >= 0.05 (period.nc n_maxima) and finds the faint source, not the blob."""
    from omegaconf import OmegaConf

    from no2hotspots.contracts import detections

    OmegaConf.update(detect_cfg, "detect.composite.rule", "recurrence")
    OmegaConf.update(detect_cfg, "detect.composite.recurrence.level", 0.05)
    folder = tmp_path / "outputs" / "ingest" / "test"
    ds = _faint_source_and_one_off_blob(folder)
    _detect(detect_cfg, folder, RampNet())
    out = tmp_path / "outputs" / "detect" / "test"
    assert len(pd.read_csv(out / "hotspots.csv")) == 1  # the blob, once
    period = detections.open_period(out)
    assert int(period["n_peaks"].sum()) == 1 and int(period["n_maxima"].max()) == 10
    assert "0.05" in period["n_maxima"].attrs["long_name"]
    comp = pd.read_csv(out / "composite.csv")
    lat, lon = ds["lat"].values, ds["lon"].values
    res = abs(float(lat[1] - lat[0]))
    assert len(comp) == 1 and comp.peak_value.iloc[0] == pytest.approx(1.0)
    assert abs(comp.peak_lat.iloc[0] - lat[30]) <= res and abs(comp.peak_lon.iloc[0] - lon[40]) <= res
    OmegaConf.update(detect_cfg, "detect.composite.recurrence.level", None)
    OmegaConf.update(detect_cfg, "detect.composite.recurrence.downwind.alpha", None)
    _detect(detect_cfg, folder, RampNet())
    assert len(pd.read_csv(out / "composite.csv")) == 0
    assert "n_maxima" not in detections.open_period(out)
