"""Atomic writes: a failed or killed writer never leaves a half-written output, and the next write cleans up after
it. Kills are real: a subprocess writes through no2hotspots.atomic and SIGKILLs itself at a chosen rename (its
``os.replace`` is wrapped to do that, the project's code runs unchanged)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from no2hotspots.atomic import atomic_group, atomic_path, remove_stale_temps, write_json


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_directory_is_replaced_as_a_whole(tmp_path):
    target = tmp_path / "dir"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_path(target, is_dir=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir"]
    write_json(tmp_path / "a.json", {"b": 1})
    assert (tmp_path / "a.json").read_text() == '{\n  "b": 1\n}\n'


#: run in a subprocess: replace ``out`` (and, in group mode, ``metrics.json`` and ``plot.csv``) and SIGKILL itself
#: when os.replace is about to rename onto a name containing ``kill_at`` for the ``nth`` time (``never``: finish).
#: Renames of a folder: ``.out.old-<pid>`` (the old one aside), then ``out``; a group first renames its journals
#: into place (``.<name>.commit-<pid>.json``, one per output), then each output as above.
WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from no2hotspots import atomic

    root, mode, kill_at, nth = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    real, seen = os.replace, []

    def replace(src, dst):
        if kill_at in Path(dst).name:
            seen.append(dst)
            if len(seen) == nth:
                os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst)

    os.replace = replace
    if mode == "folder":
        with atomic.atomic_path(root / "out", is_dir=True) as tmp:
            (tmp / "data.txt").write_text("new")
    else:
        with atomic.atomic_group() as g:
            (g.folder(root / "out") / "data.txt").write_text("new")
            g.write_json(root / "metrics" / "metrics.json", {"run": "new"})
            g.write_text(root / "plots" / "plot.csv", "x\\nnew\\n")
    """
)


def _write(root: Path, mode: str, kill_at: str = "never", nth: int = 1) -> int:
    p = subprocess.run([sys.executable, "-c", WRITER, str(root), mode, kill_at, str(nth)], timeout=120)
    return p.returncode


def _old_outputs(root: Path) -> None:
    (root / "out").mkdir(parents=True)
    (root / "out" / "data.txt").write_text("old")
    (root / "metrics").mkdir()
    (root / "metrics" / "metrics.json").write_text('{"run": "old"}')
    (root / "plots").mkdir()
    (root / "plots" / "plot.csv").write_text("x\nold\n")


def _state(root: Path) -> tuple[str, str, str]:
    """(folder, metrics, plot): which run each output is from ("missing" when absent)."""
    folder = (root / "out" / "data.txt").read_text() if (root / "out").exists() else "missing"
    metrics = json.loads((root / "metrics" / "metrics.json").read_text())["run"]
    plot = (root / "plots" / "plot.csv").read_text().split()[-1]
    return folder, metrics, plot


def _hidden(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob(".*"))


def test_kill_between_the_two_renames_of_a_folder_restores_the_old_folder(tmp_path):
    """Killed after the old folder went aside (``.out.old-<pid>``) and before the new one came in: no ``out`` is
    left. The next write of ``out`` (here its clean-up; any atomic write of it runs that first) puts the old folder
    back instead of deleting it with the killed run's temporary folder."""
    _old_outputs(tmp_path)
    assert _write(tmp_path, "folder", kill_at="out", nth=2) == -signal.SIGKILL  # 1st: old aside, 2nd: new in
    assert not (tmp_path / "out").exists()
    assert [h for h in _hidden(tmp_path) if ".old-" in h], _hidden(tmp_path)
    remove_stale_temps(tmp_path / "out")
    assert (tmp_path / "out" / "data.txt").read_text() == "old"
    assert _hidden(tmp_path) == []


def test_kill_while_writing_a_folder_leaves_the_old_one_and_the_next_write_cleans_up(tmp_path):
    _old_outputs(tmp_path)
    assert _write(tmp_path, "folder", kill_at="out", nth=1) == -signal.SIGKILL  # before the old one moved
    assert (tmp_path / "out" / "data.txt").read_text() == "old" and _hidden(tmp_path)
    assert _write(tmp_path, "folder") == 0
    assert (tmp_path / "out" / "data.txt").read_text() == "new" and _hidden(tmp_path) == []


def test_a_group_replaces_folder_and_metrics_together(tmp_path):
    _old_outputs(tmp_path)
    assert _write(tmp_path, "group") == 0
    assert _state(tmp_path) == ("new", "new", "new") and _hidden(tmp_path) == []


@pytest.mark.parametrize(
    "kill_at, nth",
    [
        ("out", 3),  # between the folder's two renames (after its journal and the old one aside): no folder
        ("metrics.json", 2),  # after the folder (1st: its journal): new folder beside old metrics
        ("plot.csv", 2),  # only the plot file still old
    ],
)
def test_a_group_killed_during_its_renames_is_completed_by_the_next_write(tmp_path, kill_at, nth):
    """The inconsistent states a kill leaves mid-commit (new folder, old metrics) are completed from the journals by
    the next write of any of the group's outputs, so no later reader sees them mixed."""
    _old_outputs(tmp_path)
    assert _write(tmp_path, "group", kill_at=kill_at, nth=nth) == -signal.SIGKILL
    mixed = _state(tmp_path) if (tmp_path / "out").exists() else ("missing",)
    assert mixed != ("new", "new", "new")
    remove_stale_temps(tmp_path / "plots" / "plot.csv")  # the first write of any member
    assert _state(tmp_path) == ("new", "new", "new")
    for p in ("out", "metrics/metrics.json"):
        remove_stale_temps(tmp_path / p)
    assert _hidden(tmp_path) == []


def test_a_group_killed_while_writing_its_journals_is_all_old_or_all_new(tmp_path):
    _old_outputs(tmp_path)
    assert _write(tmp_path, "group", kill_at=".commit-", nth=2) == -signal.SIGKILL  # 1 of 3 journals in place
    assert _state(tmp_path) == ("old", "old", "old")
    remove_stale_temps(tmp_path / "out")  # a journal exists only once every new file is complete: completed
    assert _state(tmp_path) == ("new", "new", "new")
    shutil.rmtree(tmp_path)
    _old_outputs(tmp_path)
    assert _write(tmp_path, "group", kill_at=".commit-", nth=1) == -signal.SIGKILL  # no journal yet
    for p in ("out", "metrics/metrics.json", "plots/plot.csv"):
        remove_stale_temps(tmp_path / p)
    assert _state(tmp_path) == ("old", "old", "old") and _hidden(tmp_path) == []


def test_a_group_that_fails_while_staging_changes_nothing(tmp_path):
    """A metrics file that cannot be written (its folder is a file) fails before any output is replaced."""
    _old_outputs(tmp_path)
    (tmp_path / "blocked").write_text("a file where a folder should be")
    with pytest.raises(OSError), atomic_group() as g:
        (g.folder(tmp_path / "out") / "data.txt").write_text("new")
        g.write_json(tmp_path / "blocked" / "metrics.json", {"run": "new"})
    assert _state(tmp_path) == ("old", "old", "old") and _hidden(tmp_path) == []
    with pytest.raises(RuntimeError), atomic_group() as g:
        (g.folder(tmp_path / "out") / "data.txt").write_text("new")
        g.write_json(tmp_path / "metrics" / "metrics.json", {"run": "new"})
        raise RuntimeError("boom")
    assert _state(tmp_path) == ("old", "old", "old") and _hidden(tmp_path) == []
