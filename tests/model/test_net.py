"""The hotspot CNN: parameter count, output shape/range, learning, attention, checkpoint checks."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from no2hotspots.config import compose
from no2hotspots.errors import ConfigError, UserError
from no2hotspots.model.blocks import SpatialAttention
from no2hotspots.model.net import build_model, check_state_dict, count_parameters


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: the test machine is shared, and 2 spinning threads on a loaded box are much slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def model_cfgs():
    return {name: compose([f"model={name}"]).model for name in ("demo", "paper")}


def test_paper_parameter_count_matches_paper(model_cfgs):
    n = count_parameters(build_model(model_cfgs["paper"]))
    assert abs(n - 2.16e6) <= 0.05 * 2.16e6, n
    assert model_cfgs["paper"].dropout == 0.05
    assert model_cfgs["paper"].head._target_ == "no2hotspots.model.blocks.FCHead"


@pytest.mark.parametrize("name", ["demo", "paper"])
def test_output_shape_and_range(model_cfgs, name):
    torch.manual_seed(0)
    net = build_model(model_cfgs[name])
    x = torch.randn(5, 2, 64, 64) * 10  # large inputs push the sigmoid to its ends
    for mode in (net.train, net.eval):
        mode()
        with torch.no_grad():
            y = net(x)
        assert y.shape == (5, 64, 64)
        assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def _scenes(n: int, seed: int = 0):
    """Tiny synthetic plume scenes: a Gaussian plume from a 3x3 footprint source, plus noise; target r on it."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    x = torch.zeros(n, 2, 64, 64)
    t = torch.zeros(n, 64, 64)
    for i in range(n):
        r0, c0 = (torch.randint(8, 56, (2,), generator=g)).tolist()
        rel = 0.2 + 0.8 * float(torch.rand(1, generator=g))
        ang = float(torch.rand(1, generator=g)) * 6.28
        dx, dy = xx - c0, yy - r0
        along = dx * torch.cos(torch.tensor(ang)) + dy * torch.sin(torch.tensor(ang))
        across = -dx * torch.sin(torch.tensor(ang)) + dy * torch.cos(torch.tensor(ang))
        plume = (
            rel
            * torch.exp(-(across**2) / (2 * (1 + 0.15 * along.clamp(min=0)) ** 2))
            * (along > -1)
            * torch.exp(-along.clamp(min=0) / 20)
        )
        x[i, 0] = plume + 0.05 * torch.randn(64, 64, generator=g)
        x[i, 1] = 1.0
        t[i, r0 - 1 : r0 + 2, c0 - 1 : c0 + 2] = rel
    return x, t


@pytest.mark.parametrize("name", ["demo", pytest.param("paper", marks=pytest.mark.slow)])
def test_model_overfits_a_tiny_batch(model_cfgs, name):
    torch.manual_seed(0)
    cfg = OmegaConf.merge(model_cfgs[name], {"dropout": 0.0})
    net = build_model(cfg)
    x, t = _scenes(8)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    losses = []
    for _ in range(150):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x), t)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 20, (losses[0], losses[-1])


def test_spatial_attention_multiplies_features():
    att = SpatialAttention(kernel_size=3)
    with torch.no_grad():
        att.conv.weight.zero_()
        att.conv.bias.fill_(0.0)  # map = sigmoid(0) = 0.5 everywhere
        x = torch.randn(2, 4, 8, 8)
        assert torch.allclose(att(x), 0.5 * x)
        # weight on the max channel only at the centre tap: map = sigmoid(max_c x)
        att.conv.weight[0, 1, 1, 1] = 1.0
        expected = x * torch.sigmoid(x.amax(dim=1, keepdim=True))
        assert torch.allclose(att(x), expected, atol=1e-6)
        maps = []  # the map is observable with a forward hook (nothing is stored on the module)
        handle = att.conv.register_forward_hook(lambda m, i, o: maps.append(torch.sigmoid(o)))
        att(x)
        handle.remove()
        assert maps[0].shape == (2, 1, 8, 8) and not hasattr(att, "last_map")


