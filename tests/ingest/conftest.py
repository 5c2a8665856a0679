"""Fixtures for the ingest tests: official-layout S5P L2 files built from the real Matimba crop."""

from __future__ import annotations

import datetime as dt

import netCDF4
import numpy as np
import pytest
from omegaconf import OmegaConf

from no2hotspots.config import compose

FILL = np.float32(9.96921e36)


def write_s5p_l2(
    path,
    crop,
    *,
    product_type="L2__NO2___",
    start=dt.datetime(2021, 7, 25, 11, 7, 15),
    nan_corners=None,
    drop_no2=False,
    qa_all=None,
):
    """Write the Matimba crop in the official S5P L2 NO2 layout (group PRODUCT, qa_value packed uint8, fills).

    Pixels the crop's QA filter removed (NaN) get a plausible column and qa 0.40, so the reader has to filter them.
    ``nan_corners``: "some" or "all" to blank corner coordinates; ``qa_all``: force every qa value.
    """
    src = netCDF4.Dataset(crop)
    src.set_auto_mask(False)
    no2 = np.array(src["NO2"][:], np.float64)
    std = np.array(src["NO2_std"][:], np.float64)
    lat, lon = np.array(src["lat"][:]), np.array(src["lon"][:])
    latc, lonc = np.array(src["latc"][:]), np.array(src["lonc"][:])
    src.close()
    nscan, ngp = no2.shape
    bad = ~np.isfinite(no2)
    rng = np.random.default_rng(0)
    qa = np.where(bad, 40, rng.integers(75, 101, no2.shape)).astype(np.uint8)
    if qa_all is not None:
        qa[:] = np.uint8(round(qa_all * 100))
    no2 = np.where(bad, np.nanmedian(no2), no2)
    std = np.where(np.isfinite(std), std, 1e-5)
    if nan_corners == "some":
        latc[:5] = np.nan
    elif nan_corners == "all":
        latc[:] = np.nan
    with netCDF4.Dataset(path, "w") as nc:
        nc.title = "TROPOMI/S5P NO2 1-Orbit L2 Swath 5.5x3.5km"
        nc.product_type = product_type
        nc.time_coverage_start = start.strftime("%Y-%m-%dT%H:%M:%SZ")
        nc.time_coverage_end = (start + dt.timedelta(minutes=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
        p = nc.createGroup("PRODUCT")
        for d, n in (("time", 1), ("scanline", nscan), ("ground_pixel", ngp), ("corner", 4)):
            p.createDimension(d, n)
        day = dt.datetime(start.year, start.month, start.day)
        t = p.createVariable("time", "i4", ("time",))
        t.units = "seconds since 2010-01-01 00:00:00"
        t[:] = int((day - dt.datetime(2010, 1, 1)).total_seconds())
        dtv = p.createVariable("delta_time", "i4", ("time", "scanline"))
        dtv.units = "milliseconds since " + day.strftime("%Y-%m-%d 00:00:00")
        dtv[0] = int((start - day).total_seconds() * 1000) + np.arange(nscan) * 840
        dims3 = ("time", "scanline", "ground_pixel")
        main = "carbonmonoxide_total_column" if product_type == "L2__CO____" else "nitrogendioxide_tropospheric_column"
        if not drop_no2:
            v = p.createVariable(main, "f4", dims3, fill_value=FILL)
            v.units = "mol m-2"
            v[0] = no2
            if main.startswith("nitrogen"):
                v = p.createVariable(main + "_precision", "f4", dims3, fill_value=FILL)
                v.units = "mol m-2"
                v[0] = std
        q = p.createVariable("qa_value", "u1", dims3, fill_value=np.uint8(255))
        q.scale_factor = np.float32(0.01)
        q.add_offset = np.float32(0.0)
        q.set_auto_scale(False)
        q[0] = qa
        for name, arr in (("latitude", lat), ("longitude", lon)):
            v = p.createVariable(name, "f4", dims3, fill_value=FILL)
            v[0] = arr
        g = p.createGroup("SUPPORT_DATA").createGroup("GEOLOCATIONS")
        for name, arr in (("latitude_bounds", latc), ("longitude_bounds", lonc)):
            v = g.createVariable(name, "f4", dims3 + ("corner",), fill_value=FILL)
            v[0] = np.where(np.isfinite(arr), arr, FILL)
    return path


@pytest.fixture()
def ingest_cfg(tmp_path):
    """A composed config with outputs under tmp_path; returns a function name, inputs, bbox -> cfg."""

    def make(inputs, bbox=None, **over):
        extra = [f"ingest.{k}={v}" for k, v in over.items()]
        cfg = compose(
            [f"paths.outputs={tmp_path}/outputs", f"paths.data={tmp_path}/data", "ingest.collection=test"] + extra
        )
        cfg.ingest.collections = OmegaConf.create({"test": {"inputs": str(inputs), "bbox": bbox}})
        return cfg

    return make


def stacked(folder):
    """A whole ingest collection (no2hotspots.contracts.grid) as one (time, lat, lon) Dataset, for the tests'
    expectations only: the product itself never holds a period in memory."""
    import xarray as xr

    from no2hotspots.contracts import grid as contract

    grid = contract.open_grid(folder)
    index = contract.overpass_index(grid)
    shape = (len(index), grid.sizes["lat"], grid.sizes["lon"])
    out = {v: np.full(shape, np.nan, np.float32) for v in contract.OVERPASS_VARS}
    for t, r in enumerate(index.itertuples()):
        ds = contract.open_overpass(contract.overpass_path(folder, r.key))
        for v in out:
            out[v][t, r.i0 : r.i0 + r.ny, r.j0 : r.j0 + r.nx] = ds[v].values
    data = {v: (("time", "lat", "lon"), a) for v, a in out.items()}
    data.update(obs_count=grid["obs_count"], no2_mean=grid["no2_mean"])
    return xr.Dataset(
        data,
        coords={"time": index["time"].to_numpy(), "lat": grid["lat"], "lon": grid["lon"]},
        attrs={**grid.attrs, "source_files": " ".join(index["source_file"])},
    )
