"""One gridded NO2 field through the model: valid cells, tiles, stitching, hotspots (no files read or written).

The computation of one overpass shared by the ``detect`` stage (:mod:`.overpass`, on ingest overpass files), the
served MLflow model (:mod:`no2hotspots.registry.pyfunc_model`, on a grid posted as JSON) and ``detect-files``, so
the three give the same numbers on the same grid.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from ..errors import UserError
from . import grid as gridmod
from .background import shift_background
from .hotspots import find_hotspots
from .tiles import context_stitch, model_predictor, receptive_radius, resolve_tiling, stitch

#: the settings :func:`detect_field` reads (the ``detect.*`` keys of the same names); a caller that leaves one out
#: gets a one-line error naming it (the detect stage and the served model build them separately)
FIELD_SETTINGS = (
    "tiling",
    "context",
    "stride",
    "batch_size",
    "window_floor",
    "coverage_min",
    "mask_invalid",
    "threshold",
    "min_cells",
    "edge_cells",
    "min_gap_cells_shifted",
    "peaks",
    "resample",
    "background_max_mol_m2",
    "background_sigma_km",
    "background_mask_z",
)


def detect_field(ds: xr.Dataset, loaded, s: dict[str, Any], *, desc: str = "detect") -> dict[str, Any]:
    """Detect hotspots in one overpass ``ds`` (``no2 (lat, lon)`` [mol m-2], optional ``coverage``, ascending
    ``lat``/``lon``, optional ``lat_bnds``/``lon_bnds``) with ``loaded`` (a LoadedModel) and the settings ``s``
    (:data:`FIELD_SETTINGS`, plus ``device``). ``resample: model_pixel`` runs the model on a lattice of its training
    pixel and interpolates the map back to the grid (:mod:`.resample`); hotspots are always found on the grid.

    Returns ``valid`` (bool (lat, lon)), ``relative_emission`` (float32, NaN where masked), ``hotspot_id`` (int32,
    the region numbers 1..n by descending peak, 0 = none), ``hotspots`` (rows of
    :func:`no2hotspots.detect.hotspots.find_hotspots`), ``counts`` (tiles run / skipped) and
    ``background_shift_max`` [mol m-2]. With ``background_max_mol_m2`` > 0 the field's regional background above it
    is taken off first (:mod:`.background`): the hotspot rows carry what was taken off at their peak, and
    ``background_shift_max`` is the most taken off any valid cell (0 when nothing was).
    """
    missing = [k for k in FIELD_SETTINGS if k not in s]
    if missing:
        raise UserError(f"detect settings: missing {', '.join(missing)} (detect.* keys of those names)")
    meta = loaded.meta
    valid = gridmod.valid_mask(ds, float(s["coverage_min"]))
    no2 = np.where(valid, ds["no2"].values, np.nan).astype(np.float32)
    no2, shift = shift_background(
        no2,
        valid,
        gridmod.cell_size_m(ds),
        max_mol_m2=float(s["background_max_mol_m2"]),
        sigma_km=float(s["background_sigma_km"]),
        mask_z=float(s["background_mask_z"]),
    )
    if s["resample"] == "model_pixel":  # the model on its own pixel, the map back on the grid
        from .resample import model_pixels

        mp = model_pixels(ds["lat"].values, ds["lon"].values, float(meta["pixel_size_m"]))
        no2_m, valid_m = mp.to_model(no2, valid)
        rel_m, counts = _infer(no2_m.astype(np.float32), valid_m, loaded, s, desc)
        rel = mp.to_grid(rel_m).astype(np.float32)
    else:
        rel, counts = _infer(no2, valid, loaded, s, desc)
    if s["mask_invalid"]:
        rel = np.where(valid, rel, np.nan).astype(np.float32)
    rows, ids = find_hotspots(
        rel,
        ds["lat"].values,
        ds["lon"].values,
        cell_area_km2=gridmod.cell_area_km2(ds),
        emission_min=float(meta["emission_min_t_per_yr"]),
        emission_max=float(meta["emission_max_t_per_yr"]),
        threshold=float(s["threshold"]),
        min_cells=int(s["min_cells"]),
        prominence=float(s["peaks"]["prominence"]),
        min_separation_px=int(s["peaks"]["min_separation_px"]),
        edge_cells=int(s["edge_cells"]),
        min_gap_cells_shifted=int(s["min_gap_cells_shifted"]),
        valid=valid,
        background_shift=shift,
    )
    return {
        "valid": valid,
        "relative_emission": rel,
        "hotspot_id": ids,
        "hotspots": rows,
        "counts": counts,
        "background_shift_max": float(shift[valid].max(initial=0.0)),
    }


def _infer(no2: np.ndarray, valid: np.ndarray, loaded, s: dict[str, Any], desc: str) -> tuple[np.ndarray, dict]:
    """The model's relative-emission map of one field (tiles blended, or the fully convolutional pass) and the
    tile counts."""
    meta = loaded.meta
    predict = model_predictor(loaded.net, float(meta["input_scale"]), device=str(s.get("device", "cpu")))
    if resolve_tiling(s.get("tiling", "blend"), loaded.net) == "context":
        net = loaded.net
        if not getattr(net, "fully_convolutional", False):
            raise UserError(
                f"detect.tiling: context needs a fully convolutional model (ShuffleHead); this one's head is "
                f"{type(getattr(net, 'head', net)).__name__}: use tiling=blend"
            )
        c, align = s["context"], int(net.alignment)
        for k in ("core", "margin"):
            if int(c[k]) % align:
                raise UserError(f"detect.context.{k}: must be a multiple of the model's alignment {align} (got {c[k]})")
        radius = receptive_radius(net)
        if int(c["margin"]) < radius:
            raise UserError(
                f"detect.context.margin: {c['margin']} cells is less than the model's receptive radius {radius}: "
                f"the map would depend on where the field is cut"
            )
        rel, counts = context_stitch(
            no2,
            valid,
            predict,
            core=int(c["core"]),
            margin=int(c["margin"]),
            alignment=align,
            batch_size=max(1, int(s["batch_size"]) // 4),
            desc=desc,
        )
    else:
        rel, counts = stitch(
            no2,
            valid,
            predict,
            tile=int(meta.get("tile_size", 64)),
            stride=int(s["stride"]),
            batch_size=int(s["batch_size"]),
            window_floor=float(s["window_floor"]),
            desc=desc,
        )
    return rel, counts
