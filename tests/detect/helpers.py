"""Helpers for the detect tests: contract-format ingest grids built by hand, and small loaded models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import xarray as xr
from torch import nn

META = {
    "input_scale": 1.0e4,
    "emission_min_t_per_yr": 100.0,
    "emission_max_t_per_yr": 20100.0,
    "pixel_size_m": 5500.0,
    "tile_size": 64,
    "threshold": 0.2,
    "run_id": "0123456789abcdef",
    "name": "no2hotspots-cnn",
    "version": "3",
    "model": {"name": "test"},
}


class RampNet(nn.Module):
    """A real (parameter-free) torch module: relative emission = clip((scaled NO2 - 0.5) / 2.5, 0, 1) per pixel.

    Local, so the stitched map is known exactly: r >= 0.2 where no2 >= 1e-4 mol m-2 (with input_scale 1e4).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x[:, 0] - 0.5) / 2.5).clamp(0.0, 1.0)


class Recorder(nn.Module):
    """Wraps a net and keeps every input batch it is given."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.inputs: list[torch.Tensor] = []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return self.net(x)


def loaded_model(net: nn.Module, **meta):
    from no2hotspots.registry.load import LoadedModel

    return LoadedModel(net.eval(), {**META, **meta})


def make_grid(
    path: Path | None,
    *,
    ny: int = 70,
    nx: int = 90,
    nt: int = 2,
    res: float = 0.05,
    lat0: float = -24.5,
    lon0: float = 26.5,
    plumes=((30, 40, 3.0e-4),),
    gap: tuple[slice, slice] | None = None,
    seed: int = 0,
) -> xr.Dataset:
    """An ingest collection in the contract's layout (no2hotspots.contracts.grid) written to the folder ``path``
    (one overpass file per time step + grid.nc): smooth background, Gaussian blobs, an optional gap. Returns the
    fields stacked as a (time, lat, lon) Dataset for the tests' expectations."""
    import pandas as pd

    from no2hotspots.contracts import grid as contract

    rng = np.random.default_rng(seed)
    lat = np.round(lat0 + res * np.arange(ny), 10)
    lon = np.round(lon0 + res * np.arange(nx), 10)
    yy, xx = np.mgrid[0:ny, 0:nx]
    base = 2.0e-5 + 0.3e-5 * rng.standard_normal((nt, ny, nx))
    for i, j, amp in plumes:
        base += amp * np.exp(-((yy - i) ** 2 + (xx - j) ** 2) / (2 * 1.5**2))[None]
    coverage = np.ones((nt, ny, nx))
    if gap is not None:
        base[(slice(None), *gap)] = np.nan
        coverage[(slice(None), *gap)] = 0.0
    counted = (coverage > 0.75) & np.isfinite(base)
    with np.errstate(invalid="ignore"):
        no2_mean = np.where(counted.any(0), np.nansum(np.where(counted, base, 0), 0) / counted.sum(0), np.nan)
    times = np.array("2021-07-25T11:07:15", dtype="datetime64[ns]") + np.arange(nt) * np.timedelta64(1, "D")
    ds = xr.Dataset(
        {
            "no2": (("time", "lat", "lon"), base.astype(np.float32), {"units": "mol m-2"}),
            "no2_precision": (("time", "lat", "lon"), np.full((nt, ny, nx), 1e-5, np.float32), {"units": "mol m-2"}),
            "coverage": (("time", "lat", "lon"), coverage.astype(np.float32), {"units": "1"}),
            "obs_count": (("lat", "lon"), counted.sum(0).astype(np.int32)),
            "no2_mean": (("lat", "lon"), no2_mean.astype(np.float32), {"units": "mol m-2"}),
        },
        coords={"time": times, "lat": lat, "lon": lon},
        attrs={"resolution_deg": res},
    )
    if path is not None:
        rows = []
        for t in range(nt):
            key = f"granule_{t:03d}"
            contract.write_overpass(
                contract.overpass_path(path, key),
                lat=lat,
                lon=lon,
                res=res,
                no2=base[t],
                no2_precision=ds["no2_precision"].values[t],
                coverage=coverage[t],
                time=times[t],
                source_file=f"{key}.nc",
            )
            rows.append(
                {"key": key, "time": times[t], "source_file": f"{key}.nc", "i0": 0, "j0": 0, "ny": ny, "nx": nx}
            )
        contract.write_grid(
            path,
            lat=lat,
            lon=lon,
            res=res,
            obs_count=ds["obs_count"].values,
            no2_mean=no2_mean,
            index=pd.DataFrame(rows),
            attrs={"collection": Path(path).name, "coverage_min": 0.75},
        )
    return ds


def field_settings(resample: str = "none", background_max_mol_m2: float = 0.0) -> dict:
    """:func:`no2hotspots.detect.field.detect_field` settings for hand-made fields: blend tiling, stride 32, the
    stage's hotspot rules, the given resampling and background shift (0 = off)."""
    return {
        "tiling": "blend",
        "context": {"core": 128, "margin": 48},
        "stride": 32,
        "batch_size": 16,
        "window_floor": 0.1,
        "coverage_min": 0.0,
        "mask_invalid": True,
        "threshold": 0.2,
        "min_cells": 1,
        "edge_cells": 0,
        "min_gap_cells_shifted": 0,
        "gap_shift_min_mol_m2": 0.0,
        "peaks": {"prominence": 0.2, "min_separation_px": 2},
        "background_max_mol_m2": background_max_mol_m2,
        "background_sigma_km": 50.0,
        "background_mask_z": 0.0,
        "resample": resample,
        "device": "cpu",
    }
