"""MLflow logging into a real tmp store, and bad inputs through the real CLI."""

import json
import subprocess
import sys

import pandas as pd
import pytest
from omegaconf import OmegaConf

from no2hotspots.errors import ConfigError, InputFileError
from no2hotspots.evaluate.run import run


@pytest.mark.slow  # creating a fresh MLflow SQLite store (migrations) takes ~15-25 s on 2 busy cores
def test_model_run_and_new_run(case, tmp_path, caplog, monkeypatch):
    import mlflow

    from no2hotspots.tracking import setup

    monkeypatch.chdir(tmp_path)
    OmegaConf.save(case, tmp_path / "params.yaml")  # the pipeline's settings: what DVC would run
    setup(case)
    with mlflow.start_run(run_name="model") as r:  # the run that "trained" the detecting model
        mlflow.log_metric("val_loss", 0.1)
    run_id = r.info.run_id
    det = tmp_path / "outputs" / "detect" / "osse" / "detect.json"
    det.write_text(json.dumps({"run_id": run_id, "model_name": "m", "model_version": "1"}))
    case.evaluate.log_to = "model_run"  # what the pipeline (params.yaml) does
    run(case)
    client = mlflow.MlflowClient()
    got = client.get_run(run_id)
    assert got.data.metrics["eval/osse/model/table2_rate_gt5000"] == 1.0
    assert got.data.metrics["eval/osse/model/hotspot_precision"] == pytest.approx(4 / 5)
    assert got.data.metrics["eval/osse/model/co2_overlap_pct"] == 100.0
    assert got.data.metrics["val_loss"] == 0.1  # the existing run, not a new one
    assert "eval/osse/model/table2_rate_4000_5000" not in got.data.metrics  # NaN rates are not logged
    assert got.info.status == "FINISHED"
    arts = {a.path for a in client.list_artifacts(run_id, "eval/osse")}
    assert {"eval/osse/table2.json", "eval/osse/table2_side_by_side.csv", "eval/osse/model"} <= arts
    table = mlflow.load_table("eval/osse/table2.json", run_ids=[run_id])
    assert "model_pct" in table.columns and "gt5000" in set(table["bin"])

    # a by-hand evaluation with other settings goes to a new run tied to the model's run
    case.evaluate.log_to = "new_run"
    case.evaluate.match_mode = "distance"
    run(case)
    runs = client.search_runs([got.info.experiment_id], filter_string=f"tags.evaluates_run = '{run_id}'")
    assert len(runs) == 1 and runs[0].info.run_id != run_id
    assert runs[0].data.metrics["eval/osse/model/table2_rate_2000_4000"] == 1.0  # H3 within 10 km of S2's cell
    assert client.get_run(run_id).data.metrics["eval/osse/model/table2_rate_2000_4000"] == 0.0  # untouched

    # the pipeline's setting (model_run) with settings other than params.yaml's: by hand -> a new run, never over
    # the pipeline's evaluation of the model's run
    case.evaluate.log_to = "model_run"
    with caplog.at_level("WARNING"):
        run(case)
    assert "differ from params.yaml" in caplog.text
    runs = client.search_runs([got.info.experiment_id], filter_string=f"tags.evaluates_run = '{run_id}'")
    assert len(runs) == 2
    assert client.get_run(run_id).data.metrics["eval/osse/model/table2_rate_2000_4000"] == 0.0

    # the same settings written to params.yaml are the pipeline's: onto the model's run, saying what it replaces
    OmegaConf.save(case, tmp_path / "params.yaml")
    caplog.clear()
    with caplog.at_level("WARNING"):
        run(case)
    assert "replacing the evaluation logged on run" in caplog.text
    assert client.get_run(run_id).data.metrics["eval/osse/model/table2_rate_2000_4000"] == 1.0


