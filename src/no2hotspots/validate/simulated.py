"""Summaries of the simulated dataset (docs/contracts.md, "Simulated dataset") for its data-quality suite.

:func:`scene_table` streams the shards of every split of the manifest (``train``, ``val``, ``test`` and, when
simulated, ``pairs`` and ``paper_world``) one at a time and returns one row per scene (NaN/inf among valid pixels,
NO2 range, emission range, emission-map/source-list consistency - the target must be exactly the footprints of the
listed point sources, so area sources are never marked -, source separations, class, wind, ...).
:func:`dataset_table` reduces it, with the manifest, to one row of dataset-level figures (split sizes against the
configured fractions, class balance, the shares of puff / cluster / distractor scenes against the configured ones,
the pairs split against its configured separations, the paper_world split holding only the paper's kind of scene).
:func:`validate_simulated` runs the configured expectations on both.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..contracts.shards import REQUIRED_VARS, SPLITS, read_manifest, shard_paths
from ..errors import ConfigError, InputFileError

#: the split of source pairs (simulate.pairs), checked against its configured separations, not the split fractions
PAIRS_SPLIT = "pairs"
#: the held-out split of the paper's world (simulate.paper_world): steady Gaussian plumes of randomly placed point
#: sources without area sources; like pairs, outside the split fractions and the training world's shares
PAPER_WORLD_SPLIT = "paper_world"
EXTRA_SPLITS = (PAIRS_SPLIT, PAPER_WORLD_SPLIT)

log = logging.getLogger(__name__)

#: per-scene variables copied into the summary when present
SCENE_VARS = (
    "wind_speed",
    "wind_from_direction",
    "stability_class",
    "no2_lifetime",
    "cloud_fraction",
    "noise_std",
    "background_mean",
)
#: per-scene variables of the richer world (docs/simulate.md), summarised when present
OPTIONAL_VARS = ("transport", "layout", "distractor_row", "distractor_col")
CLASS_NAMES = ("empty", "low", "mid", "high")


def list_shards(root: str | os.PathLike, splits=None) -> dict[str, list[Path]]:
    """Shard files per split, as the manifest lists them (no2hotspots.contracts.shards); all splits by default."""
    manifest = read_manifest(root)
    names = list(manifest["splits"]) if splits is None else [s for s in splits if s in manifest["splits"]]
    order = {s: i for i, s in enumerate((*SPLITS, *EXTRA_SPLITS))}
    return {s: shard_paths(root, s) for s in sorted(names, key=lambda s: (order.get(s, 99), s))}


def footprint_target(shape, rows, cols, rel, k: int) -> np.ndarray:
    """The target the listed point sources define: r over each source's k x k block (the larger r where blocks
    overlap), the block starting at ``floor(pos - (k - 1) / 2 + 0.5)`` (docs/contracts.md)."""
    n, ny, nx = shape
    out = np.zeros(shape, np.float32)
    live = np.isfinite(rows) & np.isfinite(cols) & np.isfinite(rel)
    scene, src = np.nonzero(live)
    r0 = np.floor(rows[scene, src] - (k - 1) / 2 + 0.5).astype(np.int64)
    c0 = np.floor(cols[scene, src] - (k - 1) / 2 + 0.5).astype(np.int64)
    val = rel[scene, src].astype(np.float32)
    for dr in range(k):
        for dc in range(k):
            rr, cc = r0 + dr, c0 + dc
            ok = (rr >= 0) & (rr < ny) & (cc >= 0) & (cc < nx)
            np.maximum.at(out, (scene[ok], rr[ok], cc[ok]), val[ok])
    return out


def min_separation(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Per scene the smallest distance between two listed sources [px] (NaN with fewer than two)."""
    d = np.hypot(rows[:, :, None] - rows[:, None, :], cols[:, :, None] - cols[:, None, :])
    m = rows.shape[1]
    d[:, np.arange(m), np.arange(m)] = np.inf
    d = np.where(np.isnan(d), np.inf, d)
    best = d.min(axis=(1, 2)) if m else np.full(rows.shape[0], np.inf)
    return np.where(np.isfinite(best), best, np.nan)


