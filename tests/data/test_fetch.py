"""The embedded default inputs: real files from the ddeq 1.1 wheel, verified by SHA-256."""

from __future__ import annotations

import subprocess
import sys

import pytest

from no2hotspots.config import compose
from no2hotspots.data.fetch import download_wheel, extract, sha256
from no2hotspots.errors import InputFileError, UserError


def test_embedded_inputs_match_their_checksums(ddeq_data):
    cfg = compose()
    for spec in cfg.data.files:
        assert sha256(ddeq_data / spec.dest) == spec.sha256


def test_extract_is_idempotent_and_rejects_a_tampered_file(ddeq_data, tmp_path, repo_root):
    cfg = compose()
    wheel = next((repo_root / ".cache" / "wheels").glob("ddeq-1.1-*.whl"))
    out = tmp_path / "data"
    assert len(extract(wheel, cfg.data.files, out)) == len(cfg.data.files)
    assert extract(wheel, cfg.data.files, out) == []  # second run: nothing to do
    victim = out / cfg.data.files[-1].dest
    victim.write_text("not the catalogue README")
    with pytest.raises(InputFileError, match="not the embedded default"):
        extract(wheel, cfg.data.files, out)


def test_unreachable_index_gives_a_clear_message(tmp_path, monkeypatch):
    for k, v in {
        "PIP_CONFIG_FILE": "/dev/null",
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_EXTRA_INDEX_URL": "",
        "PIP_FIND_LINKS": "",
        "PIP_RETRIES": "0",
        "PIP_DEFAULT_TIMEOUT": "2",
    }.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(UserError, match="could not download ddeq==1.1 from the package index"):
        download_wheel("ddeq==1.1", tmp_path / "wheels", "0" * 64)


def test_cli_reports_user_errors_in_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "no2hotspots", "fetch-data", "--params", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [
        f"no2hotspots fetch-data: error: {tmp_path / 'missing.yaml'}: not found; "
        "run `make params` (or `dvc exp run`) to compose it from conf/"
    ]
