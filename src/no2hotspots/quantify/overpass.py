"""One overpass: the unit of the quantify stage (runs in a Dask worker or in process).

Reads the overpass once, samples the winds at its hotspots and at the period sites it covers (opening only the wind
files around its time), and runs every configured estimator on each of them (:func:`quantify_point`); returns the
estimate rows of its hotspots and of the period sites. With a unit folder, the rows go there (:mod:`.spool`; the
stage reads them back one overpass at a time) with, for the resume cache, a marker holding the unit's hash (inputs,
settings and code): a rerun with the same hash reads them instead.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import units
from ..atomic import atomic_path
from ..evaluate.geo import haversine_km
from ..winds import open_winds
from ..winds.field import travel_window_h
from . import chemistry, csf, ddeq_ref, divergence, ime, inputs, spool, structure
from .co2 import InventoryMatcher, TruthAt, co2_from_nox
from .estimate import COMPONENTS, Estimate, Wind
from .plume import plume_direction
from .position import PositionConfig, position_sigma_km
from .scene import EARTH_RADIUS_M, background_ring, fit_plane, local_scene, local_xy, noise_model, wind_frame

ESTIMATORS = {"csf": csf, "ime": ime, "divergence": divergence}
#: the estimators that assume the source at the point (a position term; :mod:`.position`)
POSITION_METHODS = ("csf", "ime")
SIGMA_COMPONENTS = (*COMPONENTS,)


@dataclass
class OverpassGrid:
    """An overpass's fields as float arrays, converted once for all its points (``ds``: the dataset, for ddeq)."""

    ds: object
    lat: np.ndarray
    lon: np.ndarray
    no2: np.ndarray
    precision: np.ndarray

    @classmethod
    def of(cls, ds) -> OverpassGrid:
        if isinstance(ds, cls):
            return ds
        f = lambda name: np.asarray(ds[name].values, float)  # noqa: E731
        return cls(ds, f("lat"), f("lon"), f("no2"), f("no2_precision"))


