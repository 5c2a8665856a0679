"""Tiling and stitching: full coverage, no seams, small grids, skipped empty tiles."""

from __future__ import annotations

import numpy as np
import pytest

from no2hotspots.detect.tiles import batch_bounds, blend_window, count_tiles, stitch, tile_starts


@pytest.mark.parametrize(
    "n,tile,stride,expected",
    [
        (64, 64, 32, [0]),
        (20, 64, 32, [0]),
        (128, 64, 32, [0, 32, 64]),
        (150, 64, 32, [0, 32, 64, 86]),
        (100, 64, 64, [0, 36]),
    ],
)
def test_tile_starts_cover_the_axis(n, tile, stride, expected):
    starts = tile_starts(n, tile, stride)
    assert starts == expected
    covered = np.zeros(max(n, tile), bool)
    for s in starts:
        covered[s : s + tile] = True
    assert covered[:n].all()


def test_blend_window_is_smooth_and_positive():
    w = blend_window(64, 0.1)
    assert w.shape == (64, 64) and (w > 0).all()
    assert w.min() == pytest.approx(0.01) and w.max() <= 1.0
    assert np.allclose(w, w.T) and np.allclose(w, w[::-1, ::-1])
    with pytest.raises(ValueError):
        blend_window(64, 0.0)


def _field(shape, seed=0, gap=True):
    rng = np.random.default_rng(seed)
    no2 = (2e-5 + 1e-5 * rng.random(shape)).astype(np.float32)
    valid = np.ones(shape, bool)
    if gap:
        valid[..., 10:25, 40:70] = False
        no2[..., 10:25, 40:70] = np.nan
    return no2, valid


@pytest.mark.parametrize("shape,stride", [((2, 150, 170), 32), ((1, 97, 64), 24), ((1, 200, 131), 64)])
def test_constant_prediction_stitches_to_a_constant_map(shape, stride):
    no2, valid = _field(shape)
    calls = []

    def predict(x, m):
        calls.append(len(x))
        assert x.shape[1:] == (64, 64) and m.shape == x.shape and m.dtype == bool
        return np.full(x.shape, 0.37, np.float32)

    out, counts = stitch(no2, valid, predict, stride=stride, batch_size=5)
    assert out.shape == shape
    assert np.allclose(out, 0.37, atol=1e-6)  # no seams anywhere, gap cells included (tiles still cover them)
    assert counts["tiles_run"] == shape[0] * count_tiles(shape[1:], 64, stride) == sum(calls)
    assert max(calls) <= 5


def test_identity_prediction_reassembles_the_input_exactly():
    """A prediction that depends only on the cell itself survives the blending unchanged: no seams."""
    no2, valid = _field((2, 150, 170), seed=1)

    def predict(x, m):
        return np.where(m, x * 1e4, -1.0)

    out, _ = stitch(no2, valid, predict, stride=32, batch_size=7)
    assert np.allclose(out[valid], no2[valid] * 1e4, rtol=1e-6)
    assert np.allclose(out[~valid], -1.0)


def test_position_dependent_prediction_would_show_seams():
    """Sanity check that the identity test can fail: a tile-position-dependent output is not reassembled."""
    no2, valid = _field((1, 150, 170), gap=False)

    def predict(x, m):
        return np.broadcast_to(np.arange(64, dtype=np.float32)[None, :, None], x.shape)

    out, _ = stitch(no2, valid, predict, stride=32)
    assert out.std() > 1.0


def test_grid_smaller_than_a_tile_is_padded_as_invalid():
    no2, valid = _field((3, 20, 30), gap=False)
    seen = []

    def predict(x, m):
        seen.append((np.isnan(x[:, 20:, :]).all(), (~m[:, 20:, :]).all(), (~m[:, :, 30:]).all(), m[:, :20, :30].all()))
        return np.where(m, 0.5, 0.0)

    out, counts = stitch(no2, valid, predict)
    assert out.shape == (3, 20, 30) and np.allclose(out, 0.5)
    assert counts["tiles_run"] == 3
    assert all(all(s) for s in seen)


def test_tiles_without_valid_cells_are_not_run_and_give_nan():
    no2, valid = _field((1, 64, 200), gap=False)
    valid[:, :, 100:] = False
    no2[:, :, 100:] = np.nan
    out, counts = stitch(no2, valid, lambda x, m: np.ones(x.shape), stride=32)
    # origins 0,32,64,96,128,136: the last two only see columns >= 128 (all invalid)
    assert counts == {"tiles_total": 6, "tiles_run": 4, "tiles_skipped_empty": 2}
    assert np.isfinite(out[:, :, :160]).all() and np.isnan(out[:, :, 160:]).all()


def test_two_dimensional_input_and_shape_errors():
    no2, valid = _field((80, 80), gap=False)
    out, _ = stitch(no2, valid, lambda x, m: np.zeros(x.shape))
    assert out.shape == (80, 80)
    with pytest.raises(ValueError):
        stitch(no2, valid[:10], lambda x, m: x)


@pytest.mark.parametrize("n", [0, 1, 9, 63, 64, 65, 165, 409, 1000])
def test_batches_cover_every_tile_once_in_few_shapes(n):
    bounds = batch_bounds(n, 64)
    covered = [i for b0, b1 in bounds for i in range(b0, b1)]
    assert covered == list(range(n))
    sizes = {b1 - b0 for b0, b1 in bounds}
    assert sizes <= {64, 32, 16, 8, 4, 2, 1}
    assert sum(b1 - b0 < 64 for b0, b1 in bounds) == bin(n % 64).count("1")  # the rest, one batch per bit


