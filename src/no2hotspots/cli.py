"""Command line: ``python -m no2hotspots STAGE [--params params.yaml] [key=value ...]``.

Each stage is a module ``no2hotspots.<package>.run`` with a ``run(cfg)`` function; this entry point only loads
params.yaml, applies overrides, calls ``run`` and turns a :class:`~no2hotspots.errors.UserError` into one line on
stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .errors import UserError

#: stage name -> module holding ``run(cfg)``
STAGES = {
    "fetch-data": "no2hotspots.data.fetch",
    "simulate": "no2hotspots.simulate.run",
    "validate": "no2hotspots.validate.run",
    "train": "no2hotspots.train.run",
    "register": "no2hotspots.registry.run",
    "osse": "no2hotspots.osse.run",
    "ingest": "no2hotspots.ingest.run",
    "detect": "no2hotspots.detect.run",
    "evaluate": "no2hotspots.evaluate.run",
    "download": "no2hotspots.download.run",
    "summary": "no2hotspots.summary",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="no2hotspots", description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=sorted(STAGES), help="what to run")
    parser.add_argument("--params", default="params.yaml", help="composed parameters (default: params.yaml)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides applied on top of params.yaml")
    args = parser.parse_intermixed_args(argv)  # allows `STAGE --params FILE key=value` (options between positionals)

    from . import logs

    logs.setup()
    log = logging.getLogger("no2hotspots")
    try:
        from .config import load_params

        cfg = load_params(args.params, args.overrides)
        module = importlib.import_module(STAGES[args.stage])
        module.run(cfg)
    except UserError as e:
        print(f"no2hotspots {args.stage}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
