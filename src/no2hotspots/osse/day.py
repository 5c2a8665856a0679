"""One OSSE day, the stage's unit of work: its orbits, weather, granules and truth, written into the unit folder.

:func:`simulate_day` (mapped over Dask by :mod:`no2hotspots.parallel`) computes everything a day needs from the
run's constants (:class:`RunSetup`, sent to each worker once) and the day's index, in named steps:

1. :func:`day_orbits`   the orbits whose swath covers the region that day, sorted by overpass time;
2. :func:`day_weather`  the day's wind, NO2 lifetime, clouds and background, drawn from ``(seed, 1, day)``;
3. :func:`day_rates`    the sources' NO2 rates that day (``osse.changes`` applied from their dates);
4. per granule, :func:`simulate_granule`: puffs rendered on the granule grid, background, clouds, noise drawn
   from ``(seed, 2, day, k)``, then the granule and its truth fields written;
5. the day's wind as a NetCDF (:func:`no2hotspots.osse.truth.write_day_winds`) and the unit marker.

The day returns its small rows (granules.csv, winds.csv) and the files it wrote; a day already done with the same
unit hash is not computed again (:func:`no2hotspots.units.load_done`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import units
from .geometry import ORBITS_PER_DAY, GranuleGrid, candidate_nadir_lons, granule_grid, orbit_number
from .granule import granule_name, write_granule
from .observe import precision, qa_from_cloud
from .transport import release_puffs, render_puffs
from .truth import truth_field_name, write_day_winds, write_truth_fields
from .weather import Background, DayWind, FieldFrame, background_for_day, cloud_fraction, random_day_wind

log = logging.getLogger(__name__)

GRANULES = "granules"
FIELDS = "truth/fields"
WINDS = "truth/winds"


@dataclass(frozen=True)
class RunSetup:
    """What every day of a run shares (drawn or derived once per run; small and picklable)."""

    o: object  # the resolved osse config (DictConfig)
    seed: int
    bbox: tuple[float, float, float, float]
    margin: float
    frame: FieldFrame
    half_x: float  # km, region + margin half widths
    half_y: float
    background: Background
    cloud_grad_dir: float
    first_lon: float
    edges: np.ndarray  # across-track pixel edges of the full swath [km]
    outline: tuple[np.ndarray, np.ndarray]
    reach_deg: float
    start: np.datetime64
    src_lat: np.ndarray
    src_lon: np.ndarray
    src_q: np.ndarray  # nominal NO2 rate [mol s-1]
    changes: tuple[tuple[int, str, float], ...]  # (source index, first day YYYY-MM-DD, factor)
    src_ramp: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # per source (m, r_s, f0); None: no ramp

    @property
    def lat_c(self) -> float:
        return self.frame.lat_c

    @property
    def lon_c(self) -> float:
        return self.frame.lon_c


@dataclass(frozen=True)
class DayTask:
    """One day to simulate (everything a worker needs beside the shared :class:`RunSetup`)."""

    d: int  # day index since osse.dates.start (seeds are drawn from it)
    date: str  # YYYY-MM-DD, also the unit key
    units_dir: str
    unit_hash: str


@dataclass
class DayWeather:
    wind: DayWind
    lifetime_h: float
    mean_cover: float
    cloud: object  # (lat, lon) -> cloud fraction
    background: Background
    t_lo: float  # seconds since 00 UTC: first puff release
    t_hi: float  # last overpass


def day_of(setup: RunSetup, d: int) -> np.datetime64:
    return setup.start + np.timedelta64(d, "D")


def day_factors(setup: RunSetup, day) -> dict[int, float]:
    """Emission factor of each changed source on ``day`` (sources without an applicable change are left out)."""
    day = np.datetime64(str(day), "D")
    return {i: f for i, since, f in setup.changes if day >= np.datetime64(since, "D")}


def day_rates(setup: RunSetup, day) -> np.ndarray:
    q = setup.src_q.copy()
    for i, f in day_factors(setup, day).items():
        q[i] *= f
    return q


def day_orbits(setup: RunSetup, d: int) -> list[tuple[float, float, GranuleGrid]]:
    """(overpass seconds since 00 UTC, nadir longitude, cropped grid) of the day's orbits over the region."""
    sw = setup.o.swath
    spacing_deg = 360.0 / ORBITS_PER_DAY
    lon_ref = setup.first_lon + d * float(sw.daily_shift_orbits) * spacing_deg
    lon_ref = (lon_ref + 180.0) % 360.0 - 180.0
    grids = []
    region_lon = (setup.bbox[0] - setup.margin, setup.bbox[2] + setup.margin)
    for lon_n in candidate_nadir_lons(lon_ref, region_lon, setup.reach_deg):
        g = granule_grid(
            setup.lat_c,
            float(lon_n),
            azimuth_deg=float(sw.track_azimuth_deg),
            full_edges=setup.edges,
            along_km=float(sw.along_track_km),
            outline=setup.outline,
            pad_km=0.0,
            min_overlap=float(sw.min_region_overlap),
        )
        if g is not None:
            t_ov = ((float(sw.local_time_h) - float(lon_n) / 15.0) * 3600.0) % 86400.0
            grids.append((t_ov, float(lon_n), g))
    grids.sort(key=lambda x: x[0])
    return grids