def quantify_point(
    ov,
    time,
    lat0: float,
    lon0: float,
    wind: dict,
    s: dict,
    others: list[tuple[float, float]] = (),
    model_uncertainty: Callable | None = None,
    context: dict | None = None,
    position_spread_km: float = float("nan"),
    sharing: list[tuple[float, float]] = (),
    method_winds: dict | None = None,
) -> tuple[list[Estimate], dict]:
    """Estimates (in t NOx/yr) of every configured method for a source at (lat0, lon0) in one overpass grid
    (an xarray Dataset or an :class:`OverpassGrid`).

    ``wind``: a :meth:`WindSample.row` dict. Returns the estimates and a dict describing the wind/direction used.
    ``model_uncertainty``: the detection model's relative 1-sigma hook (:data:`.estimate.MODEL_UNCERTAINTY`).
    ``position_spread_km``: the data's position error of the point without the half cell (the model's for a hotspot,
    the hotspot spread for a site; NaN = unknown, the floor), :func:`.position.position_sigma_km`.
    ``sharing``: the sources that take their side of the IME (and, opted in, divergence) disk (:func:`sharing_sources`).
    ``method_winds``: per method, its own wind row (:func:`method_wind_samples`); a method without one takes ``wind``.
    """
    grid = OverpassGrid.of(ov)
    chem: chemistry.Chemistry = s["chemistry"]
    life = chem.lifetime
    scene = local_scene(grid.lat, grid.lon, grid.no2, grid.precision, lat0, lon0, s["scene_half_km"], others,
                        s["exclude_other_km"], sharing)  # fmt: skip
    info = {"direction_source": "none", "plume_from_deg": np.nan, "plume_snr": np.nan, "position_sigma_km": np.nan}
    if scene is None or not scene.valid.any():
        return [Estimate.failed(m, "not_observed") for m in s["methods"]], info
    pos_sigma = position_sigma_km(s.get("position", PositionConfig()), position_spread_km, scene.cell_km)
    info["position_sigma_km"] = pos_sigma
    w_dir, w_sig = wind["wind_from_deg"], wind["wind_from_sigma_deg"]
    p_dir = p_sig = np.nan
    if s["direction"] == "plume" or not np.isfinite(w_dir):
        p_dir, p_sig, snr = plume_direction(scene, s["plume_direction"])
        info.update(plume_from_deg=p_dir, plume_snr=snr)
    if s["direction"] == "plume" and np.isfinite(p_dir):
        d, ds, info["direction_source"] = p_dir, p_sig, "plume"
    elif np.isfinite(w_dir):
        d, ds, info["direction_source"] = w_dir, w_sig, "wind"
    elif np.isfinite(p_dir):
        d, ds, info["direction_source"] = p_dir, p_sig, "plume"
    else:
        d, ds = np.nan, np.nan
    w = Wind(float(wind["wind_speed_m_s"]), float(wind["wind_speed_sigma_m_s"]), float(d), float(ds))
    info.update(direction_used_deg=d, direction_sigma_deg=ds)
    efolds = s.get("exclude_plume_efolds", 0.0)
    if others and efolds > 0 and np.isfinite(d) and np.isfinite(w.speed):
        # the other sources' plumes are no background either: downwind of them a background fit would take their
        # NO2 for this source's background (low estimates next to strong neighbours). A plume reaches about
        # U tau (one e-folding of its NO2) downwind; without decay, across the whole scene
        reach = efolds * w.speed * life.tau_s / 1e3 if np.isfinite(life.tau_s) else 2.0 * s["scene_half_km"]
        scene = scene.excluding(scene.plumes_of(others, d, reach, s["exclude_other_km"], s["exclude_plume_deg"]))
    out = []
    for m in s["methods"]:
        wm, columns = _method_wind(w, info["direction_source"], (method_winds or {}).get(m))
        e = _estimate(m, scene, grid, time, lat0, lon0, wm, life, s, pos_sigma)
        if e.ok:
            turning = (columns or wind).get("wind_from_spread_deg", np.nan)  # the wind the method took its speed from
            e = structure.apply(e, s.get("structure", structure.StructureConfig()), wm.speed, life.tau_s, turning)
            e.sigma["model"] = abs(e.q) * float(model_uncertainty(context or {}, e)) if model_uncertainty else 0.0
        e = chemistry.to_nox(e, chem)
        e.diag["wind_columns"] = columns
        out.append(e)
    return out, info


def _estimate(m: str, scene, grid: OverpassGrid, time, lat0: float, lon0: float, w: Wind, life, s: dict,
              pos_sigma: float) -> Estimate:  # fmt: skip
    """One method's estimate (mol/s NO2) at the point with the wind ``w``, or why there is none."""
    if not np.isfinite(w.speed):
        return Estimate.failed(m, "no_wind_speed")
    if w.speed < s["min_wind_m_s"]:
        return Estimate.failed(m, "low_wind")
    if not w.sigma_speed <= s["max_wind_speed_rel_sigma"] * w.speed:
        # the wind-speed term evaluates the estimator at speed - 1 sigma: near calm the decay correction
        # exp(s / (U tau)) explodes (values beyond 1e154 were seen), so such a wind gives no estimate
        return Estimate.failed(m, "uncertain_wind_speed")
    if m == ddeq_ref.METHOD:
        plane = fit_plane(scene, background_ring(scene, 40.0, 60.0))
        nm = noise_model(scene, plane)
        noise_level = float(np.median(scene.sigma) * nm.chi)
        return ddeq_ref.estimate(grid.ds, time, lat0, lon0, w, life, noise_level, s["ddeq"])
    if m in POSITION_METHODS:
        return ESTIMATORS[m].estimate(scene, w, life, s[m], position_sigma_km=pos_sigma)
    return ESTIMATORS[m].estimate(scene, w, life, s[m])


