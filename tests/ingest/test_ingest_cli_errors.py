"""Bad inputs through the CLI: non-zero exit, one line on stderr naming the file (or bbox), no output written."""

from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from no2hotspots.cli import main
from no2hotspots.ingest.run import run

from .conftest import stacked, write_s5p_l2


def _cli(cfg, tmp_path, capsys, subproc):
    """The real entry point: in a subprocess, or in-process via cli.main (same code, no interpreter start-up)."""
    params = tmp_path / "params.yaml"
    params.write_text(OmegaConf.to_yaml(cfg))
    if subproc:
        p = subprocess.run(
            [sys.executable, "-m", "no2hotspots", "ingest", "--params", str(params)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        return p.returncode, p.stderr
    capsys.readouterr()
    rc = main(["ingest", "--params", str(params)])
    return rc, capsys.readouterr().err


def _case(name, tmp_path, matimba_l2):
    d = tmp_path / "in"
    d.mkdir()
    if name == "truncated":
        f = d / "S5P_OFFL_L2__NO2____trunc.nc"
        f.write_bytes(matimba_l2.read_bytes()[:200_000])
        return f, f.name, None
    if name == "co":
        f = write_s5p_l2(d / "S5P_OFFL_L2__CO_____20210725.nc", matimba_l2, product_type="L2__CO____")
        return f, "wrong product (L2__CO____), expected L2__NO2___", None
    if name == "missing_no2":
        f = write_s5p_l2(d / "nono2.nc", matimba_l2, drop_no2=True)
        return f, "missing variable PRODUCT/nitrogendioxide_tropospheric_column", None
    if name == "nan_coords":
        f = write_s5p_l2(d / "nancoords.nc", matimba_l2, nan_corners="all")
        return f, "all pixel corner coordinates are NaN", None
    if name == "bbox_outside":
        f = write_s5p_l2(d / "ok.nc", matimba_l2)
        return f, "bbox [0.0, 40.0, 1.0, 41.0] lies outside the data", [0.0, 40.0, 1.0, 41.0]
    raise ValueError(name)


@pytest.mark.parametrize("case", ["truncated", "co", "missing_no2", "nan_coords", "bbox_outside"])
def test_bad_input_one_line_error(case, tmp_path, matimba_l2, ingest_cfg, capsys):
    f, expect, bbox = _case(case, tmp_path, matimba_l2)
    cfg = ingest_cfg(tmp_path / "in" / "*.nc", bbox=bbox)
    rc, err = _cli(cfg, tmp_path, capsys, subproc=case in ("truncated", "co"))
    assert rc != 0
    lines = [ln for ln in err.strip().splitlines() if " WARNING " not in ln]
    assert len(lines) == 1, err
    assert lines[0].startswith("no2hotspots ingest: error:")
    assert expect in lines[0]
    if case != "bbox_outside":
        assert f.name in lines[0]
    else:
        assert "ingest.collections.test.bbox" in lines[0]
    assert not (tmp_path / "outputs" / "ingest").exists() or not list((tmp_path / "outputs" / "ingest").iterdir())


def test_all_below_qa_warns_and_contributes_no_overpass(tmp_path, matimba_l2, ingest_cfg, caplog):
    d = tmp_path / "in"
    d.mkdir()
    write_s5p_l2(d / "a_good.nc", matimba_l2)
    write_s5p_l2(d / "b_lowqa.nc", matimba_l2, qa_all=0.5)
    cfg = ingest_cfg(d / "*.nc")
    run(cfg)
    assert "b_lowqa.nc: no pixel passes QA" in caplog.text
    ds = stacked(tmp_path / "outputs" / "ingest" / "test")
    assert ds.sizes["time"] == 1 and ds.attrs["source_files"] == "a_good.nc"
    assert int(ds.obs_count.max()) == 1 and ds.attrs["collection"] == "test"