def day_weather(setup: RunSetup, d: int, orbits) -> DayWeather:
    """The day's weather, drawn from ``(seed, 1, d)`` in a fixed order: wind, lifetime, clouds, background."""
    o = setup.o
    rng = np.random.default_rng([setup.seed, 1, d])
    local = float(o.swath.local_time_h) * 3600.0
    release_h = float(o.transport.release_hours)
    t_lo = min((x[0] for x in orbits), default=local) - release_h * 3600.0
    t_hi = max((x[0] for x in orbits), default=local)
    table_km = max(setup.half_x, setup.half_y) + 30.0 * release_h * 3600.0 / 1e3
    wind = random_day_wind(rng, o.wind, t_lo, t_hi, setup.frame, table_km)
    lifetime = rng.uniform(*(float(v) for v in o.transport.lifetime_h))
    half = max(setup.half_x, setup.half_y)
    mean_cover, cf_fn = cloud_fraction(rng, o.clouds, setup.frame, half, setup.cloud_grad_dir)
    bg_day = background_for_day(setup.background, rng, o.background)
    return DayWeather(wind, float(lifetime), float(mean_cover), cf_fn, bg_day, t_lo, t_hi)


def wind_rows(day: np.datetime64, weather: DayWeather) -> list[dict]:
    """truth/winds.csv rows: region-centre wind every 30 min over the day's release window."""
    rows = []
    for t in np.arange(np.floor(weather.t_lo / 1800) * 1800, weather.t_hi + 1, 1800.0):
        spd, dirn = weather.wind.series(t)
        rows.append(
            {
                "date": str(day),
                "time_utc": str(np.datetime64(day, "s") + np.timedelta64(int(t), "s")),
                "speed_m_s": float(spd),
                "direction_from_deg": float(dirn),
                "lifetime_h": weather.lifetime_h,
            }
        )
    return rows


def render_plume(setup: RunSetup, weather: DayWeather, q: np.ndarray, t_ov: float, grid: GranuleGrid) -> np.ndarray:
    """Noise-free NO2 column [mol m-2] of the sources' puffs on the granule grid."""
    if not q.size:
        return np.zeros(grid.shape)
    tr = setup.o.transport
    puffs = release_puffs(
        setup.src_lat,
        setup.src_lon,
        q,
        weather.wind,
        t_ov,
        release_hours=float(tr.release_hours),
        release_interval_min=float(tr.release_interval_min),
        substeps=int(tr.substeps),
        sigma0_m=float(tr.sigma0_m),
        diffusivity_m2_s=float(tr.horizontal_diffusivity_m2_s),
        lifetime_h=weather.lifetime_h,
        near=grid,
        no2_ramp=setup.src_ramp,
    )
    return render_puffs(puffs, grid, chunk=int(tr.chunk))


def scan_times(setup: RunSetup, day, t_ov: float, grid: GranuleGrid):
    """Per-scanline ``delta_time`` [ms since 00 UTC] and the granule's start, end, orbit and file name."""
    sw = setup.o.swath
    a_c, _ = grid.latlon_to_ac(setup.lat_c, setup.lon_c)
    dt_ms = np.round(t_ov * 1000.0 + (grid.a_centres - a_c) / float(sw.along_track_km) * float(sw.scanline_ms))
    dt_ms = dt_ms.astype(np.int64)
    t_start = np.datetime64(day, "ms") + np.timedelta64(int(dt_ms.min()), "ms")
    t_end = np.datetime64(day, "ms") + np.timedelta64(int(dt_ms.max()), "ms")
    orbit = orbit_number(np.datetime64(t_start, "s"))
    processed = np.datetime64(t_end, "h") + np.timedelta64(1, "h")
    return dt_ms, t_start, t_end, orbit, granule_name(t_start, t_end, orbit, processed)


def snapshot_time(day, t_ov: float) -> np.datetime64:
    """The UTC time [s] of the plume snapshot a granule shows: ``t_ov`` seconds after the day's 00 UTC."""
    return np.datetime64(day, "s") + np.timedelta64(int(round(t_ov)), "s")


