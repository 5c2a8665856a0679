"""Model input preparation: the one function training and detection share, so both apply the same scaling."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import UserError

#: valid pixels of a correctly scaled input have a median |value| inside this range (NO2 columns are ~1e-5..1e-4
#: mol m-2; input_scale brings them to order 1)
SCALED_MEDIAN_RANGE = (1e-3, 1e3)


class InputScaleError(UserError):
    """The model input does not look scaled by ``input_scale``."""


def _as_tensor(a) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.detach()
    if hasattr(a, "values") and not isinstance(a, np.ndarray):  # xarray.DataArray
        a = a.values
    return torch.as_tensor(np.asarray(a))


def check_scaling(no2_scaled, valid=None) -> None:
    """Raise a one-line ``InputScaleError`` if the valid pixels of a scaled NO2 field look unscaled or mis-scaled.

    The median |value| over valid, finite pixels must lie in ``SCALED_MEDIAN_RANGE``. Inputs without any valid pixel
    (e.g. a fully clouded tile) pass: there is nothing to judge.
    """
    x = _as_tensor(no2_scaled).to(torch.float64)
    ok = torch.isfinite(x)
    if valid is not None:
        ok &= _as_tensor(valid).to(torch.bool)
    vals = x[ok].abs()
    if vals.numel() == 0:
        return
    if vals.is_cuda:  # on the GPU: the lower median (torch's), no copy to the host; the range is orders wide
        med = float(vals.median())
    else:  # numpy: torch.quantile refuses > 2**24 elements
        med = float(np.median(vals.numpy()))
    lo, hi = SCALED_MEDIAN_RANGE
    if med < lo:
        raise InputScaleError(
            f"model input looks like raw mol m-2 (median |value| of valid pixels {med:.3g} after scaling); expected "
            f"no2 x input_scale of order 1: check input_scale"
        )
    if med > hi:
        raise InputScaleError(
            f"model input looks scaled twice or by a wrong input_scale (median |value| of valid pixels {med:.3g}); "
            f"expected no2 [mol m-2] x input_scale of order 1"
        )


def prepare_input(no2, valid, input_scale: float, *, check: bool = True, device=None) -> torch.Tensor:
    """Build the model input (N, 2, H, W) float32 from NO2 columns [mol m-2] and the validity mask.

    - channel 0: ``no2 * input_scale``; pixels that are invalid (``valid == 0``) or not finite (NaN) are set to 0;
    - channel 1: the validity mask as 0/1 (a NaN pixel counts as invalid even where ``valid`` says 1).

    ``no2``/``valid`` may be numpy arrays, torch tensors or xarray DataArrays of shape (N, H, W) or (H, W).
    With ``check`` (default) the scaled valid pixels go through ``check_scaling``. ``device``: move the raw arrays
    there first and prepare the input there (on a GPU the host then only copies them; ``None``: where they are).
    """
    x = _as_tensor(no2)
    v = _as_tensor(valid)
    if device is not None:
        x, v = x.to(device), v.to(device)
    if x.ndim == 2:
        x, v = x[None], v[None] if v.ndim == 2 else v
    if x.ndim != 3 or tuple(v.shape) != tuple(x.shape):
        raise UserError(
            f"prepare_input: no2 and valid must both be (N, H, W) or (H, W); got {tuple(x.shape)} and {tuple(v.shape)}"
        )
    x = x.to(torch.float32)
    mask = v.to(torch.bool) & torch.isfinite(x)
    scaled = torch.where(mask, x * float(input_scale), torch.zeros((), dtype=torch.float32))
    if check:
        check_scaling(scaled, mask)
    return torch.stack([scaled, mask.to(torch.float32)], dim=1).contiguous()
