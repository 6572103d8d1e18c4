"""`/metrics` over HTTP for the processes that have no ingress: worker, bridge, relay, scheduler.

Off unless a port is given (`--metrics-port` or `BILLING_METRICS_PORT`). Two shapes:

- **One process** (bridge, relay, scheduler): `serve_this_process` serves the process's default
  registry — `config/metrics.py` plus the bridge's counter and Python's process metrics — from
  prometheus_client's own HTTP server thread.
- **Dramatiq's worker processes** (`billing-sync worker`): the actors run in N forked processes,
  each with its own counters. prometheus_client's multiprocess mode has each of them write its
  values to files in `PROMETHEUS_MULTIPROC_DIR`; the `billing-sync worker` parent, which sets
  that directory (a fresh one per run) before it starts Dramatiq, serves the sum over the files
  (`serve_worker_processes`). Counters and histograms add up; the gauge says how it aggregates
  (`multiprocess_mode` in `config/metrics.py`). A worker that has exited keeps its counts (they
  happened), but its "live" gauges are dropped at the next scrape.
"""
from __future__ import annotations

import glob
import os
import re

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

# gauge_livemax_1234.db, gauge_liveall_1234.db, … : the per-process files of "live" gauges.
_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def serve_this_process(port: int, host: str) -> None:
    """Serve this process's metrics on http://host:port/metrics (a daemon thread).

    Raises OSError when the port cannot be bound, before the caller starts its work."""
    start_http_server(port, addr=host, registry=REGISTRY)


def serve_worker_processes(port: int, host: str, multiproc_dir: str) -> None:
    """Serve the metrics that the processes using `multiproc_dir` wrote, summed, on host:port."""
    registry = CollectorRegistry()
    registry.register(LiveProcessesCollector(multiproc_dir))
    start_http_server(port, addr=host, registry=registry)


class LiveProcessesCollector:
    """MultiProcessCollector that first forgets the live gauges of processes that have exited.

    Dramatiq starts and restarts its worker processes itself (a SIGHUP reload gives them new
    pids), so the parent cannot call `mark_process_dead` when one exits; checking the pids
    behind the live-gauge files at scrape time covers clean exits and kills alike.
    """

    def __init__(self, path: str):
        self.path = path
        self._collector = MultiProcessCollector(None, path=path)

    def collect(self):
        for pid in _pids_with_live_gauges(self.path):
            if not _alive(pid):
                mark_process_dead(pid, self.path)
        return self._collector.collect()


def _pids_with_live_gauges(path: str) -> set[int]:
    pids = set()
    for name in glob.glob(os.path.join(path, "gauge_live*.db")):
        match = _LIVE_GAUGE_FILE.search(name)
        if match:
            pids.add(int(match.group(1)))
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
