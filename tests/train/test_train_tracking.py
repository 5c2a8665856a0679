"""Data version and git commit tags."""

from __future__ import annotations

from no2hotspots.tracking import data_version, git_commit


def test_data_version_prefers_dvc_lock_and_else_hashes_content(tmp_path, monkeypatch):
    d = tmp_path / "outputs" / "simulated"
    (d / "train").mkdir(parents=True)
    (d / "manifest.json").write_text("{}")
    (d / "train" / "shard-00000.nc").write_bytes(b"abc")
    monkeypatch.chdir(tmp_path)
    v1 = data_version("outputs/simulated")
    assert v1.startswith("md5:") and data_version("outputs/simulated") == v1
    (d / "train" / "shard-00000.nc").write_bytes(b"abd")
    assert data_version("outputs/simulated") != v1
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  simulate:\n    cmd: x\n    outs:\n    - path: outputs/simulated\n"
        "      md5: 0123456789abcdef0123456789abcdef.dir\n      size: 3\n"
    )
    assert data_version("outputs/simulated") == "0123456789abcdef0123456789abcdef.dir"


def test_git_commit_outside_a_repository_is_unknown(tmp_path):
    assert git_commit(tmp_path) == "unknown"
