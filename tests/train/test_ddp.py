"""Training under torchrun (DistributedDataParallel, gloo on CPU) against the single-process run; a killed rank and
the resume after it; the rank slicing of the training stream.

The torchrun tests start real processes (``python -m torch.distributed.run --standalone``: the rendezvous takes a
free port) in a session of their own and kill every process they started, also when an assertion fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from no2hotspots.config import compose, params_yaml_text
from no2hotspots.errors import ConfigError
from no2hotspots.train.data import ShardStream, split_shards
from no2hotspots.train.run import run

from .conftest import tiny_overrides

#: what the single-process and the 2-process runs share: global batch 16 (8 per rank), 3 epochs, no model logging
COMMON = ("train.epochs=3", "train.batch_size=16", "train.log_model=false")


def _params(tmp_path: Path, name: str, sim: Path, *extra: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(params_yaml_text(compose(tiny_overrides(tmp_path / name, sim, *COMMON, *extra))))
    return path


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "OMP_NUM_THREADS")}
    return {**env, "NO2HOTSPOTS_PROGRESS": "0", "MLFLOW_DISABLE_TELEMETRY": "true"}


def _torchrun(params: Path, log: Path, *overrides: str, nproc: int = 2) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    cmd += ["-m", "no2hotspots", "train", "--params", str(params), *overrides]
    with open(log, "wb") as f:
        return subprocess.Popen(cmd, env=_env(), stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def _descendants(pid: int) -> list[int]:
    """Processes below ``pid`` (torchrun starts each rank in a session of its own, so a process group misses them)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _rank_pid(launcher: int, rank: int) -> int | None:
    for pid in _descendants(launcher):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and b"TORCHELASTIC_RUN_ID" in b" ".join(env):
            return pid
    return None


def _finish(proc: subprocess.Popen, timeout: float) -> int:
    """Wait for the launcher; on timeout (or any failure of the test) kill it and every rank."""
    try:
        return proc.wait(timeout=timeout)
    finally:
        _kill_all(proc)


def _kill_all(proc: subprocess.Popen) -> None:
    for pid in [*_descendants(proc.pid), proc.pid]:  # the ranks first: once the launcher is gone, so is their link
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)


def _runs(mlruns: Path):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{mlruns}/mlflow.db")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    return client, runs


def test_rank_slices_make_up_the_single_process_batches(tiny_sim):
    """Each global batch = rank 0's slice + rank 1's slice, in the single-process order; every scene once per epoch;
    the order depends on (seed, epoch) only."""
    shards = split_shards(tiny_sim, "train")

    def ids(stream, epoch):  # one pixel identifies a scene
        return [b.no2.reshape(len(b.no2), -1)[:, 2000].copy() for b in stream.batches(epoch)]

    whole = ShardStream(shards, 16, shuffle=True, seed=5, drop_last=True)
    parts = [ShardStream(shards, 16, shuffle=True, seed=5, drop_last=True, rank=r, world=2) for r in (0, 1)]
    for epoch in (0, 1):
        ref = ids(whole, epoch)
        r0, r1 = ids(parts[0], epoch), ids(parts[1], epoch)
        assert len(r0) == len(r1) == len(ref) == parts[0].n_batches() == 4
        for g, a, b in zip(ref, r0, r1):
            assert len(a) == len(b) == 8
            np.testing.assert_array_equal(np.concatenate([a, b]), g)
        seen = np.concatenate(r0 + r1)
        assert len(np.unique(seen)) == 64  # every training scene once across the ranks
    assert not np.array_equal(np.concatenate(ids(parts[0], 0)), np.concatenate(ids(parts[0], 1)))
    with pytest.raises(ValueError, match="divisible"):
        ShardStream(shards, 15, shuffle=True, drop_last=True, rank=0, world=2)


