"""Dask worker plugins of :mod:`no2hotspots.parallel` (a module of their own: it imports ``distributed``, which the
stages that never start a cluster need not load)."""

from __future__ import annotations

from distributed.diagnostics.plugin import WorkerPlugin


class IgnoreSigint(WorkerPlugin):
    """The worker ignores SIGINT. The workers a LocalCluster starts inherit that from
    ``parallel._workers_ignore_sigint``; one its nanny restarts later (a worker past its memory limit,
    ``client.restart``) is spawned outside that window and installs asyncio's handler (measured: after
    ``client.restart()`` both workers' SIGINT handler was asyncio's ``Runner._on_sigint``), so a Ctrl-C would print
    its tracebacks again. A registered plugin runs on every worker, present and restarted, in its main thread."""

    name = "no2hotspots-ignore-sigint"

    def setup(self, worker) -> None:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
