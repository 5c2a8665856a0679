from __future__ import annotations

import hashlib

import numpy as np
import pytest

from no2hotspots.config import compose


@pytest.fixture(scope="session")
def sim_overrides(ddeq_data):
    return [
        f"paths.data={ddeq_data}",
        "simulate.n_scenes=120",
        "simulate.shard_size=30",
        "simulate.workers=1",
        "simulate.pairs.n_per_separation=2",
        "simulate.pairs.separations_px=[1,2,4,8]",
        "simulate.paper_world.n_scenes=24",
    ]


@pytest.fixture(scope="session")
def two_runs(sim_overrides, tmp_path_factory):
    """The tiny dataset simulated with 1 and with 2 workers (all splits, pairs and paper_world included)."""
    from no2hotspots.simulate.run import run

    out = {}
    for w in (1, 2):
        d = tmp_path_factory.mktemp(f"w{w}") / "simulated"
        # own outputs (and unit folder) per run: the 2-worker run must simulate, not reuse the 1-worker run's shards
        run(compose(sim_overrides + [f"paths.outputs={d.parent}", f"paths.simulated={d}", f"simulate.workers={w}"]))
        out[w] = d
    return out


def _hashes(root):
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="session")
def shard_hashes():
    """``root -> {relative path: sha256}`` of every file of a dataset."""
    return _hashes


@pytest.fixture(scope="session")
def paper_world_validation():
    """The validation keys of the paper_world split (validate.simulated.paper_world_*: optional; set or added)."""
    return [
        "++validate.simulated.paper_world_scenes=${simulate.paper_world.n_scenes}",
        "++validate.simulated.paper_world_min_separation_px="
        "${simulate.paper_world.overrides.sources.min_separation_px}",
    ]


@pytest.fixture(scope="session")
def settings(sim_overrides):
    from no2hotspots.simulate.settings import from_config

    return from_config(compose(sim_overrides))


@pytest.fixture(scope="session")
def paper_settings(sim_overrides):
    from no2hotspots.simulate.settings import from_config

    return from_config(compose(sim_overrides + ["simulate=paper"]))


@pytest.fixture(scope="session")
def world(settings):
    from no2hotspots.simulate.scenes import load_world

    return load_world(settings)


@pytest.fixture(scope="session")
def population(world):
    return world.pop


@pytest.fixture(scope="session")
def paper_world(paper_settings):
    from no2hotspots.simulate.scenes import load_world

    return load_world(paper_settings)


@pytest.fixture(scope="session")
def one_source():
    return make_one_source


def make_one_source(
    st,
    *,
    row=32.2,
    col=10.3,
    q=1.0,
    u=5.0,
    wdir=270.0,
    tau_h=4.0,
    cls=3,
    n_src=1,
    transport=0,
    diffusivity=2000.0,
    ramp=(0.0, 744.0, 1.9),
):
    """SceneParams for a single scene with one point source (explicit parameters, steady wind, no area sources,
    observed at the scene pixel, no clouds)."""
    from no2hotspots.simulate.puffs import series_times
    from no2hotspots.simulate.scenes import SceneParams

    m, d, ns = st.max_sources, st.distractors.max_per_scene, st.distractors.n_sub
    pad = lambda v: np.array([[v] + [np.nan] * (m - 1)]) if n_src else np.full((1, m), np.nan)  # noqa: E731
    t = series_times(st)
    nan = lambda *shape: np.full(shape, np.nan)  # noqa: E731
    return SceneParams(
        wind_speed=np.array([u]),
        wind_from_direction=np.array([wdir]),
        stability_class=np.array([cls], np.int8),
        no2_lifetime_h=np.array([tau_h]),
        no2_ramp=np.array([ramp], float),
        cloud_fraction=np.array([0.0]),
        noise_std=np.array([1e-5]),
        background_mean=np.array([1e-5]),
        stripe_std=np.array([0.0]),
        n_sources=np.array([n_src], np.int8),
        source_row=pad(row),
        source_col=pad(col),
        source_nox_rate=pad(1000.0),
        source_rel_emission=pad(0.5),
        source_no2_rate=pad(q),
        transport=np.array([transport], np.int8),
        layout=np.zeros(1, np.int8),
        wind_series_speed=np.full((1, t.size), u),
        wind_series_direction=np.full((1, t.size), wdir),
        diffusivity=np.array([diffusivity]),
        source_in_cluster=np.where(np.isnan(pad(row)), -1, 0).astype(np.int8),
        source_site=np.full((1, m), -1, np.int64),
        n_distractors=np.zeros(1, np.int8),
        distractor_row=nan(1, d),
        distractor_col=nan(1, d),
        distractor_nox_rate=nan(1, d),
        distractor_radius_px=nan(1, d),
        distractor_sub_row=nan(1, d, ns),
        distractor_sub_col=nan(1, d, ns),
        swath_centre_km=np.array([np.nan]),
        cloud_edge_source=np.array([-1], np.int8),
        cloud_edge_angle=np.zeros(1),
        cloud_edge_offset_px=np.zeros(1),
        pair_separation_px=np.array([np.nan]),
    )
