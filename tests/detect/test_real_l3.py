"""Real TROPOMI L3 scenes (HARP, Netherlands, Dec 2021) through ingest gridding, tiling and detection.

A transparent per-pixel model keeps the expectation checkable: the known Maasvlakte power-plant signal (51.944 N,
4.067 E; 3.1e-4 mol m-2 in the 18 Dec 11:27 scene) must come out as a hotspot whose region covers the plant, which
exercises the grid orientation, coordinates and outputs on real files. The model is strictly increasing (no
plateau at r = 1) and the check is region membership, not which cell of a 0.1 deg L3 cell (four equal 0.05 deg
cells) holds the peak: ties there break by float rounding, which differs between CPUs.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from torch import nn

from no2hotspots.detect.run import detect_collection, settings

from .helpers import loaded_model

MAASVLAKTE = (51.944, 4.067)


class SoftRamp(nn.Module):
    """r = 1 - exp(-max(x - 0.5, 0) / 2.5) per pixel (x = NO2 x 1e4): strictly increasing above 0.5, < 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.0 - torch.exp(-(x[:, 0] - 0.5).clamp(min=0.0) / 2.5)


@pytest.fixture(scope="module")
def harp_collection(shared_dir, tmp_path_factory):
    from no2hotspots.config import compose
    from no2hotspots.ingest.run import run

    root = tmp_path_factory.mktemp("harp")
    pattern = str(shared_dir / "realdata" / "tropomi_l3_harp_nl" / "S5P_*.nc")
    cfg = compose(
        [
            f"paths.outputs={root}",
            "ingest.collection=harp",
            f"+ingest.collections.harp.inputs={pattern}",
            "+ingest.collections.harp.bbox=null",
            "parallel.scheduler=sync",
        ]
    )
    run(cfg)
    return root / "ingest" / "harp"


@pytest.mark.parametrize(("resample", "shift"), [("none", False), ("model_pixel", False), ("model_pixel", True)])
def test_real_l3_scenes_find_the_maasvlakte_plant(harp_collection, detect_cfg, tmp_path, resample, shift):
    """Also with the model on its own 5.5 km pixel (``detect.resample=model_pixel``: at 52 N a lattice of 0.049 x
    0.080 deg over the 0.05 deg grid, cloud gaps of the real scenes included). The ramp reads absolute columns, so
    the geometry runs without the regional-background shift; with it (the default: these scenes lie above the
    training range), the plant's region stays a hotspot, lower by the part of Rotterdam's background taken off."""
    s = {**settings(detect_cfg), "resample": resample}
    if not shift:
        s["background_max_mol_m2"] = 0.0
    assert (s["background_max_mol_m2"] > 0) == shift
    summary = detect_collection(detect_cfg, "harp", harp_collection, loaded_model(SoftRamp()), s, "test-uri")
    out = tmp_path / "outputs" / "detect" / "harp"
    assert summary["n_overpasses"] == 3 and summary["tiles_run"] >= 3
    assert json.loads((out / "detect.json").read_text())["params"].get("resample", "none") == resample
    df = pd.read_csv(out / "hotspots.csv")
    day = df[df.time.str.startswith("2021-12-18T11")]
    assert len(day) and day.overpass.nunique() == 1
    em = xr.open_dataset(out / "overpasses" / f"{day.overpass.iloc[0]}.nc")
    i = int(np.abs(em["lat"].values - MAASVLAKTE[0]).argmin())
    j = int(np.abs(em["lon"].values - MAASVLAKTE[1]).argmin())
    region = int(em["hotspot_id"].values[i, j])
    assert region > 0, "the plant's cell is in no hotspot"
    hot = day[day.overpass_hotspot == region].iloc[0]
    assert hot.peak_rel_emission > (0.3 if shift else 0.5) and hot.obs_count >= 1
    d = np.hypot(hot.peak_lat - MAASVLAKTE[0], (hot.peak_lon - MAASVLAKTE[1]) * np.cos(np.deg2rad(MAASVLAKTE[0])))
    assert d < 0.5  # the region's peak is in the plant's neighbourhood (the Rotterdam port area)
    # what was taken off is on record: Rotterdam's regional background (~1-3e-4) above 5e-5, or nothing
    if shift:
        assert 2.0e-5 < hot.background_shift_mol_m2 <= em.attrs["background_shift_max_mol_m2"] < 5.0e-4
    else:
        assert hot.background_shift_mol_m2 == 0.0 and em.attrs["background_shift_max_mol_m2"] == 0.0
    em.close()
    gj = json.loads((out / "hotspots.geojson").read_text())
    assert len(gj["features"]) == len(df) == summary["n_hotspots"]
    assert (out / "map.png").stat().st_size > 10_000