def test_check_state_dict_names_differing_parameter(model_cfgs):
    demo = build_model(model_cfgs["demo"])
    check_state_dict(demo, demo.state_dict())  # fits itself
    wider = build_model(OmegaConf.merge(model_cfgs["demo"], {"stages": {"widths": [32, 48]}}))
    with pytest.raises(UserError) as e:
        check_state_dict(demo, wider.state_dict())
    msg = str(e.value)
    assert "\n" not in msg
    assert "'stages.1.blocks.0.conv1.weight'" in msg and "(48, 32, 3, 3)" in msg and "(64, 32, 3, 3)" in msg
    paper = build_model(model_cfgs["paper"])
    with pytest.raises(UserError, match="checkpoint does not fit"):
        check_state_dict(demo, paper.state_dict())


def test_bad_config_names_the_key(model_cfgs):
    with pytest.raises(ConfigError, match=r"model\.head\._target_"):
        build_model(OmegaConf.merge(model_cfgs["demo"], {"head": {"_target_": "torch.nn.Transformer"}}))
    with pytest.raises(ConfigError, match=r"model\._target_"):  # a model.json may not name arbitrary code
        build_model(OmegaConf.merge(model_cfgs["demo"], {"_target_": "os.system"}))
    with pytest.raises(ConfigError, match=r"model\.stages\.blocks"):
        build_model(OmegaConf.merge(model_cfgs["demo"], {"stages": {"blocks": [1]}}))
    with pytest.raises(ConfigError, match=r"model\.stem\.factor"):
        build_model(OmegaConf.merge(model_cfgs["demo"], {"stem": {"factor": 3}}))


def test_a_model_config_of_an_earlier_version_still_builds(model_cfgs):
    """model.json of models registered before _target_ configs (stem.kind / head.kind) load into the same net."""
    old = {
        "name": "demo",
        "in_channels": 2,
        "tile_size": 64,
        "attention": {"kernel_size": 7},
        "stem": {"kind": "unshuffle", "factor": 4, "width": 32},
        "stages": {"widths": [32, 64], "blocks": [1, 1], "pool": [True, False]},
        "head": {"kind": "shuffle", "width": 32, "bias_init": -2.0},
        "dropout": 0.05,
    }
    a, b = build_model(old), build_model(model_cfgs["demo"])
    assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}


def test_the_refinement_starts_as_the_identity_and_learns(model_cfgs):
    """head.refine_width: an untrained refinement leaves the map as the head without it draws; training moves it."""
    torch.manual_seed(0)
    cfg = OmegaConf.merge(model_cfgs["demo"], {"dropout": 0.0, "head": {"refine_width": 8}})
    net = build_model(cfg)
    assert count_parameters(net) > count_parameters(build_model(model_cfgs["demo"]))
    x, t = _scenes(4)
    net.eval()
    with torch.no_grad():
        refined = net(x)
        refine, net.head.refine = net.head.refine, None
        plain = net(x)
        net.head.refine = refine
    assert torch.equal(refined, plain)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), t).backward()
        opt.step()
    assert float(net.head.refine[-1].weight.detach().abs().sum()) > 0
    net.eval()
    with torch.no_grad():  # fully convolutional still: a 128 x 128 field maps to a 128 x 128 map
        assert net(torch.randn(1, 2, 128, 128)).shape == (1, 128, 128)


def test_a_refinement_needs_a_shuffle_head_and_a_width_of_at_least_zero(model_cfgs):
    with pytest.raises(ConfigError, match=r"model\.head\.refine_width"):
        build_model(OmegaConf.merge(model_cfgs["demo"], {"head": {"refine_width": -1}}))
    with pytest.raises(ConfigError, match=r"model\.head\.refine_width.*ShuffleHead"):
        paper = OmegaConf.to_container(model_cfgs["paper"])
        build_model(OmegaConf.merge(paper, {"head": {"refine_width": 8}}))