def _method_wind(w: Wind, direction_source: str, row: dict | None) -> tuple[Wind, dict]:
    """The wind a method uses and the columns its rows report it in: its own sample ``row`` (the mean over the air's
    travel time, :func:`method_wind_samples`; its direction too where the direction comes from the wind), else
    ``w`` (the point's wind row, already in the rows)."""
    if row is None or not np.isfinite(row["wind_speed_m_s"]):
        return w, {}
    d, ds = w.direction_from, w.sigma_direction
    if direction_source == "wind" and np.isfinite(row["wind_from_deg"]):
        d, ds = float(row["wind_from_deg"]), float(row["wind_from_sigma_deg"])
    wm = Wind(float(row["wind_speed_m_s"]), float(row["wind_speed_sigma_m_s"]), d, ds)
    return wm, {**row, "direction_used_deg": d, "direction_sigma_deg": ds}


def travel_km(method: str, s: dict) -> float | None:
    """How far downwind the air a method measures has travelled (``quantify.wind_travel``; None: off, or ddeq's own
    chain): csf its last transect's end; IME its disk radius (the mass over the disk is the rate times the air's
    travel time across it); the divergence twice its radius (the outflow at R left the source R/U ago: a window
    ending now is centred there). docs/quantify.md, benchmarks/quantify_structure.py."""
    if not s.get("wind_travel", False):
        return None
    if method == "csf":
        return float(s["csf"].end_km)
    if method == "ime":
        return float(s["ime"].radius_km)
    if method == "divergence":
        return 2.0 * float(s["divergence"].radius_km)
    return None


def method_wind_samples(winds, lat, lon, time, base, s: dict) -> dict:
    """Per method with a travel distance (:func:`travel_km`), the winds at the points averaged over the air's travel
    time to it at the speed of ``base`` (the sample over ``winds.time_window_h``), within ``quantify.wind_window_h``."""
    out = {}
    for m in s["methods"]:
        km = travel_km(m, s)
        if km is not None:
            out[m] = winds.at(lat, lon, time, window_h=travel_window_h(km, base.speed, s["wind_window_h"]))
    return out


def sharing_sources(lat0: float, lon0: float, candidates, min_km: float | None) -> list[tuple[float, float]]:
    """The known sources that take their side of a point's IME and divergence disks (:mod:`.neighbours`): the
    ``candidates`` (lat, lon) at least ``min_km`` away (``quantify.disk_split_min_km``; None: none, off)."""
    if min_km is None or not len(candidates):
        return []
    p = np.asarray(candidates, float).reshape(-1, 2)
    return list(map(tuple, p[haversine_km(p[:, 0], p[:, 1], lat0, lon0) >= min_km]))


def upwind_sources(lat0: float, lon0: float, candidates, info: dict, wind: dict, s: dict) -> float:
    """How many known sources (``candidates``, (lat, lon), those beyond ``period.merge_km``: other sources) lie
    upwind of the point, within ``csf.core_half_width_km`` of the wind's axis through it and one NO2 e-folding length
    U tau upwind (the scene's half-width without decay): their plumes pass through this point's cone and disk and
    read as its own (``benchmarks/quantify_passthrough.py``). Counted nearest upwind first, a point within
    ``merge_km`` of one already counted is the same source (e.g. a hotspot at a period site), whatever the order of
    ``candidates``. NaN without a direction or speed."""
    d = info.get("direction_used_deg", np.nan)
    u = float(wind.get("wind_speed_m_s", np.nan))
    if not (np.isfinite(d) and np.isfinite(u)):
        return float("nan")
    if not len(candidates):
        return 0.0
    p = np.asarray(candidates, float).reshape(-1, 2)
    tau_h = s["chemistry"].lifetime_h
    reach = u * 3.6 * tau_h if tau_h is not None and np.isfinite(tau_h) else s["scene_half_km"]
    along, across = wind_frame(*local_xy(p[:, 0], p[:, 1], lat0, lon0), d)  # along: downwind of the point
    merge = s["period"].merge_km
    far = haversine_km(p[:, 0], p[:, 1], lat0, lon0) > merge
    sel = far & (along < 0) & (along > -reach) & (np.abs(across) <= s["csf"].core_half_width_km)
    # nearest first (ties by latitude, then longitude): the count does not depend on the order of ``candidates``
    up = p[sel][np.lexsort((p[sel, 1], p[sel, 0], -along[sel]))]
    counted: list = []  # a hotspot of this overpass at a period site is one source: points within merge_km, once
    for q in up:
        if not counted or haversine_km(np.array(counted)[:, 0], np.array(counted)[:, 1], q[0], q[1]).min() > merge:
            counted.append(q)
    return float(len(counted))


