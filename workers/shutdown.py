"""Stopping on SIGTERM (or SIGINT) within the grace period, in every state.

Each long-running role loops until a `threading.Event` is set, and the first signal sets it.
That is enough while the role waits on the event, but not while it is blocked inside a
dependency that stopped answering (a black-holed Redis, RabbitMQ or PostgreSQL keeps a read
waiting with no timeout of its own): so the first signal also starts a timer, and a role still
running `BILLING_SHUTDOWN_GRACE_S` later exits at once. Nothing is lost by that exit: unacked
messages are redelivered and uncommitted transactions roll back. A second signal exits at once.
Keep the grace below the orchestrator's (Docker's default is 10 s) so the exit is ours, not a
SIGKILL.
"""
from __future__ import annotations

import os
import signal
import sys
import threading

import structlog

log = structlog.get_logger(__name__)

FORCED_EXIT_CODE = 1


def stop_on_signals(stop: threading.Event, grace_s: float) -> threading.Event:
    """Install SIGTERM/SIGINT handlers that set `stop`, with the forced exit as a backstop.
    Call from the main thread, first thing, so a signal during start-up is heard too."""

    def on_signal(signum, _frame) -> None:
        if stop.is_set():  # asked twice: the operator means it
            _exit_now(signum, "second signal")
        stop.set()
        log.info("shutdown.requested", signal=signal.Signals(signum).name, grace_s=grace_s)
        timer = threading.Timer(grace_s, _exit_now, args=(signum, "grace period over"))
        timer.daemon = True
        timer.start()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    return stop


def _exit_now(signum: int, why: str) -> None:
    try:
        log.warning("shutdown.forced", signal=signal.Signals(signum).name, why=why)
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(FORCED_EXIT_CODE)
