"""benchmarks/real_l3_nl.py's plant list and matching on the real JRC database (../shared/realdata)."""

from __future__ import annotations

import pandas as pd
import pytest


def test_jrc_plants_in_the_scenes_box_and_the_nearest_one(benchmark_script, shared_dir):
    mod = benchmark_script("real_l3_nl")
    p = mod.plants(shared_dir / "realdata" / "jrc_power_plants")
    lat0, lat1, lon0, lon1 = mod.BOX
    assert p["lat"].between(lat0, lat1).all() and p["lon"].between(lon0, lon1).all() and (p["co2_t_per_yr"] > 0).all()
    maas = p[p["name"] == "Maasvlakte"]
    assert len(maas) == 1 and maas["co2_t_per_yr"].iloc[0] > 1e6  # a coal plant: Mt of CO2 a year, units summed
    # a hotspot on the Maasvlakte plant and one 0.2 deg east of it (13.7 km from it at 52 N; the Rijnmond plant is
    # nearer)
    h = pd.DataFrame({"peak_lat": [mod.MAASVLAKTE[0]] * 2, "peak_lon": [mod.MAASVLAKTE[1], mod.MAASVLAKTE[1] + 0.2]})
    got = mod.nearest_plants(h, p)
    assert got["plant"].iloc[0] == "Maasvlakte" and got["plant_km"].iloc[0] == pytest.approx(0.0, abs=0.01)
    assert got["plant"].iloc[1] == "Rijmond" and got["plant_km"].iloc[1] == pytest.approx(7.9, abs=0.1)