def estimate_rows(ests: list[Estimate], base: dict, ratio) -> list[dict]:
    rows = []
    for e in ests:
        co2, co2s = co2_from_nox(e.q, e.sigma, ratio)
        r = {
            **base,
            **e.diag.get("wind_columns", {}),
            "method": e.method,
            "nox_t_per_yr": e.q,
            "nox_sigma_t_per_yr": e.sigma_total,
            **{f"nox_sigma_{c}_t_per_yr": e.sigma.get(c, 0.0 if e.ok else np.nan) for c in SIGMA_COMPONENTS},
            "co2_mt_per_yr": co2,
            "co2_sigma_mt_per_yr": float(np.sqrt(np.nansum(np.square(list(co2s.values()))))) if e.ok else np.nan,
            "co2_nox_ratio": ratio.ratio,
            "co2_nox_ratio_rel_sigma": ratio.rel_sigma,
            "co2_basis": ratio.basis,
            "quality_flags": " ".join([*e.flags, *(f"unknown_sigma_{c}" for c in e.unknown_sigma)]),
        }
        for k in ("n_transects", "noise_chi", "noise_k", "detected_pixels", "decay_time_h"):
            if k in e.diag:
                r[k] = e.diag[k]
        rows.append(r)
    return rows


# ---------------------------------------------------------------------------------------------------------------
# the unit


@dataclass
class Context:
    """What every overpass of a collection is quantified with (sent to each worker once)."""

    s: dict
    sites: pd.DataFrame  # the period sites: site_id, lat, lon, n_detections
    site_ratio: dict
    matcher: InventoryMatcher
    inv: pd.DataFrame | None
    model_uncertainty: Callable | None
    truth: TruthAt = field(init=False)
    site_records: list = field(init=False, repr=False)  # ctx.sites as one dict per row
    _site_lat: np.ndarray = field(init=False, repr=False)
    _site_lon: np.ndarray = field(init=False, repr=False)
    _ratios: dict = field(default_factory=dict, repr=False)
    _far: dict = field(default_factory=dict, repr=False)
    _inv_pos: dict | None = field(default=None, repr=False)  # inventory id -> (lat, lon), made when first needed

    def __post_init__(self):
        self.truth = TruthAt(self.inv)
        has = self.sites is not None and len(self.sites) > 0
        self.site_records = self.sites.to_dict("records") if has else []
        self._site_lat = self.sites["lat"].to_numpy(float) if has else np.empty(0)
        self._site_lon = self.sites["lon"].to_numpy(float) if has else np.empty(0)

    def far_sites(self, lat: float, lon: float) -> list[tuple[float, float]]:
        """The period sites farther than ``period.merge_km`` from (lat, lon): known sources, also where this overpass
        has no hotspot at them, whose surroundings are no background where ``exclude_sites`` (``exclude_other_km``,
        ``exclude_plume_efolds``) and which share the IME disk (:func:`sharing_sources`). Points repeat (sites every
        overpass, hotspots on grid cells): their distances are computed once, and kept as one bit per site."""
        slat, slon = self._site_lat, self._site_lon
        if not len(slat):
            return []
        key = (float(lat), float(lon))
        if key not in self._far:
            self._far[key] = np.packbits(haversine_km(slat, slon, lat, lon) > self.s["period"].merge_km)
        far = np.unpackbits(self._far[key], count=len(slat)).astype(bool)
        return list(zip(slat[far], slon[far]))

    def truth_at(self, ids: list[str], lat: float, lon: float, sharing: list, t) -> float:
        """The inventory NOx of the matched sources ``ids`` at ``t`` that lie nearer to (lat, lon) than to each
        point of ``sharing`` (each source counted at one point, as IME's disk is split: :mod:`.neighbours`)."""
        if sharing and ids and self.inv is not None and len(self.inv):
            if self._inv_pos is None:
                self._inv_pos = dict(zip(self.inv["id"].astype(str), zip(self.inv["lat"], self.inv["lon"])))
            p = np.asarray(sharing, float).reshape(-1, 2)
            kept = []
            for i in ids:
                la, lo = self._inv_pos[i]
                if haversine_km(la, lo, lat, lon) < haversine_km(p[:, 0], p[:, 1], la, lo).min():
                    kept.append(i)
            ids = kept
        return self.truth(ids, t)

    def ratio(self, lat: float, lon: float):
        """The CO2/NOx ratio and inventory match at a hotspot (hotspots repeat grid positions: looked up once)."""
        key = (float(lat), float(lon))
        if key not in self._ratios:
            self._ratios[key] = self.matcher.ratio(lat, lon)
        return self._ratios[key]


