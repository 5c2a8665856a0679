"""The ``osse`` stage: synthetic S5P-L2-layout NO2 granules over a region and date range, with their truth.

Each day is one unit (:func:`no2hotspots.osse.day.simulate_day`, mapped over Dask by :mod:`no2hotspots.parallel`):
it writes its granules, truth fields and wind file into ``osse.units_dir`` and a done marker whose hash covers what
the day is computed from (the osse settings except the output paths and the date range, the sources and their
rates that day, the run's drawn constants, the osse code). A rerun skips finished days, so a killed run resumes
and computes no day twice; the outputs are byte-identical whatever the number of workers. Output
(``osse.out_dir``, assembled from the unit folder by hard links and swapped in by one rename)::

    granules/S5P_OSSE_L2__NO2____<start>_<end>_<orbit>_01_020400_<processed>.nc   one per orbit and day
    truth/sources.csv        sources used: id, lat, lon, nox_t_per_yr, co2_t_per_yr, no2_rate_mol_s, ...,
                             change_date, change_factor (osse.changes; empty where none), and with the
                             NO -> NO2 ramp on each source's no2_ramp_m, no2_ramp_r_s, no2_ramp_f0
    truth/winds.csv          per day, every 30 min: region-centre wind speed/direction-from (+ lifetime)
    truth/winds/<date>.nc    per day: the puffs' wind field u, v (time, latitude, longitude), see .truth
    truth/granules.csv       per granule: file, overpass time, across-track position, cloud cover, qa counts, ...
    truth/fields/<stem>_truth.nc   per granule noise-free truth: no2_plume, no2_background, cloud_fraction, lat, lon
    truth/config.json        the resolved osse + inventory config
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from .. import units
from ..atomic import atomic_path, write_csv, write_json
from ..inventory import load_points, points_in_bbox
from ..inventory.load import check_bbox
from .checks import check_changes, check_config, date_range, ramp_range
from .day import FIELDS, GRANULES, WINDS, DayTask, RunSetup, simulate_day
from .geometry import EARTH_R_KM, ORBITS_PER_DAY, across_track_edges_km, region_outline
from .transport import no2_rate_mol_s
from .weather import FieldFrame, make_background

log = logging.getLogger(__name__)

#: bump when a day's content changes in a way the hashed settings and code do not show
UNIT_VERSION = 1
SOURCE_COLUMNS = [
    "id",
    "name",
    "iso3",
    "fuel",
    "lat",
    "lon",
    "nox_t_per_yr",
    "co2_t_per_yr",
    "no2_rate_mol_s",
    "no2_nox_ratio",
    "in_region",
    "change_date",
    "change_factor",
]
#: each source's near-source NO -> NO2 ramp (osse.transport.no2_ramp), in truth/sources.csv when the ramp is on
RAMP_COLUMNS = ["no2_ramp_m", "no2_ramp_r_s", "no2_ramp_f0"]
GRANULE_COLUMNS = [
    "file",
    "date",
    "orbit",
    "time_coverage_start",
    "time_coverage_end",
    "overpass_utc_h",
    "nadir_lon",
    "region_across_track_km",
    "n_scanline",
    "n_ground_pixel",
    "first_ground_pixel",
    "mean_pixel_width_km",
    "lifetime_h",
    "wind_speed_m_s",
    "wind_from_direction_deg",
    "mean_cloud_cover_drawn",
    "cloud_fraction_region",
    "n_pixels_region",
    "n_qa_ge_075_region",
    "background_mean_mol_m2",
    "plume_max_mol_m2",
]
WIND_COLUMNS = ["date", "time_utc", "speed_m_s", "direction_from_deg", "lifetime_h"]
__all__ = ["check_config", "run", "select_sources"]


def select_sources(cfg) -> pd.DataFrame:
    """Inventory sources in the region (+ margin) above the NOx threshold, with their NO2 rates and changes."""
    from ..errors import ConfigError

    o = cfg.osse
    df = load_points(cfg.inventory)
    df = points_in_bbox(df, o.region.bbox, float(o.region.margin_deg))
    if df["nox_t_per_yr"].isna().all() and len(df):
        raise ConfigError("inventory", "has no NOx emissions in the OSSE region; the OSSE needs a NOx column")
    df = df[df["nox_t_per_yr"].fillna(0) >= float(o.sources.min_nox_t_per_yr)].reset_index(drop=True)
    lon0, lat0, lon1, lat1 = (float(b) for b in o.region.bbox)
    df["in_region"] = df["lon"].between(lon0, lon1) & df["lat"].between(lat0, lat1)
    df["no2_rate_mol_s"] = no2_rate_mol_s(df["nox_t_per_yr"], float(o.sources.no2_nox_ratio))
    df["no2_nox_ratio"] = float(o.sources.no2_nox_ratio)
    for name, values in zip(RAMP_COLUMNS, source_ramps(o, len(df)) or ()):
        df[name] = values
    start, n_days = date_range(o)
    changes = check_changes(o, df, start, n_days)
    df["change_date"] = pd.Series([None] * len(df), dtype=object)
    df["change_factor"] = np.nan
    for i, since, factor in changes:
        df.loc[i, "change_date"] = since
        df.loc[i, "change_factor"] = factor
    return df


def source_ramps(o, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Each of ``n`` sources' (m, r_s, f0) of ``osse.transport.no2_ramp``: a value is every source's; [low, high] is
    drawn per source, uniform, from the run's own stream ``(seed, 3)`` (m, r_s, f0 in that order); None when m is 0."""
    ranges = [ramp_range(o.transport.no2_ramp[k]) for k in ("m", "r_s", "f0")]
    if ranges[0] == (0.0, 0.0):
        return None
    rng = np.random.default_rng([int(o.seed), 3])
    m, r_s, f0 = (rng.uniform(lo, hi, n) if hi > lo else np.full(n, lo) for lo, hi in ranges)
    return m, r_s, f0


