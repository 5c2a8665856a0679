"""``no2hotspots detect-files``: hotspots in the user's own granules, in one command, into a folder the user names.

    python -m no2hotspots detect-files PATH... [--out DIR] [--bbox W S E N] [--start T] [--end T] [--model URI]
                                       [--threshold R] [--set KEY=VALUE ...]

PATH: granule files (S5P L2 NO2, a ddeq crop, HARP L3: any layout the ingest readers recognise by content), folders
(their ``*.nc`` files) or quoted glob patterns. The granules are gridded with the ingest stage's code and detected
with the detect stage's code (tiles, stitching, hotspots), then written into ``DIR`` (default ``results``)::

    DIR/grid/         the gridded NO2 (no2hotspots.contracts.grid: grid.nc, overpasses/<granule>.nc, validation.json)
    DIR/detections/   hotspots.csv, hotspots.geojson, period.nc, overpasses/<granule>.nc, detect.json, map.png
    DIR/run.json      what ran: the inputs, the options, the model, the counts
    DIR/.units/       the resume cache (a rerun skips granules and overpasses already done); DIR/.inputs/ links

``DIR`` may not lie in (or be) a DVC-tracked path nor the pipeline's ``outputs/``, ``data/``, ``metrics/``,
``plots/`` or ``mlruns/``: this command never changes what ``dvc status`` reports.

The model is ``--model`` (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/RUN_ID/model`` or a model
folder with ``model.json`` + ``state_dict.pt``); by default the version this pipeline's register stage registered
(``outputs/register/model.json``), else ``models:/no2hotspots-cnn@champion``, from the tracking store the pipeline
uses (``tracking.*``, ``MLFLOW_TRACKING_URI``). ``--set KEY=VALUE`` sets any other ``ingest.*``/``detect.*``/
``parallel.*`` key (e.g. ``--set ingest.qa_threshold=0.5 --set parallel.scheduler=sync``).
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import re
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputFileError, UserError

log = logging.getLogger(__name__)

PROG = "no2hotspots detect-files"
DEFAULT_OUT = "results"
GRID = "grid"  # DIR/grid: the ingest collection
DETECTIONS = "detections"  # DIR/detections: the detect collection
#: what this command writes directly under DIR (checked against the protected paths)
WRITTEN = (GRID, DETECTIONS, "run.json", ".units", ".inputs")
#: config keys whose folders are never written into (besides every DVC-tracked path)
PROTECTED_KEYS = ("paths.outputs", "paths.data", "paths.metrics", "paths.plots", "paths.mlruns")
_STAMP = re.compile(r"(?<!\d)(\d{8}T\d{6})(?!\d)")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage block
        print(f"{PROG}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Detect NO2 hotspots in your own TROPOMI granules: grid them, run the model, write grids, "
        "hotspot tables and a map into a folder of your choice (never into the pipeline's DVC-tracked outputs).",
        epilog="example: python -m no2hotspots detect-files data/tropomi/*.nc --out results/ "
        "--bbox 26 -26 30 -22 --start 2021-07-25 --end 2021-07-25",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="granule files, folders (their *.nc) or quoted globs")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output folder (default: {DEFAULT_OUT})")
    p.add_argument("--bbox", nargs=4, metavar=("W", "S", "E", "N"), help="grid only this region [degrees east/north]")
    p.add_argument("--start", metavar="TIME", help="keep granules observed at or after TIME (ISO 8601, UTC)")
    p.add_argument(
        "--end", metavar="TIME", help="keep granules observed at or before TIME (a date alone: the whole day)"
    )
    p.add_argument(
        "--model",
        metavar="URI",
        help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID/model or a model folder (default: the pipeline's "
        "registered model, else models:/no2hotspots-cnn@champion)",
    )
    p.add_argument("--threshold", type=float, metavar="R", help="hotspot threshold on relative emission (0, 1]")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other config key, e.g. --set parallel.scheduler=sync (repeatable)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point (``python -m no2hotspots detect-files ...``); returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error, already printed as one line (2)
        return int(e.code or 0)
    from .. import logs

    logs.setup()
    try:
        summary = detect_files(
            args.paths,
            args.out,
            bbox=args.bbox,
            start=args.start,
            end=args.end,
            model=args.model,
            threshold=args.threshold,
            overrides=args.overrides,
        )
    except UserError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    det = Path(summary["out"]) / DETECTIONS
    log.info(
        "%d hotspot(s) in %d overpass(es) -> %s (hotspots.csv, hotspots.geojson, period.nc, map.png)",
        summary["n_hotspots"],
        summary["n_overpasses"],
        det,
    )
    return 0


# ---------------------------------------------------------------------------------------------------------- options


def parse_bbox(values) -> tuple[float, float, float, float] | None:
    if values is None:
        return None
    text = " ".join(str(v) for v in values)
    try:
        w, s, e, n = (float(v) for v in values)
    except (TypeError, ValueError):
        raise UserError(f"--bbox {text}: expected four numbers W S E N in degrees") from None
    if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
        raise UserError(
            f"--bbox {text}: must be W S E N with -180 <= W < E <= 180 and -90 <= S < N <= 90 (degrees; a region "
            "across the antimeridian needs two runs)"
        )
    return (w, s, e, n)


def parse_time(text: str | None, option: str, *, end: bool = False) -> datetime | None:
    """An ISO 8601 date or time as naive UTC; a date alone as ``--end`` means the end of that day."""
    if text is None:
        return None
    t = str(text).strip()
    try:
        value = datetime.fromisoformat(t[:-1] + "+00:00" if t.endswith(("Z", "z")) else t)
    except ValueError:
        raise UserError(
            f"{option} {text}: not an ISO 8601 date or time (e.g. 2021-07-25 or 2021-07-25T11:00Z)"
        ) from None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    if end and _DATE_ONLY.match(t):
        value += timedelta(days=1) - timedelta(microseconds=1)
    return value


# ------------------------------------------------------------------------------------------------------------ files


def expand_paths(paths) -> list[Path]:
    """Files of the given paths: files as they are, folders' ``*.nc``, glob patterns; one-line error naming a path
    that gives nothing. Duplicates are dropped; two files with the same name are refused (one granule per name)."""
    out: dict[Path, Path] = {}
    for raw in paths:
        p = Path(str(raw)).expanduser()
        if p.is_file():
            found = [p]
        elif p.is_dir():
            found = sorted(q for q in p.glob("*.nc") if q.is_file())
            if not found:
                raise InputFileError(raw, "folder holds no *.nc files")
        elif glob.has_magic(str(raw)):
            found = sorted(Path(q) for q in glob.glob(str(p)) if Path(q).is_file())
            if not found:
                raise InputFileError(raw, "no files match")
        else:
            raise InputFileError(raw, "no such file or folder")
        for f in found:
            out.setdefault(f.resolve(), f)
    from ..contracts.grid import overpass_key

    seen: dict[str, Path] = {}
    for f in out.values():
        key = overpass_key(f)
        if key in seen:
            raise InputFileError(f, f"has the same name as {seen[key]}: one granule per file name")
        seen[key] = f
    return list(out.values())


def granule_period(path: Path) -> tuple[datetime, datetime]:
    """First and last observation time of a granule: from an official S5P file name (start and end stamps), else
    from the file's pixel times."""
    stamps = _STAMP.findall(path.name)
    if len(stamps) >= 2:
        t0, t1 = (datetime.strptime(s, "%Y%m%dT%H%M%S") for s in stamps[:2])
        return min(t0, t1), max(t0, t1)
    import numpy as np

    from ..ingest.readers import open_pixels

    t = open_pixels(path)["time"].values
    t = t[~np.isnat(t)]
    if t.size == 0:
        raise InputFileError(path, "no observation times (cannot apply --start/--end)")
    lo, hi = (datetime.fromisoformat(str(np.datetime_as_string(v, unit="us"))) for v in (t.min(), t.max()))
    return lo, hi


