"""The training world beyond the paper: area sources never marked, real CoCO2 cluster windows, the pairs split,
the puff transport path, TROPOMI's across-track pixels, cloud edges through sources, the normalisation and the
paper preset."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from omegaconf import OmegaConf

from no2hotspots.config import compose
from no2hotspots.simulate.distractors import sample_distractors
from no2hotspots.simulate.puffs import series_times
from no2hotspots.simulate.scenes import (
    CLUSTER,
    PAIR,
    PUFF,
    emission_map,
    plume_columns,
    sample_pairs,
    sample_scenes,
    simulate_batch,
)
from no2hotspots.simulate.settings import from_config
from no2hotspots.simulate.sources import merge_sites
from no2hotspots.simulate.swath import observe, position_range_km

A = 5500.0


def _haversine_km(lat1, lon1, lat2, lon2):
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dl = np.radians(lon2 - lon1)
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(h))


def _with_area_source(p, st, row, col, nox, radius, seed=0):
    d = sample_distractors(np.random.default_rng(seed), 1, st, probability=1.0)
    d["n_distractors"][:] = 1
    for k in ("distractor_row", "distractor_col", "distractor_nox_rate", "distractor_radius_px"):
        d[k][:, 1:] = np.nan
    off_r = d["distractor_sub_row"][0, 0] - d["distractor_row"][0, 0]
    off_c = d["distractor_sub_col"][0, 0] - d["distractor_col"][0, 0]
    scale = radius / d["distractor_radius_px"][0, 0]
    d["distractor_row"][0, 0], d["distractor_col"][0, 0] = row, col
    d["distractor_nox_rate"][0, 0], d["distractor_radius_px"][0, 0] = nox, radius
    d["distractor_sub_row"][0, 0] = row + off_r * scale
    d["distractor_sub_col"][0, 0] = col + off_c * scale
    d["distractor_sub_row"][0, 1:] = np.nan
    d["distractor_sub_col"][0, 1:] = np.nan
    return dataclasses.replace(p, **d)


@pytest.mark.parametrize("transport", [0, 1])
def test_area_sources_are_in_the_no2_but_never_in_the_target(settings, one_source, transport):
    empty = one_source(settings, n_src=0, u=4.0, wdir=200.0, transport=transport)
    area = _with_area_source(empty, settings, 30.0, 30.0, nox=20000.0, radius=4.0)
    col = plume_columns(area, settings)[0]
    assert np.all(emission_map(area, settings) == 0)
    assert col.max() > 2e-5  # clearly above the ~1e-5 noise
    assert col.sum() * A * A > 0.5 * 20000 * 0.75 * 1e6 / (365.25 * 86400 * 46.0055) * 4.0 * 3600  # ~ Q tau
    # diffuse: the same rate from a point source peaks much higher
    point = one_source(settings, row=30.0, col=30.0, q=20000 * 0.75 * 1e6 / (365.25 * 86400 * 46.0055), u=4.0)
    point = dataclasses.replace(point, wind_from_direction=np.array([200.0]), transport=np.array([transport], np.int8))
    point = dataclasses.replace(point, wind_series_direction=np.full_like(point.wind_series_direction, 200.0))
    assert col.max() < 0.5 * plume_columns(point, settings)[0].max()


def test_distractors_change_the_no2_not_the_target(settings, world):
    p = sample_scenes(np.random.default_rng(1), 200, settings, world)
    assert (p.n_distractors > 0).sum() > 30
    bare = dataclasses.replace(
        p, distractor_sub_row=np.full_like(p.distractor_sub_row, np.nan), n_distractors=np.zeros_like(p.n_distractors)
    )
    np.testing.assert_array_equal(emission_map(p, settings), emission_map(bare, settings))
    diff = plume_columns(p, settings) - plume_columns(bare, settings)
    with_area = p.n_distractors > 0
    assert np.all(diff[~with_area] == 0) and np.all(diff[with_area].max(axis=(1, 2)) > 0)


def test_static_columns_change_the_no2_not_the_target_and_are_off_by_default(settings, world):
    """Static urban columns (the OSSE's persistent blobs): in the NO2 of the scenes that hold them, never in the
    target; with probability 0 (the default) nothing is drawn, so the default shards stay byte for byte."""
    from no2hotspots.simulate.fields import static_columns

    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    none, count = static_columns(rng, 5, 64, 0.0, 2, (1.5, 4.5), (1e-5, 5e-5))
    assert not none.any() and not count.any() and rng.bit_generator.state == state
    cols, count = static_columns(np.random.default_rng(3), 400, 64, 0.5, 2, (1.5, 4.5), (1e-5, 5e-5))
    assert 150 < (count > 0).sum() < 250 and set(np.unique(count)) == {0, 1, 2}
    assert not cols[count == 0].any()
    peak = cols[count == 1].max(axis=(1, 2))
    assert peak.max() <= 5e-5 + 1e-9 and np.median(peak) > 1e-5 * 0.5  # a centre near the edge shows part of it
    on = dataclasses.replace(settings, static_probability=1.0)
    p = sample_scenes(np.random.default_rng(1), 20, settings, world)
    a, b = simulate_batch(p, settings, np.random.default_rng(2)), simulate_batch(p, on, np.random.default_rng(2))
    np.testing.assert_array_equal(a["emission"], b["emission"])
    assert "n_static_columns" not in a and np.all(b["n_static_columns"] >= 1)
    assert np.nanmax(b["no2"] - a["no2"]) > 1e-5


def test_cluster_windows_keep_real_relative_positions_and_rates(settings, world):
    p = sample_scenes(np.random.default_rng(2), 400, settings, world)
    pop = world.pop
    cl = np.flatnonzero(p.layout == CLUSTER)
    assert cl.size > 50 and (p.n_sources[cl] >= 2).mean() > 0.5
    checked = 0
    for i in cl:
        k = np.flatnonzero(p.source_site[i] >= 0)
        assert k.size == p.n_sources[i] and np.all(p.source_in_cluster[i, k] == 1)
        site = p.source_site[i, k]
        np.testing.assert_allclose(p.source_nox_rate[i, k], pop.nox_t_per_yr[site])  # the real rates
        for a in range(k.size):
            for b in range(a + 1, k.size):
                d_px = np.hypot(
                    p.source_row[i, k[a]] - p.source_row[i, k[b]], p.source_col[i, k[a]] - p.source_col[i, k[b]]
                )
                real = _haversine_km(pop.lat[site[a]], pop.lon[site[a]], pop.lat[site[b]], pop.lon[site[b]])
                assert d_px * A / 1e3 == pytest.approx(real, rel=0.015, abs=0.05)
                assert d_px >= settings.min_separation_px - 1e-4
                checked += 1
    assert checked > 100
    # random layouts carry no site
    assert np.all(p.source_site[p.layout != CLUSTER] == -1)


def test_merging_sites_within_a_pixel_sums_their_rates():
    lat = np.array([10.0, 10.01, 10.02, 11.0])  # three sites within ~2.2 km, one 110 km away
    lon = np.array([20.0, 20.0, 20.01, 20.0])
    q = np.array([100.0, 300.0, 50.0, 70.0])
    mlat, mlon, mq = merge_sites(lat, lon, q, 5.5)
    assert sorted(mq) == [70.0, 450.0]
    i = int(np.argmax(mq))
    assert mlat[i] == pytest.approx((10.0 * 100 + 10.01 * 300 + 10.02 * 50) / 450, abs=1e-6)
    assert merge_sites(lat, lon, q, 0.0)[2].size == 4


def test_pairs_split_has_the_configured_separations(settings, world):
    seps = settings.pairs.separations_px
    p = sample_pairs(np.random.default_rng(3), 3 * len(seps), settings, world, first=len(seps))
    d = np.hypot(p.source_row[:, 0] - p.source_row[:, 1], p.source_col[:, 0] - p.source_col[:, 1])
    np.testing.assert_allclose(d, np.tile(seps, 3), atol=1e-4)
    np.testing.assert_allclose(p.pair_separation_px, np.tile(seps, 3))
    assert np.all(p.n_sources == 2) and np.all(p.layout == PAIR) and np.all(p.n_distractors == 0)
    lo, hi = settings.pairs.nox_min, settings.pairs.nox_max
    assert np.all((p.source_nox_rate[:, :2] >= lo) & (p.source_nox_rate[:, :2] <= hi))
    out = simulate_batch(p, settings, np.random.default_rng(4))
    assert np.all(out["valid"] == 1)  # pairs.clouds: false
    np.testing.assert_allclose(np.nanmin(out["source_nn_distance_px"], axis=1), np.tile(seps, 3), atol=1e-4)


@pytest.mark.parametrize("wdir", [30.0, 250.0])
def test_puff_path_conserves_mass_like_the_gaussian_one(settings, one_source, wdir):
    q, tau_h, u = 1.0, 1.0, 3.0
    kw = dict(row=32.3, col=31.6, q=q, u=u, wdir=wdir, tau_h=tau_h)
    gauss = plume_columns(one_source(settings, transport=0, **kw), settings)[0].astype(np.float64)
    puff = plume_columns(one_source(settings, transport=1, **kw), settings)[0].astype(np.float64)
    tau = tau_h * 3600.0
    release = settings.puffs.release_hours * 3600.0
    assert gauss.sum() * A * A == pytest.approx(q * tau, rel=0.02)
    assert puff.sum() * A * A == pytest.approx(q * tau * (1 - np.exp(-release / tau)), rel=0.02)
    assert puff.sum() == pytest.approx(gauss.sum(), rel=0.03)
    # both carried the same way: centres of mass ~ u tau downwind of the source
    rr, cc = np.mgrid[0:64, 0:64]
    for c in (gauss, puff):
        dr, dc = (c * rr).sum() / c.sum() - 32.3, (c * cc).sum() / c.sum() - 31.6
        ex, ey = -np.sin(np.radians(wdir)), -np.cos(np.radians(wdir))
        assert dc * ex + dr * ey == pytest.approx(u * tau / A, abs=0.4)
        assert abs(dc * ey - dr * ex) < 0.3


def test_puff_plume_follows_a_turning_wind(settings, one_source):
    p = one_source(settings, row=20.0, col=20.0, u=4.0, wdir=270.0, tau_h=8.0, transport=1)
    t = series_times(settings)
    release = settings.puffs.release_hours * 3600.0
    # from the south (blowing north) until 4 h before overpass, then from the west (blowing east)
    turn = np.where(t < release - 4 * 3600.0, 180.0, 270.0)
    p = dataclasses.replace(p, wind_series_direction=turn[None, :])
    c = plume_columns(p, settings)[0]
    rr, cc = np.mgrid[0:64, 0:64]
    dist = np.hypot(rr - 20.0, cc - 20.0)
    near = (dist > 2) & (dist < 8)
    far = dist > 14
    bearing = lambda m: np.degrees(np.arctan2((c * m * (cc - 20)).sum(), (c * m * (rr - 20)).sum()))  # noqa: E731
    assert 70 < bearing(near) < 100  # the young plume blows east
    assert bearing(far) < 60  # the old plume left northward first


def test_swath_pixels_conserve_mass_and_blur_more_at_the_edge(settings):
    lo, hi = position_range_km(settings)
    col = np.zeros((2, 64, 64), np.float32)
    col[:, 32, 32] = 1.0
    zero = np.zeros(2)
    out = observe(col, zero, zero, settings, np.array([0.0, hi]), np.random.default_rng(0))
    np.testing.assert_allclose(out.sum(axis=(1, 2)), 1.0, rtol=1e-5)
    assert np.all(out[:, np.arange(64) != 32] == 0)  # along track: untouched
    x = np.arange(64) - 32.0
    spread = [(out[i, 32] * x**2).sum() for i in range(2)]
    assert spread[1] > 3 * spread[0] and spread[0] < 0.5  # ~3.5 km pixels at nadir, ~14 km at the edge
    flat = observe(
        np.full((1, 64, 64), 2e-5, np.float32), zero[:1], zero[:1], settings, np.array([hi]), np.random.default_rng(2)
    )
    np.testing.assert_allclose(flat, 2e-5, rtol=1e-5)


def test_swath_noise_is_coarser_but_lower_at_the_edge(settings):
    lo, hi = position_range_km(settings)
    col = np.zeros((2, 64, 64), np.float32)
    out = observe(col, np.ones(2), np.zeros(2), settings, np.array([0.0, hi]), np.random.default_rng(1))
    std = out.reshape(2, -1).std(axis=1)
    corr = [np.corrcoef(out[i, :, 20:40].ravel(), out[i, :, 21:41].ravel())[0, 1] for i in range(2)]
    assert std[1] < 0.8 * std[0] and 0.8 < std[0] < 1.2  # precision improves with pixel area
    assert corr[1] > 0.4 and corr[0] < 0.35  # wide pixels spread one noise value over neighbouring cells


def test_cloud_edges_run_near_their_source(settings, world):
    p = sample_scenes(np.random.default_rng(5), 400, settings, world)
    out = simulate_batch(p, settings, np.random.default_rng(6))
    edge = np.flatnonzero(p.cloud_edge_source >= 0)
    assert edge.size > 30
    d_edge = np.abs(out["source_cloud_edge_px"][edge, p.cloud_edge_source[edge]])
    other = np.flatnonzero((p.cloud_edge_source < 0) & (p.cloud_fraction > 0) & (p.n_sources > 0))
    d_other = np.abs(out["source_cloud_edge_px"][other, 0])
    d_edge, d_other = d_edge[np.isfinite(d_edge)], d_other[np.isfinite(d_other)]
    assert np.median(d_edge) < 4 and np.median(d_edge) < 0.5 * np.median(d_other)
    # both sides of the edge occur: sources just under the cloud and just in the clear
    signed = out["source_cloud_edge_px"][edge, p.cloud_edge_source[edge]]
    assert (signed < 0).sum() > 5 and (signed > 0).sum() > 5


def test_relative_emission_from_zero_and_from_the_population_min(settings, world, paper_world):
    pop = world.pop  # demo: normalise_from zero
    assert pop.emission_min == 0.0 and pop.relative(pop.nox_t_per_yr[0]) > 0.015
    p = sample_scenes(np.random.default_rng(7), 200, settings, world)
    r, q = p.source_rel_emission, p.source_nox_rate
    np.testing.assert_allclose(r[~np.isnan(r)], q[~np.isnan(q)] / pop.emission_max)
    assert np.nanmin(q) >= settings.min_nox_t_per_yr and np.nanmin(q) < 1500  # sources down to ~1 kt/yr
    paper = paper_world.pop  # paper: normalise_from population_min, r = 0 at the weakest site
    assert paper.emission_min == paper.nox_t_per_yr[0] and paper.relative(paper.nox_t_per_yr[0]) == 0.0


def test_paper_preset_composes_to_the_papers_values(ddeq_data, paper_settings, repo_root):
    demo = compose([f"paths.data={ddeq_data}"]).simulate
    paper = compose([f"paths.data={ddeq_data}", "simulate=paper"]).simulate
    flat = lambda c, pre="": {  # noqa: E731
        f"{pre}{k}": v
        for key, val in c.items()
        for k, v in (flat(val, f"{key}.").items() if isinstance(val, dict) else [(key, val)])
    }
    d = flat(OmegaConf.to_container(demo, resolve=True))
    q = flat(OmegaConf.to_container(paper, resolve=True))
    assert d.keys() == q.keys()
    # the preset is the demo plus the keys it lists
    listed = flat(
        {
            k: v
            for k, v in OmegaConf.to_container(OmegaConf.load(repo_root / "conf/simulate/paper.yaml")).items()
            if k != "defaults"
        }
    )
    assert {k for k in d if d[k] != q[k]} <= set(listed)
    st = paper_settings
    assert (st.max_sources, st.min_separation_px, st.min_nox_t_per_yr, st.footprint_px) == (4, 6.0, 3000.0, 2)
    assert st.normalise_from == "population_min" and st.merge_within_px == 0.0 and st.neighbour_fraction == 0.0
    assert st.puffs.fraction == st.clusters.fraction == st.distractors.probability == 0.0
    assert st.swath.fraction == st.cloud_edge_probability == 0.0
    assert q["n_scenes"] == 210000 and q["shard_size"] == 1000 and q["sources.class_weights"] == [0.5, 0.3, 0.2]


def test_paper_scenes_are_the_papers_world(paper_settings, paper_world):
    p = sample_scenes(np.random.default_rng(8), 300, paper_settings, paper_world)
    out = simulate_batch(p, paper_settings, np.random.default_rng(9))
    assert np.all(p.transport != PUFF) and np.all(p.layout != CLUSTER) and np.all(p.n_distractors == 0)
    assert np.all(np.isnan(p.swath_centre_km)) and np.all(p.cloud_edge_source == -1)
    assert p.n_sources.max() == 4 and np.nanmin(out["source_nn_distance_px"]) >= 6.0 - 1e-4
    assert np.nanmin(p.source_rel_emission) >= 0 and np.all(out["source_pixel_width_km"][p.n_sources > 0, 0] == 5.5)


def test_new_keys_are_checked(sim_overrides):
    from no2hotspots.errors import ConfigError

    base = compose(sim_overrides)
    for key, value in [
        ("simulate.sources.normalise_from", "max"),
        ("simulate.transport.puff_fraction", 1.5),
        ("simulate.distractors.nox_t_per_yr", [5000.0, 100.0]),
        ("simulate.pairs.separations_px", [1, 1]),
        ("simulate.sources.neighbour_max_px", 0.5),
        ("simulate.clusters.rotate", "yes"),
        ("simulate.background.static.probability", 1.2),
        ("simulate.background.static.radius_px", [4.5, 1.5]),
        ("simulate.background.static.max_per_scene", 0),
    ]:
        cfg = base.copy()
        OmegaConf.update(cfg, key, value)
        with pytest.raises(ConfigError) as e:
            from_config(cfg)
        assert e.value.key == key and "\n" not in str(e.value)


def test_no2_ramp_lowers_the_no2_near_sources_not_the_target_and_is_off_by_default(settings, world):
    """simulate.no2_ramp (near-source NO -> NO2): drawn per scene only when on, so the default scenes, and the shards
    written from them, stay byte for byte; on, the NO2 near each source falls, the target does not move, and the
    shard records each scene's m, r, f0."""
    from no2hotspots.simulate.dataset import global_attrs, make_dataset

    assert not settings.no2_ramp_on
    p = sample_scenes(np.random.default_rng(1), 30, settings, world)
    assert not p.no2_ramp.any()
    on = dataclasses.replace(settings, no2_ramp_m=(1.6, 6.1))
    q = sample_scenes(np.random.default_rng(1), 30, on, world)
    assert np.all((q.no2_ramp[:, 0] >= 1.6) & (q.no2_ramp[:, 0] <= 6.1))
    assert np.all((q.no2_ramp[:, 1] >= 486.0) & (q.no2_ramp[:, 2] <= 1.9))
    q_same = dataclasses.replace(q, no2_ramp=q.no2_ramp * [0.0, 1.0, 1.0])  # the same scenes with the ramp's m = 0
    a = simulate_batch(q_same, on, np.random.default_rng(2))
    b = simulate_batch(q, on, np.random.default_rng(2))
    np.testing.assert_array_equal(a["emission"], b["emission"])
    has = q.n_sources > 0
    assert np.all(np.nansum(b["no2"][has], axis=(1, 2)) < np.nansum(a["no2"][has], axis=(1, 2)))  # clouds: NaN
    attrs = global_attrs(settings, 0.0, 48000.0)
    ds_off = make_dataset(p, simulate_batch(p, settings, np.random.default_rng(2)), np.arange(30), attrs)
    ds_on = make_dataset(q, b, np.arange(30), attrs)
    assert "no2_ramp_m" not in ds_off and np.allclose(ds_on["no2_ramp_r"].values, q.no2_ramp[:, 1], rtol=1e-6)
