"""train.ema_decay: the exponential moving average of the weights is what is validated, selected and saved."""

from __future__ import annotations

import pytest
import torch

from no2hotspots.config import compose
from no2hotspots.errors import ConfigError
from no2hotspots.train.run import run

from .conftest import tiny_overrides

COMMON = ("train.epochs=3", "train.log_model=false", "train.select=last")


def _weights(root):
    return torch.load(root / "outputs/train/model/state_dict.pt", weights_only=True)


def _history(root):
    return torch.load(root / "outputs/train/checkpoints/last.pt", weights_only=True)["history"]


def test_the_saved_model_is_the_average_and_a_zero_decay_is_the_plain_run(tmp_path, tiny_sim):
    """decay 0 averages nothing (the average is the latest weights): the run equals the plain one, so the plumbing
    (validation, selection, saving) does use the average; a decay of 0.9 then saves other weights, closer to the
    earlier steps', and validates them (other validation losses)."""
    for name, extra in (
        ("plain", ("train.ema_decay=null",)),
        ("zero", ("train.ema_decay=0.0",)),
        ("avg", ("train.ema_decay=0.9",)),
    ):
        run(compose(tiny_overrides(tmp_path / name, tiny_sim, *COMMON, *extra)))
    plain, zero, avg = (_weights(tmp_path / n) for n in ("plain", "zero", "avg"))
    assert plain.keys() == zero.keys() == avg.keys()
    for k in plain:
        assert torch.equal(plain[k], zero[k]), k
    assert [h["val_loss"] for h in _history(tmp_path / "zero")] == [h["val_loss"] for h in _history(tmp_path / "plain")]
    moved = [k for k in plain if plain[k].is_floating_point() and not torch.allclose(plain[k], avg[k])]
    assert len(moved) > len(plain) // 2
    assert [h["val_loss"] for h in _history(tmp_path / "avg")] != [h["val_loss"] for h in _history(tmp_path / "plain")]


def test_resuming_continues_the_average_and_refuses_another_decay(tmp_path, tiny_sim):
    """Two epochs, then a resumed third, end with the weights of three epochs in one go (the average is in the
    checkpoint); resuming with another decay is one line naming the key."""
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    run(compose(tiny_overrides(ref, tiny_sim, *COMMON, "train.ema_decay=0.9")))
    run(compose(tiny_overrides(cut, tiny_sim, *COMMON, "train.ema_decay=0.9", "train.epochs=2")))
    with pytest.raises(ConfigError) as e:
        run(compose(tiny_overrides(cut, tiny_sim, *COMMON, "train.ema_decay=0.5", "train.resume=true")))
    assert str(e.value).startswith("config train.ema_decay:") and "\n" not in str(e.value)
    run(compose(tiny_overrides(cut, tiny_sim, *COMMON, "train.ema_decay=0.9", "train.resume=true")))
    a, b = _weights(ref), _weights(cut)
    for k in a:
        assert torch.equal(a[k], b[k]), k  # CPU, 1 thread: bitwise


def test_the_average_warms_up_so_a_short_run_follows_its_weights():
    """Step t uses d = min(decay, (1 + t) / (10 + t)) (TensorFlow's num_updates warm-up): the average equals that
    recurrence computed by hand, and after 20 steps of a decay of 0.995 it lies near the latest weights, not near the
    initial ones (without the warm-up it would keep 0.995**20 = 90 % of them)."""
    from no2hotspots.train.run import averaged

    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    ema = averaged(net, 0.995)
    for t in range(1, 21):
        with torch.no_grad():
            net.weight.add_(1.0)  # the weights move by 1 per step
        ema.update_parameters(net)
        if t == 1:  # the first update copies the weights
            expected = net.weight.detach().clone()
        else:  # update t has t - 1 updates before it
            d = min(0.995, (1 + (t - 1)) / (10 + (t - 1)))
            expected = d * expected + (1 - d) * net.weight.detach()
    got = ema.module.weight.detach()
    assert torch.allclose(got, expected, atol=1e-5)
    lag = float((net.weight.detach() - got).mean())
    assert 1.0 < lag < 4.0  # ~2 steps behind the latest weights; ~18 steps behind without the warm-up


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on a GPU machine)")
def test_on_cuda_the_average_is_the_cpus_and_its_count_stays_on_the_host():
    """train.device=cuda: the average sits beside the weights on the GPU and its update count on the host (read each
    step without waiting for the GPU), and 20 SGD steps of the demo network give the CPU's average (TF32 off) to
    float rounding."""
    from no2hotspots.model.net import build_model
    from no2hotspots.train.run import averaged

    cfg = compose([])
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        out = {}
        for device in ("cpu", "cuda"):
            torch.manual_seed(0)
            net = build_model(cfg.model).to(device).train()
            ema = averaged(net, 0.9)
            opt = torch.optim.SGD(net.parameters(), lr=1e-2)
            g = torch.Generator().manual_seed(1)
            for _ in range(20):
                x = torch.randn(4, int(cfg.model.in_channels), 64, 64, generator=g).to(device)
                opt.zero_grad()
                net(x).square().mean().backward()
                opt.step()
                ema.update_parameters(net)
            assert ema.n_averaged.device.type == "cpu" and int(ema.n_averaged) == 20
            assert {p.device.type for p in ema.module.state_dict().values()} == {device}
            out[device] = {k: v.detach().cpu() for k, v in ema.module.state_dict().items()}
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    assert out["cpu"].keys() == out["cuda"].keys()
    for k, cpu in out["cpu"].items():
        gpu = out["cuda"][k]
        if cpu.is_floating_point():
            assert torch.allclose(gpu, cpu, rtol=1e-3, atol=1e-4), (k, float((gpu - cpu).abs().max()))
        else:
            assert torch.equal(gpu, cpu), k