def simulate_granule(setup, task: DayTask, weather: DayWeather, q, k: int, t_ov: float, lon_n: float, grid) -> dict:
    """Render, observe and write granule ``k`` of the day and its truth fields; return its granules.csv row."""
    o = setup.o
    day = np.datetime64(task.date, "D")
    plume = render_plume(setup, weather, q, t_ov, grid)
    lat, lon = grid.centres()
    latb, lonb = grid.bounds()
    bgf = weather.background(lat, lon)
    cloud = weather.cloud(lat, lon)
    truth = plume + bgf
    prec = precision(truth, grid.area_m2(), cloud, o.noise)
    grng = np.random.default_rng([setup.seed, 2, task.d, k])
    no2 = truth + prec * grng.standard_normal(truth.shape)
    qa = qa_from_cloud(cloud, o.clouds.qa_levels)
    dt_ms, t_start, t_end, orbit, name = scan_times(setup, day, t_ov, grid)
    folder = Path(task.units_dir)
    write_granule(
        folder / GRANULES / name,
        day=day,
        delta_time_ms=dt_ms,
        lat=lat,
        lon=lon,
        lat_bounds=latb,
        lon_bounds=lonb,
        no2=no2,
        no2_precision=prec,
        qa=qa,
        cloud=cloud,
        orbit=orbit,
    )
    write_truth_fields(
        folder / FIELDS / truth_field_name(name),
        plume=plume,
        background=bgf,
        cloud=cloud,
        lat=lat,
        lon=lon,
        # the plume is the puffs' snapshot at t_ov (the region centre's scan time), not at the granule's first scanline
        attrs={"granule": name, "lifetime_h": weather.lifetime_h, "overpass_time_utc": str(snapshot_time(day, t_ov))},
    )
    row = {"file": name, "date": str(day), "orbit": orbit, "time_coverage_start": str(t_start)}
    row["time_coverage_end"] = str(t_end)
    return row | granule_stats(setup, weather, t_ov, lon_n, grid, lat, lon, cloud, qa, plume)


def granule_stats(setup, weather: DayWeather, t_ov, lon_n, grid, lat, lon, cloud, qa, plume) -> dict:
    """The rest of a granules.csv row: geometry, weather and what the region saw."""
    b = setup.bbox
    inside = (lat >= b[1]) & (lat <= b[3]) & (lon >= b[0]) & (lon <= b[2])
    spd, dirn = weather.wind.series(t_ov)
    return {
        "overpass_utc_h": t_ov / 3600.0,
        "nadir_lon": lon_n,
        "region_across_track_km": float(grid.latlon_to_ac(setup.lat_c, setup.lon_c)[1]),
        "n_scanline": grid.shape[0],
        "n_ground_pixel": grid.shape[1],
        "first_ground_pixel": grid.ground_pixel_offset,
        "mean_pixel_width_km": float(np.diff(grid.c_edges).mean()),
        "lifetime_h": weather.lifetime_h,
        "wind_speed_m_s": float(spd),
        "wind_from_direction_deg": float(dirn),
        "mean_cloud_cover_drawn": weather.mean_cover,
        "cloud_fraction_region": float(cloud[inside].mean()) if inside.any() else np.nan,
        "n_pixels_region": int(inside.sum()),
        "n_qa_ge_075_region": int((qa[inside] >= 0.75).sum()),
        "background_mean_mol_m2": weather.background.day_mean,
        "plume_max_mol_m2": float(plume.max()),
    }


def simulate_day(task: DayTask, setup: RunSetup) -> dict:
    """The unit: one day's granules, truth fields and wind file in ``task.units_dir`` (skipped when done with the
    same hash). Returns ``{"date", "granules": [rows], "winds": [rows], "files": [paths], "reused"}``."""
    done = units.load_done(task.units_dir, task.date, task.unit_hash)
    if done is not None:
        return {**done, "reused": True}
    d = task.d
    day = day_of(setup, d)
    orbits = day_orbits(setup, d)
    weather = day_weather(setup, d, orbits)
    q = day_rates(setup, day)
    rows = [simulate_granule(setup, task, weather, q, k, *orbit) for k, orbit in enumerate(orbits)]
    winds_file = f"{WINDS}/{day}.nc"
    write_day_winds(Path(task.units_dir) / winds_file, weather.wind, day, weather.t_lo, weather.t_hi, setup)
    files = [f"{GRANULES}/{r['file']}" for r in rows] + [f"{FIELDS}/{truth_field_name(r['file'])}" for r in rows]
    result = {"date": str(day), "granules": rows, "winds": wind_rows(day, weather), "files": [*files, winds_file]}
    result = _plain(result)
    units.mark_done(task.units_dir, task.date, task.unit_hash, result["files"], result)
    log.debug("osse day %s: %d granules", day, len(rows))
    return {**result, "reused": False}


def _plain(obj):
    """numpy scalars as Python values, so a fresh result equals the one read back from its marker."""
    import json

    from ..atomic import to_builtin

    def default(o):
        v = to_builtin(o)
        if v is o:
            raise TypeError(f"not JSON serialisable: {type(o).__name__}")
        return v

    return json.loads(json.dumps(obj, default=default))
