"""The source-centre map: an auxiliary training task (``model.head.centres``, ``train.centre_weight``).

Its target peaks at the centre of every listed source's scored block; the head's second map is trained on it and
never reaches detection (the network's output stays the relative-emission map)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from no2hotspots.config import compose
from no2hotspots.contracts import shards as contract
from no2hotspots.errors import ConfigError
from no2hotspots.metrics.scores import Sources
from no2hotspots.model.net import build_model
from no2hotspots.train.data import ShardStream, centre_heatmap, split_shards
from no2hotspots.train.distributed import Dist
from no2hotspots.train.loop import Loss, step_loss
from no2hotspots.train.run import run

from .conftest import TINY_MODEL, tiny_overrides


def _model_cfg(*extra: str):
    return compose([*TINY_MODEL, *extra]).model


def test_heatmap_peaks_at_every_listed_source_and_is_zero_without_one(tiny_sim):
    shard = split_shards(tiny_sim, "train")[0]
    a = contract.load_arrays(shard, ("emission", "source_row", "source_col", "source_rel_emission"))
    heat = centre_heatmap(shard, a["emission"].shape, 1.0)
    k = int(contract.read_info(shard)["attrs"]["footprint_px"])
    src = Sources(a["source_row"], a["source_col"], a["source_rel_emission"], k)
    i, _, r0, r1, c0, c1 = src.blocks(len(heat), heat.shape[1:])
    assert len(i) > 5
    for s, a0, a1, b0, b1 in zip(i, r0, r1, c0, c1):
        cy, cx = 0.5 * (a0 + a1) - 0.5, 0.5 * (b0 + b1) - 0.5
        # the block centre of a 2 x 2 block lies between four pixels, each 0.5 px away per axis
        assert heat[s, int(np.floor(cy)), int(np.floor(cx))] == pytest.approx(np.exp(-0.25), abs=1e-6)
    none = np.isnan(a["source_row"]).all(axis=1)
    assert none.any() and (heat[none] == 0).all()
    assert heat.dtype == np.float32 and heat.max() <= 1.0


def test_stream_carries_the_heatmap_in_the_same_order_as_the_scenes(tiny_sim):
    shards = split_shards(tiny_sim, "train")
    plain = ShardStream(shards, 16, shuffle=True, seed=5, drop_last=True)
    with_heat = ShardStream(shards, 16, shuffle=True, seed=5, drop_last=True, centre_sigma_px=1)
    for a, b in zip(plain.batches(1), with_heat.batches(1)):
        assert a.centres is None and b.centres.shape == b.emission.shape
        np.testing.assert_array_equal(a.emission, b.emission)
        # a scene's heat is > 0.5 only inside its own footprints (2 x 2 blocks, sigma 1 px)
        assert np.all(b.emission[b.centres > 0.7] > 0)


def test_the_second_map_is_only_given_when_asked_for():
    torch.manual_seed(0)
    net = build_model(_model_cfg("model.head.centres=true")).eval()
    x = torch.randn(3, 2, 64, 64)
    with torch.no_grad():
        r = net(x)
        r2, heat = net(x, with_centres=True)
    assert r.shape == heat.shape == (3, 64, 64)
    torch.testing.assert_close(r, r2, rtol=0, atol=0)
    assert float(heat.min()) >= 0 and float(heat.max()) <= 1
    plain = build_model(_model_cfg()).eval()
    with pytest.raises(ValueError, match="centre map"):
        plain(x, with_centres=True)


def test_only_the_shuffle_head_has_a_centre_map():
    with pytest.raises(ConfigError, match="model.head.centres"):
        build_model(compose(["model=paper", "+model.head.centres=true"]).model)


def test_the_centre_term_is_back_propagated_but_not_logged():
    pred, y = torch.full((2, 8, 8), 0.1, requires_grad=True), torch.zeros(2, 8, 8)
    heat, h = torch.full((2, 8, 8), 0.2, requires_grad=True), torch.zeros(2, 8, 8)
    h[0, 3, 3] = 1.0
    loss = Loss(centre_weight=0.5, centre_positive_weight=20.0)
    value, sums = step_loss(loss, pred, y, Dist(), (heat, h))
    value.backward()
    expected = 0.5 * float((((0.2 - h) ** 2) * (1 + 20 * h)).mean())
    assert float(value) == pytest.approx(0.01 + expected)
    assert sums[0] == pytest.approx(0.01 * 2)  # the logged loss: the relative-emission part only
    assert heat.grad is not None and float(heat.grad[0, 3, 3]) < 0  # descent raises the centre pixel
    assert loss.centre_term(h, h) == 0


def test_training_with_the_centre_term(tiny_sim, tmp_path):
    from no2hotspots.score.run import load_trained

    cfg = compose(tiny_overrides(tmp_path, tiny_sim, "model.head.centres=true", "train.centre_weight=1.0"))
    assert np.isfinite(run(cfg))  # the sweep objective (validation source F1)
    loaded = load_trained(tmp_path / "outputs" / "train" / "model")
    assert loaded.net.has_centres
    with torch.no_grad():
        assert loaded.net(torch.zeros(1, 2, 64, 64)).shape == (1, 64, 64)


def test_centre_weight_needs_a_head_with_a_centre_map(tiny_sim, tmp_path):
    with pytest.raises(ConfigError) as e:
        run(compose(tiny_overrides(tmp_path, tiny_sim, "train.centre_weight=1.0")))
    assert "train.centre_weight" in str(e.value) and "\n" not in str(e.value)
