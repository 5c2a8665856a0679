"""The plain-data expectation runner: results, one-line failure messages, reports, config mistakes."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from no2hotspots.errors import ConfigError, ValidationFailed
from no2hotspots.validate.suite import run_suite, validate_table

SPECS = [
    {"type": "expect_column_max_to_be_between", "column": "emission_max", "max_value": 1.0, "label": "r <= 1"},
    {"type": "expect_column_values_to_be_unique", "column": "scene_id"},
]


def test_passing_table_reports_observed_values(tmp_path, gx_warm):
    df = pd.DataFrame({"emission_max": [0.2, 0.9], "scene_id": [1, 2]})
    res = validate_table(df, SPECS, name="t", report_path=tmp_path / "r.json")
    assert res.success and len(res.outcomes) == 2
    assert res.outcomes[0].observed == pytest.approx(0.9)
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["success"] is True and doc["n_failed"] == 0
    assert "PASSED" in (tmp_path / "r.md").read_text()
    assert not (tmp_path / "gx").exists() and not list(tmp_path.glob(".*tmp*"))


def test_failures_named_one_line_and_report_written_first(tmp_path, gx_warm):
    df = pd.DataFrame({"emission_max": [0.2, 1.3], "scene_id": [1, 1]})
    with pytest.raises(ValidationFailed) as ei:
        validate_table(df, SPECS, name="t", report_path=tmp_path / "r.json")
    msg = str(ei.value)
    assert "\n" not in msg
    assert "expect_column_max_to_be_between(emission_max <= 1): observed 1.3" in msg
    assert "expect_column_values_to_be_unique(scene_id)" in msg
    assert str(tmp_path / "r.md") in msg
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["success"] is False and doc["n_failed"] == 2
    assert (tmp_path / "r.md").read_text().count("**FAIL**") == 2


def test_missing_column_fails_not_crashes(tmp_path, gx_warm):
    res = run_suite(
        {"a": pd.DataFrame({"x": [1]})},
        {"a": [{"type": "expect_column_values_to_be_between", "column": "nope", "min_value": 0}]},
        name="t",
        report_path=None,
        raise_on_failure=False,
    )
    assert not res.success and "nope" in res.failures[0].short


def test_unknown_expectation_type_is_a_config_error(gx_warm):
    with pytest.raises(ConfigError, match=r"validate\.a\[0\].*expect_no_such_thing"):
        run_suite(
            {"a": pd.DataFrame({"x": [1]})},
            {"a": [{"type": "expect_no_such_thing", "column": "x"}]},
            name="t",
            report_path=None,
        )


def test_packaged_suites_resolve_tolerances_and_a_user_suite_file_replaces_them(tmp_path, cfg_validate):
    from omegaconf import OmegaConf

    from no2hotspots.errors import ConfigError
    from no2hotspots.validate.suite import load_expectations

    grid = load_expectations("grid", cfg_validate.grid)
    no2_max = [e for e in grid["times"] if e.get("column") == "no2_max"][0]
    assert no2_max["max_value"] == cfg_validate.grid.no2_max
    own = tmp_path / "mine.yaml"
    own.write_text(
        "times:\n  - {type: expect_column_values_to_be_between, column: no2_max, max_value: '${tolerances.no2_max}'}\n"
    )
    section = OmegaConf.merge(cfg_validate.grid, {"expectations": str(own), "no2_max": 1.0})
    assert load_expectations("grid", section) == {
        "times": [{"type": "expect_column_values_to_be_between", "column": "no2_max", "max_value": 1.0}]
    }
    own.write_text(
        "times:\n  - {type: expect_column_values_to_be_between, column: x, max_value: '${tolerances.nope}'}\n"
    )
    with pytest.raises(ConfigError, match="validate.grid.expectations"):
        load_expectations("grid", section)