@dataclass(frozen=True)
class OverpassTask:
    overpass: inputs.Overpass
    hotspots: tuple  # the overpass's hotspot rows (dicts: the table's columns, site_id, period_site_id, Index)
    wind_paths: tuple  # the wind files around its time
    units_dir: str | None = None  # where its rows go (the resume cache or the run's spool); None: in the result
    unit_hash: str = ""  # with units_dir: the unit's hash, kept in a marker for a rerun; "": spooled, no marker


def quantify_overpass(task: OverpassTask, *, ctx: Context) -> dict:
    """Estimate rows of one overpass, the rows as frames (:func:`rows_frame`): without a units folder in the result
    (``{"hotspots": frame, "sites": frame, "wind_kinds": [...], "reused": False}``), with one in a file per kind
    there (:mod:`.spool`; ``{"files": {kind: path}, "n_rows": {kind: n}, "wind_kinds": [...], "reused": bool}``)."""
    o = task.overpass
    folder = Path(task.units_dir) if task.units_dir else None
    files = {k: folder / spool.rows_file(o.key, k) for k in spool.KINDS} if folder else {}
    if folder and task.unit_hash:
        done = units.load_done(folder, o.key, task.unit_hash)
        if done is not None and "n_rows" in done and all(_readable(f) for f in files.values()):
            return {**done, "files": {k: str(f) for k, f in files.items()}, "reused": True}
    grid = OverpassGrid.of(inputs.open_overpass(o))
    h = pd.DataFrame(list(task.hotspots))
    site_idx = _covered_sites(ctx, grid)
    pts_lat = list(h["peak_lat"]) if len(h) else []
    pts_lon = list(h["peak_lon"]) if len(h) else []
    pts_lat += [float(ctx.sites["lat"].iloc[k]) for k in site_idx]
    pts_lon += [float(ctx.sites["lon"].iloc[k]) for k in site_idx]
    winds = _winds(ctx.s, task.wind_paths)
    ws = winds.at(pts_lat, pts_lon, o.time) if pts_lat else None
    mws = method_wind_samples(winds, pts_lat, pts_lon, o.time, ws, ctx.s) if pts_lat else {}
    rows = {
        "hotspots": rows_frame(_hotspot_rows(ctx, grid, o.time, h, ws, mws)),
        "sites": rows_frame(_site_rows(ctx, grid, o.time, h, ws, site_idx, mws)),
    }
    kinds = sorted({f.kind for f in winds.files})
    if not folder:
        return {**rows, "wind_kinds": kinds, "reused": False}
    for k, f in files.items():
        with atomic_path(f) as tmp:
            spool.write_rows(tmp, rows[k])
    result = {"n_rows": {k: len(v) for k, v in rows.items()}, "wind_kinds": kinds}
    if task.unit_hash:
        units.mark_done(folder, o.key, task.unit_hash, [f.name for f in files.values()], result)
    return {**result, "files": {k: str(f) for k, f in files.items()}, "reused": False}


