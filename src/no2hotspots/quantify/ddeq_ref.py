"""The ddeq 1.1 reference estimate (Kuhlmann et al. 2024, GMD 17, 4773): ddeq's own chain on the same scene.

Optional: runs only when the ``ddeq`` package is installed (``pip install ddeq==1.1``, LGPL-2.1+; see
docs/quantify.md for why it is not a core dependency). For one hotspot of one overpass it runs, on the ingest grid
cropped around the hotspot (cells as ddeq "pixels" with their corners):

``ddeq.dplume.detect_plumes`` (z-test against a local median) -> ``ddeq.curves.fit_to_detections`` (a Bezier centre
curve through the detected pixels, forced through the source) -> ``ddeq.curves.compute_natural_coords`` /
``compute_plume_areas`` -> ``ddeq.background.estimate`` (normalised convolution outside the plume) ->
``ddeq.emissions.convert_units`` -> ``ddeq.csf.estimate_emissions`` (Gaussian fits of the line densities in 5 km
polygons along the curve, then a fit of the flux with an exponential decay along the plume).

Its NO2 emission [kg/s] and precision (fit error and wind speed) are returned in mol/s NO2 like our estimators; the
NOx conversion is then the same (:mod:`.chemistry`). Where the near-source NO -> NO2 conversion is on
(:class:`.estimate.Ramp`), ddeq undoes it itself: ``estimate_emissions(f_model=ddeq.functions.NO2toNOxConversion)``
scales each polygon's line density by 1 / share(t) at its time since emission (m / f0, r, 1: the far field stays at
our NOx/NO2 ratio, applied after), and its precision then carries the conversion's spread (m, r 1-sigma) too.
Differences to our CSF: a curved centre line from the detections instead of the wind direction, Gaussian fits
instead of sums, a fitted decay instead of a given lifetime.

Compatibility: ddeq 1.1's ``misc.init_results_dataset`` passes a Dataset to the ``xr.Dataset`` constructor, which the
pinned xarray (2026.9) refuses; :func:`_compatible_ddeq` swaps in an equivalent function while the chain runs (and
restores it). ``ddeq.ime.estimate_emissions`` has the same construct inline and is therefore not used; our IME
formula is checked against ``ddeq.ime.calculate_flux`` in the tests instead. ddeq prints progress with ``print``:
it is redirected to the log at debug level.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from .chemistry import NO2_MOLAR_MASS_G
from .estimate import Estimate, Lifetime, Wind

log = logging.getLogger(__name__)
METHOD = "ddeq_csf"
KG_S_TO_MOL_S = 1e3 / NO2_MOLAR_MASS_G


@dataclass(frozen=True)
class DdeqConfig:
    half_height_deg: float = 1.2
    half_width_deg: float = 1.5
    q: float = 0.99  # z-test probability of ddeq's plume detection
    dx_m: float = 5000.0  # polygon length along the plume


def available() -> bool:
    return importlib.util.find_spec("ddeq") is not None


@contextlib.contextmanager
def _compatible_ddeq():
    import ddeq

    orig = ddeq.misc.init_results_dataset

    def init_results_dataset(source, gases, extra_vars={}, units="kg s-1", global_attrs={}):  # noqa: B006 - ddeq's
        if isinstance(gases, str):
            gases = [gases]
        result = source.copy()
        result.attrs = dict(global_attrs)
        n = source["source"].size
        for gas in gases:
            for name, attrs in extra_vars.items():
                result[name.format(gas=gas)] = xr.DataArray(np.full(n, np.nan), dims=source.dims, attrs=attrs)
            for name in (f"{gas}_emissions", f"{gas}_emissions_precision"):
                result[name] = xr.DataArray(np.full(n, np.nan), dims=["source"], attrs={"units": units})
        return result

    ddeq.misc.init_results_dataset = init_results_dataset
    try:
        yield ddeq
    finally:
        ddeq.misc.init_results_dataset = orig


def _scene_dataset(ov: xr.Dataset, lat0: float, lon0: float, cfg: DdeqConfig, noise_level: float) -> xr.Dataset:
    sub = ov.sel(
        lat=slice(lat0 - cfg.half_height_deg, lat0 + cfg.half_height_deg),
        lon=slice(lon0 - cfg.half_width_deg, lon0 + cfg.half_width_deg),
    )
    lat, lon = sub["lat"].values, sub["lon"].values
    LON, LAT = np.meshgrid(lon, lat)
    dlat = float(np.median(np.diff(lat))) if lat.size > 1 else 0.05
    dlon = float(np.median(np.diff(lon))) if lon.size > 1 else 0.05
    latc = np.stack([LAT - dlat / 2, LAT - dlat / 2, LAT + dlat / 2, LAT + dlat / 2], axis=-1)
    lonc = np.stack([LON - dlon / 2, LON + dlon / 2, LON + dlon / 2, LON - dlon / 2], axis=-1)
    no2 = sub["no2"].values.astype(float)
    dims = ("nrows", "nobs")
    data = xr.Dataset(
        {
            "NO2": (dims, no2, {"units": "mol m-2", "noise_level": noise_level}),
            "NO2_std": (dims, np.full(no2.shape, noise_level), {"units": "mol m-2"}),
            "psurf": (dims, np.full(no2.shape, 101325.0), {"units": "Pa"}),
            "latc": (dims + ("corner",), latc),
            "lonc": (dims + ("corner",), lonc),
        },
        coords={"lat": (dims, LAT), "lon": (dims, LON)},
    )
    return data


def estimate(
    ov: xr.Dataset,
    time,
    lat0: float,
    lon0: float,
    wind: Wind,
    life: Lifetime,
    noise_level: float,
    cfg: DdeqConfig = DdeqConfig(),
) -> Estimate:
    """ddeq's CSF for a source at (lat0, lon0) in one overpass grid ``ov`` (no2 on lat, lon). mol/s NO2."""
    if not available():
        return Estimate.failed(METHOD, "ddeq_not_installed")
    if not np.isfinite(wind.direction_from):
        return Estimate.failed(METHOD, "no_wind_direction")
    out = io.StringIO()
    try:
        with _compatible_ddeq() as ddeq, contextlib.redirect_stdout(out), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res, n_det = _chain(ddeq, ov, time, lat0, lon0, wind, life, noise_level, cfg)
            if res is None:
                return Estimate.failed(METHOD, "ddeq_no_plume_detected")
    except Exception as e:  # noqa: BLE001 - a failing reference must not stop the stage; it is reported per row
        log.debug("ddeq failed: %s: %s\n%s", type(e).__name__, e, out.getvalue())
        return Estimate.failed(METHOD, f"ddeq_error: {type(e).__name__}")
    if out.getvalue().strip():
        log.debug("ddeq: %s", out.getvalue().strip())
    return _estimate_from(res, n_det, wind)


