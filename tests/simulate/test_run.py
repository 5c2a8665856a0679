import json
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from omegaconf import OmegaConf

from no2hotspots.config import compose
from no2hotspots.contracts.shards import open_split, shard_paths
from no2hotspots.errors import ConfigError
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
    # the richer world (docs/simulate.md)
    "transport",
    "layout",
    "wind_direction_range",
    "pixel_width",
    "swath_position",
    "n_distractors",
    "cloud_edge_source",
    "pair_separation",
    "source_in_cluster",
    "source_site",
    "source_nn_distance",
    "source_distractor_distance",
    "source_cloud_edge_distance",
    "source_pixel_width",
    "distractor_row",
    "distractor_col",
    "distractor_nox_rate",
    "distractor_radius",
}


def test_same_seed_byte_identical_for_any_worker_count(two_runs, shard_hashes):
    h1, h2 = shard_hashes(two_runs[1]), shard_hashes(two_runs[2])
    # manifest + train 84 (3 shards of <= 30) + val 16 + test 20 + pairs 8 + paper_world 24
    assert len(h1) == 1 + 3 + 1 + 1 + 1 + 1
    assert h1 == h2


def test_different_seed_differs(sim_overrides, two_runs, tmp_path):
    d = tmp_path / "sim"
    run(
        compose(
            sim_overrides
            + [
                f"paths.outputs={tmp_path}",
                f"paths.simulated={d}",
                "seed=7",
                "simulate.n_scenes=6",
                "simulate.pairs.n_per_separation=0",
                "simulate.paper_world.n_scenes=0",
            ]
        )
    )
    a = xr.open_dataset(shard_paths(d, "train")[0]).no2.values
    b = xr.open_dataset(shard_paths(two_runs[1], "train")[0]).no2.values[: a.shape[0]]
    assert not np.array_equal(np.nan_to_num(a), np.nan_to_num(b))


def test_splits_disjoint_and_contract(two_runs, population):
    d = two_runs[1]
    man = json.loads((d / "manifest.json").read_text())
    sizes = {s: man["splits"][s]["n_scenes"] for s in ("train", "val", "test", "pairs")}
    assert sizes == {"train": 84, "val": 16, "test": 20, "pairs": 8}
    ids = {}
    for split in ("train", "val", "test", "pairs"):
        ds = open_split(d, split)
        assert set(ds.data_vars) >= CONTRACT_VARS
        assert ds.sizes["scene"] == man["splits"][split]["n_scenes"]
        assert ds.sizes["y"] == ds.sizes["x"] == 64 and ds.sizes["source"] == 12 and ds.sizes["distractor"] == 2
        assert ds.no2.dtype == np.float32 and ds.valid.dtype == np.uint8 and ds.emission.dtype == np.float32
        assert ds.scene_id.dtype == np.int64 and ds.stability_class.dtype == np.int8
        assert ds.no2.attrs["units"] == "mol m-2" and ds.wind_speed.attrs["standard_name"] == "wind_speed"
        assert ds.stability_class.attrs["flag_meanings"] == "A B C D E F"
        assert np.array_equal(np.isnan(ds.no2.values), ds.valid.values == 0)
        ids[split] = set(ds.scene_id.values.tolist())
    assert sum(len(v) for v in ids.values()) == 128 and set().union(*ids.values()) == set(range(128))
    assert ids["pairs"] == set(range(120, 128))  # after the test split
    pairs = open_split(d, "pairs")
    np.testing.assert_allclose(pairs.pair_separation.values, [1, 2, 4, 8, 1, 2, 4, 8])
    sep = np.hypot(
        pairs.source_row[:, 0] - pairs.source_row[:, 1], pairs.source_col[:, 0] - pairs.source_col[:, 1]
    ).values
    np.testing.assert_allclose(sep, pairs.pair_separation.values, atol=1e-4)
    assert (pairs.n_sources == 2).all() and (pairs.layout == 2).all()
    train = open_split(d, "train")
    assert set(np.unique(train.transport.values)) == {0, 1} and set(np.unique(train.layout.values)) == {0, 1}
    assert train.transport.attrs["flag_meanings"] == "gaussian_plume puff"
    assert (train.n_distractors > 0).any() and np.isfinite(train.distractor_nox_rate.values).any()
    w = train.source_pixel_width.values
    assert np.nanmin(w) < 4.0 and np.nanmax(w) > 12.0  # 3.5 km at nadir to ~15 km at the swath edge
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
        # the normalisation is that of the CoCO2 population: r = Q / its largest site (demo: normalise_from zero)
        assert ds.attrs["emission_min_t_per_yr"] == 0.0 and "history" not in ds.attrs
        assert ds.attrs["emission_normalisation"] == "zero"
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
        ("simulate.sources.max_per_scene=200", "simulate.sources.max_per_scene"),
        ("simulate.splits.test=0.3", "simulate.splits"),
        ("simulate.clouds.fraction_max=1.5", "simulate.clouds.fraction_max"),
        ("simulate.sources.footprint_px=0", "simulate.sources.footprint_px"),
        ("simulate.no2_ramp.m=[2.0,1.0]", "simulate.no2_ramp.m"),
        ("simulate.no2_ramp.f0=[0.0,1.9]", "simulate.no2_ramp.f0"),
    ],
)
def test_config_errors_name_the_key(sim_overrides, override, key):
    with pytest.raises(ConfigError) as e:
        from_config(compose(sim_overrides + [override]))
    assert e.value.key == key and "\n" not in str(e.value)


