"""The training losses: the paper's MSE and the optional soft-Dice and peak terms."""

from __future__ import annotations

import pytest
import torch

from no2hotspots.train.loop import Loss


def loss_fn(pred, target, **kw):
    """The configured loss as a function (``Loss`` holds the settings)."""
    return Loss(**kw)(pred, target)


def _maps():
    target = torch.zeros(2, 64, 64)
    target[0, 10:14, 20:24] = 0.03  # a weak source, just above a 0.02 detection threshold
    target[1, 40:44, 40:44] = 0.8
    return target


def test_plain_mse_is_the_paper_loss():
    target = _maps()
    pred = torch.full_like(target, 0.01)
    assert torch.isclose(loss_fn(pred, target), ((pred - target) ** 2).mean())


def test_dice_term_rewards_marking_weak_footprints_and_a_clean_background():
    target = _maps()
    missed = torch.full_like(target, 1e-3)  # background right, the weak footprint below threshold
    missed[1] = target[1].clamp(min=1e-3)
    found = missed.clone()
    found[0, 10:14, 20:24] = 0.03
    noisy = found.clone() + 0.03  # everything above threshold: a false alarm everywhere
    kw = dict(dice_weight=0.1, dice_threshold=0.02, dice_temperature=0.5)
    l_missed, l_found, l_noisy = (loss_fn(p.clamp(max=1), target, **kw) for p in (missed, found, noisy))
    assert l_found < l_missed and l_found < l_noisy
    # MSE alone barely tells the weak footprint apart (it is 16 pixels of 0.03)
    assert (loss_fn(missed, target) - loss_fn(found, target)) < 1e-5 < (l_missed - l_found)


def test_dice_gradient_reaches_a_footprint_predicted_near_zero():
    target = _maps()
    pred = torch.full_like(target, 1e-4, requires_grad=True)
    loss_fn(pred, target, dice_weight=0.1, dice_threshold=0.02).backward()
    assert pred.grad[0, 10:14, 20:24].abs().min() > 0
    assert (pred.grad[0, 10:14, 20:24] < 0).all()  # gradient descent raises the footprint


def test_tversky_beta_above_half_makes_a_missed_pixel_cost_more_than_an_extra_one():
    target = torch.zeros(1, 64, 64)
    target[0, 10:14, 20:24] = 0.5
    base = torch.full_like(target, 1e-4)
    base[target > 0] = 0.5
    missed = base.clone()
    missed[0, 10, 20] = 1e-4  # one footprint pixel below the threshold
    extra = base.clone()
    extra[0, 9, 20] = 0.5  # one background pixel above it
    kw = dict(dice_weight=1.0, dice_threshold=0.02, dice_temperature=0.5)
    # Dice (beta 0.5) weighs a miss and an extra pixel alike; beta 0.7 penalises the miss more
    d_miss, d_extra = (loss_fn(p, target, dice_beta=0.5, **kw) - loss_fn(p, target, **kw) for p in (missed, extra))
    assert float(d_miss) == 0.0 and float(d_extra) == 0.0  # beta 0.5 is the default Dice
    dice_gap = float(loss_fn(missed, target, dice_beta=0.5, **kw) - loss_fn(extra, target, dice_beta=0.5, **kw))
    tv_gap = float(loss_fn(missed, target, dice_beta=0.7, **kw) - loss_fn(extra, target, dice_beta=0.7, **kw))
    assert abs(dice_gap) < 0.01 and tv_gap > 0.01


def _pair(separation: int, r=(0.6, 0.3), k: int = 3):
    """Two k x k footprints ``separation`` px apart along a row (centre to centre)."""
    target = torch.zeros(1, 32, 32)
    for dx, value in zip((0, separation), r):
        target[0, 10 : 10 + k, 8 + dx : 8 + dx + k] = value
    return target


def test_peak_term_is_zero_when_each_source_shows_its_own_peak():
    target = _pair(4)
    pred = torch.zeros_like(target)
    pred[0, 11, 9], pred[0, 11, 13] = 0.6, 0.3  # only the two centres reach r: every footprint pixel sees its centre
    assert float(Loss(peak_weight=1.0).peak_deficit(pred, target)) == 0.0
    # MSE would call this a poor fit (16 of 18 footprint pixels at 0)
    assert float(loss_fn(pred, target, peak_weight=5.0)) == float(loss_fn(pred, target))


