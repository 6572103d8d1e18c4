"""Running the actors: `billing-sync worker` (Dramatiq's CLI) and in-process workers.

`billing-sync worker --processes N --threads M` runs Dramatiq's own CLI in a child process
(`workers/dramatiq_main.py`, which keeps every line of it, and of its worker processes, JSON):
it forks N worker processes of M threads, restarts nothing silently (if one dies the others
stop and the command exits non-zero, for the supervisor to restart), and on SIGTERM lets
in-flight messages finish for up to `SHUTDOWN_TIMEOUT_MS` (processes still running a few
seconds after that, blocked on a dead broker, are killed). Each worker process calls `boot()`,
which builds the broker from the environment and declares the actors; their bus (database,
Stripe gateway) is built on the first message, after the fork. With `--metrics-port`, the
command serves the worker processes' metrics, summed, from this parent process
(prometheus_client multiprocess mode over a fresh temporary directory, removed on exit; see
`config/metrics_http.py`).

`InProcessWorkers` runs a `dramatiq.Worker` inside the current process: `billing-sync up`
(whose in-process stub broker no other process can reach) and tests use it.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import weakref

import dramatiq
import structlog

from ..config.logging import resolve_format
from ..config.settings import get_settings

SHUTDOWN_TIMEOUT_MS = 30_000
# After SIGTERM and the shutdown timeout, processes still blocked on a dead broker are killed.
SHUTDOWN_BACKSTOP_MARGIN_S = 5.0
# How long an idle consumer waits between polls (Dramatiq's default: 1 s). Lower means a
# webhook is picked up sooner on Redis, at the price of a few more cheap Redis calls.
IDLE_POLL_MS = 250
# Brokers whose `process_boot` was emitted in this process (InProcessWorkers.start, once each).
_BOOTED: weakref.WeakSet[dramatiq.Broker] = weakref.WeakSet()

log = structlog.get_logger(__name__)


def boot() -> None:
    """Entry point for each Dramatiq worker process (`dramatiq billing_sync.workers.worker:boot`).

    Dies with Dramatiq's main process (`die_with_parent`), which dies with `billing-sync worker`:
    a SIGKILLed worker role leaves no process consuming behind it. Configures logging again: this
    process's `sys.stderr` is now Dramatiq's pipe to its parent."""
    from ..config.logging import configure_logging
    from .broker import make_broker
    from .shutdown import die_with_parent

    parent = multiprocessing.parent_process()  # Dramatiq's main process
    die_with_parent(parent.pid if parent is not None else None)
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    make_broker(settings)


def _kill_group_later(child: subprocess.Popen, after_s: float) -> None:
    """The worker's grace period is the shutdown timeout (in-flight messages finish); workers
    still running after it plus a margin (blocked on a dead broker) are killed, messages and all:
    unacked messages are redelivered."""

    def kill() -> None:
        if child.poll() is None:
            log.warning("worker.shutdown_forced", after_s=after_s)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)

    timer = threading.Timer(after_s, kill)
    timer.daemon = True
    timer.start()


def _verify_stripe_account(settings) -> None:
    """Check (or pin) the Stripe account once, in the parent, before any process takes work."""
    from ..bootstrap import bootstrap
    from ..handlers.account_pin import verify_account_if_reachable

    bus = bootstrap(settings)
    try:
        bus.call(verify_account_if_reachable)
    finally:
        if bus.engine is not None:
            bus.engine.dispose()


def run_worker(processes: int, threads: int, *, metrics_port: int | None = None,
               metrics_host: str = "0.0.0.0") -> int:
    """`billing-sync worker`: returns the exit code of Dramatiq's CLI."""
    settings = get_settings()
    if settings.embedded_broker:
        print(
            "billing-sync worker needs a shared broker: set BILLING_BROKER_URL to redis://… or amqp://…\n"
            "(the embedded broker lives inside one process; `billing-sync up` runs its workers in-process)",
            file=sys.stderr,
        )
        return 2
    _verify_stripe_account(settings)
    command = [
        sys.executable, "-m", f"{__package__}.dramatiq_main", f"{__name__}:boot", "--skip-logging",
        "--processes", str(processes), "--threads", str(threads),
        "--worker-shutdown-timeout", str(SHUTDOWN_TIMEOUT_MS),
    ]
    # Dramatiq reads this variable by its lowercase name.
    idle_poll = os.environ.get("dramatiq_worker_timeout", str(IDLE_POLL_MS))  # noqa: SIM112
    env = {**os.environ, "dramatiq_worker_timeout": idle_poll,
           # `auto` decided here, on this terminal: the worker processes only see Dramatiq's pipe.
           "BILLING_LOG_FORMAT": resolve_format(settings.log_format)}
    metrics_dir = None
    if metrics_port is not None:
        # Set for the children only, so prometheus_client is in multiprocess mode from their
        # first import on; fresh per run, since files left by an earlier run would be summed in.
        metrics_dir = tempfile.mkdtemp(prefix="billing-sync-metrics-")
        env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        if metrics_port is not None and metrics_dir is not None:
            from ..config.metrics_http import serve_worker_processes
            from .readiness import role_readiness

            try:
                serve_worker_processes(metrics_port, metrics_host, metrics_dir, role_readiness(settings))
            except OSError as exc:
                print(f"billing-sync worker: cannot serve metrics on {metrics_host}:{metrics_port}: {exc}",
                      file=sys.stderr)
                return 2
        # Its own process group, so that the backstop below reaches Dramatiq's worker processes too.
        child = subprocess.Popen(command, env=env, process_group=0)

        def forward(signum, _frame):
            child.send_signal(signum)
            if signum != signal.SIGHUP:
                _kill_group_later(child, SHUTDOWN_TIMEOUT_MS / 1000 + SHUTDOWN_BACKSTOP_MARGIN_S)

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, forward)
        return child.wait()
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


class InProcessWorkers:
    """A `dramatiq.Worker` with `threads` threads on `broker`, in this process."""

    def __init__(self, broker: dramatiq.Broker, threads: int = 4, *, idle_poll_ms: int = 100,
                 queues: set[str] | None = None):
        self.broker = broker
        self.worker = dramatiq.Worker(broker, queues=queues, worker_threads=threads, worker_timeout=idle_poll_ms)

    def start(self) -> InProcessWorkers:
        if self.broker not in _BOOTED:  # once per broker: starts TimeLimit's monitor
            _BOOTED.add(self.broker)
            self.broker.emit_after("process_boot")
        self.worker.start()
        return self

    def stop(self, timeout_ms: int = 10_000) -> None:
        self.worker.stop(timeout=timeout_ms)

    def join(self) -> None:
        """Wait until every queue is empty and every message processed (tests)."""
        self.worker.join()

    def __enter__(self) -> InProcessWorkers:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
