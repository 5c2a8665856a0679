"""A tiny but real copy of the whole pipeline: the repository's files in a temp git repo, the embedded default
inputs, conf/ shrunk to a few hundred scenes and two OSSE days, then a real `dvc repro` of every stage."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

#: conf/<group>/<file>.yaml -> keys to shrink (dotted) for the tiny pipeline
TINY = {
    "simulate/demo.yaml": {
        "n_scenes": 300,
        "shard_size": 100,
        "workers": 2,
        "pairs.n_per_separation": 5,
        "paper_world.n_scenes": 50,
    },
    "train/demo.yaml": {"epochs": 2},
    "osse/demo.yaml": {"dates.days": 2, "region.bbox": [111.0, 37.5, 113.0, 39.5], "changes": []},
    # two days hold <= 3 overpasses: every cell would be "unobserved" at the year's 10 and Table 2 empty (null)
    "evaluate/default.yaml": {"collections.osse.min_observations": 1},
}


def run(cmd, cwd, env=None, check=True, timeout=900):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def tiny_env(repo: Path) -> dict:
    venv_bin = Path(sys.executable).parent
    return dict(
        os.environ,
        PATH=f"{venv_bin}{os.pathsep}{os.environ['PATH']}",
        DVC_NO_ANALYTICS="1",
        MLFLOW_DISABLE_TELEMETRY="true",
        NO2HOTSPOTS_PROGRESS="0",
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.org",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.org",
    )


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory, repo_root, ddeq_data) -> Path:
    """A git+DVC copy of the repository with shrunk conf/, data/ filled, and `dvc repro` run through every stage."""
    repo = tmp_path_factory.mktemp("tiny") / "repo"
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for f in filter(None, files):
        src = repo_root / f
        if src.is_file() and not f.startswith(("tests/", "benchmarks/", "docs/")):
            (repo / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / f)
    shutil.copytree(ddeq_data, repo / "data")
    for rel, keys in TINY.items():
        path = repo / "conf" / rel
        cfg = OmegaConf.load(path)
        for k, v in keys.items():
            OmegaConf.update(cfg, k, v, merge=False)
        path.write_text(OmegaConf.to_yaml(cfg))
    env = tiny_env(repo)
    code = (
        "from no2hotspots.config import compose, params_yaml_text; "
        "open('params.yaml','w').write(params_yaml_text(compose(config_dir='conf')))"
    )
    run([sys.executable, "-c", code], repo, env)
    run(["git", "init", "-q"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "tiny copy"], repo, env)
    # what `make data` does after the fetch: cache data/ - the committed data.dvc must stay byte-identical
    run(["dvc", "add", "-q", "data"], repo, env)
    run(["git", "diff", "--exit-code", "data.dvc"], repo, env)
    assert "up to date" in run(["dvc", "status", "data.dvc"], repo, env).stdout
    run(["dvc", "repro"], repo, env)
    # as a user commits a pipeline's results: dvc.lock, metrics/ and plots/ (git-tracked, not DVC-cached)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "results"], repo, env)
    return repo


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_repo) -> dict:
    """The tiny pipeline's MLflow store with a second training run (another learning rate) registered after it."""
    env = tiny_env(tiny_repo)
    first = json.loads((tiny_repo / "outputs/train/run.json").read_text())
    # the second run writes beside the DVC outputs (scratch/), so the pipeline's workspace stays as dvc.lock says
    scratch = tiny_repo / "scratch"
    # the CLI composes the installed package's conf/, not the tiny copy's: the tiny epochs are passed again
    keep_outputs = [
        f"train.epochs={TINY['train/demo.yaml']['epochs']}",
        f"train.out_dir={scratch}/train",
        f"paths.metrics={scratch}/metrics",
        f"paths.plots={scratch}/plots",
        f"score.out_dir={scratch}/score",
        f"register.out_dir={scratch}/register",
    ]
    for stage in ("train", "score", "register"):
        run([sys.executable, "-m", "no2hotspots", stage, "train.lr=0.003", *keep_outputs], tiny_repo, env)
    second = json.loads((scratch / "train" / "run.json").read_text())
    params = OmegaConf.load(tiny_repo / "params.yaml")
    import mlflow

    uri = f"sqlite:///{tiny_repo / 'mlruns' / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    ids = [first["run_id"], second["run_id"]]
    runs = [client.get_run(i) for i in ids]
    table1 = [
        {k: v for k, v in r.data.metrics.items() if k.startswith("score/test/mark/every/pixel_recall_")} for r in runs
    ]
    return {
        "table1": table1,
        "repo": tiny_repo,
        "tracking_uri": uri,
        "artifact_root": str(tiny_repo / "mlruns" / "artifacts"),
        "experiment_id": runs[0].info.experiment_id,
        "run_ids": ids,
        "run_names": [r.info.run_name for r in runs],
        "model_name": params.register.model_name,
    }