def _one_source(lat0: float, lon0: float) -> xr.Dataset:
    """The hotspot as ddeq's source table."""
    return xr.Dataset(
        {
            "label": ("source", ["hotspot"]),
            "lon": ("source", [lon0]),
            "lat": ("source", [lat0]),
            "diameter": ("source", [1000.0]),
            "type": ("source", ["power plant"]),
        },
        coords={"source": ["hotspot"]},
    )


def _chain(ddeq, ov, time, lat0, lon0, wind: Wind, life: Lifetime, noise_level: float, cfg: DdeqConfig):
    """ddeq's detection -> centre curve -> background -> CSF chain (module doc); (its result, detected pixels), or
    (None, 0) when it detects no plume."""
    data = _scene_dataset(ov, lat0, lon0, cfg, noise_level)
    data.attrs["time"] = str(pd.Timestamp(time))
    data["time"] = np.datetime64(time, "ns")
    sources = _one_source(lat0, lon0)
    dom = ddeq.misc.Domain(
        "scene",
        lon0 - cfg.half_width_deg,
        lat0 - cfg.half_height_deg,
        lon0 + cfg.half_width_deg,
        lat0 + cfg.half_height_deg,
    )
    crs = ddeq.misc.get_opt_crs(dom)
    data = ddeq.dplume.detect_plumes(
        data, sources, variable="NO2", variable_std="NO2_std", filter_type="gaussian", filter_size=0.5,
        q=cfg.q, crs=crs,
    )  # fmt: skip
    n_det = int(data["detected_plume"].sum()) if "detected_plume" in data else 0
    if n_det == 0:
        return None, 0
    data = ddeq.curves.fit_to_detections(data, n_nodes=3, force_origin=True)
    data = ddeq.curves.compute_natural_coords(data)
    data = ddeq.curves.compute_plume_areas(data)
    data = ddeq.background.estimate(data, "NO2")
    data = ddeq.emissions.compute_plume_signal(data, "NO2")
    for v in ("NO2", "NO2_estimated_background", "NO2_minus_estimated_background"):
        ddeq.emissions.convert_units(data, "NO2", v)
    winds = xr.Dataset(
        {
            "speed": ("source", [wind.speed]),
            "speed_precision": ("source", [wind.sigma_speed]),
            "direction": ("source", [wind.direction_from]),
        },
        coords={"source": ["hotspot"]},
    )
    res = ddeq.csf.estimate_emissions(
        data, winds, sources, "NO2", crs=crs, dx=cfg.dx_m, method="gauss",
        decay_time=life.tau_s if np.isfinite(life.tau_s) else None, f_model=_conversion(ddeq, life),
    )  # fmt: skip
    return res, n_det


def _conversion(ddeq, life: Lifetime):
    """ddeq's NO2 -> NOx line-density factor m exp(-t / r) + f0 for our conversion, 1 / share(t) = (m / f0)
    exp(-t / r) + 1 (the far-field NOx/NO2 is applied after, as for our estimators); None where it is off."""
    rp = life.ramp
    if not rp.on:
        return None
    return ddeq.functions.NO2toNOxConversion([rp.m / rp.f0, rp.r_s, 1.0], [rp.sigma_m / rp.f0, rp.sigma_r_s, 0.0])


def _estimate_from(res, n_det: int, wind: Wind) -> Estimate:
    """ddeq's NO2 emission and precision [kg/s] as an Estimate [mol/s], the precision split into wind and noise
    (``NOx_*`` where ddeq undid the NO -> NO2 conversion: still NO2 at the far-field share, :func:`_conversion`)."""
    gas = "NOx" if "NOx_emissions" in res else "NO2"
    if f"{gas}_emissions" not in res:
        return Estimate.failed(METHOD, "ddeq_no_estimate")
    q = float(np.asarray(res[f"{gas}_emissions"]).ravel()[0]) * KG_S_TO_MOL_S
    prec = float(np.asarray(res[f"{gas}_emissions_precision"]).ravel()[0]) * KG_S_TO_MOL_S
    if not np.isfinite(q):
        return Estimate.failed(METHOD, "ddeq_no_estimate")
    wind_part = abs(q) / wind.speed * wind.sigma_speed
    noise = float(np.sqrt(max(prec**2 - wind_part**2, 0.0))) if np.isfinite(prec) else float("nan")
    diag = {"detected_pixels": n_det}
    if f"{gas}_decay_time" in res:
        diag["decay_time_h"] = float(np.asarray(res[f"{gas}_decay_time"]).ravel()[0]) / 3600.0
    return Estimate(METHOD, q, {"noise": noise, "wind_speed": wind_part}, [], diag)
