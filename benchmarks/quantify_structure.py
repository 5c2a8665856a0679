"""Calibration of the quantify stage's method-structure term on the training simulator's own puff scenes (issue 15).

The estimators assume transport they do not get in reality: a straight plume along the wind at the overpass, no
along-wind diffusion against decay, a steady state. The training simulator's second transport model is the OSSE's
puff model in a turning, time-varying wind (:mod:`no2hotspots.simulate.puffs`, :mod:`no2hotspots.osse.transport`):
this script draws such scenes with the simulator's own settings (``simulate`` group: mean speed, turning-wind model,
diffusivity, puff width, NO2 lifetime, release hours, pixel size) and independent seeds (not the OSSE evaluation,
not the training seed), one source per scene at a random sub-pixel position, and runs every estimator at the true
source position with everything else the estimator is told right: the lifetime of the scene, the wind as quantify
takes it (per method, the mean wind vector over the air's travel time to the method's reach before the overpass,
``quantify.wind_travel``; with it off, over ``quantify.winds.time_window_h``), no noise, no background, no
neighbours. What is left is the method structure: estimate / truth.

Prints, per method, the median ratio (with a bootstrap 68 % interval), the relative scatter (1.4826 x MAD of ln
ratio: about the median; RMS of ln ratio: about 1, i.e. with the bias; rel sigma 68 %: half the 16-84 % range of
ln ratio) and all of them per bin of the residence time over
the lifetime R / U / tau (R = 20 km) and of the wind speed. The figures go into ``quantify.structure`` (see its
comment in conf/quantify/default.yaml and docs/quantify.md).

With ``--noise`` each scene gets the simulator's instrument noise (``simulate.noise``, its stated precision) and a
rate drawn log-uniform over 5-30 kt NOx/yr (the noise-free ratio does not depend on the rate); ``--set`` passes
config overrides (e.g. ``quantify.csf.core_half_width_km=20``). Neither is part of the calibration above.

    .venv/bin/python benchmarks/quantify_structure.py [--n 600] [--seed 20260] [--json out.json] [--noise]
        [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace

import numpy as np

os.environ.setdefault("NO2HOTSPOTS_PROGRESS", "0")

from no2hotspots.config import compose  # noqa: E402
from no2hotspots.osse.weather import SourceWinds  # noqa: E402
from no2hotspots.quantify import csf, divergence, ime  # noqa: E402
from no2hotspots.quantify.estimate import Lifetime, Wind  # noqa: E402
from no2hotspots.quantify.overpass import travel_km  # noqa: E402
from no2hotspots.quantify.run import collection_config, settings  # noqa: E402
from no2hotspots.quantify.scene import local_scene  # noqa: E402
from no2hotspots.simulate.puffs import puff_columns, sample_winds, scene_grid, series_times  # noqa: E402
from no2hotspots.simulate.settings import from_config  # noqa: E402
from no2hotspots.winds.field import direction_spread_deg, travel_window_h  # noqa: E402

ESTIMATORS = {"csf": csf, "ime": ime, "divergence": divergence}
Q_MOL_S = 5.0
Q_NOISE_MOL_S = (2.6, 15.7)  # 5-30 kt NOx/yr as NO2 (NO2/NOx 0.76): the rates quantify's acceptance set covers
R_KM = 20.0
SIZE_PX = 41  # 225 km: the +-80 km scene and the rings fit


def draw(rng: np.random.Generator, n: int, st):
    """Scene parameters as the simulator draws them for puff scenes (scenes.py): mean speed, direction, lifetime,
    diffusivity, the turning wind series, and the source's sub-pixel offset."""
    mean_speed = rng.uniform(st.wind_speed_min, st.wind_speed_max, n)
    direction0 = rng.uniform(0.0, 360.0, n)
    spd, dirn = sample_winds(rng, n, st, mean_speed, direction0)
    return {
        "speed": spd,
        "direction": dirn,
        "lifetime_h": rng.uniform(st.lifetime_h_min, st.lifetime_h_max, n),
        "diffusivity": rng.uniform(st.puffs.diffusivity_min, st.puffs.diffusivity_max, n),
        "offset": rng.uniform(-0.5, 0.5, (n, 2)),
    }