def test_cli_config_error_is_one_line(sim_overrides, tmp_path, repo_root):
    cfg = compose(
        sim_overrides
        + [f"paths.outputs={tmp_path}", f"paths.simulated={tmp_path / 'sim'}", "simulate.wind.speed_min=-2"]
    )
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


def test_simulated_dataset_passes_the_validation_suite(two_runs, sim_overrides, paper_world_validation, tmp_path):
    from no2hotspots.validate.simulated import validate_simulated

    # a 120-scene dataset: shares of puff / cluster / distractor scenes within a wider tolerance than the demo's
    cfg = compose(sim_overrides + ["validate.simulated.share_tolerance=0.2", *paper_world_validation])
    res = validate_simulated(two_runs[1], cfg.validate, tmp_path / "report.json", scene_csv=tmp_path / "scenes.csv")
    assert res.success, [o.short for o in res.failures]
    assert res.tables["scenes"] == 128 + 24


def test_shards_are_units_reused_when_unchanged_and_recomputed_or_pruned_when_not(sim_overrides, tmp_path):
    """A rerun with the same settings simulates nothing and publishes the same bytes; another seed recomputes every
    shard; a smaller plan prunes the units it no longer has. The unit folder lives outside the published one."""
    from no2hotspots.simulate.run import LAST_RUN_STATS

    base = [*sim_overrides, f"paths.outputs={tmp_path}", "simulate.n_scenes=20", "simulate.shard_size=10",
            "simulate.pairs.n_per_separation=0", "simulate.paper_world.n_scenes=0"]  # fmt: skip
    units = tmp_path / ".units" / "simulate"
    run(compose(base))
    first = _hashes(tmp_path / "simulated")
    markers = sorted(p.name for p in units.glob("*.done.json"))
    assert markers == ["test-shard-00000.done.json", "train-shard-00000.done.json", "train-shard-00001.done.json",
                       "val-shard-00000.done.json"]  # fmt: skip
    run(compose(base))
    assert LAST_RUN_STATS["n_reused"] == LAST_RUN_STATS["n_shards"] == 4
    assert _hashes(tmp_path / "simulated") == first
    run(compose([*base, "seed=9"]))
    assert LAST_RUN_STATS["n_reused"] == 0 and _hashes(tmp_path / "simulated") != first
    run(compose([*base, "seed=9", "simulate.n_scenes=10"]))  # train 7: one train shard
    assert LAST_RUN_STATS["n_reused"] == 0  # n_scenes is part of every shard's hash (scene ids, split sizes)
    assert not (units / "train-shard-00001.done.json").exists() and not (units / "train-shard-00001.nc").exists()
    with pytest.raises(ConfigError, match="simulate.units_dir: must lie outside paths.simulated"):
        run(compose([*base, f"simulate.units_dir={tmp_path}/simulated/.units"]))


def _hashes(root):
    import hashlib

    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}  # fmt: skip