def test_stitch_sees_only_power_of_two_batches_after_the_full_ones():
    seen = []

    def record(no2, valid):
        seen.append(len(no2))
        return np.zeros_like(no2)

    stitch(np.ones((3, 200, 200), np.float32), np.ones((3, 200, 200), bool), record, stride=32, batch_size=16)
    assert sum(seen) == 3 * 6 * 6 and set(seen) <= {16, 8, 4, 2, 1} and seen == sorted(seen, reverse=True)


# --- tiling: context (a fully convolutional pass cut into windows) ---------------------------------------------------


@pytest.fixture(scope="module")
def demo_net():
    """The demo architecture with every residual branch switched on (its BN scales are zero-initialised, which would
    make the network's reach shorter than a trained one's), in eval mode, one torch thread."""
    import torch

    from no2hotspots.config import compose
    from no2hotspots.model.net import build_model

    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = build_model(compose(["model=demo"]).model)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.running_mean.uniform_(-0.1, 0.1)
    yield net.eval()
    torch.set_num_threads(n_threads)


def _net_predictor(net):
    import torch

    def predict(no2, valid):
        x = torch.stack([torch.as_tensor(np.where(valid, no2, 0.0)), torch.as_tensor(valid, dtype=torch.float32)], 1)
        with torch.inference_mode():
            return net(x.float()).numpy()

    return predict


def test_context_pass_equals_one_pass_over_the_whole_field_whatever_the_cut(demo_net):
    """With a margin >= the receptive field, every cut of the field gives the map of ONE pass over the whole field
    (extended by ``margin`` invalid cells on every side, like cloud): no seams, no stride, no dependence on the cut."""
    from no2hotspots.detect.tiles import context_stitch, receptive_radius

    radius = receptive_radius(demo_net)
    assert 16 <= radius <= 48, radius  # the demo network reaches ~40 cells (measured on the trained model: 40)
    no2, valid = _field((2, 150, 203), seed=3)
    no2 = no2 * 5e4  # order-1 inputs, like the scaled ones
    predict = _net_predictor(demo_net)
    pad = ((0, 0), (48, 48 + 152 - 150), (48, 48 + 208 - 203))  # 48 invalid cells round, sides to multiples of 8
    whole = predict(np.pad(np.where(valid, no2, 0.0), pad), np.pad(valid, pad))[:, 48 : 48 + 150, 48 : 48 + 203]
    for core in (64, 128):
        out, counts = context_stitch(no2, valid, predict, core=core, margin=48, alignment=8, batch_size=3)
        assert out.shape == no2.shape and counts["tiles_run"] > 0
        np.testing.assert_allclose(out, whole, atol=2e-5)
    # a margin short of the receptive field does depend on the cut
    short, _ = context_stitch(no2, valid, predict, core=64, margin=8, alignment=8)
    assert np.nanmax(np.abs(short - whole)) > 1e-3


def test_context_pass_checks_its_cut_and_skips_empty_windows(demo_net):
    from no2hotspots.detect.tiles import context_stitch

    predict = _net_predictor(demo_net)
    no2 = np.ones((200, 70), np.float32)
    valid = np.zeros_like(no2, bool)
    valid[50:60, :10] = True  # in the first window's core and in the second's margin: both run
    out, counts = context_stitch(no2, valid, predict, core=64, margin=16, alignment=8)
    assert counts == {"tiles_total": 8, "tiles_run": 2, "tiles_skipped_empty": 6}
    assert np.isfinite(out[:128, :64]).all() and np.isnan(out[128:]).all() and np.isnan(out[:, 64:]).all()
    for bad in ({"core": 60}, {"margin": 20}, {"core": 0}):
        with pytest.raises(ValueError, match="multiple of the model's alignment"):
            context_stitch(no2, valid, predict, **{"core": 64, "margin": 16, "alignment": 8, **bad})


def test_tf32_off_inside_the_block_and_the_settings_before_after_it():
    """The predictor's TF32 switch is local: a training loop in the same process keeps its own settings, also when
    a batch fails."""
    import torch

    from no2hotspots.detect.tiles import tf32_off

    flags = lambda: (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)  # noqa: E731
    before = flags()
    try:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, True
        with tf32_off():
            assert flags() == (False, False)
        assert flags() == (True, True)
        with pytest.raises(RuntimeError, match="batch failed"), tf32_off():
            raise RuntimeError("batch failed")
        assert flags() == (True, True)
        with tf32_off(enabled=False):  # the CPU: nothing touched
            assert flags() == (True, True)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device (run on a GPU machine)")
def test_model_predictor_on_cuda_matches_the_cpu(demo_net):
    """detect.device=cuda gives the CPU's maps (TF32 off): far below any threshold's resolution."""
    import copy

    from no2hotspots.detect.tiles import model_predictor

    no2, valid = _field((64, 64, 64), seed=5)  # mol m-2 with a cloud gap; the predictor scales them
    cpu = model_predictor(copy.deepcopy(demo_net), 1e5, device="cpu")(no2, valid)
    import torch

    torch.backends.cudnn.allow_tf32 = True  # PyTorch's default: the predictor turns it off for its batches only
    gpu = model_predictor(copy.deepcopy(demo_net), 1e5, device="cuda")(no2, valid)
    assert torch.backends.cudnn.allow_tf32
    assert gpu.shape == cpu.shape and np.isfinite(gpu).all()
    assert np.abs(gpu - cpu).max() < 1e-5
