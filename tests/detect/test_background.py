"""The regional-background shift before inference (no2hotspots.detect.background) and its place in detect_field."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from no2hotspots.detect.background import local_background, masked_background, shift_background
from no2hotspots.detect.field import detect_field

from .helpers import RampNet, Recorder, field_settings, loaded_model

CELL = (5560.0, 5560.0)  # m, about 0.05 deg


def _gaussian(ny, nx, row, col, sigma_px, amp):
    yy, xx = np.mgrid[0:ny, 0:nx]
    return amp * np.exp(-((yy - row) ** 2 + (xx - col) ** 2) / (2 * sigma_px**2))


def test_local_background_ignores_gaps_and_follows_a_gradient():
    ny, nx = 60, 80
    field = 1.0e-4 + 2.0e-7 * np.arange(nx)[None, :] * np.ones((ny, 1))  # +1.6e-5 across the field
    valid = np.ones((ny, nx), bool)
    valid[20:40, 30:50] = False
    field = np.where(valid, field, 9.0)  # what lies under the gap must not matter
    bg = local_background(field, valid, CELL, sigma_km=30.0)
    inner = (slice(15, 45), slice(15, 65))  # away from the field's edges (a mean there leans inwards)
    want = 1.0e-4 + 2.0e-7 * np.arange(nx)[None, :] * np.ones((ny, 1))
    np.testing.assert_allclose(bg[inner], want[inner], rtol=0.015)  # a gap on one side tilts the weights a little
    assert bg.max() < 1.2e-4  # the 9.0 under the gap never enters


def test_shift_takes_off_only_the_excess_and_keeps_plumes():
    ny, nx = 64, 64
    valid = np.ones((ny, nx), bool)
    plume = _gaussian(ny, nx, 32, 32, 1.5, 1.5e-4)
    high = (2.0e-4 + plume).astype(np.float32)
    out, shift = shift_background(high, valid, CELL, max_mol_m2=3.0e-5, sigma_km=50.0)
    far = np.ones((ny, nx), bool)
    far[24:41, 24:41] = False
    assert abs(float(np.median(out[far])) - 3.0e-5) < 2.0e-6  # the region now sits at the top of the training range
    assert shift.dtype == np.float32 and shift.shape == high.shape
    np.testing.assert_allclose(out, high - shift, rtol=1e-6)  # the map is what was taken off, cell by cell
    assert 1.65e-4 < float(shift.max()) < 1.75e-4  # the background's excess (the plume lifts its local mean)
    assert float(shift[32, 32]) > float(np.median(shift[far]))  # ... most where the plume is
    enhancement = float(out[32, 32] - np.median(out[far]))
    assert abs(enhancement - 1.5e-4) < 0.05 * 1.5e-4  # the plume keeps its height
    # a field inside the training range is returned as it is; 0 switches the shift off
    low = (2.0e-5 + plume).astype(np.float32)
    same, shift_low = shift_background(low, valid, CELL, max_mol_m2=3.0e-5, sigma_km=50.0)
    assert not shift_low.any() and np.array_equal(same, low)
    off, shift_off = shift_background(high, valid, CELL, max_mol_m2=0.0, sigma_km=50.0)
    assert not shift_off.any() and shift_off.shape == high.shape and off is high


def test_masked_background_is_not_raised_by_a_cluster_plume():
    """A merged plume of a cluster (2e-4 peak, sigma 8 px = 44 km) over a noisy 1e-4 background with a cloud gap:
    the plain 50-km mean takes a large part of the plume for background; the masked one stays near 1e-4, and the
    shift then leaves the plume's height (nearly) whole."""
    rng = np.random.default_rng(3)
    ny, nx = 96, 96
    plume = _gaussian(ny, nx, 48, 40, 8.0, 2.0e-4)
    field = (1.0e-4 + plume + rng.normal(0.0, 1.0e-5, (ny, nx))).astype(np.float32)
    valid = np.ones((ny, nx), bool)
    valid[:, 80:] = False
    field = np.where(valid, field, np.nan).astype(np.float32)
    plain = local_background(field, valid, CELL, sigma_km=50.0)
    masked, left_out = masked_background(field, valid, CELL, sigma_km=50.0, z=2.33)
    assert float(plain[48, 40]) > 1.6e-4  # the mean is raised by the plume by more than half its peak
    assert abs(float(masked[48, 40]) - 1.0e-4) < 1.5e-5
    assert left_out[48, 40] and not left_out[~valid].any()  # never an invalid cell
    assert np.isfinite(masked[valid]).all()
    out, shift = shift_background(field, valid, CELL, max_mol_m2=5.0e-5, sigma_km=50.0, mask_z=2.33)
    assert abs(float(out[48, 40] - 5.0e-5) - 2.0e-4) < 0.15 * 2.0e-4  # the plume keeps its height over 5e-5


