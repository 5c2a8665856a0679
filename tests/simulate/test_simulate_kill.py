"""kill -9 during ``python -m no2hotspots simulate``, then run it again: the same files as a run that was never
interrupted, the earlier good output untouched until the new one is complete, no temporary or partial file left,
and no shard the killed run finished simulated again (shards are units in ``<paths.outputs>/.units/simulate``).

The killed run is a real subprocess (2 worker processes) killed with SIGKILL on its whole process group once a few
shards are finished; the rerun is the same command. The uninterrupted reference runs in another folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from no2hotspots.config import compose
from no2hotspots.simulate.run import plan_shards, run, unit_hashes
from no2hotspots.simulate.settings import from_config

pytestmark = pytest.mark.slow  # two CLI subprocesses (~5 s of imports each) and two small runs in process

#: 320 + 8 + 32 scenes in 24 shards of 16 (train, val, test, pairs, paper_world): long enough to be killed mid-way
TINY = [
    "simulate.n_scenes=320",
    "simulate.shard_size=16",
    "simulate.pairs.n_per_separation=2",
    "simulate.pairs.separations_px=[1,2,4,8]",
    "simulate.paper_world.n_scenes=32",
]
#: a modification time no freshly written shard has (2001-09-09): marks the killed run's finished shards
SENTINEL_NS = 1_000_000_000 * 10**9


def _overrides(ddeq_data: Path, outputs: Path, *extra: str) -> list[str]:
    return [f"paths.data={ddeq_data}", f"paths.outputs={outputs}", *TINY, *extra]


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _finished_shards(outputs: Path, hashes: dict[str, str]) -> list[Path]:
    """The shard files of the units finished so far for the plan whose unit hashes are ``hashes`` (a unit is
    finished once its marker holds its hash; the earlier run's units of other settings do not count; partial files
    are hidden ``.<name>.tmp-*`` files while they are written)."""
    units = outputs / ".units" / "simulate"
    out = []
    for key, unit_hash in hashes.items():
        try:
            done = json.loads((units / f"{key}.done.json").read_text())
        except (OSError, ValueError):  # not there, or being replaced right now
            continue
        if done.get("unit_hash") == unit_hash:
            out += [units / f for f in done["files"]]
    return out


def _leftovers(outputs: Path) -> list[str]:
    """Temporary files or folders (atomic writes in progress: ``.<name>.tmp-<pid>-*``, ``.<name>.old-<pid>``)."""
    temps = [p for p in outputs.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name]
    return sorted(p.relative_to(outputs).as_posix() for p in temps)


@pytest.fixture(scope="module")
def killed_and_rerun(ddeq_data, tmp_path_factory):
    """Reference run; a killed run over an earlier good output; the rerun. Returns what each step left."""
    root = tmp_path_factory.mktemp("simkill")
    ref, cut = root / "ref", root / "cut"
    run(compose(_overrides(ddeq_data, ref, "simulate.workers=1")))
    # an earlier good output (another seed) that the killed run must leave as it was
    run(compose(_overrides(ddeq_data, cut, "seed=7", "simulate.n_scenes=32", "simulate.pairs.n_per_separation=0")))
    earlier = _digests(cut / "simulated")
    st = from_config(compose(_overrides(ddeq_data, cut)))
    hashes = unit_hashes(st, plan_shards(st))
    n_shards = len(hashes)

    cmd = [sys.executable, "-m", "no2hotspots", "simulate", *_overrides(ddeq_data, cut, "simulate.workers=2")]
    env = {**os.environ, "NO2HOTSPOTS_PROGRESS": "0", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while len(_finished_shards(cut, hashes)) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)  # the main process and its worker processes
    finally:
        proc.wait()
    stderr = proc.stderr.read().decode()
    after_kill = {
        "returncode": proc.returncode,
        "stderr": stderr[-2000:],
        "finished": len(_finished_shards(cut, hashes)),
        "published": _digests(cut / "simulated"),
        "temps": _leftovers(cut),
    }
    for p in _finished_shards(cut, hashes):  # marks them: a rerun that reuses a shard keeps this modification time
        os.utime(p, ns=(SENTINEL_NS, SENTINEL_NS))

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    return {
        "n_shards": n_shards,
        "ref": _digests(ref / "simulated"),
        "earlier": earlier,
        "after_kill": after_kill,
        "rerun_rc": rerun.returncode,
        "rerun_stderr": rerun.stderr[-2000:],
        "rerun": _digests(cut / "simulated"),
        "rerun_temps": _leftovers(cut),
        "reused": sorted(
            p.relative_to(cut).as_posix()
            for p in (cut / "simulated").rglob("shard-*.nc")
            if p.stat().st_mtime_ns == SENTINEL_NS
        ),
    }


def test_sigkill_leaves_the_earlier_output_and_rerun_gives_identical_files(killed_and_rerun):
    r = killed_and_rerun
    k = r["after_kill"]
    assert k["returncode"] == -signal.SIGKILL, k["stderr"]
    assert 3 <= k["finished"] < r["n_shards"], "the run finished before it could be killed"
    assert k["published"] == r["earlier"]  # the earlier good output is byte-identical until the new one is complete

    assert r["rerun_rc"] == 0, r["rerun_stderr"]
    assert len(r["ref"]) == 1 + r["n_shards"] > 20  # manifest + shards
    assert r["rerun"] == r["ref"]  # every file, checksum for checksum
    assert r["rerun_temps"] == []  # the killed run's temporary folder (and partial shards in it) are gone


def test_rerun_after_sigkill_does_not_simulate_a_finished_shard_again(killed_and_rerun):
    r = killed_and_rerun
    assert r["rerun"] == r["ref"]
    assert len(r["reused"]) == r["after_kill"]["finished"], r["rerun_stderr"]