def test_no_run_id_warns_and_skips(case, tmp_path, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no params.yaml here: the settings are taken as the pipeline's
    case.evaluate.log_to = "model_run"
    with caplog.at_level("WARNING"):
        run(case)
    assert "no run_id" in caplog.text
    assert (tmp_path / "metrics" / "evaluate_osse.json").exists()


def test_bad_log_to_names_the_key(case):
    case.evaluate.log_to = "somewhere"
    with pytest.raises(ConfigError, match="evaluate.log_to"):
        run(case)


BAD_INVENTORIES = {
    "missing-column": (lambda df: df.drop(columns=["co2_t_per_yr"]), "missing column(s) co2_t_per_yr"),
    "other-units-column": (
        lambda df: df.rename(columns={"nox_t_per_yr": "nox_kg_per_s"}),
        "column nox_kg_per_s is in other units; expected nox_t_per_yr",
    ),
    "kg-not-tonnes": (lambda df: df.assign(co2_t_per_yr=df["co2_t_per_yr"] * 1000), "column co2_t_per_yr has 3e+09"),
    "lat-out-of-range": (
        lambda df: df.assign(lat=[0.125, 0.125, 95.0, 0.375, 10.0]),
        "column lat has values outside -90..90, e.g. 95.0",
    ),
    "lon-out-of-range": (
        lambda df: df.assign(lon=[0.125, 0.375, 0.625, -200.0, 10.0]),
        "column lon has values outside -180..180, e.g. -200.0",
    ),
    "negative-emission": (
        lambda df: df.assign(nox_t_per_yr=[1.0, -5.0, 1.0, 1.0, 1.0]),
        "column nox_t_per_yr has a negative or non-numeric value, e.g. -5.0",
    ),
    # a source listed twice would count twice in Table 2 and the CO2 overlap (header = line 1, S2 = line 3)
    "repeated-row": (lambda df: pd.concat([df, df.iloc[[1]]]), "line 7 repeats line 3 (1 repeated row(s))"),
    "repeated-id": (
        lambda df: pd.concat([df, df.iloc[[1]].assign(lat=0.2)]),
        "line 7 repeats the id S2 of line 3 (1 repeated)",
    ),
    "repeated-position": (
        lambda df: pd.concat([df, df.iloc[[1]].assign(id="S2b", nox_t_per_yr=10.0)]),
        "line 7 repeats the position (0.125, 0.49) of line 3 (1 repeated)",
    ),
}
#: these go through the real CLI (a subprocess each, ~3-5 s); the rest call run() directly
CLI_CASES = ("missing-column", "other-units-column", "lat-out-of-range", "repeated-row")


@pytest.mark.parametrize("name", CLI_CASES)
def test_bad_inventory_through_cli(case, tmp_path, repo_root, truth_sources, name):
    mutate, expected = BAD_INVENTORIES[name]
    bad = tmp_path / "outputs" / "osse" / "truth" / "sources.csv"
    mutate(truth_sources).to_csv(bad, index=False)
    params = tmp_path / "params.yaml"
    OmegaConf.save(case, params)
    p = subprocess.run(
        [sys.executable, "-m", "no2hotspots", "evaluate", "--params", str(params), "evaluate.collection=osse"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode != 0
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("no2hotspots evaluate: error: ") and expected in last and str(bad) in last, p.stderr
    assert "Traceback" not in p.stderr
    assert not (tmp_path / "outputs" / "evaluate" / "osse").exists()  # nothing half-written


@pytest.mark.parametrize("name", sorted(set(BAD_INVENTORIES) - set(CLI_CASES)))
def test_bad_inventory_in_process(case, tmp_path, truth_sources, name):
    mutate, expected = BAD_INVENTORIES[name]
    bad = tmp_path / "outputs" / "osse" / "truth" / "sources.csv"
    mutate(truth_sources).to_csv(bad, index=False)
    with pytest.raises(InputFileError) as e:
        run(case)
    assert expected in str(e.value) and str(bad) in str(e.value) and "\n" not in str(e.value)


def test_bad_config_names_the_key(case):
    case.evaluate.nox_bins = [5000, 2000]
    with pytest.raises(ConfigError, match="evaluate.nox_bins"):
        run(case)
    case.evaluate.nox_bins = [0, 2000, 4000]  # the shape of the recall bins' lists, but 0 makes an empty lowest bin
    with pytest.raises(ConfigError, match=r"evaluate.nox_bins: edges must be > 0"):
        run(case)
    case.evaluate.nox_bins = [2000]
    case.evaluate.collections.osse.min_observations = 0  # every cell of the grid would count as observed
    with pytest.raises(ConfigError, match="evaluate.collections.osse.min_observations: must be an integer >= 1"):
        run(case)
    case.evaluate.collections.osse.min_observations = 1
    case.evaluate.collection = "nowhere"
    with pytest.raises(ConfigError, match="evaluate.collection: unknown collection 'nowhere'"):
        run(case)