def _readable(path: Path) -> bool:
    """Whether a kept rows file reads back (a damaged one is computed again, not met by the stage later)."""
    try:
        return isinstance(spool.read_rows(path), pd.DataFrame)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError):
        return False


def rows_frame(rows: list[dict]) -> pd.DataFrame:
    """One overpass's estimate rows as a frame (as dicts they took 10.6 GB in the stage process on china_year's
    141,624 hotspots and 1,733 sites, 2.6 M rows of ~45 keys, when it kept every overpass's rows until it wrote its
    tables; now they wait on disk, :mod:`.spool`)."""
    return pd.DataFrame(rows)


#: wind fields of the last few sets of wind files, per worker process (overpasses of a day share theirs, and each
#: field keeps the files it has reduced); keyed by the files' identities too: a worker of an existing cluster
#: (``parallel.scheduler: address``) outlives the run, and a file rewritten in place (an OSSE rerun) is read again
_WINDS: OrderedDict = OrderedDict()


def _winds(s: dict, paths: tuple):
    ids = tuple((i["size"], i["mtime_ns"]) for i in map(units.file_identity, paths))
    key = (paths, ids, repr(s["winds"]))
    if key not in _WINDS:
        _WINDS[key] = open_winds(s["winds"], paths=list(paths), key=f"{s['key']}.winds")
        while len(_WINDS) > 4:
            _WINDS.popitem(last=False)
    _WINDS.move_to_end(key)
    return _WINDS[key]


def _covered_sites(ctx: Context, grid: OverpassGrid) -> list[int]:
    """Positions in ``ctx.sites`` of the sites whose scene box overlaps the overpass grid (the test
    :func:`.scene.local_scene` makes: at least 3 rows and 3 columns within +-scene_half_km)."""
    out = []
    half = ctx.s["scene_half_km"]
    dlat = np.degrees(half * 1e3 / EARTH_RADIUS_M)
    for k, (lat0, lon0) in enumerate(zip(ctx.sites["lat"].to_numpy(float), ctx.sites["lon"].to_numpy(float))):
        dlon = dlat / max(np.cos(np.radians(lat0)), 1e-6)
        ny = np.count_nonzero((grid.lat >= lat0 - dlat) & (grid.lat <= lat0 + dlat))
        nx = np.count_nonzero((grid.lon >= lon0 - dlon) & (grid.lon <= lon0 + dlon))
        if ny >= 3 and nx >= 3:
            out.append(k)
    return out