def select_period(files: list[Path], start: datetime | None, end: datetime | None) -> list[Path]:
    if start is None and end is None:
        return files
    keep = []
    for f in files:
        t0, t1 = granule_period(f)
        if (end is None or t0 <= end) and (start is None or t1 >= start):
            keep.append(f)
        else:
            log.info("%s: observed %s .. %s, outside --start/--end; skipped", f.name, t0, t1)
    if not keep:
        span = f"{start.isoformat() if start else '...'} .. {end.isoformat() if end else '...'}"
        opt = "--start/--end" if start and end else ("--start" if start else "--end")
        raise UserError(f"{opt} {span}: none of the {len(files)} granule(s) was observed in that period")
    return keep


# ------------------------------------------------------------------------------------------------ protected paths


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or b in a.parents or a in b.parents


def dvc_root(path: Path) -> Path | None:
    """The DVC repository around ``path`` (the nearest folder holding ``.dvc/``), if any."""
    return next((d for d in (path, *path.parents) if (d / ".dvc").is_dir()), None)


def dvc_tracked(root: Path) -> list[Path]:
    """Every path the DVC repository ``root`` tracks (stage outputs, metrics, plots, ``*.dvc`` data) and ``.dvc``."""
    try:
        from dvc.repo import Repo

        with Repo(str(root)) as repo:
            tracked = [Path(o.fs_path) for o in repo.index.outs]
    except Exception as e:  # noqa: BLE001 - a pipeline we cannot read must not let us write into it
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{root}: cannot list its DVC-tracked paths ({first}); pass --out outside it") from None
    return [root / ".dvc", *tracked]


