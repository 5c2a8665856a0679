"""The held-out `paper_world` split (simulate.paper_world): the paper's kind of scene drawn with the training world's
scale, its own seed stream (turning it on changes no other split), one-line errors for overrides it cannot take,
and the validation suite's checks of it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from no2hotspots.config import compose
from no2hotspots.contracts.shards import open_split, shard_paths
from no2hotspots.errors import ConfigError
from no2hotspots.simulate.run import run
from no2hotspots.simulate.scenes import load_paper_world, load_world
from no2hotspots.simulate.settings import from_config


def test_paper_world_split_holds_only_the_papers_kind_of_scene(two_runs, population):
    d = two_runs[1]
    man = json.loads((d / "manifest.json").read_text())
    assert man["splits"]["paper_world"]["n_scenes"] == 24
    pw = open_split(d, "paper_world")
    assert pw.sizes["scene"] == 24 and pw.attrs["split"] == "paper_world"
    assert set(pw.scene_id.values.tolist()) == set(range(128, 152))  # after the pairs split
    # steady Gaussian plumes of randomly placed sources, no area sources, no swath pixels, no cloud edge rule
    assert (pw.transport == 0).all() and (pw.layout == 0).all() and (pw.n_distractors == 0).all()
    assert (pw.wind_direction_range == 0).all() and np.isnan(pw.swath_position.values).all()
    assert (pw.cloud_edge_source == -1).all() and np.isnan(pw.pair_separation.values).all()
    # 1..4 sources (some empty scenes), >= 6 px apart, >= 3 kt/yr
    n = pw.n_sources.values
    assert n.max() <= 4 and (n >= 1).sum() >= 12 and pw.sizes["source"] == 4
    rows, cols = pw.source_row.values.astype(float), pw.source_col.values.astype(float)
    d2 = np.hypot(rows[:, :, None] - rows[:, None, :], cols[:, :, None] - cols[:, None, :])
    d2[:, np.arange(4), np.arange(4)] = np.nan
    assert np.isfinite(d2).any() and np.nanmin(d2) >= 6.0 - 1e-3
    assert np.nanmin(pw.source_nox_rate.values) >= 3000.0 * (1 - 1e-6)
    # clouds as in training: some scenes have gaps
    assert (pw.valid == 0).any()
    # the training world's scale: the same attributes (r = Q / the training population's Qmax), pixel, noise
    test = open_split(d, "test")
    for key in ("emission_min_t_per_yr", "emission_max_t_per_yr", "emission_normalisation", "input_scale"):
        assert pw.attrs[key] == test.attrs[key], key
    assert pw.attrs["pixel_size_m"] == test.attrs["pixel_size_m"] and pw.attrs["footprint_px"] == 4
    assert pw.attrs["emission_max_t_per_yr"] == population.emission_max
    np.testing.assert_allclose(
        pw.source_rel_emission.values, pw.source_nox_rate.values / population.emission_max, rtol=1e-4
    )
    assert float(pw.noise_std.min()) >= 0.7e-5 * (1 - 1e-6) and float(pw.noise_std.max()) <= 1.3e-5 * (1 + 1e-6)
    assert np.nanmax(pw.emission.values) <= 1.0 and (pw.emission.values > 0).any()


def test_paper_world_changes_no_other_split(sim_overrides, two_runs, shard_hashes, tmp_path):
    d = tmp_path / "sim"
    run(
        compose(
            sim_overrides + [f"paths.outputs={tmp_path}", f"paths.simulated={d}", "simulate.paper_world.n_scenes=0"]
        )
    )
    off, on = shard_hashes(d), shard_hashes(two_runs[1])
    shards = {k for k in off if k != "manifest.json"}
    assert shards and shards == {k for k in on if not k.startswith("paper_world/") and k != "manifest.json"}
    assert all(off[k] == on[k] for k in shards)
    assert "paper_world" not in json.loads((d / "manifest.json").read_text())["splits"]


def test_validation_suite_checks_the_paper_world_split(two_runs, sim_overrides, paper_world_validation, tmp_path):
    from no2hotspots.validate.simulated import dataset_table, read_manifest, scene_table

    cfg = compose(sim_overrides + ["validate.simulated.share_tolerance=0.2", *paper_world_validation])
    scfg = cfg.validate.simulated
    scenes = scene_table(two_runs[1], scfg)
    pw = scenes[scenes["split"] == "paper_world"]
    assert len(pw) == 24 and (pw["separation_violation"] == 0).all()
    manifest = read_manifest(two_runs[1])
    row = dataset_table(scenes, manifest, scfg).iloc[0]
    assert row["paper_world_count_error"] == 0 and row["paper_world_not_paper_scenes"] == 0
    assert row["n_paper_world"] == 24 and "split_fraction_error_paper_world" not in row
    # a puff scene in the paper_world split is caught, and so is a missing scene
    bad = scenes.copy()
    bad.loc[pw.index[0], "transport"] = 1
    bad = bad.drop(index=pw.index[1])
    row = dataset_table(bad, manifest, scfg).iloc[0]
    assert row["paper_world_not_paper_scenes"] == 1 and row["paper_world_count_error"] == 1
    # sources 6 px apart are checked against the paper_world's own separation, not the training world's 1 px
    shard = shard_paths(two_runs[1], "paper_world")[0]
    with xr.open_dataset(shard) as ds:
        ds = ds.load()
    ds["source_row"][0, :2] = [20.0, 20.0]
    ds["source_col"][0, :2] = [20.0, 23.0]
    ds.to_netcdf(tmp_path / "close.nc")
    from no2hotspots.validate.simulated import _shard_rows

    rows = _shard_rows(tmp_path / "close.nc", "paper_world", scfg)
    assert rows["separation_violation"].iloc[0] == 1
    assert _shard_rows(tmp_path / "close.nc", "test", scfg)["separation_violation"].iloc[0] == 0


@pytest.mark.parametrize(
    "override, key",
    [
        ("simulate.paper_world.overrides.clouds.edge_probability=2", "simulate.paper_world.overrides.clouds"),
        ("+simulate.paper_world.overrides.grid.pixel_size_m=7000", "simulate.paper_world.overrides.grid.pixel_size_m"),
        ("+simulate.paper_world.overrides.noise.std_max=2e-5", "simulate.paper_world.overrides.noise.std_max"),
        ("+simulate.paper_world.overrides.sources.normalise_from=population_min", None),
        ("+simulate.paper_world.overrides.sources.no_such_key=1", "simulate.paper_world.overrides.sources.no_such_key"),
        ("simulate.paper_world.overrides.sources.max_per_scene=200", "simulate.paper_world.overrides.sources"),
        ("simulate.paper_world.n_scenes=-1", "simulate.paper_world.n_scenes"),
    ],
)
def test_paper_world_config_errors_name_the_key(sim_overrides, override, key):
    with pytest.raises(ConfigError) as e:
        from_config(compose(sim_overrides + [override]))
    key = key or override.split("=")[0].lstrip("+")
    assert e.value.key.startswith(key) and "\n" not in str(e.value)


def test_paper_world_keeps_the_training_normalisation(sim_overrides):
    # the paper preset normalises over the population's min..max: another floor would give r another meaning
    cfg = compose(
        sim_overrides
        + [
            "simulate=paper",
            "simulate.paper_world.n_scenes=10",
            "simulate.paper_world.overrides.sources.min_nox_t_per_yr=5000",
        ]
    )
    st = from_config(cfg)
    with pytest.raises(ConfigError) as e:
        load_paper_world(st, load_world(st))
    assert e.value.key == "simulate.paper_world.overrides.sources.min_nox_t_per_yr" and "normalisation" in str(e.value)
    # with the demo's r = Q / Qmax a higher floor draws only stronger sites and keeps r
    st = from_config(compose(sim_overrides))
    world = load_world(st)
    paper = load_paper_world(st, world)
    assert paper.pop.emission_max == world.pop.emission_max and paper.pop.nox_t_per_yr[0] >= 3000.0
    # a floor above the low class (r < 0.33 of Qmax) leaves it without sites: named as the paper_world's override
    st = from_config(compose(sim_overrides + ["simulate.paper_world.overrides.sources.min_nox_t_per_yr=30000"]))
    with pytest.raises(ConfigError) as e:
        load_paper_world(st, world)
    assert e.value.key.startswith("simulate.paper_world.overrides.sources.") and "paper_world" in e.value.problem
