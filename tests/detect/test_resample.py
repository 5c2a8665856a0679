"""detect.resample=model_pixel (no2hotspots.detect.resample): area means onto a lattice of the model's pixel anchored
at 0 N / 0 E, bilinear back; on a grid that is the lattice itself the detection equals resample=none."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from no2hotspots.detect.field import detect_field
from no2hotspots.detect.grid import M_PER_DEG
from no2hotspots.detect.resample import MIN_COVER, linear_matrix, model_pixels, overlap_matrix
from no2hotspots.errors import UserError

from .helpers import RampNet, field_settings, loaded_model

PIXEL = 5500.0
STEP = PIXEL / M_PER_DEG


def _axis(lo, res, n):
    return np.round(lo + res * np.arange(n), 10)


def test_the_lattice_is_anchored_so_shifted_grids_share_its_cells():
    a = model_pixels(_axis(40.0, 0.05, 40), _axis(112.0, 0.05, 50), PIXEL)
    b = model_pixels(_axis(40.025, 0.05, 40), _axis(112.025, 0.0625, 40), PIXEL)
    step_lon = STEP / np.cos(np.deg2rad(41.0))  # the mean latitude rounded to a whole degree
    for m in (a, b):
        np.testing.assert_allclose(np.diff(m.lat), STEP)
        np.testing.assert_allclose(np.diff(m.lon), step_lon)
        for c, step in ((m.lat, STEP), (m.lon, step_lon)):  # centres at (k + 1/2) steps
            k = c / step - 0.5
            np.testing.assert_allclose(k, np.round(k), rtol=0, atol=1e-9)
    common = np.intersect1d(np.floor(a.lat / STEP), np.floor(b.lat / STEP))
    assert common.size >= 39  # the same cells, not cells offset by a fraction


def test_overlap_and_linear_weights():
    w = overlap_matrix([0.0, 1.0, 2.0], [1.0, 2.0, 3.0], [0.5, 2.0], [2.0, 3.5])
    np.testing.assert_allclose(w, [[0.5, 1.0, 0.0], [0.0, 0.0, 1.0]])
    lin = linear_matrix([0.0, 1.0, 3.0], [-1.0, 0.5, 2.0, 3.0, 9.0])
    np.testing.assert_allclose(lin @ np.array([10.0, 20.0, 40.0]), [10.0, 15.0, 30.0, 40.0, 40.0])
    np.testing.assert_allclose(lin.sum(axis=1), 1.0)


def test_area_means_conserve_the_column_and_need_half_the_cell_observed():
    lat, lon = _axis(40.0, 0.05, 40), _axis(112.0, 0.0625, 30)
    m = model_pixels(lat, lon, PIXEL)
    rng = np.random.default_rng(3)
    field = rng.uniform(1e-5, 5e-5, (lat.size, lon.size))
    mean, ok = m.to_model(field, np.ones(field.shape, bool))
    # every lattice cell fully inside the grid: its mean times its area equals the grid's integral over it
    inner = np.outer(m.wy.sum(1) > STEP - 1e-9, m.wx.sum(1) > m.wx.sum(1).max() - 1e-9)
    assert inner.sum() > 100 and ok[inner].all()
    area = np.outer(m.wy.sum(1), m.wx.sum(1))
    total = (m.wy @ field @ m.wx.T)[inner].sum()
    assert (mean * area)[inner].sum() == pytest.approx(total, rel=1e-12)
    # a gap over the west half: lattice cells with less than MIN_COVER of valid area have no value
    valid = np.ones(field.shape, bool)
    valid[:, :15] = False
    mean_gap, ok_gap = m.to_model(field, valid)
    cover = (m.wy @ valid.astype(float) @ m.wx.T) / area
    np.testing.assert_array_equal(ok_gap, cover >= MIN_COVER)
    assert np.isnan(mean_gap[~ok_gap]).all() and (~ok_gap).any() and ok_gap.any()
    # a constant field stays that constant wherever there is a value, gap or not
    const, ok_c = m.to_model(np.full(field.shape, 3e-5), valid)
    np.testing.assert_allclose(const[ok_c], 3e-5)


def test_back_interpolation_is_exact_for_planes_and_skips_missing_cells():
    lat, lon = _axis(40.0, 0.05, 40), _axis(112.0, 0.05, 50)
    m = model_pixels(lat, lon, PIXEL)
    plane = 0.3 + 2.0 * (m.lat[:, None] - 41.0) - 0.5 * (m.lon[None, :] - 113.0)
    back = m.to_grid(plane)
    inside = np.outer((lat >= m.lat[0]) & (lat <= m.lat[-1]), (lon >= m.lon[0]) & (lon <= m.lon[-1]))
    truth = 0.3 + 2.0 * (lat[:, None] - 41.0) - 0.5 * (lon[None, :] - 113.0)
    np.testing.assert_allclose(back[inside], truth[inside], atol=1e-12)
    holed = np.full(m.shape, 0.25)
    holed[5, 5] = np.nan  # a lattice cell without a value: its neighbours carry the value, no NaN spreads
    np.testing.assert_allclose(m.to_grid(holed), 0.25)
    assert np.isnan(m.to_grid(np.full(m.shape, np.nan))).all()


def test_a_grid_narrower_than_two_model_pixels_is_a_one_line_error():
    lat = _axis(40.0, 0.05, 40)
    step_lon = STEP / np.cos(np.deg2rad(np.round(lat.mean())))
    lon = (np.floor(112.0 / step_lon) + 0.5) * step_lon + np.array([-0.01, 0.0, 0.01])  # inside one model pixel
    with pytest.raises(UserError, match="detect.resample: model_pixel needs .* along longitude") as e:
        model_pixels(lat, lon, PIXEL)
    assert "\n" not in str(e.value)


def _overpass(lat, lon, seed=1):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : lat.size, 0 : lon.size]
    no2 = 2e-5 + 0.2e-5 * rng.standard_normal((lat.size, lon.size))
    for i, j, amp in ((20, 25, 3e-4), (45, 60, 1.5e-4)):
        no2 += amp * np.exp(-((yy - i) ** 2 + (xx - j) ** 2) / 8.0)
    no2[:6, :10] = np.nan  # a gap
    return xr.Dataset({"no2": (("lat", "lon"), no2)}, coords={"lat": lat, "lon": lon})


def test_on_the_lattice_itself_model_pixel_detects_what_none_detects():
    lat = (np.arange(-500, -430) + 0.5) * STEP  # 70 lattice rows around 23 S
    step_lon = STEP / np.cos(np.deg2rad(np.round(lat.mean())))
    lon = (np.arange(470, 560) + 0.5) * step_lon
    ds = _overpass(lat, lon)
    loaded = loaded_model(RampNet())
    a, b = detect_field(ds, loaded, field_settings("none")), detect_field(ds, loaded, field_settings("model_pixel"))
    np.testing.assert_allclose(b["relative_emission"], a["relative_emission"], atol=1e-6, equal_nan=True)
    assert a["hotspots"] and [h["peak_lat"] for h in b["hotspots"]] == [h["peak_lat"] for h in a["hotspots"]]


def test_a_finer_grid_gives_the_lattice_map_back_on_its_cells():
    """A grid of 1/2-pixel cells: the model sees 2x2 means; the source's hotspot lands within a pixel of it."""
    lat = (np.arange(-1000, -860) + 0.5) * STEP / 2
    step_lon = STEP / np.cos(np.deg2rad(np.round(lat.mean())))
    lon = (np.arange(940, 1120) + 0.5) * step_lon / 2
    ds = _overpass(lat, lon)
    r = detect_field(ds, loaded_model(RampNet()), field_settings("model_pixel"))
    assert r["relative_emission"].shape == (lat.size, lon.size)
    assert np.isnan(r["relative_emission"][:6, :10]).all()  # the grid's own gap stays masked
    peak = max(r["hotspots"], key=lambda h: h["peak_rel_emission"])
    assert abs(peak["peak_lat"] - lat[20]) <= STEP and abs(peak["peak_lon"] - lon[25]) <= step_lon