def quantify_wind(st, speed, direction, window_h) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mean wind vector over ``window_h`` (hours; one per scene or one for all) before the overpass (what
    quantify samples from wind files), and the wind's turning over it as quantify measures it: atan(sqrt(var_cross)
    / speed) [degree], var_cross the variance of the wind vector across its mean direction
    (:func:`no2hotspots.winds.field.direction_spread_deg`, the data part of quantify's direction sigma), here over
    the 13 samples of the window (quantify's: one every 15 min)."""
    t = series_times(st)
    t_ov = st.puffs.release_hours * 3600.0
    sw = SourceWinds(t, speed, direction)
    wh = np.broadcast_to(np.asarray(window_h, float), (speed.shape[0],))
    sd = [sw.series(t_ov + f * wh * 3600.0) for f in np.linspace(-1.0, 0.0, 13)]
    s, d = np.array([x[0] for x in sd]), np.radians(np.array([x[1] for x in sd]))
    us, vs = -s * np.sin(d), -s * np.cos(d)
    u, v = us.mean(axis=0), vs.mean(axis=0)
    turning = direction_spread_deg(u, v, us.var(axis=0), vs.var(axis=0))
    return np.hypot(u, v), np.degrees(np.arctan2(-u, -v)) % 360.0, turning


def method_winds(st, p: dict, s: dict) -> tuple[dict, np.ndarray]:
    """Per method, the (speed, direction) quantify gives it: the mean over ``winds.time_window_h``, or with
    ``quantify.wind_travel`` the mean over the air's travel time to the method's reach at that speed; and the speed
    over ``winds.time_window_h`` (the scenes' gate against ``min_wind_m_s``)."""
    base = quantify_wind(st, p["speed"], p["direction"], float(s["winds"]["time_window_h"]))
    out = {}
    for m in ESTIMATORS:
        km = travel_km(m, s)
        out[m] = base if km is None else quantify_wind(st, p["speed"], p["direction"],
                                                       travel_window_h(km, base[0], s["wind_window_h"]))  # fmt: skip
    return out, base[0]


def run(n: int, seed: int, noise: bool = False, overrides: tuple[str, ...] = ()) -> dict:
    cfg = compose(overrides)
    st = from_config(cfg)
    st = replace(st, size_px=SIZE_PX)
    s = settings(collection_config(cfg, "osse"), "osse")
    rng = np.random.default_rng(seed)
    p = draw(rng, n, st)
    c0 = (SIZE_PX - 1) / 2
    rows, cols = c0 + p["offset"][:, 0], c0 + p["offset"][:, 1]
    # with noise, the rate matters (the plume's tails against the noise): log-uniform 5-30 kt NOx/yr, as NO2
    lo, hi = np.log(Q_NOISE_MOL_S)
    q_mol_s = np.exp(rng.uniform(lo, hi, n)) if noise else np.full(n, Q_MOL_S)
    noise_std = rng.uniform(st.noise_std_min, st.noise_std_max, n) if noise else np.full(n, 1e-6)
    cols3 = puff_columns(np.arange(n), rows, cols, q_mol_s, np.full(n, st.puffs.sigma0_m), p["speed"],
                         p["direction"], p["lifetime_h"], p["diffusivity"], n_scenes=n, st=st)  # fmt: skip
    grid, plane = scene_grid(st)
    a_km = st.pixel_size_m / 1e3
    axis_km = (np.arange(SIZE_PX) - c0) * a_km
    lat_axis = np.asarray(plane.to_latlon(np.zeros(SIZE_PX), axis_km)[0], float)
    lon_axis = np.asarray(plane.to_latlon(axis_km, np.zeros(SIZE_PX))[1], float)
    src_lat, src_lon = plane.to_latlon((cols - c0) * a_km, (rows - c0) * a_km)
    noise_rng = np.random.default_rng([seed, 1])
    winds, speed = method_winds(st, p, s)
    out = {m: np.full(n, np.nan) for m in ESTIMATORS}
    turning = {m: winds[m][2] for m in ESTIMATORS}
    for i in range(n):
        if speed[i] < s["min_wind_m_s"]:
            continue
        c = cols3[i].astype(float)
        if noise:
            c = c + noise_rng.normal(0.0, noise_std[i], c.shape)
        if lat_axis[0] > lat_axis[-1]:
            raise SystemExit("scene rows run south: flip them")
        sc = local_scene(lat_axis, lon_axis, c, np.full(c.shape, noise_std[i]), float(src_lat[i]), float(src_lon[i]),
                         s["scene_half_km"])  # fmt: skip
        life = Lifetime(float(p["lifetime_h"][i]) * 3600.0, 0.0)
        for m, mod in ESTIMATORS.items():
            if winds[m][0][i] < s["min_wind_m_s"]:
                continue  # quantify's low_wind
            w = Wind(float(winds[m][0][i]), 0.0, float(winds[m][1][i]), 0.0)
            e = mod.estimate(sc, w, life, s[m], _sens=False)
            out[m][i] = e.q / q_mol_s[i] if e.ok else np.nan
    x = R_KM * 1e3 / (speed * p["lifetime_h"] * 3600.0)
    return {"ratio": out, "residence_over_tau": x, "speed": speed, "turning_deg": turning}


def stats(r: np.ndarray, rng: np.random.Generator) -> dict:
    r = r[np.isfinite(r) & (r > 0)]
    if r.size < 5:
        return {"n": int(r.size)}
    lr = np.log(r)
    boot = np.median(rng.choice(r, (500, r.size)), axis=1)
    return {
        "n": int(r.size),
        "median_ratio": float(np.median(r)),
        "median_ratio_68": [float(np.percentile(boot, 16)), float(np.percentile(boot, 84))],
        "rel_scatter_mad": float(1.4826 * np.median(np.abs(lr - np.median(lr)))),
        "rms_log_ratio": float(np.sqrt(np.mean(lr**2))),
        "p16_p84": [float(np.exp(np.percentile(lr, 16))), float(np.exp(np.percentile(lr, 84)))],
        # the 1-sigma a 68 % interval needs: half the 16-84 % range of ln ratio (about the median)
        "rel_sigma_68": float((np.percentile(lr, 84) - np.percentile(lr, 16)) / 2),
    }


def _lad(y: np.ndarray, A: np.ndarray, iters: int = 50) -> np.ndarray:
    """Least absolute deviation coefficients of y ~ A by iteratively reweighted least squares."""
    w = np.ones(y.size)
    for _ in range(iters):
        coef, *_ = np.linalg.lstsq(A * w[:, None], y * w, rcond=None)
        w = 1.0 / np.sqrt(np.maximum(np.abs(y - A @ coef), 1e-6))
    return coef


def residence_fit(r: np.ndarray, x: np.ndarray, iters: int = 50) -> dict:
    """Median (least absolute deviation) fit ln ratio = ln b0 - beta x (x = R / (U tau)) by iteratively reweighted
    least squares: the bias as a function of the residence time over the lifetime, where one number per method
    leaves a trend (quantify.structure's bias and bias_slope without bias_turning)."""
    ok = np.isfinite(r) & (r > 0) & np.isfinite(x)
    y, xx = np.log(r[ok]), x[ok]
    A = np.column_stack([np.ones(xx.size), -xx])
    coef = _lad(y, A, iters)
    res = y - A @ coef
    return {"b0": float(np.exp(coef[0])), "beta": float(coef[1]), "n": int(xx.size),
            "median_abs_residual": float(np.median(np.abs(res))),
            "median_abs_log_ratio_about_one_bias": float(np.median(np.abs(y - np.median(y))))}  # fmt: skip


def turning_fit(r: np.ndarray, x: np.ndarray, theta_deg: np.ndarray, iters: int = 50) -> dict:
    """Joint median fit ln ratio = ln b0 - beta x - gamma theta^2 (theta the wind's measured turning over the
    method's travel window, radians): a curved plume in a turning wind leaves the straight cone and its background
    band takes part of it (quantify.structure's bias, bias_slope and bias_turning); the residuals' half 16-84 %
    range is the scatter left about the fit."""
    ok = np.isfinite(r) & (r > 0) & np.isfinite(x) & np.isfinite(theta_deg)
    y, xx, th = np.log(r[ok]), x[ok], np.radians(theta_deg[ok])
    A = np.column_stack([np.ones(xx.size), -xx, -(th**2)])
    coef = _lad(y, A, iters)
    res = y - A @ coef
    return {"b0": float(np.exp(coef[0])), "beta": float(coef[1]), "gamma": float(coef[2]), "n": int(xx.size),
            "median_abs_residual": float(np.median(np.abs(res))),
            "rel_sigma_68_about_fit": float((np.percentile(res, 84) - np.percentile(res, 16)) / 2)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--seed", type=int, default=20260)
    ap.add_argument("--json", default=None)
    ap.add_argument("--noise", action="store_true", help="add the simulator's instrument noise (and draw the rate)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides, e.g. quantify.csf.*")
    a = ap.parse_args()
    res = run(a.n, a.seed, a.noise, tuple(a.set))
    rng = np.random.default_rng(0)
    x, spd = res["residence_over_tau"], res["speed"]
    report = {"n_scenes": a.n, "seed": a.seed, "noise": a.noise, "overrides": a.set, "methods": {}}
    bins_x = [0.0, 0.1, 0.2, 0.4, np.inf]
    bins_u = [2.0, 4.0, 6.0, 8.0, np.inf]
    bins_th = [0.0, 5.0, 10.0, 15.0, 20.0, 26.0, 90.0]
    rng_th = np.random.default_rng(1)  # its own bootstrap draws: the figures above stay as they were
    for m, r in res["ratio"].items():
        rep = {"all": stats(r, rng), "by_residence_over_tau": {}, "by_speed_m_s": {}}
        for lo, hi in zip(bins_x[:-1], bins_x[1:]):
            rep["by_residence_over_tau"][f"{lo:g}-{hi:g}"] = stats(r[(x >= lo) & (x < hi)], rng)
        for lo, hi in zip(bins_u[:-1], bins_u[1:]):
            rep["by_speed_m_s"][f"{lo:g}-{hi:g}"] = stats(r[(spd >= lo) & (spd < hi)], rng)
        rep["residence_fit"] = residence_fit(r, x)
        th = res["turning_deg"][m]
        rep["by_turning_deg"] = {f"{lo:g}-{hi:g}": stats(r[(th >= lo) & (th < hi)], rng_th)
                                 for lo, hi in zip(bins_th[:-1], bins_th[1:])}  # fmt: skip
        rep["turning_fit"] = turning_fit(r, x, th)
        report["methods"][m] = rep
    print(f"puff scenes of the training simulator: n={a.n}, seed={a.seed}, refused below min wind: "
          f"{int((spd < 2.0).sum())}")  # fmt: skip
    for m, rep in report["methods"].items():
        al = rep["all"]
        print(f"\n{m}: n={al['n']} median ratio {al['median_ratio']:.3f} (68 % {al['median_ratio_68'][0]:.3f}-"
              f"{al['median_ratio_68'][1]:.3f}), rel scatter (MAD) {al['rel_scatter_mad']:.3f}, RMS ln ratio "
              f"{al['rms_log_ratio']:.3f}, 16-84 % {al['p16_p84'][0]:.3f}-{al['p16_p84'][1]:.3f} "
              f"(rel sigma 68 % {al['rel_sigma_68']:.3f})")  # fmt: skip
        fit = rep["residence_fit"]
        print(
            f"  bias against x = R/(U tau): {fit['b0']:.3f} exp(-{fit['beta']:.3f} x); median |residual| "
            f"{fit['median_abs_residual']:.4f} (about one bias: {fit['median_abs_log_ratio_about_one_bias']:.4f})"
        )
        tf = rep["turning_fit"]
        print(
            f"  bias against x and the wind's turning theta: {tf['b0']:.3f} exp(-{tf['beta']:.3f} x - "
            f"{tf['gamma']:.3f} theta^2); median |residual| {tf['median_abs_residual']:.4f}, rel sigma 68 % about it "
            f"{tf['rel_sigma_68_about_fit']:.3f}"
        )
        for key in ("by_residence_over_tau", "by_speed_m_s", "by_turning_deg"):
            for b, v in rep[key].items():
                if v["n"] < 5:
                    print(f"  {key} {b}: n={v['n']}")
                    continue
                print(f"  {key} {b}: n={v['n']} median {v['median_ratio']:.3f} scatter {v['rel_scatter_mad']:.3f}"
                      f" rms {v['rms_log_ratio']:.3f} rel sigma 68 % {v['rel_sigma_68']:.3f}")  # fmt: skip
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
