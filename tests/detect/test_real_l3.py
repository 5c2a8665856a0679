"""Real TROPOMI L3 scenes (HARP, Netherlands, Dec 2021) through ingest gridding, tiling and detection.

A transparent per-pixel model (RampNet: r >= 0.2 where NO2 >= 1e-4 mol m-2) keeps the expectation checkable: the
known Maasvlakte power-plant signal (51.944 N, 4.067 E; 3.1e-4 mol m-2 in the 18 Dec 11:27 scene) must come out
as a hotspot at the right place, which exercises the grid orientation, coordinates and outputs on real files.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from no2hotspots.detect.run import detect_collection, settings

from .helpers import RampNet, loaded_model

MAASVLAKTE = (51.944, 4.067)


@pytest.fixture(scope="module")
def harp_grid(shared_dir, tmp_path_factory):
    from no2hotspots.config import compose
    from no2hotspots.ingest.run import ingest_collection

    cfg = compose()
    ds = ingest_collection(
        "harp", str(shared_dir / "realdata" / "tropomi_l3_harp_nl" / "S5P_*.nc"), None, cfg.ingest, progress=False
    )
    path = tmp_path_factory.mktemp("harp") / "harp.nc"
    ds.to_netcdf(path)
    return path


def test_real_l3_scenes_find_the_maasvlakte_plant(harp_grid, detect_cfg, tmp_path):
    out = tmp_path / "detect" / "harp"
    summary = detect_collection(harp_grid, out, loaded_model(RampNet()), settings(detect_cfg), collection="harp")
    assert summary["n_time"] == 3 and summary["tiles_run"] >= 3
    df = pd.read_csv(out / "hotspots.csv")
    day = df[df.time.str.startswith("2021-12-18T11")]
    assert len(day)
    d = np.hypot(day.peak_lat - MAASVLAKTE[0], (day.peak_lon - MAASVLAKTE[1]) * np.cos(np.deg2rad(MAASVLAKTE[0])))
    best = day.iloc[int(np.argmin(d))]
    assert d.min() < 0.1, f"nearest hotspot {best.peak_lat:.3f}N {best.peak_lon:.3f}E"
    assert best.peak_rel_emission > 0.5 and best.obs_count >= 1
    gj = json.loads((out / "hotspots.geojson").read_text())
    assert len(gj["features"]) == len(df) == summary["n_hotspots"]
    assert (out / "map.png").stat().st_size > 10_000
