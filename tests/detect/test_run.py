"""The detect stage end to end on hand-made contract grids: products, scaling, errors."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from no2hotspots.detect.hotspots import COLUMNS
from no2hotspots.detect.run import detect_collection, run, settings
from no2hotspots.errors import ConfigError, InputFileError, UserError

from .helpers import META, RampNet, Recorder, loaded_model, make_grid


def _inventory():
    return pd.DataFrame(
        {"lat": [-23.67, 10.0], "lon": [27.61, 10.0], "nox_t_per_yr": [50_000.0, 50_000.0], "id": ["a", "b"]}
    )


def test_products_exist_and_are_valid(tmp_path, detect_cfg):
    grid = tmp_path / "outputs" / "ingest" / "test.nc"
    make_grid(grid, plumes=((30, 40, 3.0e-4), (55, 10, 1.5e-4)), gap=(slice(0, 10), slice(60, 90)))
    s = settings(detect_cfg)
    out = tmp_path / "outputs" / "detect" / "test"
    summary = detect_collection(grid, out, loaded_model(RampNet()), s, collection="test", inventory=_inventory())

    assert sorted(p.name for p in out.iterdir()) == [
        "detect.json",
        "emission.nc",
        "hotspots.csv",
        "hotspots.geojson",
        "map.png",
    ]
    assert not list(out.parent.glob(".test.tmp-*"))  # atomic: no temp folder left

    # RampNet is local: r >= 0.2 exactly where no2 >= 1e-4 -> one region per blob per time step
    df = pd.read_csv(out / "hotspots.csv")
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == 4 and summary["n_hotspots"] == 4
    ds_in = make_grid(None, plumes=((30, 40, 3.0e-4), (55, 10, 1.5e-4)), gap=(slice(0, 10), slice(60, 90)))
    lat, lon = ds_in["lat"].values, ds_in["lon"].values
    first = df[df.time == df.time.iloc[0]].sort_values("peak_rel_emission", ascending=False)
    assert (first.peak_lat.iloc[0], first.peak_lon.iloc[0]) == pytest.approx((lat[30], lon[40]))
    assert (first.peak_lat.iloc[1], first.peak_lon.iloc[1]) == pytest.approx((lat[55], lon[10]))
    no2_peak = float(ds_in["no2"].values[0, 30, 40])
    r_peak = min(max((no2_peak * 1e4 - 0.5) / 2.5, 0), 1)
    assert first.peak_rel_emission.iloc[0] == pytest.approx(r_peak, rel=1e-5)
    assert first.nox_rate_estimate_t_per_yr.iloc[0] == pytest.approx(100 + r_peak * 20000, rel=1e-5)
    assert (df.obs_count == 2).all() and (df.area_km2 > 0).all() and (df.n_cells >= 1).all()

    em = xr.open_dataset(out / "emission.nc")
    assert em["relative_emission"].dims == ("time", "lat", "lon")
    assert em["relative_emission_max"].dims == ("lat", "lon")
    assert em["relative_emission"].attrs["units"] == "1"
    assert em["lat"].attrs["standard_name"] == "latitude"
    assert em.attrs["model_uri"] == s["model_uri"] and em.attrs["run_id"] == META["run_id"]
    assert em.attrs["model_version"] == "3" and em.attrs["threshold"] == pytest.approx(0.2)
    assert "ESTIMATE" in em.attrs["nox_estimate_note"]
    rel = em["relative_emission"].values
    assert np.isnan(rel[:, 0:10, 60:90]).all()  # mask_invalid: no input -> NaN
    assert np.nanmax(rel) <= 1 and np.nanmin(rel) >= 0
    assert set(np.unique(em["hotspot_id"].values)) == {0, 1, 2, 3, 4}
    em.close()

    gj = json.loads((out / "hotspots.geojson").read_text())
    assert gj["type"] == "FeatureCollection" and len(gj["features"]) == 4
    f = gj["features"][0]
    assert f["geometry"]["type"] == "Point" and set(COLUMNS) <= set(f["properties"])
    assert f["geometry"]["coordinates"] == [f["properties"]["peak_lon"], f["properties"]["peak_lat"]]
    assert "ESTIMATE" in gj["metadata"]["columns"]["nox_rate_estimate_t_per_yr"]

    summary_file = json.loads((out / "detect.json").read_text())
    for key in ("model_uri", "model_name", "model_version", "run_id", "n_hotspots", "threshold"):
        assert key in summary_file
    assert summary_file["n_hotspots"] == 4 and summary_file["inventory_sources_in_bbox"] == 1

    img = matplotlib.image.imread(out / "map.png")
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200 and img[..., :3].std() > 0.05


def test_input_is_exactly_prepare_input(tmp_path, detect_cfg):
    """The net receives exactly prepare_input(no2, valid, input_scale) of the tile (training scaling and mask)."""
    from no2hotspots.model.inputs import prepare_input

    ds = make_grid(tmp_path / "g.nc", ny=64, nx=64, nt=1, gap=(slice(5, 9), slice(5, 30)))
    ds["coverage"][0, 40:44, 40:44] = 0.0  # finite NO2 but no coverage: invalid too
    ds.to_netcdf(tmp_path / "g2.nc")
    rec = Recorder(RampNet())
    detect_collection(tmp_path / "g2.nc", tmp_path / "out", loaded_model(rec), settings(detect_cfg), collection="t")
    assert len(rec.inputs) == 1 and rec.inputs[0].shape == (1, 2, 64, 64)
    valid = np.isfinite(ds["no2"].values) & (ds["coverage"].values > 0)
    expected = prepare_input(ds["no2"].values, valid, META["input_scale"])
    assert torch.equal(rec.inputs[0], expected)
    assert rec.inputs[0][0, 1, 40:44, 40:44].sum() == 0 and rec.inputs[0][0, 0, 40:44, 40:44].abs().sum() == 0


@pytest.mark.parametrize("which", ["demo", "paper"])
def test_real_model_architectures_run_on_a_small_grid(tmp_path, which):
    from no2hotspots.config import compose
    from no2hotspots.model.net import build_model

    cfg = compose([f"model={which}", f"paths.outputs={tmp_path}", "detect.overlay_inventory=false"])
    torch.manual_seed(0)
    net = build_model(cfg.model)
    make_grid(tmp_path / "g.nc", ny=40, nx=100, nt=1)
    s = settings(cfg)
    summary = detect_collection(tmp_path / "g.nc", tmp_path / "out", loaded_model(net), s, collection="g")
    em = xr.open_dataset(tmp_path / "out" / "emission.nc")
    r = em["relative_emission"].values
    assert r.shape == (1, 40, 100) and np.isfinite(r).all() and (r >= 0).all() and (r <= 1).all()
    assert summary["tiles_run"] == 3  # 40 rows padded to one tile; columns 0, 32, 36
    em.close()


def test_missing_ingest_file_is_a_one_line_error(tmp_path, detect_cfg):
    with pytest.raises(InputFileError) as e:
        run(detect_cfg)
    msg = str(e.value)
    assert "\n" not in msg and "test.nc" in msg and "ingest" in msg


def test_cli_reports_a_missing_ingest_file_in_one_line(tmp_path, capsys):
    from omegaconf import OmegaConf

    from no2hotspots.cli import main
    from no2hotspots.config import compose

    params = tmp_path / "params.yaml"
    OmegaConf.save(compose([f"paths.outputs={tmp_path}/o"]), params)
    rc = main(["--params", str(params), "detect", "detect.collection=nowhere"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "nowhere.nc" in err


def test_coarse_grid_is_refused(tmp_path, detect_cfg):
    make_grid(tmp_path / "coarse.nc", ny=20, nx=20, nt=1, res=0.25)
    with pytest.raises(InputFileError, match="max_resolution_ratio"):
        detect_collection(
            tmp_path / "coarse.nc", tmp_path / "o", loaded_model(RampNet()), settings(detect_cfg), collection="c"
        )
    assert not (tmp_path / "o").exists()


def test_bad_config_values_name_the_key(detect_cfg):
    from omegaconf import OmegaConf

    for key, value in (("stride", 0), ("threshold", 1.5), ("window_floor", 0), ("min_cells", 0)):
        cfg = OmegaConf.merge(detect_cfg, {"detect": {key: value}})
        with pytest.raises(ConfigError, match=f"detect.{key}"):
            settings(cfg)


def test_not_a_grid_is_a_one_line_error(tmp_path, detect_cfg):
    bad = tmp_path / "bad.nc"
    xr.Dataset({"x": ("a", [1, 2])}).to_netcdf(bad)
    with pytest.raises(UserError, match="missing variable"):
        detect_collection(bad, tmp_path / "o", loaded_model(RampNet()), settings(detect_cfg), collection="b")


@pytest.mark.slow  # MLflow import + tracking store set-up: ~10-45 s on the shared 2 cores
def test_run_stage_end_to_end_with_load_model(tmp_path, detect_cfg):
    """run(cfg): load_model (here from a local model folder: model.json + state dict) -> every collection's products."""
    from omegaconf import OmegaConf

    from no2hotspots.model.net import build_model

    torch.manual_seed(0)
    model_cfg = OmegaConf.to_container(detect_cfg.model, resolve=True)
    net = build_model(model_cfg)
    mdir = tmp_path / "model"
    mdir.mkdir()
    torch.save(net.state_dict(), mdir / "state_dict.pt")
    (mdir / "model.json").write_text(json.dumps({**META, "model": model_cfg}))
    make_grid(tmp_path / "outputs" / "ingest" / "test.nc", ny=50, nx=70, nt=1)
    make_grid(tmp_path / "outputs" / "ingest" / "other.nc", ny=30, nx=30, nt=2)
    cfg = OmegaConf.merge(
        detect_cfg, {"detect": {"model_uri": str(mdir), "collections": ["test", "other"], "overlay_inventory": False}}
    )
    out = run(cfg)
    assert set(out) == {"test", "other"}
    for name, nt in (("test", 1), ("other", 2)):
        d = tmp_path / "outputs" / "detect" / name
        summary = json.loads((d / "detect.json").read_text())
        assert summary["model_uri"] == str(mdir) and summary["n_time"] == nt
        em = xr.open_dataset(d / "emission.nc")
        # the stitched map of a 1-tile grid is exactly the loaded net's prediction on prepare_input's tile
        if name == "other":
            from no2hotspots.model.inputs import prepare_input

            g = xr.open_dataset(tmp_path / "outputs" / "ingest" / "other.nc")
            no2 = np.full((2, 64, 64), np.nan, np.float32)
            no2[:, :30, :30] = g["no2"].values
            with torch.no_grad():
                ref = net.eval()(prepare_input(no2, np.isfinite(no2), META["input_scale"])).numpy()[:, :30, :30]
            assert np.allclose(em["relative_emission"].values, ref, atol=1e-6)
            g.close()
        em.close()