def check_out(out: Path, cfg) -> None:
    """Refuse an output folder that is, lies in, or would write over a protected path: anything DVC tracks in the
    repository around the working directory or around ``out``, and the pipeline's own folders (PROTECTED_KEYS,
    relative to the working directory and to each of those repositories)."""
    from omegaconf import OmegaConf

    folders = [Path(str(OmegaConf.select(cfg, k))).expanduser() for k in PROTECTED_KEYS]
    cwd = Path.cwd().resolve()
    protected = [(cwd / f).resolve() for f in folders]
    for root in {r for r in (dvc_root(cwd), dvc_root(out)) if r is not None}:
        if out == root:
            raise UserError(f"--out {out}: the pipeline's own folder; write into a subfolder (e.g. --out results)")
        protected += [(root / f).resolve() for f in folders if not f.is_absolute()]
        protected += dvc_tracked(root)
    for p in protected:
        if out == p or p in out.parents or any(_overlaps(out / name, p) for name in WRITTEN):
            raise UserError(
                f"--out {out}: overlaps {p}, which the pipeline tracks (DVC) or owns; write elsewhere (e.g. --out "
                "results)"
            )


# ------------------------------------------------------------------------------------------------------------ model


def resolve_model(cfg, model: str | None) -> str:
    """The model URI: ``--model``, else the pipeline's registered version, else ``models:/NAME@champion``."""
    if model:
        return str(model)
    reg = Path(str(cfg.detect.register_file))
    if reg.is_file():
        try:
            return str(json.loads(reg.read_text())["registered_uri"])
        except (ValueError, KeyError, UnicodeDecodeError) as e:
            raise InputFileError(reg, f"no registered_uri in it ({type(e).__name__}); pass --model") from None
    return f"models:/{cfg.register.model_name}@{cfg.register.champion_alias}"


def load(cfg, uri: str):
    from .. import tracking
    from ..registry.load import load_model

    if Path(uri).expanduser().is_dir():
        return load_model(str(Path(uri).expanduser()))
    turi = tracking.resolve_uri(cfg)
    db = tracking.sqlite_path(turi)
    if db is not None and not Path(db).is_file():
        raise UserError(
            f"--model {uri}: no MLflow store at {db} (run from the pipeline's folder after `make demo`, set "
            "MLFLOW_TRACKING_URI, or pass --model a model folder)"
        )
    return load_model(uri, tracking=turi)


# -------------------------------------------------------------------------------------------------------------- run


def configure(cfg, out: Path, inputs_dir: Path, bbox, uri: str, threshold: float | None) -> None:
    """Point the ingest and detect keys at ``out`` (nothing of the pipeline's folders is written)."""
    from omegaconf import open_dict

    with open_dict(cfg):
        cfg.ingest.collections = {
            GRID: {"inputs": glob.escape(str(inputs_dir)) + "/*", "bbox": list(bbox) if bbox else None}
        }
        cfg.ingest.collection = GRID
        cfg.ingest.out_dir = str(out)
        cfg.ingest.units_dir = str(out / ".units" / "ingest")
        cfg.detect.ingest_dir = str(out)
        cfg.detect.out_dir = str(out)
        cfg.detect.units_dir = str(out / ".units" / "detect")
        cfg.detect.model_uri = uri
        cfg.detect.collection = DETECTIONS
        if threshold is not None:
            cfg.detect.threshold = float(threshold)