def prepare(cfg, src: pd.DataFrame) -> RunSetup:
    """The run's constants: frame, swath, and what is drawn once per run from ``(seed, 0)`` (background blobs,
    cloud gradient direction, first nadir longitude), in today's order."""
    o = cfg.osse
    seed = int(o.seed)
    bbox = check_bbox(o.region.bbox, "osse.region.bbox")
    margin = float(o.region.margin_deg)
    lat_c, lon_c = 0.5 * (bbox[1] + bbox[3]), 0.5 * (bbox[0] + bbox[2])
    frame = FieldFrame(lat_c, lon_c)
    half_x = EARTH_R_KM * np.radians((bbox[2] - bbox[0]) / 2 + margin) * np.cos(np.radians(lat_c))
    half_y = EARTH_R_KM * np.radians((bbox[3] - bbox[1]) / 2 + margin)
    rng_run = np.random.default_rng([seed, 0])
    background = make_background(rng_run, o.background, frame, half_x, half_y)
    cloud_grad_dir = float(rng_run.uniform(0, 2 * np.pi))
    sw = o.swath
    spacing_deg = 360.0 / ORBITS_PER_DAY
    first_lon = sw.first_nadir_lon
    if first_lon is None:
        first_lon = rng_run.uniform(lon_c - spacing_deg / 2, lon_c + spacing_deg / 2)
    edges = across_track_edges_km(int(sw.n_ground_pixels), float(sw.max_view_angle_deg), float(sw.altitude_km))
    reach_deg = np.degrees(edges[-1] / (EARTH_R_KM * np.cos(np.radians(lat_c)))) + 1.0
    changed = src[src["change_date"].notna()]
    return RunSetup(
        o=OmegaConf.create(OmegaConf.to_container(o, resolve=True)),
        seed=seed,
        bbox=bbox,
        margin=margin,
        frame=frame,
        half_x=float(half_x),
        half_y=float(half_y),
        background=background,
        cloud_grad_dir=cloud_grad_dir,
        first_lon=float(first_lon),
        edges=edges,
        outline=region_outline(bbox, margin),
        reach_deg=float(reach_deg),
        start=date_range(o)[0],
        src_lat=src["lat"].to_numpy(float),
        src_lon=src["lon"].to_numpy(float),
        src_q=src["no2_rate_mol_s"].to_numpy(float),
        changes=tuple((int(i), str(r.change_date), float(r.change_factor)) for i, r in changed.iterrows()),
        src_ramp=tuple(src[c].to_numpy(float) for c in RAMP_COLUMNS) if RAMP_COLUMNS[0] in src else None,
    )


def code_digest() -> str:
    """Hash of the osse package's code and all it imports: a day computed by other code is computed again."""
    return units.code_digest("no2hotspots.osse")