def test_a_neighbours_peak_does_not_stand_in_for_a_weaker_source():
    target = _pair(3)  # blocks touch: no gap between them
    one_blob = torch.zeros_like(target)
    one_blob[0, 10:13, 8:11] = 0.6  # the stronger source at its r
    one_blob[0, 10:13, 11:14] = 0.01  # the weaker one faint, highest at its centre (no ties)
    one_blob[0, 11, 12] = 0.05
    deficit = float(Loss(peak_weight=1.0).peak_deficit(one_blob, target))
    # the weak block's column next to the strong one sees it; its other six pixels see only the 0.05 centre
    assert abs(deficit - 6 * (0.3 - 0.05) ** 2 / target.numel()) < 1e-9
    pred = one_blob.clone().requires_grad_(True)
    Loss(peak_weight=1.0).peak_deficit(pred, target).backward()
    assert float(pred.grad[0, 11, 12]) < 0  # descent raises the weak source's own peak
    assert int((pred.grad != 0).sum()) == 1  # and nothing else


def test_peak_term_accepts_channel_maps_and_counts_in_the_loss():
    target = _pair(6).unsqueeze(1)  # (N, 1, H, W) as the model returns
    pred = torch.zeros_like(target)
    with_peak = float(loss_fn(pred, target, peak_weight=2.0))
    expected = float(((pred - target) ** 2).mean()) + 2.0 * float((target**2).mean())
    assert abs(with_peak - expected) < 1e-9


def test_a_high_pixel_beside_the_footprint_counts_only_without_the_footprint_mask():
    target = _pair(8)
    pred = torch.zeros_like(target)
    pred[0, 11, 9], pred[0, 11, 17] = 0.6, 0.01  # the strong source peaks at its centre; the weak one is faint ...
    pred[0, 11, 19] = 0.3  # ... with its r reached one pixel beside its footprint (downwind, say)
    beside = float(Loss(peak_weight=1.0).peak_deficit(pred, target))
    inside = float(Loss(peak_weight=1.0, peak_within_footprint=True).peak_deficit(pred, target))
    # without the mask the footprint's right column sees the outside pixel (3 of 9 satisfied); with it none are
    assert abs(beside - 6 * 0.29**2 / target.numel()) < 1e-9
    assert abs(inside - 9 * 0.29**2 / target.numel()) < 1e-9


def _pooled_deficit(pred, target, window, within):
    """The peak term as a dense max_pool2d over the whole map (the definition the gathered form must equal)."""
    emitting = target > 0
    seen = pred.masked_fill(~emitting, float("-inf")) if within else pred
    flat = seen.reshape(-1, 1, *pred.shape[-2:])
    local = torch.nn.functional.max_pool2d(flat, window, stride=1, padding=window // 2).reshape(pred.shape)
    return torch.where(emitting, torch.relu(target - local) ** 2, 0.0).mean()


@pytest.mark.parametrize("window", [3, 5])
@pytest.mark.parametrize("within", [False, True])
def test_gathered_peak_term_equals_the_pooled_definition(window, within):
    g = torch.Generator().manual_seed(window + 10 * within)
    target = torch.rand(4, 1, 32, 32, generator=g) * (torch.rand(4, 1, 32, 32, generator=g) > 0.8)
    target[0, 0, :6, :6] = 0.4  # footprints on the map's edge and corner
    base = torch.rand(4, 1, 32, 32, generator=g)  # continuous values: no ties within a window
    a, b = base.clone().requires_grad_(True), base.clone().requires_grad_(True)
    loss = Loss(peak_weight=1.0, peak_window_px=window, peak_within_footprint=within)
    gathered, pooled = loss.peak_deficit(a, target), _pooled_deficit(b, target, window, within)
    gathered.backward()
    pooled.backward()
    assert gathered.item() > 0 and torch.allclose(gathered, pooled, rtol=1e-6, atol=0)
    assert torch.allclose(a.grad, b.grad, rtol=1e-6, atol=1e-12) and int((a.grad != 0).sum()) > 10


def test_a_tie_in_the_window_sends_the_gradient_to_one_pixel():
    target = torch.zeros(1, 16, 16)
    target[0, 5, 5] = 0.7
    pred = torch.zeros(1, 16, 16)
    pred[0, 4:7, 4:7] = 0.5  # nine equal maxima around the source
    pred.requires_grad_(True)
    Loss(peak_weight=1.0).peak_deficit(pred, target).backward()
    # torch.max's documented choice, the first maximum in the window's row-major order
    assert [tuple(ix) for ix in pred.grad[0].nonzero().tolist()] == [(4, 4)] and float(pred.grad[0, 4, 4]) < 0


def test_peak_term_of_a_map_without_sources_is_zero_with_a_zero_gradient():
    pred = torch.rand(2, 16, 16, requires_grad=True)
    deficit = Loss(peak_weight=1.0).peak_deficit(pred, torch.zeros(2, 16, 16))
    deficit.backward()
    assert deficit.item() == 0.0 and not bool(pred.grad.any())
