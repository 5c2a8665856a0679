"""One shard of simulated scenes as a CF-attributed xarray Dataset (its file: no2hotspots.contracts.shards).

Beyond the contract's variables, a shard records per scene and per source what a scorer needs to report results
by kind of difficulty (docs/simulate.md): transport model, layout (random / CoCO2 cluster / pair), nearest
neighbour, cloud-edge distance, instrument pixel width, and the unmarked area sources on their own dimension
``distractor``."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .physics import STABILITY_CLASSES
from .scenes import LAYOUTS, TRANSPORTS, SceneParams
from .settings import Settings


def global_attrs(st: Settings, emission_min: float, emission_max: float) -> dict:
    return {
        "Conventions": "CF-1.10",
        "title": "no2hotspots simulated NO2 column scenes (Gaussian column plumes and OSSE puffs)",
        "emission_min_t_per_yr": float(emission_min),
        "emission_max_t_per_yr": float(emission_max),
        "emission_normalisation": st.normalise_from,
        "input_scale": float(st.input_scale),
        "pixel_size_m": float(st.pixel_size_m),
        "footprint_px": int(st.footprint_px),
        "seed": int(st.seed),
    }


def make_dataset(p: SceneParams, out: dict, scene_id: np.ndarray, attrs: dict) -> xr.Dataset:
    n = out["no2"].shape[1]
    a = attrs["pixel_size_m"]
    f32 = np.float32
    sc, px, src = ("scene",), ("scene", "y", "x"), ("scene", "source")
    ds = xr.Dataset(
        {
            "no2": (
                px,
                out["no2"],
                {
                    "units": "mol m-2",
                    "long_name": "simulated tropospheric NO2 vertical column",
                    "standard_name": "troposphere_mole_content_of_nitrogen_dioxide",
                },
            ),
            "valid": (
                px,
                out["valid"],
                {
                    "long_name": "observed pixel (0 = cloud gap)",
                    "flag_values": np.array([0, 1], np.uint8),
                    "flag_meanings": "cloud_gap observed",
                },
            ),
            "emission": (
                px,
                out["emission"],
                {"units": "1", "long_name": "relative emission (target) over source footprints"},
            ),
            "scene_id": (sc, scene_id.astype(np.int64), {"long_name": "scene identifier, unique over all splits"}),
            "wind_speed": (sc, p.wind_speed.astype(f32), {"units": "m s-1", "standard_name": "wind_speed"}),
            "wind_from_direction": (
                sc,
                p.wind_from_direction.astype(f32),
                {"units": "degree", "standard_name": "wind_from_direction"},
            ),
            "stability_class": (
                sc,
                p.stability_class.astype(np.int8),
                {
                    "long_name": "Pasquill-Gifford stability class",
                    "flag_values": np.arange(6, dtype=np.int8),
                    "flag_meanings": " ".join(STABILITY_CLASSES),
                },
            ),
            "no2_lifetime": (sc, p.no2_lifetime_h.astype(f32), {"units": "h", "long_name": "NO2 lifetime"}),
            "cloud_fraction": (
                sc,
                out["cloud_fraction"].astype(f32),
                {"units": "1", "long_name": "fraction of pixels in cloud gaps"},
            ),
            "noise_std": (
                sc,
                p.noise_std.astype(f32),
                {"units": "mol m-2", "long_name": "per-pixel random noise standard deviation"},
            ),
            "background_mean": (
                sc,
                p.background_mean.astype(f32),
                {"units": "mol m-2", "long_name": "mean of the smooth background"},
            ),
            "n_sources": (sc, p.n_sources.astype(np.int8), {"long_name": "number of point sources in the scene"}),
            "emission_class": (
                sc,
                out["emission_class"],
                {
                    "long_name": "emission class of the largest source",
                    "flag_values": np.arange(4, dtype=np.int8),
                    "flag_meanings": "empty low mid high",
                },
            ),
            "source_row": (
                src,
                p.source_row.astype(f32),
                {"units": "1", "long_name": "source position, fractional row index (north)"},
            ),
            "source_col": (
                src,
                p.source_col.astype(f32),
                {"units": "1", "long_name": "source position, fractional column index (east)"},
            ),
            "source_nox_rate": (
                src,
                p.source_nox_rate.astype(f32),
                {"units": "t yr-1", "long_name": "source NOx emission rate (as NO2 mass)"},
            ),
            "source_no2_rate": (
                src,
                p.source_no2_rate.astype(f32),
                {"units": "mol s-1", "long_name": "source NO2 emission rate"},
            ),
            "source_rel_emission": (
                src,
                p.source_rel_emission.astype(f32),
                {"units": "1", "long_name": "relative emission r = (Q - emission_min) / (emission_max - emission_min)"},
            ),
            **_extra_vars(p, out),
        },
        coords={
            "y": (
                "y",
                (np.arange(n) * a).astype(f32),
                {
                    "units": "m",
                    "standard_name": "projection_y_coordinate",
                    "long_name": "northward distance of pixel centre from row 0",
                },
            ),
            "x": (
                "x",
                (np.arange(n) * a).astype(f32),
                {
                    "units": "m",
                    "standard_name": "projection_x_coordinate",
                    "long_name": "eastward distance of pixel centre from column 0",
                },
            ),
        },
        attrs=attrs,
    )
    return ds


def _extra_vars(p: SceneParams, out: dict) -> dict:
    """Per-scene, per-source and per-distractor variables of the richer world (see the module doc)."""
    f32 = np.float32
    sc, src, dis = ("scene",), ("scene", "source"), ("scene", "distractor")
    n_codes = lambda names: {  # noqa: E731
        "flag_values": np.arange(len(names), dtype=np.int8),
        "flag_meanings": " ".join(names),
    }
    extra = {
        "transport": (sc, p.transport.astype(np.int8), {"long_name": "plume transport model", **n_codes(TRANSPORTS)}),
        "layout": (sc, p.layout.astype(np.int8), {"long_name": "source layout", **n_codes(LAYOUTS)}),
        "wind_direction_range": (
            sc,
            out["wind_direction_range"].astype(f32),
            {"units": "degree", "long_name": "range of the wind direction over the puff release period (0: steady)"},
        ),
        "pixel_width": (
            sc,
            out["pixel_width_km"].astype(f32),
            {"units": "km", "long_name": "across-track width of the instrument pixel at the scene centre"},
        ),
        "swath_position": (
            sc,
            p.swath_centre_km.astype(f32),
            {"units": "km", "long_name": "across-track distance of the scene centre from nadir (NaN: scene pixels)"},
        ),
        "n_distractors": (sc, p.n_distractors.astype(np.int8), {"long_name": "number of area sources (not marked)"}),
        "cloud_edge_source": (
            sc,
            p.cloud_edge_source.astype(np.int8),
            {"long_name": "index of the source the cloud-gap edge was drawn through (-1: none)"},
        ),
        "pair_separation": (
            sc,
            p.pair_separation_px.astype(f32),
            {"units": "1", "long_name": "distance between the two sources of a pairs scene [px] (NaN: not a pair)"},
        ),
        "source_in_cluster": (
            src,
            p.source_in_cluster.astype(np.int8),
            {"long_name": "source placed from a real CoCO2 cluster window (1), randomly (0), no source (-1)"},
        ),
        "source_site": (
            src,
            p.source_site.astype(np.int32),
            {"long_name": "index of a cluster source's (merged) CoCO2 site in the population (-1: none)"},
        ),
        "source_nn_distance": (
            src,
            out["source_nn_distance_px"].astype(f32),
            {"units": "1", "long_name": "distance to the nearest other point source [px] (NaN: alone)"},
        ),
        "source_distractor_distance": (
            src,
            out["source_distractor_distance_px"].astype(f32),
            {"units": "1", "long_name": "distance to the nearest area source centre [px] (NaN: none)"},
        ),
        "source_cloud_edge_distance": (
            src,
            out["source_cloud_edge_px"].astype(f32),
            {
                "units": "1",
                "long_name": "signed distance to the nearest pixel centre of the other kind [px]: > 0 the source's "
                "pixel observed, < 0 under cloud (NaN: scene all clear or all cloud)",
            },
        ),
        "source_pixel_width": (
            src,
            out["source_pixel_width_km"].astype(f32),
            {"units": "km", "long_name": "across-track width of the instrument pixel at the source"},
        ),
        "distractor_row": (dis, p.distractor_row.astype(f32), {"units": "1", "long_name": "area source centre row"}),
        "distractor_col": (dis, p.distractor_col.astype(f32), {"units": "1", "long_name": "area source centre column"}),
        "distractor_nox_rate": (
            dis,
            p.distractor_nox_rate.astype(f32),
            {"units": "t yr-1", "long_name": "area source NOx emission rate (as NO2 mass), never marked"},
        ),
        "distractor_radius": (
            dis,
            p.distractor_radius_px.astype(f32),
            {"units": "1", "long_name": "Gaussian radius of the emitting area [px]"},
        ),
    }
    if "n_static_columns" in out:  # only with simulate.background.static on: default shards as before
        extra["n_static_columns"] = (
            sc,
            out["n_static_columns"].astype(np.int8),
            {"long_name": "number of static urban columns (not marked; simulate.background.static)"},
        )
    if np.any(p.no2_ramp[:, 0] > 0):  # only with simulate.no2_ramp on: default shards as before
        for i, (name, units, what) in enumerate(
            (("m", "1", "amplitude m"), ("r", "s", "time scale r"), ("f0", "1", "far-field NOx/NO2 ratio f0"))
        ):
            extra[f"no2_ramp_{name}"] = (
                sc,
                p.no2_ramp[:, i].astype(f32),
                {"units": units, "long_name": f"near-source NO -> NO2 conversion, NOx/NO2 = m exp(-t/r) + f0: {what}"},
            )
    return extra