def settings_hash(cfg, setup: RunSetup, src: pd.DataFrame) -> str:
    """What every day depends on: the osse settings except where outputs go and which days run (a day's content
    depends on its index since dates.start, not on how many days follow), the sources, the drawn constants."""
    o = OmegaConf.to_container(cfg.osse, resolve=True)
    for k in ("out_dir", "units_dir", "changes"):
        o.pop(k, None)
    o["dates"] = {"start": str(setup.start)}
    sources = {c: src[c].tolist() for c in ("id", "lat", "lon", "no2_rate_mol_s")}
    return units.digest(
        {"osse": o, "sources": sources, "first_lon": setup.first_lon, "code": code_digest(), "v": UNIT_VERSION}
    )


def plan(cfg, setup: RunSetup, src: pd.DataFrame) -> tuple[list[DayTask], Path]:
    """One task per day; a day's hash adds its index, date and the changed sources' factors that day."""
    from .day import day_factors, day_of

    _, n_days = date_range(cfg.osse)
    units_dir = Path(str(cfg.osse.units_dir))
    units_dir.mkdir(parents=True, exist_ok=True)
    base = settings_hash(cfg, setup, src)
    tasks = []
    for d in range(n_days):
        day = str(day_of(setup, d))
        factors = sorted(day_factors(setup, day).items())
        tasks.append(DayTask(d, day, str(units_dir), units.digest([base, d, day, factors])))
    return tasks, units_dir


def sweep_orphans(units_dir: Path, keep_files: set[str]) -> int:
    """Remove the day files no kept unit lists (a day killed mid-way, days of other settings, temporary files of
    killed writes); only files of the OSSE's own kinds in its own subfolders of the unit folder are touched."""
    gone = 0
    for sub in (GRANULES, FIELDS, WINDS):
        for p in sorted({*(units_dir / sub).glob("*.nc"), *(units_dir / sub).glob(".*.tmp-*")}):
            rel = p.relative_to(units_dir).as_posix()
            if p.is_file() and rel not in keep_files:
                p.unlink(missing_ok=True)
                gone += 1
    return gone


def run(cfg) -> dict:
    """Simulate every day (units on Dask), then publish ``osse.out_dir``; return a summary."""
    from ..parallel import map_units

    check_config(cfg)
    src = select_sources(cfg)
    setup = prepare(cfg, src)
    log.info(
        "osse: %d sources in %s (+%.2f deg), %d inside the bbox",
        len(src),
        list(setup.bbox),
        setup.margin,
        int(src.in_region.sum()),
    )
    tasks, units_dir = plan(cfg, setup, src)
    results = map_units(simulate_day, tasks, cfg, desc="osse days", shared={"setup": setup})
    units.prune(units_dir, [t.date for t in tasks])
    sweep_orphans(units_dir, {f for r in results for f in r["files"]})
    out_dir = publish(cfg, setup, src, units_dir, results)
    reused = sum(bool(r["reused"]) for r in results)
    n_granules = sum(len(r["granules"]) for r in results)
    log.info(
        "osse: %d granules for %d days (%d computed, %d reused) -> %s",
        n_granules,
        len(tasks),
        len(tasks) - reused,
        reused,
        out_dir,
    )
    return {
        "out_dir": str(out_dir),
        "n_days": len(tasks),
        "n_granules": n_granules,
        "n_computed": len(tasks) - reused,
        "n_reused": reused,
    }


def publish(cfg, setup: RunSetup, src: pd.DataFrame, units_dir: Path, results: list[dict]) -> Path:
    """Assemble ``osse.out_dir`` (unit files hard-linked, tables and config written) and swap it in."""
    out_dir = Path(str(cfg.osse.out_dir))
    granules = [row for r in results for row in r["granules"]]
    winds = [row for r in results for row in r["winds"]]
    with atomic_path(out_dir, is_dir=True) as tmp:
        (tmp / "granules").mkdir()
        (tmp / "truth" / "fields").mkdir(parents=True)
        (tmp / "truth" / "winds").mkdir()
        for r in results:
            for f in r["files"]:
                units.link_into(units_dir / f, tmp / f)
        write_csv(src[SOURCE_COLUMNS + [c for c in RAMP_COLUMNS if c in src]], tmp / "truth" / "sources.csv")
        write_csv(pd.DataFrame(winds, columns=WIND_COLUMNS), tmp / "truth" / "winds.csv")
        write_csv(pd.DataFrame(granules, columns=GRANULE_COLUMNS), tmp / "truth" / "granules.csv")
        write_json(
            tmp / "truth" / "config.json",
            {
                "osse": OmegaConf.to_container(cfg.osse, resolve=True),
                "inventory": OmegaConf.to_container(cfg.inventory, resolve=True),
                "first_nadir_lon": setup.first_lon,
                "note": "synthetic observing-system simulation; granules are not satellite data",
            },
        )
    return out_dir
