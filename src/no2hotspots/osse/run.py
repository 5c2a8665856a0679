"""The ``osse`` stage: write synthetic S5P-L2-layout NO2 granules over a region and date range, with truth.

Output (``osse.out_dir``, replaced as a whole, atomically)::

    granules/S5P_OSSE_L2__NO2____<start>_<end>_<orbit>_01_020400_<processed>.nc   one per orbit and day
    truth/sources.csv        sources used: id, lat, lon, nox_t_per_yr, co2_t_per_yr, no2_rate_mol_s, ...
    truth/winds.csv          per day, every 30 min: region-centre wind speed/direction-from (+ lifetime)
    truth/granules.csv       per granule: file, overpass time, across-track position, cloud cover, qa counts, ...
    truth/fields/<stem>.nc   per granule noise-free truth: no2_plume, no2_background, cloud_fraction
    truth/config.json        the resolved osse + inventory config
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from omegaconf import OmegaConf
from tqdm import tqdm

from ..atomic import atomic_path, write_csv, write_json, write_netcdf
from ..config import require
from ..errors import ConfigError
from ..inventory import load_points, points_in_bbox
from ..inventory.load import check_bbox
from ..logs import progress_disabled
from .geometry import (
    EARTH_R_KM,
    ORBITS_PER_DAY,
    across_track_edges_km,
    candidate_nadir_lons,
    granule_grid,
    orbit_number,
    region_outline,
)
from .granule import granule_name, write_granule
from .observe import precision, qa_from_cloud
from .transport import no2_rate_mol_s, release_puffs, render_puffs
from .weather import FieldFrame, background_for_day, cloud_fraction, make_background, random_day_wind

log = logging.getLogger(__name__)


def _pair(cfg, key: str, positive: bool = True) -> tuple[float, float]:
    v = require(
        cfg,
        key,
        lambda x: len(x) == 2 and float(x[0]) <= float(x[1]) and (not positive or float(x[0]) > 0),
        "must be [low, high] with low <= high" + (" and low > 0" if positive else ""),
    )
    return float(v[0]), float(v[1])


def check_config(cfg) -> None:
    """Raise a one-line ConfigError for the first invalid osse.* value."""
    check_bbox(
        require(cfg, "osse.region.bbox", lambda v: len(v) == 4, "must be [lon_min, lat_min, lon_max, lat_max]"),
        "osse.region.bbox",
    )
    require(cfg, "osse.region.margin_deg", lambda v: 0 <= float(v) <= 5, "must be in 0..5")
    require(cfg, "osse.dates.days", lambda v: int(v) >= 1, "must be >= 1")
    require(cfg, "osse.dates.start", lambda v: np.datetime64(str(v), "D") is not None, "must be a date YYYY-MM-DD")
    require(cfg, "osse.sources.no2_nox_ratio", lambda v: 0 < float(v) <= 1, "must be in (0, 1]")
    require(cfg, "osse.transport.release_hours", lambda v: float(v) > 0, "must be > 0")
    require(cfg, "osse.transport.release_interval_min", lambda v: 0 < float(v) <= 120, "must be in (0, 120]")
    require(cfg, "osse.transport.substeps", lambda v: int(v) >= 1, "must be >= 1")
    require(cfg, "osse.transport.sigma0_m", lambda v: float(v) > 0, "must be > 0")
    require(cfg, "osse.transport.horizontal_diffusivity_m2_s", lambda v: float(v) >= 0, "must be >= 0")
    _pair(cfg, "osse.transport.lifetime_h")
    _pair(cfg, "osse.wind.speed_m_s")
    _pair(cfg, "osse.clouds.mean_cover", positive=False)
    require(cfg, "osse.clouds.mean_cover", lambda v: float(v[0]) >= 0 and float(v[1]) <= 1, "must lie in 0..1")
    _pair(cfg, "osse.background.mean_mol_m2", positive=False)
    require(cfg, "osse.swath.max_view_angle_deg", lambda v: 0 < float(v) < 70, "must be in (0, 70)")
    require(cfg, "osse.swath.n_ground_pixels", lambda v: int(v) >= 2, "must be >= 2")
    require(cfg, "osse.swath.along_track_km", lambda v: float(v) > 0, "must be > 0")
    require(cfg, "osse.noise.precision_mol_m2", lambda v: float(v) >= 0, "must be >= 0")
    require(
        cfg,
        "osse.clouds.qa_levels",
        lambda v: (
            len(v) >= 1
            and all(len(x) == 2 and 0 <= float(x[1]) <= 1 for x in v)
            and list(map(float, [x[0] for x in v])) == sorted(float(x[0]) for x in v)
        ),
        "must be a list of [cloud_fraction_below, qa] with ascending cloud fractions and qa in 0..1",
    )


def select_sources(cfg) -> pd.DataFrame:
    """Inventory sources in the region (+ margin) above the NOx threshold, with their NO2 rates."""
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
    return df


def run(cfg) -> Path:
    check_config(cfg)
    o = cfg.osse
    seed = int(o.seed)
    bbox = check_bbox(o.region.bbox, "osse.region.bbox")
    margin = float(o.region.margin_deg)
    out_dir = Path(o.out_dir)
    src = select_sources(cfg)
    log.info(
        "osse: %d sources in %s (+%.2f deg), %d inside the bbox", len(src), list(bbox), margin, int(src.in_region.sum())
    )

    lat_c, lon_c = 0.5 * (bbox[1] + bbox[3]), 0.5 * (bbox[0] + bbox[2])
    frame = FieldFrame(lat_c, lon_c)
    half_x = EARTH_R_KM * np.radians((bbox[2] - bbox[0]) / 2 + margin) * np.cos(np.radians(lat_c))
    half_y = EARTH_R_KM * np.radians((bbox[3] - bbox[1]) / 2 + margin)
    rng_run = np.random.default_rng([seed, 0])
    background = make_background(rng_run, o.background, frame, half_x, half_y)
    cloud_grad_dir = rng_run.uniform(0, 2 * np.pi)
    sw = o.swath
    spacing_deg = 360.0 / ORBITS_PER_DAY
    first_lon = sw.first_nadir_lon
    first_lon = (
        float(first_lon)
        if first_lon is not None
        else float(rng_run.uniform(lon_c - spacing_deg / 2, lon_c + spacing_deg / 2))
    )
    edges = across_track_edges_km(int(sw.n_ground_pixels), float(sw.max_view_angle_deg), float(sw.altitude_km))
    outline = region_outline(bbox, margin)
    reach_deg = np.degrees(edges[-1] / (EARTH_R_KM * np.cos(np.radians(lat_c)))) + 1.0
    along = float(sw.along_track_km)
    tr = o.transport
    release_h = float(tr.release_hours)
    start = np.datetime64(str(o.dates.start), "D")
    n_days = int(o.dates.days)

    granule_rows, wind_rows = [], []
    with atomic_path(out_dir, is_dir=True) as tmp:
        (tmp / "granules").mkdir()
        (tmp / "truth" / "fields").mkdir(parents=True)
        for d in tqdm(range(n_days), desc="osse days", unit="day", disable=progress_disabled()):
            day = start + np.timedelta64(d, "D")
            rng = np.random.default_rng([seed, 1, d])
            lon_ref = first_lon + d * float(sw.daily_shift_orbits) * spacing_deg
            lon_ref = (lon_ref + 180.0) % 360.0 - 180.0
            grids = []
            for lon_n in candidate_nadir_lons(lon_ref, (bbox[0] - margin, bbox[2] + margin), reach_deg):
                g = granule_grid(
                    lat_c,
                    float(lon_n),
                    azimuth_deg=float(sw.track_azimuth_deg),
                    full_edges=edges,
                    along_km=along,
                    outline=outline,
                    pad_km=0.0,
                    min_overlap=float(sw.min_region_overlap),
                )
                if g is not None:
                    t_ov = ((float(sw.local_time_h) - float(lon_n) / 15.0) * 3600.0) % 86400.0
                    grids.append((t_ov, float(lon_n), g))
            grids.sort(key=lambda x: x[0])
            t_lo = min((x[0] for x in grids), default=float(sw.local_time_h) * 3600.0) - release_h * 3600.0
            t_hi = max((x[0] for x in grids), default=float(sw.local_time_h) * 3600.0)
            wind = random_day_wind(
                rng, o.wind, t_lo, t_hi, frame, max(half_x, half_y) + 30.0 * release_h * 3600.0 / 1e3
            )
            lifetime = rng.uniform(*_pair(cfg, "osse.transport.lifetime_h"))
            mean_cover, cf_fn = cloud_fraction(rng, o.clouds, frame, max(half_x, half_y), cloud_grad_dir)
            bg_day = background_for_day(background, rng, o.background)
            for t in np.arange(np.floor(t_lo / 1800) * 1800, t_hi + 1, 1800.0):
                spd, dirn = wind.series(t)
                wind_rows.append(
                    {
                        "date": str(day),
                        "time_utc": str(np.datetime64(day, "s") + np.timedelta64(int(t), "s")),
                        "speed_m_s": float(spd),
                        "direction_from_deg": float(dirn),
                        "lifetime_h": lifetime,
                    }
                )
            for k, (t_ov, lon_n, grid) in enumerate(grids):
                puffs = (
                    release_puffs(
                        src["lat"].to_numpy(),
                        src["lon"].to_numpy(),
                        src["no2_rate_mol_s"].to_numpy(),
                        wind,
                        t_ov,
                        release_hours=release_h,
                        release_interval_min=float(tr.release_interval_min),
                        substeps=int(tr.substeps),
                        sigma0_m=float(tr.sigma0_m),
                        diffusivity_m2_s=float(tr.horizontal_diffusivity_m2_s),
                        lifetime_h=lifetime,
                    )
                    if len(src)
                    else None
                )
                plume = render_puffs(puffs, grid, chunk=int(tr.chunk)) if puffs is not None else np.zeros(grid.shape)
                lat, lon = grid.centres()
                latb, lonb = grid.bounds()
                bgf = bg_day(lat, lon)
                cloud = cf_fn(lat, lon)
                truth = plume + bgf
                prec = precision(truth, grid.area_m2(), cloud, o.noise)
                grng = np.random.default_rng([seed, 2, d, k])
                no2 = truth + prec * grng.standard_normal(truth.shape)
                qa = qa_from_cloud(cloud, o.clouds.qa_levels)
                a_c, _ = grid.latlon_to_ac(lat_c, lon_c)
                dt_ms = np.round(t_ov * 1000.0 + (grid.a_centres - a_c) / along * float(sw.scanline_ms)).astype(
                    np.int64
                )
                t_start = np.datetime64(day, "ms") + np.timedelta64(int(dt_ms.min()), "ms")
                t_end = np.datetime64(day, "ms") + np.timedelta64(int(dt_ms.max()), "ms")
                orbit = orbit_number(np.datetime64(t_start, "s"))
                processed = np.datetime64(t_end, "h") + np.timedelta64(1, "h")
                name = granule_name(t_start, t_end, orbit, processed)
                write_granule(
                    tmp / "granules" / name,
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
                fields = xr.Dataset(
                    {
                        "no2_plume": (
                            ("scanline", "ground_pixel"),
                            plume.astype("float32"),
                            {"units": "mol m-2", "long_name": "noise-free NO2 column from the point sources"},
                        ),
                        "no2_background": (
                            ("scanline", "ground_pixel"),
                            bgf.astype("float32"),
                            {"units": "mol m-2", "long_name": "noise-free NO2 background column"},
                        ),
                        "cloud_fraction": (
                            ("scanline", "ground_pixel"),
                            cloud.astype("float32"),
                            {"units": "1", "long_name": "simulated cloud fraction"},
                        ),
                        "latitude": (
                            ("scanline", "ground_pixel"),
                            lat.astype("float32"),
                            {"units": "degrees_north", "standard_name": "latitude"},
                        ),
                        "longitude": (
                            ("scanline", "ground_pixel"),
                            lon.astype("float32"),
                            {"units": "degrees_east", "standard_name": "longitude"},
                        ),
                    },
                    attrs={
                        "granule": name,
                        "lifetime_h": lifetime,
                        "overpass_time_utc": str(t_start),
                        "Conventions": "CF-1.10",
                    },
                )
                write_netcdf(fields, tmp / "truth" / "fields" / name.replace(".nc", "_truth.nc"))
                inside = (lat >= bbox[1]) & (lat <= bbox[3]) & (lon >= bbox[0]) & (lon <= bbox[2])
                spd, dirn = wind.series(t_ov)
                granule_rows.append(
                    {
                        "file": name,
                        "date": str(day),
                        "orbit": orbit,
                        "time_coverage_start": str(t_start),
                        "time_coverage_end": str(t_end),
                        "overpass_utc_h": t_ov / 3600.0,
                        "nadir_lon": lon_n,
                        "region_across_track_km": float(grid.latlon_to_ac(lat_c, lon_c)[1]),
                        "n_scanline": grid.shape[0],
                        "n_ground_pixel": grid.shape[1],
                        "first_ground_pixel": grid.ground_pixel_offset,
                        "mean_pixel_width_km": float(np.diff(grid.c_edges).mean()),
                        "lifetime_h": lifetime,
                        "wind_speed_m_s": float(spd),
                        "wind_from_direction_deg": float(dirn),
                        "mean_cloud_cover_drawn": mean_cover,
                        "cloud_fraction_region": float(cloud[inside].mean()) if inside.any() else np.nan,
                        "n_pixels_region": int(inside.sum()),
                        "n_qa_ge_075_region": int((qa[inside] >= 0.75).sum()),
                        "background_mean_mol_m2": bg_day.day_mean,
                        "plume_max_mol_m2": float(plume.max()),
                    }
                )
        src_out = src[
            [
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
            ]
        ]
        write_csv(src_out, tmp / "truth" / "sources.csv")
        write_csv(pd.DataFrame(wind_rows), tmp / "truth" / "winds.csv")
        write_csv(pd.DataFrame(granule_rows), tmp / "truth" / "granules.csv")
        write_json(
            tmp / "truth" / "config.json",
            {
                "osse": OmegaConf.to_container(o, resolve=True),
                "inventory": OmegaConf.to_container(cfg.inventory, resolve=True),
                "first_nadir_lon": first_lon,
                "note": "synthetic observing-system simulation; granules are not satellite data",
            },
        )
    log.info("osse: wrote %d granules for %d days to %s", len(granule_rows), n_days, out_dir / "granules")
    return out_dir
