from __future__ import annotations

import numpy as np
import pytest

from no2hotspots.config import compose


@pytest.fixture(scope="session")
def sim_overrides(ddeq_data):
    return [f"paths.data={ddeq_data}", "simulate.n_scenes=60", "simulate.shard_size=10", "simulate.workers=1"]


@pytest.fixture(scope="session")
def settings(sim_overrides):
    from no2hotspots.simulate.settings import from_config

    return from_config(compose(sim_overrides))


@pytest.fixture(scope="session")
def population(settings):
    from no2hotspots.simulate.sources import load_population

    return load_population(settings.inventory_csv, settings.min_nox_t_per_yr, settings.class_weights)


@pytest.fixture(scope="session")
def one_source():
    return make_one_source


def make_one_source(st, *, row=32.2, col=10.3, q=1.0, u=5.0, wdir=270.0, tau_h=4.0, cls=3, n_src=1):
    """SceneParams for a single scene with one source (explicit parameters)."""
    from no2hotspots.simulate.scenes import SceneParams

    m = st.max_sources
    pad = lambda v: np.array([[v] + [np.nan] * (m - 1)]) if n_src else np.full((1, m), np.nan)  # noqa: E731
    return SceneParams(
        wind_speed=np.array([u]),
        wind_from_direction=np.array([wdir]),
        stability_class=np.array([cls], np.int8),
        no2_lifetime_h=np.array([tau_h]),
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
    )
