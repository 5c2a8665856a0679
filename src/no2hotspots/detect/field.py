"""One gridded NO2 field through the model: valid cells, tiles, stitching, hotspots (no files read or written).

The computation of one overpass shared by the ``detect`` stage (:mod:`.overpass`, on ingest overpass files), the
served MLflow model (:mod:`no2hotspots.registry.pyfunc_model`, on a grid posted as JSON) and ``detect-files``, so
the three give the same numbers on the same grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from ..errors import UserError
from . import grid as gridmod
from .background import shift_background
from .hotspots import find_hotspots
from .tiles import context_stitch, model_predictor, receptive_radius, resolve_tiling, stitch


@dataclass(frozen=True)
class Number:
    """A numeric detect setting: its type, the range it must lie in (``ok``), what an error says when it does not
    (``problem``), and whether it changes the hotspots (``keys_units``: the detect stage's per-overpass units are
    keyed by it). The detect stage reads it from ``detect.<name>``, the served model from the request param
    ``<name>``: one table, so a new setting is checked and typed the same in both."""

    kind: type
    ok: Callable[[Any], bool]
    problem: str
    keys_units: bool = True

    def value(self, v: Any, *, whole_floats: bool = False) -> int | float | None:
        """``v`` as this setting's type if it is a finite number of that kind in range, else None. An int setting
        refuses ``2.5`` and ``True``; ``2.0`` only with ``whole_floats`` (a JSON request's numbers, not config)."""
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            return None
        if self.kind is int:
            if isinstance(v, float) and not (whole_floats and v == int(v)):
                return None
            v = int(v)
        else:
            v = float(v)
        return v if self.ok(v) else None


#: the numeric settings :func:`detect_field` reads, checked by the detect stage (``detect.run.settings``) and the
#: served model (``registry.serving.settings``) alike; the background ones key the units only where it is on
NUMBERS: dict[str, Number] = {
    "stride": Number(int, lambda v: 1 <= v <= 64, "must be an integer in 1..64 (the tile size: cells are skipped)"),
    "batch_size": Number(int, lambda v: 1 <= v <= 65536, "must be an integer in 1..65536", keys_units=False),
    "window_floor": Number(float, lambda v: 0 < v <= 1, "must be in (0, 1]"),
    "coverage_min": Number(float, lambda v: 0 <= v <= 1, "must be in [0, 1]"),
    "threshold": Number(float, lambda v: 0 < v <= 1, "must be in (0, 1]"),
    "min_cells": Number(int, lambda v: v >= 1, "must be an integer >= 1"),
    "edge_cells": Number(int, lambda v: 0 <= v <= 1024, "must be an integer in 0..1024"),
    "min_gap_cells_shifted": Number(int, lambda v: 0 <= v <= 1024, "must be an integer in 0..1024"),
    "gap_shift_min_mol_m2": Number(float, lambda v: 0 <= v < 1, "must be >= 0 mol m-2 (0: any shift)"),
    "background_max_mol_m2": Number(float, lambda v: 0 <= v < 1, "must be >= 0 mol m-2 (0 = off)", keys_units=False),
    "background_sigma_km": Number(float, lambda v: 0 < v <= 1000, "must be in (0, 1000] km", keys_units=False),
    "background_mask_z": Number(
        float, lambda v: 0 <= v <= 10, "must be in [0, 10] (0 = the plain mean)", keys_units=False
    ),
}

#: the settings :func:`detect_field` reads (the ``detect.*`` keys of the same names); a caller that leaves one out
#: gets a one-line error naming it (the detect stage and the served model build them separately)
FIELD_SETTINGS = (*NUMBERS, "tiling", "context", "mask_invalid", "peaks", "resample")


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
        gap_shift_min_mol_m2=float(s["gap_shift_min_mol_m2"]),
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