def link_inputs(files: list[Path], inputs_dir: Path) -> None:
    """``inputs_dir`` holds exactly one link per input file (named as the file: its name is the overpass key)."""
    if inputs_dir.exists():
        shutil.rmtree(inputs_dir)
    inputs_dir.mkdir(parents=True)
    for f in files:
        (inputs_dir / f.name).symlink_to(f.resolve())


def user_paths(message: str, files: list[Path], inputs_dir: Path, pattern: str) -> str:
    """``message`` with each link of ``inputs_dir`` named as the user's file it points to, and the links' glob
    ``pattern`` as "the input files"."""
    for f in files:
        message = message.replace(str(inputs_dir / f.name), str(f))
    return message.replace(pattern, "the input files")


def detect_files(
    paths,
    out: str | Path = DEFAULT_OUT,
    *,
    bbox=None,
    start: str | None = None,
    end: str | None = None,
    model: str | None = None,
    threshold: float | None = None,
    overrides=(),
) -> dict[str, Any]:
    """Grid ``paths`` and detect hotspots into ``out`` (see the module docstring); return the summary (run.json)."""
    from ..atomic import write_json
    from ..config import compose
    from ..ingest import run as ingest_run
    from . import run as detect_run

    box = parse_bbox(bbox)
    t0, t1 = parse_time(start, "--start"), parse_time(end, "--end", end=True)
    if t0 and t1 and t0 > t1:
        raise UserError(f"--start {start} is after --end {end}")
    if threshold is not None and not 0 < threshold <= 1:
        raise UserError(f"--threshold {threshold:g}: must be in (0, 1]")
    files = expand_paths(paths)
    cfg = compose(list(overrides))
    out_dir = Path(str(out)).expanduser().resolve()
    check_out(out_dir, cfg)
    files = select_period(files, t0, t1)
    uri = resolve_model(cfg, model)
    inputs_dir = out_dir / ".inputs"
    configure(cfg, out_dir, inputs_dir, box, uri, threshold)
    s = detect_run.settings(cfg)
    s_ingest = ingest_run.settings(cfg)
    loaded = load(cfg, uri)  # before the (slower) gridding: a wrong --model fails fast
    inventory = _inventory(s)
    out_dir.mkdir(parents=True, exist_ok=True)
    link_inputs(files, inputs_dir)
    log.info("%d granule(s) -> %s", len(files), out_dir)
    try:
        ingested = ingest_run.ingest_collection(cfg, GRID, s_ingest)
    except ConfigError as e:
        if e.key == f"ingest.collections.{GRID}.bbox":
            raise UserError(f"--bbox {' '.join(map(str, bbox))}: {e.problem}") from None
        raise
    except UserError as e:  # name the user's files, not the links folder (same type and exit status)
        e.args = (user_paths(str(e), files, inputs_dir, str(cfg.ingest.collections[GRID].inputs)),)
        raise
    detected = detect_run.detect_collection(cfg, DETECTIONS, out_dir / GRID, loaded, s, uri, inventory)
    summary = {
        "out": str(out_dir),
        "inputs": [str(f) for f in files],
        "bbox": list(box) if box else None,
        "start": t0.isoformat() if t0 else None,
        "end": t1.isoformat() if t1 else None,
        "model_uri": uri,
        "model_name": loaded.meta.get("name"),
        "model_version": loaded.meta.get("version"),
        "run_id": loaded.meta.get("run_id"),
        "threshold": float(s["threshold"]),
        "n_granules": len(files),
        "n_overpasses": int(ingested["n_overpasses"]),
        "n_hotspots": int(detected["n_hotspots"]),
        "grid": str(out_dir / GRID),
        "detections": str(out_dir / DETECTIONS),
        "overrides": list(overrides),
    }
    write_json(out_dir / "run.json", summary)
    return summary


def _inventory(s: dict):
    """Inventory sites for the map when the configured catalogue is there (it is optional here)."""
    from .run import load_inventory

    if s["overlay_inventory"] and not Path(s["inventory_csv"]).is_file():
        log.info("no inventory at %s: the map shows hotspots only", s["inventory_csv"])
        return None
    return load_inventory(s)


if __name__ == "__main__":
    sys.exit(main())