def emission_class_of(rmax: np.ndarray, n_sources: np.ndarray, edges=(0.33, 0.66)) -> np.ndarray:
    """Class from the scene's largest relative emission: 0 empty (no source and no emission), 1 low, 2 mid, 3 high."""
    lo, hi = edges
    rmax = np.nan_to_num(np.asarray(rmax, dtype=float), nan=0.0)
    cls = np.where(rmax < lo, 1, np.where(rmax > hi, 3, 2))
    empty = (np.asarray(n_sources) == 0) & (rmax <= 0)
    return np.where(empty, 0, cls).astype(np.int8)


def footprint_checks(
    emission: np.ndarray, rows: np.ndarray, cols: np.ndarray, rel: np.ndarray, half: float, rel_min: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per scene of a stack: (sources whose footprint holds no emission > 0, emission blobs with no source nearby).

    ``emission`` is (scene, y, x); ``rows``/``cols``/``rel`` are (scene, source), NaN-padded. A source "covers" the
    pixels whose centres lie within ``half`` pixels of it in both directions; a blob is a 4-connected group of
    pixels with emission > 0 within one scene. Sources with a relative emission <= ``rel_min`` (e.g. the catalogue
    minimum, r = 0) are not expected to show.
    """
    from scipy import ndimage

    n, ny, nx = emission.shape
    positive = emission > 0
    yy = np.arange(ny, dtype=float)[None, :, None]
    xx = np.arange(nx, dtype=float)[None, None, :]
    covered = np.zeros_like(positive)
    without = np.zeros(n, dtype=np.int64)
    with np.errstate(invalid="ignore"):
        for k in range(rows.shape[1]):
            r, c, q = rows[:, k], cols[:, k], rel[:, k]
            listed = np.isfinite(r) & np.isfinite(c)
            win = (np.abs(yy - r[:, None, None]) <= half) & (np.abs(xx - c[:, None, None]) <= half)
            win &= listed[:, None, None]
            covered |= win
            expected = listed & ~(q <= rel_min)
            without += (expected & ~(positive & win).any(axis=(1, 2))).astype(np.int64)
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)  # connect within a scene, never across scenes
    labels, n_labels = ndimage.label(positive, structure=structure)
    blobs = np.zeros(n, dtype=np.int64)
    if n_labels:
        scene_of = np.zeros(n_labels + 1, dtype=np.int64)
        idx = np.nonzero(labels)
        scene_of[labels[idx]] = idx[0]
        hit = np.zeros(n_labels + 1, dtype=bool)
        hit[labels[covered & positive]] = True
        unhit = np.nonzero(~hit[1:])[0] + 1
        blobs = np.bincount(scene_of[unhit], minlength=n).astype(np.int64)
    return without, blobs


def separation_violations(sep: np.ndarray, n_listed: np.ndarray, split: str, cfg) -> np.ndarray:
    """Per scene: its closest sources (``sep``) break its split's rule. ``pairs``: two sources at one of
    ``pair_separations_px``; ``paper_world``: >= ``paper_world_min_separation_px`` (optional key; else as train);
    train/val/test: >= ``min_separation_px``."""
    tol = float(cfg.separation_tolerance_px)
    if split == PAIRS_SPLIT:
        configured = np.asarray(cfg.pair_separations_px, float)
        d = np.where(np.isfinite(sep), sep, -1e9)
        nearest = np.abs(d[:, None] - configured[None, :]).min(axis=1)
        return (n_listed != 2) | (nearest > tol)
    floor = cfg.get("paper_world_min_separation_px") if split == PAPER_WORLD_SPLIT else None
    floor = float(cfg.min_separation_px if floor is None else floor)
    return np.isfinite(sep) & (sep < floor - tol)


def _read_shard(path: Path, split: str) -> dict:
    """The arrays of one shard the per-scene checks use (variables and attributes the contract requires)."""
    import xarray as xr

    try:
        ds = xr.open_dataset(path, engine="netcdf4", mask_and_scale=True, decode_times=False)
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad input file
        raise InputFileError(path, f"cannot be read as NetCDF ({type(e).__name__}: {e})") from e
    with ds:
        missing = [v for v in REQUIRED_VARS if v not in ds.variables]
        if missing:
            raise InputFileError(path, f"missing variable(s) {', '.join(missing)} (see docs/contracts.md)")
        if "footprint_px" not in ds.attrs:
            raise InputFileError(path, "missing global attribute footprint_px (see docs/contracts.md)")
        no2 = ds["no2"].values.astype(np.float64)
        n = no2.shape[0]
        return {
            "k": float(ds.attrs["footprint_px"]),
            "no2": no2,
            "valid": ds["valid"].values,
            "emission": ds["emission"].values.astype(np.float64),
            "srow": ds["source_row"].values.astype(float).reshape(n, -1),
            "scol": ds["source_col"].values.astype(float).reshape(n, -1),
            "srel": ds["source_rel_emission"].values.astype(float).reshape(n, -1),
            "extra": {v: ds[v].values for v in SCENE_VARS if v in ds.variables},
            "opt": {v: ds[v].values for v in OPTIONAL_VARS if v in ds.variables},
            "scene_id": ds["scene_id"].values.astype(np.int64),
            "n_sources": ds["n_sources"].values.astype(np.int64),
            "emission_class": ds["emission_class"].values.astype(np.int64),
            "attr_split": ds.attrs.get("split", split),
        }


def _ranges(a: dict, isvalid: np.ndarray, finite: np.ndarray) -> dict:
    """Per scene: NO2 range over valid finite pixels, emission range, range of the listed sources' r."""
    axes = (1, 2)
    srow, srel, emission = a["srow"], a["srel"], a["emission"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices (fully clouded scenes)
        good = np.where(isvalid & finite, a["no2"], np.nan)
        em_fin = np.where(np.isfinite(emission), emission, np.nan)
        return {
            "no2_min": np.nanmin(good, axis=axes),
            "no2_max": np.nanmax(good, axis=axes),
            "emission_min": np.nanmin(em_fin, axis=axes),
            "emission_max": np.nanmax(em_fin, axis=axes),
            "source_rel_emission_min": np.nanmin(np.where(np.isfinite(srow), srel, np.nan), axis=1),
            "source_rel_emission_max": np.nanmax(np.where(np.isfinite(srow), srel, np.nan), axis=1),
        }


def _distractors(opt: dict, emission: np.ndarray, target: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per scene: the number of area sources, and how many of them the target marks."""
    marked = np.zeros(n, np.int64)
    n_dis = np.zeros(n, np.int64)
    if "distractor_row" in opt:
        drow = opt["distractor_row"].astype(float).reshape(n, -1)
        dcol = opt["distractor_col"].astype(float).reshape(n, -1)
        live = np.isfinite(drow) & np.isfinite(dcol)
        n_dis = live.sum(axis=1)
        ri = np.clip(np.floor(np.nan_to_num(drow) + 0.5).astype(np.int64), 0, emission.shape[1] - 1)
        ci = np.clip(np.floor(np.nan_to_num(dcol) + 0.5).astype(np.int64), 0, emission.shape[2] - 1)
        sc = np.repeat(np.arange(n)[:, None], drow.shape[1], axis=1)
        # an area source counts as marked when the target at its centre holds more than the point sources explain
        marked = (live & (emission[sc, ri, ci] > target[sc, ri, ci] + 1e-6)).sum(axis=1)
    return n_dis, marked


def _shard_rows(path: Path, split: str, cfg) -> pd.DataFrame:
    a = _read_shard(path, split)
    no2, valid, emission, srow, scol, srel = (a[v] for v in ("no2", "valid", "emission", "srow", "scol", "srel"))
    n, k = no2.shape[0], a["k"]
    isvalid = valid == 1
    finite = np.isfinite(no2)
    axes = (1, 2)
    ranges = _ranges(a, isvalid, finite)
    n_listed = np.isfinite(srow).sum(axis=1)
    half = k / 2.0 + float(cfg.source_match_px)
    rel_min = float(cfg.source_rel_emission_visible_above)
    without, blobs = footprint_checks(emission, srow, scol, srel, half, rel_min)
    expected_class = emission_class_of(ranges["emission_max"], n_listed, tuple(cfg.class_edges))
    target = footprint_target(emission.shape, srow, scol, srel, int(round(k)))
    off = np.abs(np.nan_to_num(emission, nan=2.0) - target) > 1e-6
    sep = min_separation(srow, scol)
    sep_bad = separation_violations(sep, n_listed, split, cfg)
    n_dis, marked = _distractors(a["opt"], emission, target, n)
    df = pd.DataFrame(
        {
            "split": split,
            "shard": path.name,
            "scene_id": a["scene_id"],
            "split_attr_mismatch": int(a["attr_split"] != split),
            "n_valid": isvalid.sum(axis=axes),
            "n_valid_bad_values": ((valid != 0) & (valid != 1)).sum(axis=axes),
            "n_nonfinite_valid": (isvalid & ~finite).sum(axis=axes),
            "n_finite_invalid": (~isvalid & finite).sum(axis=axes),
            "no2_min": ranges["no2_min"],
            "no2_max": ranges["no2_max"],
            "n_nonfinite_emission": (~np.isfinite(emission)).sum(axis=axes),
            "emission_min": ranges["emission_min"],
            "emission_max": ranges["emission_max"],
            "n_emission_pixels": (emission > 0).sum(axis=axes),
            "n_sources": a["n_sources"],
            "n_sources_listed_mismatch": (a["n_sources"] != n_listed).astype(np.int64),
            "source_rel_emission_min": ranges["source_rel_emission_min"],
            "source_rel_emission_max": ranges["source_rel_emission_max"],
            "n_sources_without_emission": without,
            "n_emission_blobs_without_source": blobs,
            "emission_class": a["emission_class"],
            "emission_class_from_map": expected_class,
            "emission_class_mismatch": (a["emission_class"] != expected_class).astype(np.int64),
            "n_target_pixels_off_footprints": off.sum(axis=axes),
            "source_min_separation": sep,
            "separation_violation": sep_bad.astype(np.int64),
            "n_distractors": n_dis,
            "n_distractors_marked": marked,
        }
    )
    opt = a["opt"]
    for v in ("transport", "layout"):
        df[v] = np.asarray(opt[v]).astype(float) if v in opt else np.nan
    for v, values in a["extra"].items():
        df[v] = np.asarray(values).astype(float)
    df.index = [f"{split}:{s}" for s in a["scene_id"]]
    return df


def scene_table(root: str | os.PathLike, cfg, *, splits=None) -> pd.DataFrame:
    """One row per scene over all shards (read one shard at a time); index ``split:scene_id``."""
    from tqdm import tqdm

    from ..logs import progress_disabled

    shards = list_shards(root, splits)
    items = [(s, p) for s in shards for p in shards[s]]
    parts = []
    for split, path in tqdm(items, desc="validate shards", unit="shard", disable=progress_disabled()):
        parts.append(_shard_rows(path, split, cfg))
    return pd.concat(parts) if parts else pd.DataFrame()


def _share_error(values: pd.Series, expected, hit) -> float:
    """|share of rows where ``hit(values)`` - expected|; 0 when the variable is absent (an older dataset)."""
    v = values.dropna()
    if not len(v) or expected is None:
        return 0.0
    return abs(float(hit(v).mean()) - float(expected))


def dataset_table(scenes: pd.DataFrame, manifest: Mapping, cfg) -> pd.DataFrame:
    """One row of dataset-level figures: split sizes and their deviation from the configured fractions, manifest
    agreement, the class balance among non-empty scenes (by the scene's largest relative emission), the shares of
    puff, cluster and distractor scenes against the configured ones (all over train/val/test), and the pairs
    split's size and separations against its configuration, and the paper_world split's size and kind of scene."""
    fractions = dict(cfg.split_fractions)
    world = scenes[~scenes["split"].isin(EXTRA_SPLITS)] if len(scenes) else scenes
    pairs = scenes[scenes["split"] == PAIRS_SPLIT] if len(scenes) else scenes
    paper = scenes[scenes["split"] == PAPER_WORLD_SPLIT] if len(scenes) else scenes
    total = max(len(world), 1)
    row: dict[str, float] = {"n_scenes": len(scenes)}
    counts = scenes["split"].value_counts() if len(scenes) else pd.Series(dtype=int)
    fsum = sum(float(f) for f in fractions.values())
    if not fsum > 0:
        raise ConfigError("validate.simulated.split_fractions", "must hold positive fractions per split")
    errors = []
    mism = 0
    msplits = (manifest or {}).get("splits", {})
    for split in sorted(set(fractions) | set(counts.index) | set(msplits)):
        n = int(counts.get(split, 0))
        row[f"n_{split}"] = n
        if split not in EXTRA_SPLITS:
            expected = float(fractions.get(split, 0.0)) / fsum
            err = abs(n / total - expected)
            row[f"split_fraction_error_{split}"] = err
            errors.append(err)
        m = msplits.get(split, {}).get("n_scenes")
        if (m is None and n > 0) or (m is not None and int(m) != n):
            mism += 1
    row["split_fraction_error_max"] = max(errors) if errors else 0.0
    row["n_manifest_mismatches"] = mism
    cls = world["emission_class_from_map"] if len(world) else pd.Series(dtype=int)
    nonempty = int((cls > 0).sum())
    row["n_nonempty"] = nonempty
    row["fraction_empty"] = float((cls == 0).sum()) / total
    for code, name in enumerate(CLASS_NAMES[1:], start=1):
        row[f"fraction_{name}"] = float((cls == code).sum()) / nonempty if nonempty else 0.0
    get = lambda key: cfg.get(key) if hasattr(cfg, "get") else None  # noqa: E731
    col = lambda df, c: df[c] if c in df else pd.Series(dtype=float)  # noqa: E731
    row["puff_share_error"] = _share_error(col(world, "transport"), get("puff_fraction"), lambda v: v == 1)
    row["cluster_share_error"] = _share_error(
        col(world[cls > 0], "layout") if len(world) else pd.Series(dtype=float),
        get("cluster_fraction"),
        lambda v: v == 1,
    )
    has_layout = len(world) and "layout" in world and world["layout"].notna().any()
    row["distractor_share_error"] = (
        _share_error(col(world, "n_distractors"), get("distractor_probability"), lambda v: v > 0) if has_layout else 0.0
    )
    per_sep = int(get("pairs_per_separation") or 0)
    seps = [float(v) for v in (get("pair_separations_px") or [])]
    row["pairs_count_error"] = abs(len(pairs) - per_sep * len(seps))
    missing = 0
    if per_sep:
        found = pairs["source_min_separation"].to_numpy() if len(pairs) else np.zeros(0)
        tol = float(get("separation_tolerance_px") or 1e-3)
        missing = sum(1 for sp in seps if not np.any(np.abs(found - sp) <= tol))
    row["pairs_separations_missing"] = missing
    n_paper = get("paper_world_scenes")
    row["paper_world_count_error"] = abs(len(paper) - int(n_paper)) if n_paper is not None else 0
    # the paper's kind of scene: steady Gaussian plumes (transport 0) of randomly placed sources (layout 0), no areas
    not_paper = np.zeros(len(paper), bool)
    for c, bad in (("transport", lambda v: v != 0), ("layout", lambda v: v != 0), ("n_distractors", lambda v: v > 0)):
        if c in paper:
            not_paper |= bad(paper[c].fillna(0).to_numpy())
    row["paper_world_not_paper_scenes"] = int(not_paper.sum())
    return pd.DataFrame([row], index=["dataset"])


def validate_simulated(
    root: str | os.PathLike,
    cfg_validate,
    report_path,
    *,
    raise_on_failure: bool = True,
    scene_csv: str | os.PathLike | None = None,
):
    """Summarise the dataset at ``root``, run ``cfg_validate.simulated`` expectations, write the report.

    Returns a :class:`~no2hotspots.validate.suite.SuiteResult`; raises ValidationFailed (report written first).
    """
    from ..atomic import write_csv
    from .suite import load_expectations, run_suite

    scfg = cfg_validate.simulated
    manifest = read_manifest(root)
    scenes = scene_table(root, scfg)
    dataset = dataset_table(scenes, manifest, scfg)
    if scene_csv is not None:
        write_csv(scenes, scene_csv, index=True, index_label="key")
    log.info("validating %d scenes from %s", len(scenes), root)
    extra = {"dataset": str(root), **{k: v for k, v in dataset.iloc[0].items()}}
    if scene_csv is not None:
        extra["scene_table"] = str(scene_csv)
    return run_suite(
        {"scenes": scenes, "dataset": dataset},
        load_expectations("simulated", scfg),
        name="simulated",
        report_path=report_path,
        config_key="validate.simulated.expectations",
        raise_on_failure=raise_on_failure,
        extra=extra,
    )
