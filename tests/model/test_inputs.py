from __future__ import annotations

import numpy as np
import pytest
import torch

from no2hotspots.errors import UserError
from no2hotspots.model.inputs import check_scaling, prepare_input

SCALE = 1e5


def _field(n=3, seed=0):
    rng = np.random.default_rng(seed)
    no2 = (3e-5 + 1e-5 * rng.standard_normal((n, 64, 64))).astype(np.float32)
    valid = (rng.random((n, 64, 64)) > 0.2).astype(np.uint8)
    no2[valid == 0] = np.nan
    return no2, valid


def test_prepare_input_channels_and_invalid_pixels():
    no2, valid = _field()
    no2[0, 0, 0], valid[0, 0, 0] = np.nan, 1  # a NaN pixel flagged valid still counts as invalid
    x = prepare_input(no2, valid, SCALE)
    assert x.dtype == torch.float32 and x.shape == (3, 2, 64, 64)
    assert torch.isfinite(x).all()
    inv = valid == 0
    assert (x[:, 0].numpy()[inv] == 0).all()
    assert x[0, 1, 0, 0] == 0 and x[0, 0, 0, 0] == 0
    ok = ~np.isnan(no2)
    np.testing.assert_allclose(x[:, 0].numpy()[ok], no2[ok] * SCALE, rtol=1e-6)
    assert set(np.unique(x[:, 1].numpy())) == {0.0, 1.0}
    np.testing.assert_array_equal(x[:, 1].numpy(), ok.astype(np.float32))


def test_prepare_input_accepts_torch_and_single_tile():
    no2, valid = _field(1)
    a = prepare_input(torch.from_numpy(no2), torch.from_numpy(valid), SCALE)
    b = prepare_input(no2[0], valid[0], SCALE)
    assert b.shape == (1, 2, 64, 64)
    assert torch.equal(a, b)


def test_prepare_input_rejects_unscaled_and_double_scaled():
    no2, valid = _field()
    with pytest.raises(UserError, match="raw mol m-2") as e:
        prepare_input(no2, valid, 1.0)
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="scaled twice"):
        prepare_input(no2 * SCALE, valid, SCALE)
    check_scaling(np.zeros((1, 64, 64)), np.zeros((1, 64, 64)))  # nothing valid: nothing to judge
    prepare_input(no2, valid, 1.0, check=False)  # the check can be turned off


def test_prepare_input_shape_mismatch_is_user_error():
    with pytest.raises(UserError, match="prepare_input"):
        prepare_input(np.zeros((2, 64, 64)), np.zeros((3, 64, 64)), SCALE)


def test_prepare_input_on_a_device_is_the_same_input():
    no2, valid = _field()
    assert torch.equal(prepare_input(no2, valid, SCALE, device="cpu"), prepare_input(no2, valid, SCALE))
    assert prepare_input(no2, valid, SCALE, device=torch.device("cpu")).device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on a GPU machine)")
def test_prepare_input_on_cuda_equals_cpu_and_still_checks_the_scaling():
    no2, valid = _field()
    x = prepare_input(no2, valid, SCALE, device="cuda")
    assert x.is_cuda and torch.equal(x.cpu(), prepare_input(no2, valid, SCALE))
    with pytest.raises(UserError, match="raw mol m-2"):
        prepare_input(no2, valid, 1.0, device="cuda")
    with pytest.raises(UserError, match="scaled twice"):
        prepare_input(no2 * SCALE, valid, SCALE, device="cuda")
