import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from omegaconf import OmegaConf

from no2hotspots.config import compose
from no2hotspots.errors import ConfigError
from no2hotspots.contracts.shards import open_split, shard_paths
from no2hotspots.simulate.run import run
from no2hotspots.simulate.settings import from_config

CONTRACT_VARS = {
    "no2",
    "valid",
    "emission",
    "scene_id",
    "wind_speed",
    "wind_from_direction",
    "stability_class",
    "no2_lifetime",
    "cloud_fraction",
    "noise_std",
    "background_mean",
    "n_sources",
    "emission_class",
    "source_row",
    "source_col",
    "source_nox_rate",
    "source_no2_rate",
    "source_rel_emission",
}


def _hashes(root):
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def two_runs(sim_overrides, tmp_path_factory):
    out = {}
    for w in (1, 2):
        d = tmp_path_factory.mktemp(f"w{w}") / "simulated"
        run(compose(sim_overrides + [f"paths.simulated={d}", f"simulate.workers={w}"]))
        out[w] = d
    return out


def test_same_seed_byte_identical_for_any_worker_count(two_runs):
    h1, h2 = _hashes(two_runs[1]), _hashes(two_runs[2])
    assert len(h1) == 1 + 5 + 1 + 1  # manifest + train 42 (5 shards of <=10) + val 8 + test 10
    assert h1 == h2


def test_different_seed_differs(sim_overrides, two_runs, tmp_path):
    d = tmp_path / "sim"
    run(compose(sim_overrides + [f"paths.simulated={d}", "seed=7", "simulate.n_scenes=6", "simulate.shard_size=10"]))
    a = xr.open_dataset(shard_paths(d, "train")[0]).no2.values
    b = xr.open_dataset(shard_paths(two_runs[1], "train")[0]).no2.values[: a.shape[0]]
    assert not np.array_equal(np.nan_to_num(a), np.nan_to_num(b))


def test_splits_disjoint_and_contract(two_runs, population):
    d = two_runs[1]
    man = json.loads((d / "manifest.json").read_text())
    assert {s: man["splits"][s]["n_scenes"] for s in ("train", "val", "test")} == {"train": 42, "val": 8, "test": 10}
    ids = {}
    for split in ("train", "val", "test"):
        ds = open_split(d, split)
        assert set(ds.data_vars) >= CONTRACT_VARS
        assert ds.sizes["scene"] == man["splits"][split]["n_scenes"]
        assert ds.sizes["y"] == ds.sizes["x"] == 64 and ds.sizes["source"] == 4
        assert ds.no2.dtype == np.float32 and ds.valid.dtype == np.uint8 and ds.emission.dtype == np.float32
        assert ds.scene_id.dtype == np.int64 and ds.stability_class.dtype == np.int8
        assert ds.no2.attrs["units"] == "mol m-2" and ds.wind_speed.attrs["standard_name"] == "wind_speed"
        assert ds.stability_class.attrs["flag_meanings"] == "A B C D E F"
        assert np.array_equal(np.isnan(ds.no2.values), ds.valid.values == 0)
        ids[split] = set(ds.scene_id.values.tolist())
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])
    assert set().union(*ids.values()) == set(range(60))
    with xr.open_dataset(shard_paths(d, "test")[0]) as ds:
        for key in (
            "emission_min_t_per_yr",
            "emission_max_t_per_yr",
            "input_scale",
            "pixel_size_m",
            "footprint_px",
            "split",
            "seed",
            "shard",
        ):
            assert key in ds.attrs, key
        assert ds.attrs["Conventions"] == "CF-1.10" and ds.attrs["split"] == "test"
        # the normalisation is that of the CoCO2 population (its smallest site >= simulate.sources.min_nox_t_per_yr)
        assert ds.attrs["emission_min_t_per_yr"] == population.emission_min and "history" not in ds.attrs
        assert ds.attrs["emission_max_t_per_yr"] == population.emission_max
        r = (ds.source_nox_rate - ds.attrs["emission_min_t_per_yr"]) / (
            ds.attrs["emission_max_t_per_yr"] - ds.attrs["emission_min_t_per_yr"]
        )
        np.testing.assert_allclose(r.values, ds.source_rel_emission.values, rtol=1e-4, atol=1e-6)
        scaled = ds.no2.values * ds.attrs["input_scale"]
        assert 0.05 < np.nanmedian(scaled) < 5  # model inputs O(0.1-3)


@pytest.mark.parametrize(
    "override, key",
    [
        ("simulate.wind.speed_min=-1", "simulate.wind.speed_min"),
        ("+simulate.stability.weights.G=0.1", "simulate.stability.weights.G"),
        ("simulate.sources.max_per_scene=100", "simulate.sources.max_per_scene"),
        ("simulate.splits.test=0.3", "simulate.splits"),
        ("simulate.clouds.fraction_max=1.5", "simulate.clouds.fraction_max"),
        ("simulate.sources.footprint_px=0", "simulate.sources.footprint_px"),
    ],
)
def test_config_errors_name_the_key(sim_overrides, override, key):
    with pytest.raises(ConfigError) as e:
        from_config(compose(sim_overrides + [override]))
    assert e.value.key == key and "\n" not in str(e.value)


def test_cli_config_error_is_one_line(sim_overrides, tmp_path, repo_root):
    cfg = compose(sim_overrides + [f"paths.simulated={tmp_path / 'sim'}", "simulate.wind.speed_min=-2"])
    params = tmp_path / "params.yaml"
    OmegaConf.save(cfg, params)
    proc = subprocess.run(
        [sys.executable, "-m", "no2hotspots", "simulate", "--params", str(params)],
        capture_output=True,
        text=True,
        cwd=repo_root,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "simulate.wind.speed_min" in lines[0], proc.stderr
    assert not (tmp_path / "sim").exists()