BN_SCRIPT = """
import sys, torch, torch.distributed as dist
from no2hotspots.train.distributed import global_batchnorm
dist.init_process_group("gloo")
r, k = dist.get_rank(), dist.get_world_size()
torch.manual_seed(0)
x, w = torch.randn(8, 3, 5, 5) * 2 + 1, torch.randn(8, 3, 5, 5)
bn = torch.nn.BatchNorm2d(3)
torch.nn.init.uniform_(bn.weight, 0.5, 1.5), torch.nn.init.uniform_(bn.bias, -1, 1)
net = global_batchnorm(torch.nn.Sequential(bn))
sl = slice(r * 8 // k, (r + 1) * 8 // k)
xr = x[sl].clone().requires_grad_()
y = net(xr)
(y * w[sl]).sum().backward()
grads = [p.grad for p in net.parameters()]
for g in grads:
    dist.all_reduce(g)
kind = type(net[0]).__name__
torch.save({"y": y.detach(), "xgrad": xr.grad, "grads": grads, "state": net.state_dict(), "type": kind},
           f"{sys.argv[1]}/rank{r}.pt")
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_global_batchnorm_over_two_ranks_equals_one_batch(tmp_path):
    """GlobalBatchNorm2d on 2 ranks x 4 scenes gives the outputs, input and parameter gradients (summed over the
    ranks) and running statistics of a BatchNorm2d on the 8 scenes at once."""
    script = tmp_path / "bn.py"
    script.write_text(BN_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    log = tmp_path / "bn.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen([*cmd, str(tmp_path)], env=_env(), stdout=f, stderr=subprocess.STDOUT)
    assert _finish(proc, 300) == 0, log.read_text()[-3000:]
    torch.manual_seed(0)
    x, w = torch.randn(8, 3, 5, 5) * 2 + 1, torch.randn(8, 3, 5, 5)
    bn = torch.nn.BatchNorm2d(3)
    torch.nn.init.uniform_(bn.weight, 0.5, 1.5), torch.nn.init.uniform_(bn.bias, -1, 1)
    x.requires_grad_()
    y = bn(x)
    (y * w).sum().backward()
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["type"] == "GlobalBatchNorm2d"
    tol = {"atol": 1e-5, "rtol": 1e-5}
    torch.testing.assert_close(torch.cat([r["y"] for r in ranks]), y.detach(), **tol)
    torch.testing.assert_close(torch.cat([r["xgrad"] for r in ranks]), x.grad, **tol)
    for r in ranks:
        torch.testing.assert_close(r["grads"], [bn.weight.grad, bn.bias.grad], **tol)
        for key, value in bn.state_dict().items():
            torch.testing.assert_close(r["state"]["0." + key], value, **tol)


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.distributed.backend=nccl", "train.distributed.backend"),  # nccl on CPU
        ("train.distributed.threads_per_rank=0", "train.distributed.threads_per_rank"),
        ("train.device=tpu", "train.device"),
    ],
)
def test_bad_distributed_config_names_the_key(tmp_path, tiny_sim, override, key):
    with pytest.raises(ConfigError) as e:
        run(compose(tiny_overrides(tmp_path, tiny_sim, override)))
    assert str(e.value).startswith(f"config {key}:") and "\n" not in str(e.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_cuda_without_a_gpu_is_one_line(tmp_path, tiny_sim):
    with pytest.raises(ConfigError) as e:
        run(compose(tiny_overrides(tmp_path, tiny_sim, "train.device=cuda")))
    assert str(e.value).startswith("config train.device: cuda is not available") and "\n" not in str(e.value)


@pytest.mark.slow
def test_two_ranks_match_one_process_and_only_rank_0_tracks(tmp_path, tiny_sim):
    """torchrun --nproc_per_node=2 (8 scenes per rank) and one process (16) with the same global batch of 16 end
    with the same validation loss: the issue asks for 2 %; with BatchNorm, dropout and the Tversky term over the
    global batch (train.distributed.global_batch) they agree to float rounding (measured: < 2e-7 relative for
    seeds 42, 7, 11; per-rank statistics instead differed by 0.06 %, 0.6 %, 1.9 %). Rank 0 alone logged, one
    MLflow run."""
    run(compose(tiny_overrides(tmp_path / "one", tiny_sim, *COMMON)))
    one = pd.read_csv(tmp_path / "one/plots/train/learning_curve.csv")

    proc = _torchrun(_params(tmp_path, "two", tiny_sim), tmp_path / "two.log")
    rc = _finish(proc, timeout=600)
    log = (tmp_path / "two.log").read_text()
    assert rc == 0, log[-3000:]
    two = pd.read_csv(tmp_path / "two/plots/train/learning_curve.csv")
    assert list(two.epoch) == list(one.epoch) == [0, 1, 2]
    rel = abs(two.val_loss.iloc[-1] - one.val_loss.iloc[-1]) / one.val_loss.iloc[-1]
    assert rel < 1e-3, (one.val_loss.tolist(), two.val_loss.tolist())  # tolerance: kernels differ by batch size
    np.testing.assert_allclose(two.train_loss, one.train_loss, rtol=1e-3)  # the global batch's loss, as one process
    assert two.val_loss.iloc[-1] < two.val_loss.iloc[0]  # it learns
    assert "rank 0 of 2: gloo on cpu, 1 torch threads" in log and "rank 1 of 2: gloo on cpu" in log

    info = json.loads((tmp_path / "two/outputs/train/run.json").read_text())
    client, runs = _runs(tmp_path / "two/mlruns")
    assert [r.info.run_id for r in runs] == [info["run_id"]]  # one run: rank 1 never touched the store
    assert [m.step for m in client.get_metric_history(info["run_id"], "train/loss")] == [0, 1, 2]
    assert runs[0].data.params["data.n_train"] == "64" and runs[0].info.status == "FINISHED"
    assert (tmp_path / "two/outputs/train/model/state_dict.pt").exists()


@pytest.mark.slow
def test_kill_one_rank_then_resume(tmp_path, tiny_sim):
    """kill -9 of rank 1 after the first epoch's checkpoint: the job fails, rank 0 says in one line what happened
    and how to go on; the rerun with train.resume=true continues the same MLflow run and produces the model.

    The cut run's gloo timeout is below torchrun's 30 s SIGTERM grace: a rank 0 blocked in a collective that has not
    seen the peer's socket close cannot run its SIGTERM handler and is killed before its line (the likely cause of
    one failure on an overloaded box, 2026-12-06: no line, SIGKILL 30 s after SIGTERM); the timeout ends the wait
    first. The resumed run keeps the default (its rank 1 may wait while rank 0 logs the model)."""
    params = _params(tmp_path, "job", tiny_sim, "train.epochs=4")
    last = tmp_path / "job/outputs/train/checkpoints/last.pt"
    proc = _torchrun(params, tmp_path / "cut.log", "train.distributed.timeout_s=20")
    try:
        deadline = time.monotonic() + 400
        while not last.exists():
            assert proc.poll() is None, (tmp_path / "cut.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.02)
        victim = _rank_pid(proc.pid, 1)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        rc = proc.wait(timeout=120)
    finally:
        _kill_all(proc)
    log = (tmp_path / "cut.log").read_text()
    assert rc != 0
    cut_epoch = torch.load(last, weights_only=True)["epoch"]
    assert cut_epoch < 3, "the job finished before it could be killed"
    assert not (tmp_path / "job/outputs/train/model").exists()
    errors = [ln for ln in log.splitlines() if ln.startswith("no2hotspots train: error: rank 0 of 2:")]
    assert len(errors) == 1 and "train.resume=true" in errors[0], log[-3000:]

    rc = _finish(_torchrun(params, tmp_path / "resume.log", "train.resume=true"), timeout=600)
    assert rc == 0, (tmp_path / "resume.log").read_text()[-3000:]
    assert f"resuming from {last} after epoch {cut_epoch + 1}" in (tmp_path / "resume.log").read_text()
    assert (tmp_path / "job/outputs/train/model/state_dict.pt").exists()
    hist = torch.load(last, weights_only=True)["history"]
    assert [h["epoch"] for h in hist] == [0, 1, 2, 3]
    client, runs = _runs(tmp_path / "job/mlruns")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(runs[0].info.run_id, "train/loss")]
    assert sorted(set(steps)) == [0, 1, 2, 3]
