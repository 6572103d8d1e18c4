"""`/metrics` over HTTP for the processes that have no ingress: worker, bridge, relay, scheduler,
with `/healthz` (the process serves HTTP) and `/readyz` (its dependencies answer: 200 or 503,
from the `ready` callable the role passes, workers/readiness.py) on the same port, so probes
ask every role the same question the ingress answers on its own port.

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
import json
import os
import re
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

# () -> (ready, {dependency: state}); None = ready whenever the process serves HTTP.
Readiness = Callable[[], tuple[bool, dict[str, str]]]

# gauge_livemax_1234.db, gauge_liveall_1234.db, … : the per-process files of "live" gauges.
_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def serve_this_process(port: int, host: str, ready: Readiness | None = None) -> None:
    """Serve this process's metrics on http://host:port/metrics (a daemon thread).

    Raises OSError when the port cannot be bound, before the caller starts its work."""
    _serve(port, host, REGISTRY, ready)


def serve_worker_processes(port: int, host: str, multiproc_dir: str, ready: Readiness | None = None) -> None:
    """Serve the metrics that the processes using `multiproc_dir` wrote, summed, on host:port."""
    registry = CollectorRegistry()
    registry.register(LiveProcessesCollector(multiproc_dir))
    _serve(port, host, registry, ready)


def _serve(port: int, host: str, registry: CollectorRegistry, ready: Readiness | None) -> None:
    server = make_server(host, port, _probes_and_metrics(make_wsgi_app(registry), ready),
                         server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()


def _probes_and_metrics(metrics_app: Callable, ready: Readiness | None) -> Callable:
    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            return _json(start_response, 200, {"status": "ok"})
        if path == "/readyz":
            is_ready, checks = ready() if ready is not None else (True, {})
            return _json(start_response, 200 if is_ready else 503, {"ready": is_ready, "checks": checks})
        return metrics_app(environ, start_response)

    return app


def _json(start_response: Callable, status: int, body: dict) -> list[bytes]:
    payload = json.dumps(body).encode()
    reason = "OK" if status == 200 else "Service Unavailable"
    start_response(f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow scrape never holds the process at exit


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Probes every few seconds are not worth a log line each (and these are not JSON)."""


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