def test_masked_background_of_noise_alone_is_the_mean():
    """Without plumes the masking leaves out noise peaks and their neighbours only: the estimate moves by a few
    per cent of the noise, not more."""
    rng = np.random.default_rng(4)
    field = (1.0e-4 + rng.normal(0.0, 1.0e-5, (80, 80))).astype(np.float32)
    valid = np.ones(field.shape, bool)
    plain = local_background(field, valid, CELL, sigma_km=50.0)
    masked, left_out = masked_background(field, valid, CELL, sigma_km=50.0, z=2.33)
    assert 0.0 < left_out.mean() < 0.15  # 1 % of the cells lie above 2.33 sd; with their neighbours < 15 %
    assert float(np.max(np.abs(masked - plain))) < 0.1 * 1.0e-5


def _overpass(no2: np.ndarray) -> xr.Dataset:
    ny, nx = no2.shape
    lat = 40.0 + (np.arange(ny) + 0.5) * 0.05
    lon = 116.0 + (np.arange(nx) + 0.5) * 0.05
    ds = xr.Dataset({"no2": (("lat", "lon"), no2)}, coords={"lat": lat, "lon": lon})
    ds["coverage"] = xr.where(np.isfinite(ds["no2"]), 1.0, 0.0)
    return ds


def test_detect_field_runs_the_model_on_the_shifted_field():
    """A polluted region (2e-4) with a cloud gap and one compact source. The ramp model marks every cell above 1e-4:
    unshifted, the whole region is one hotspot; shifted to the training range, only the source is."""
    ny, nx = 96, 96
    no2 = 2.0e-4 + _gaussian(ny, nx, 60, 30, 1.5, 2.0e-4)
    no2[:, 70:] = np.nan  # a cloud gap
    rec = Recorder(RampNet())
    plain = detect_field(_overpass(no2), loaded_model(rec), field_settings())
    assert len(plain["hotspots"]) == 1 and plain["hotspots"][0]["n_cells"] > 3000
    seen_plain = float(np.median(rec.inputs[0][:, 0][rec.inputs[0][:, 1] > 0]))
    rec.inputs.clear()
    shifted = detect_field(_overpass(no2), loaded_model(rec), field_settings(background_max_mol_m2=3.0e-5))
    seen = float(np.median(rec.inputs[0][:, 0][rec.inputs[0][:, 1] > 0]))
    assert abs(seen_plain - 2.0) < 0.01 and abs(seen - 0.3) < 0.03  # model input = no2 x 1e4
    (h,) = shifted["hotspots"]
    assert h["n_cells"] < 20
    lat, lon = _overpass(no2)["lat"].values, _overpass(no2)["lon"].values
    assert abs(h["peak_lat"] - lat[60]) < 0.03 and abs(h["peak_lon"] - lon[30]) < 0.03
    # the hotspot and the overpass say how much background was taken off: 2e-4 (+ the source's share of the local
    # mean) - 3e-5 at the peak; nothing without the shift
    assert 1.70e-4 < h["background_shift_mol_m2"] < 1.85e-4
    assert h["background_shift_mol_m2"] <= shifted["background_shift_max"] < 1.9e-4
    assert plain["hotspots"][0]["background_shift_mol_m2"] == 0.0 and plain["background_shift_max"] == 0.0


def test_background_shift_benchmark_probes_the_detect_path(benchmark_script):
    """benchmarks/background_shift.py on the ramp model (r rises with the column): without the shift every level
    above 1e-4 marks the whole clear field; with it, each level looks like the training range's top."""
    from no2hotspots.config import compose
    from no2hotspots.detect.run import settings

    mod = benchmark_script("background_shift")
    s = {**settings(compose()), "device": "cpu"}
    loaded = loaded_model(RampNet())
    off = mod.probe(loaded, {**s, "background_max_mol_m2": 0.0})
    on = mod.probe(loaded, {**s, "background_max_mol_m2": 5.0e-5})
    assert off["2e-04"]["clear_max_r"] > 0.5 and off["3e-04"]["clear_max_r"] > 0.9
    for level in ("1e-04", "2e-04", "3e-04"):
        assert on[level]["clear_max_r"] < 0.2  # 5e-5 + noise (< 1e-4) stays under the hotspot threshold
        assert on[level]["source_r"] > 0.5  # the 1.5e-4 source keeps its height above the shifted background


def test_both_callers_supply_every_field_setting_and_a_missing_one_is_named():
    """detect_field's settings come from the detect stage (detect.run.settings) and from the served model
    (registry.serving); each must carry every key of FIELD_SETTINGS, and a caller that leaves one out gets one line."""
    from no2hotspots.config import compose
    from no2hotspots.detect.field import FIELD_SETTINGS
    from no2hotspots.detect.run import settings
    from no2hotspots.errors import UserError
    from no2hotspots.registry.serving import PARAM_DEFAULTS, _field_settings

    assert set(FIELD_SETTINGS) <= set(settings(compose()))
    assert set(FIELD_SETTINGS) <= set(_field_settings(dict(PARAM_DEFAULTS)))
    assert set(FIELD_SETTINGS) <= set(field_settings())  # this suite's hand-made settings too
    s = field_settings()
    del s["background_mask_z"], s["peaks"]
    with pytest.raises(UserError, match=r"^detect settings: missing background_mask_z, peaks \(") as e:
        detect_field(_overpass(np.full((64, 64), 1.0e-5)), loaded_model(Recorder(RampNet())), s)
    assert "\n" not in str(e.value)
