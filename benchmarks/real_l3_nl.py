"""Real TROPOMI over the Netherlands: where does a model's hotspots fall against the power plants there?

Runs ``python -m no2hotspots detect-files`` on the three real HARP L3 NO2 scenes of ``../shared/realdata``
(17-18 Dec 2021, 0.1 deg, cloud-masked; development data, not shipped) with ``--model`` into ``--out``, then lists
each hotspot with its ``gap_cells`` (cells to the nearest cell its overpass did not observe), the regional
background detect took off at its peak (``background_shift_mol_m2``) and the nearest
plant of the JRC Open Power Plants Database that emitted CO2 in 2018 (units summed per plant). There is no truth
here: winter scenes, few valid cells, and urban and industrial NO2 that no power-plant list holds; the figures
say where the hotspots lie, not what the recall is. Prints one line per hotspot and a summary; ``--json F`` also
writes them (with the model's weights' MD5) to F.

    .venv/bin/python benchmarks/real_l3_nl.py --model outputs/train/model [--out /tmp/real_l3_nl] [--match-km 10]
        [--set detect.background_max_mol_m2=3.0e-5 ...] [--json benchmarks/results/real_l3_nl.json]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from no2hotspots.evaluate.geo import PointIndex

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"  # beside the checkout (--realdata for elsewhere)

#: the known signal of ../shared/realdata/README.md: the Maasvlakte power plant's cell is ~5.7x the scene median in
#: the 18 Dec 11:27 scene
MAASVLAKTE = (51.944, 4.067)
#: the L3 scenes' grid (cell centres 50.325-54.025 N, 2.445-7.745 E) and half a cell around it
BOX = (50.25, 54.1, 2.35, 7.8)


def plants(jrc: Path, year: int = 2018, box=BOX) -> pd.DataFrame:
    """JRC plants inside ``box`` (lat0, lat1, lon0, lon1) that emitted CO2 in ``year``: name, type, lat, lon (mean
    of the units), co2_t_per_yr (units summed)."""
    units = pd.read_csv(jrc / "JRC_OPEN_UNITS.csv")
    temporal = pd.read_csv(jrc / "JRC_OPEN_TEMPORAL.csv")
    co2 = temporal[temporal["cyear"] == year].groupby("eic_p")["co2emitted"].sum() / 1000.0  # kg -> t
    p = units.groupby("eic_p").agg(
        name=("name_p", "first"), type=("type_g", "first"), lat=("lat", "mean"), lon=("lon", "mean")
    )
    p = p.join(co2.rename("co2_t_per_yr"), how="inner")
    inside = p["lat"].between(box[0], box[1]) & p["lon"].between(box[2], box[3])
    return p[inside & (p["co2_t_per_yr"] > 0)].reset_index()


def nearest_plants(hotspots: pd.DataFrame, p: pd.DataFrame) -> pd.DataFrame:
    """``hotspots`` with the nearest plant's name and distance [km]."""
    k, d = PointIndex(p["lat"].to_numpy(float), p["lon"].to_numpy(float)).nearest(
        hotspots["peak_lat"].to_numpy(float), hotspots["peak_lon"].to_numpy(float)
    )
    return hotspots.assign(plant=p["name"].to_numpy()[k], plant_km=d)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="detect-files --model (a model folder, models:/..., runs:/...)")
    ap.add_argument("--out", default="/tmp/real_l3_nl")
    ap.add_argument("--match-km", type=float, default=10.0)
    ap.add_argument("--realdata", type=Path, default=REALDATA, help="the shared realdata folder")
    ap.add_argument("--set", nargs="*", default=[], help="detect overrides (e.g. detect.background_max_mol_m2=3.0e-5)")
    ap.add_argument("--json", type=Path, default=None, help="also write the hotspots and the summary here")
    args = ap.parse_args(argv)
    scenes, out = args.realdata.resolve() / "tropomi_l3_harp_nl", Path(args.out).resolve()
    cmd = [sys.executable, "-m", "no2hotspots", "detect-files", str(scenes), "--out", str(out), "--model", args.model]
    sets = [x for o in ["parallel.scheduler=sync", *args.set] for x in ("--set", o)]
    subprocess.run([*cmd, *sets], check=True)  # in the caller's folder: its paths hold
    h = pd.read_csv(out / "detections" / "hotspots.csv")
    p = plants(args.realdata / "jrc_power_plants")
    h = nearest_plants(h, p)
    for r in h.itertuples():
        print(
            f"{r.time} ({r.peak_lat:.3f} N, {r.peak_lon:.3f} E) r {r.peak_rel_emission:.2f} gap_cells "
            f"{r.gap_cells:2d} background taken off {r.background_shift_mol_m2:.1e} mol m-2 | nearest CO2-emitting "
            f"JRC plant {r.plant} {r.plant_km:.1f} km"
        )
    maasvlakte = {}
    for f in sorted((out / "detections" / "overpasses").glob("*.nc")):
        with xr.open_dataset(f) as ds:
            at = ds["relative_emission"].sel(
                lat=slice(MAASVLAKTE[0] - 0.1, MAASVLAKTE[0] + 0.1), lon=slice(MAASVLAKTE[1] - 0.1, MAASVLAKTE[1] + 0.1)
            )
            r_max = float(at.max()) if bool(np.isfinite(at).any()) else float("nan")
            top = float(ds.attrs.get("background_shift_max_mol_m2", 0.0))
        maasvlakte[f.stem] = {  # None: not observed
            "r_max_within_0.1_deg": r_max if np.isfinite(r_max) else None,
            "background_shift_max_mol_m2": top,
        }
        print(
            f"{f.stem}: highest r within 0.1 deg of Maasvlakte {r_max:.3f} (NaN: not observed); most background "
            f"taken off a cell {top:.1e} mol m-2"
        )
    near = h["plant_km"] <= args.match_km
    beside = h["gap_cells"] <= 3
    print(
        f"{len(h)} hotspots in 3 scenes ({len(p)} JRC plants with 2018 CO2 in the box): {int(near.sum())} within "
        f"{args.match_km:g} km of one; {int(beside.sum())} within 3 cells of an unobserved cell or the grid's edge"
    )
    if args.json:
        _write_json(args, h, p, maasvlakte, int(near.sum()), int(beside.sum()))
    return 0


def _write_json(args, h: pd.DataFrame, p: pd.DataFrame, maasvlakte: dict, n_near: int, n_beside: int) -> None:
    import hashlib

    from no2hotspots.atomic import write_json

    weights = Path(args.model) / "state_dict.pt"
    cols = ["time", "peak_lat", "peak_lon", "peak_rel_emission", "gap_cells", "background_shift_mol_m2"]
    write_json(
        args.json,
        {
            "model": args.model,
            "state_dict_md5": hashlib.md5(weights.read_bytes()).hexdigest() if weights.is_file() else None,
            "detect_overrides": args.set,
            "match_km": args.match_km,
            "n_plants_in_box": len(p),
            "n_hotspots": len(h),
            "n_within_match_km_of_a_plant": n_near,
            "n_gap_cells_le_3": n_beside,
            "hotspots": h[[*cols, "plant", "plant_km"]].round(6).to_dict(orient="records"),
            "maasvlakte_by_scene": maasvlakte,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )


if __name__ == "__main__":
    raise SystemExit(main())