def _hotspot_rows(ctx: Context, grid: OverpassGrid, t, h: pd.DataFrame, ws, mws: dict) -> list[dict]:
    """Estimate rows of the overpass's hotspots (points 0..len(h)-1 of the wind sample ``ws`` and of the methods'
    own samples ``mws``)."""
    s = ctx.s
    pos = list(zip(h["peak_lat"], h["peak_lon"])) if len(h) else []
    rows = []
    for i, r in enumerate(h.to_dict("records")):
        lat0, lon0 = r["peak_lat"], r["peak_lon"]
        near, sites = [p for j, p in enumerate(pos) if j != i], ctx.far_sites(lat0, lon0)
        others = near + (sites if s.get("exclude_sites", False) else [])
        sharing = sharing_sources(lat0, lon0, near + sites, s.get("disk_split_min_km"))
        wrow = ws.row(i)
        ests, info = quantify_point(grid, t, lat0, lon0, wrow, s, others, ctx.model_uncertainty, r,
                                    s.get("position", PositionConfig()).model_sigma_km, sharing,
                                    {m: x.row(i) for m, x in mws.items()})  # fmt: skip
        ratio = ctx.ratio(r["peak_lat"], r["peak_lon"])
        base = {
            "hotspot_id": int(r["hotspot_id"]),
            "site_id": int(r["site_id"]),
            "period_site_id": int(r["period_site_id"]) if r["period_site_id"] else None,
            "time": str(pd.Timestamp(t))[:19],
            "lat": float(r["peak_lat"]),
            "lon": float(r["peak_lon"]),
            **wrow,
            **info,
            "lifetime_h": s["chemistry"].lifetime_h,
            "upwind_sources": upwind_sources(lat0, lon0, near + sites, info, wrow, s),
            "inventory_nox_t_per_yr": ctx.truth_at(ratio.matched_ids, lat0, lon0, sharing, t),
            "inventory_co2_t_per_yr": ratio.co2_t_per_yr,
            "inventory_ids": " ".join(ratio.matched_ids),
        }
        rows += estimate_rows(ests, base, ratio)
    return rows


def _site_rows(ctx: Context, grid: OverpassGrid, t, h: pd.DataFrame, ws, site_idx: list[int], mws: dict) -> list[dict]:
    """Estimate rows of the period sites ``site_idx`` in this overpass (points after the hotspots in ``ws``); sites
    not observed are left out, and with ``period.use: detected`` so are sites without a hotspot in this overpass."""
    s = ctx.s
    pos = list(zip(h["peak_lat"], h["peak_lon"])) if len(h) else []
    hlat, hlon = np.array([p[0] for p in pos], float), np.array([p[1] for p in pos], float)
    detected_sites = set(h["period_site_id"].astype(int)) - {0} if len(h) else set()
    ss = s if s["ddeq_sites"] else {**s, "methods": [m for m in s["methods"] if m != ddeq_ref.METHOD]}
    rows = []
    for n, k in enumerate(site_idx):
        site = ctx.site_records[k]
        sid = int(site["site_id"])
        detected = sid in detected_sites
        if s["period"].use == "detected" and not detected:
            continue
        far = haversine_km(hlat, hlon, site["lat"], site["lon"]) > s["period"].merge_km
        sites = ctx.far_sites(site["lat"], site["lon"])
        others = [p for p, f in zip(pos, far) if f] + (sites if s.get("exclude_sites", False) else [])
        # a site shares its disks with the other sites only: a one-off hotspot (most are false alarms) takes no part
        sharing = sharing_sources(site["lat"], site["lon"], sites, s.get("disk_split_min_km"))
        wrow = ws.row(len(h) + n)
        spread = float(site["position_spread_km"]) if "position_spread_km" in site else float("nan")
        own = {m: x.row(len(h) + n) for m, x in mws.items()}
        ests, info = quantify_point(grid, t, site["lat"], site["lon"], wrow, ss, others, ctx.model_uncertainty,
                                    {"site_id": sid}, spread, sharing, own)  # fmt: skip
        if all(e.flags == ["not_observed"] or "disk_not_observed" in e.flags for e in ests):
            continue
        ratio = ctx.site_ratio[sid]
        base = {
            "site_id": sid,
            "time": str(pd.Timestamp(t))[:19],
            "lat": float(site["lat"]),
            "lon": float(site["lon"]),
            "detected": detected,
            **wrow,
            **info,
            "upwind_sources": upwind_sources(site["lat"], site["lon"], sites + pos, info, wrow, s),
            "inventory_nox_t_per_yr": ctx.truth_at(ratio.matched_ids, site["lat"], site["lon"], sharing, t),
        }
        rows += estimate_rows(ests, base, ratio)
    return rows
