"""Command line: ``python -m no2hotspots STAGE [key=value ...]`` or ``... STAGE --params params.yaml [key=value ...]``.

Each stage is a module ``no2hotspots.<package>.run`` with a ``run(cfg)`` function; this entry point only builds the
configuration (:func:`no2hotspots.config.load_config`: ``conf/`` composed with Hydra and the overrides, or the
composed file given by ``--params``, which is what DVC passes), calls ``run`` and turns a
:class:`~no2hotspots.errors.UserError` into one line on stderr and a non-zero exit status.
``python -m no2hotspots STAGE --help`` lists the keys the stage reads, with their values.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .errors import UserError

#: stage name -> (module holding ``run(cfg)``, config groups it reads, one line of help)
STAGES = {
    "fetch-data": ("no2hotspots.data.fetch", ("data", "paths"), "download the embedded default inputs into data/"),
    "simulate": ("no2hotspots.simulate.run", ("simulate",), "simulate training scenes (train/val/test shards)"),
    "validate": ("no2hotspots.validate.run", ("validate",), "data-quality suite of the simulated scenes"),
    "train": ("no2hotspots.train.run", ("train", "model"), "train the CNN, tracked in MLflow"),
    "score": ("no2hotspots.score.run", ("score",), "Table 1 and source scores of the trained model (val, test)"),
    "register": ("no2hotspots.registry.run", ("register",), "register the model; move `champion` if better"),
    "osse": ("no2hotspots.osse.run", ("osse",), "synthetic S5P L2 granules with known truth"),
    "ingest": ("no2hotspots.ingest.run", ("ingest",), "grid TROPOMI granules, one file per overpass"),
    "detect": ("no2hotspots.detect.run", ("detect",), "run the model over gridded NO2; hotspots"),
    "evaluate": ("no2hotspots.evaluate.run", ("evaluate",), "score hotspots against an inventory"),
    "download": ("no2hotspots.download.run", ("download",), "download S5P L2 NO2 granules from CDSE"),
    "baseline": ("no2hotspots.baseline.run", ("baseline",), "flux-divergence hotspots: the classical baseline"),
    "hybrid": (
        "no2hotspots.hybrid.run",
        ("hybrid",),
        "the model's composite sites confirmed by the baseline's flux divergence",
    ),
    "quantify": ("no2hotspots.quantify.run", ("quantify",), "NOx and CO2 emission rates with uncertainty per hotspot"),
    "server": ("no2hotspots.server.run", ("server",), "team tracking server: PostgreSQL + MLflow (server.action=...)"),
    "headline": (
        "no2hotspots.headline",
        ("paths", "evaluate"),
        "the headline figures of the run -> metrics/headline.json",
    ),
    "summary": ("no2hotspots.summary", ("paths",), "where the results of `make demo` are"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["detect-files"]:  # not a pipeline stage: its own arguments (paths, --out, --bbox, ...)
        return importlib.import_module("no2hotspots.detect.files").main(argv[1:])  # by name: not a stage's code dep
    parser = argparse.ArgumentParser(
        prog="no2hotspots",
        description=__doc__.split("\n\n")[0],
        epilog="stages: "
        + "; ".join(f"{k}: {v[2]}" for k, v in STAGES.items())
        + "; detect-files: grid and detect your own granules into a folder (detect-files --help)",
        add_help=False,
    )
    parser.add_argument("stage", nargs="?", choices=sorted(STAGES), help="what to run")
    parser.add_argument("-h", "--help", action="store_true", help="this help, or the keys of STAGE")
    parser.add_argument("--params", default=None, help="run a composed file (params.yaml) instead of composing conf/")
    parser.add_argument("overrides", nargs="*", help="key=value (any key), group=option (e.g. osse=china_year)")
    args = parser.parse_intermixed_args(argv)  # allows `STAGE --params FILE key=value` (options between positionals)
    if args.help or args.stage is None:
        if args.stage is None:
            parser.print_help()
            return 0 if args.help else 2
        return _stage_help(args.stage, args.overrides)

    from . import logs

    logs.setup()
    log = logging.getLogger("no2hotspots")
    try:
        from .config import load_config

        cfg = load_config(args.overrides, params=args.params)
        module = importlib.import_module(STAGES[args.stage][0])
        module.run(cfg)
    except UserError as e:
        print(f"no2hotspots {args.stage}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    return 0


def _stage_help(stage: str, overrides: list[str]) -> int:
    from omegaconf import OmegaConf

    from .config import compose, flatten

    module, groups, text = STAGES[stage]
    try:
        cfg = compose(overrides)
    except UserError as e:
        print(f"no2hotspots {stage}: error: {e}", file=sys.stderr)
        return e.exit_code
    print(f"python -m no2hotspots {stage} [key=value ...]: {text} ({module}.run)")
    print("Keys it reads (values as composed from conf/; set any with key=value, switch a group with group=option):")
    for g in groups:
        node = OmegaConf.select(cfg, g)
        flat = flatten({g: OmegaConf.to_container(node, resolve=True)}) if OmegaConf.is_config(node) else {g: node}
        for k, v in flat.items():
            print(f"  {k} = {v!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
