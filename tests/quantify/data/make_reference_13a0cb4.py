"""Writes reference_13a0cb4.json: the rows the per-point code of commit 13a0cb4 (every hotspot and site re-read per
overpass, unvectorised estimators), with reference_13a0cb4.patch applied, gives for the case of
test_quantify_run.py (tests/quantify/test_quantify_run.py::test_same_results_as_the_per_point_code compares the
vectorised code with it). The patch ports what changed the results since on purpose (issue 15: the CSF transect
weights; then the CSF's transect scatter as its own component, out of the noise that weights the period mean, and
CSF strips and IME disks reaching beyond the grid's edge refused; the IME's position term with the residence
time of R +- d). Not a test (no test_ prefix); run from the
repository root:

    R=$PWD D=$(mktemp -d) && git archive 13a0cb4 src tests/quantify conf | tar -x -C $D \\
      && patch -d $D -p1 < tests/quantify/data/reference_13a0cb4.patch \\
      && cp tests/quantify/data/make_reference_13a0cb4.py $D/tests/quantify/ \\
      && (cd $D && REFERENCE_OUT=$R/tests/quantify/data/reference_13a0cb4.json PYTHONPATH=src \\
          $R/.venv/bin/python -m pytest -q -p no:cacheprovider tests/quantify/make_reference_13a0cb4.py)

The patch is ``diff -ru -x __pycache__ -x make_reference_13a0cb4.py -x .pytest_cache A B`` of 13a0cb4's tree (A)
and its copy with the ports (B). Regenerated on another CPU the values move in their last digits (the test's
tolerance is 1e-6).
"""

from __future__ import annotations

import json
import math
import os

import pandas as pd
from test_quantify_run import case, run  # noqa: F401 (the fixture of 13a0cb4's test module)

SIGMAS = tuple(f"nox_sigma_{c}_t_per_yr" for c in ("lifetime", "noise", "nox_ratio", "position", "transects",
                                                    "wind_direction", "wind_speed"))  # fmt: skip
COMMON = ("co2_mt_per_yr", "co2_sigma_mt_per_yr", "inventory_nox_t_per_yr", "nox_t_per_yr", "nox_sigma_t_per_yr",
          *SIGMAS)  # fmt: skip
OVERPASS = (*COMMON, "plume_from_deg", "time", "wind_from_deg", "wind_speed_m_s")
FILES = {  # table: (key column, sorted by time, columns)
    "estimates_overpass": ("hotspot_id", True, OVERPASS),
    "estimates_site_overpass": ("site_id", True, OVERPASS),
    "estimates_period": ("site_id", False, (*COMMON, "n_overpasses", "nox_sigma_random_t_per_yr",
                                            "nox_sigma_spread_t_per_yr", "nox_sigma_systematic_t_per_yr", "time")),
}  # fmt: skip


def _value(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.item() if hasattr(v, "item") else v


def _rows(folder) -> dict:
    out = {}
    for f, (key, timed, cols) in FILES.items():
        d = pd.read_csv(folder / f"{f}.csv")
        if timed:
            d = d.sort_values([key, "time", "method"], kind="stable")
        out[f] = [
            {"key": int(r[key]), "method": r["method"], "flags": _value(r.get("quality_flags")),
             **{c: _value(r.get(c)) for c in cols}}
            for r in d.to_dict("records")
        ]  # fmt: skip
    return out


def test_write_reference(case, qhelp):  # noqa: F811
    tmp, ov = case
    ref = {}
    for name, winds in (("era5_like_winds", True), ("no_winds", False)):
        o = json.loads(json.dumps(ov))
        if not winds:
            o["quantify.collections.synth"]["winds"] = {"paths": None}
        run(qhelp.quantify_cfg(o))
        ref[name] = _rows(tmp / "out" / "synth")
    with open(os.environ["REFERENCE_OUT"], "w") as f:
        json.dump(ref, f, indent=1, sort_keys=True)
