"""Stopping on SIGTERM (or SIGINT) within the grace period, in every state.

Each long-running role loops until a `threading.Event` is set, and the first signal sets it.
That is enough while the role waits on the event, but not while it is blocked inside a
dependency that stopped answering (a black-holed Redis, RabbitMQ or PostgreSQL keeps a read
waiting with no timeout of its own): so the first signal also starts a timer, and a role still
running `BILLING_SHUTDOWN_GRACE_S` later exits at once. Nothing is lost by that exit: unacked
messages are redelivered and uncommitted transactions roll back. A second signal exits at once.
Keep the grace below the orchestrator's (Docker's default is 10 s) so the exit is ours, not a
SIGKILL.

`die_with_parent` is for processes a role starts for itself (Dramatiq's CLI and its worker
processes, in a process group of their own): when the role is SIGKILLed, which no handler can
hear, they are killed too, instead of consuming on with nobody to stop them.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

import structlog

log = structlog.get_logger(__name__)

FORCED_EXIT_CODE = 1
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


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


def die_with_parent(parent_pid: int | None = None) -> bool:
    """Have the kernel SIGKILL this process when its parent ends (Linux `PR_SET_PDEATHSIG`);
    False where that is not available. Call first thing in the child. A parent that died before
    the call is noticed only when the caller knows its pid (`parent_pid`): then this process
    exits at once. Caveat: "parent" is the thread that started this process, so start children
    from a thread that lives as long as the parent (the main thread)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
    if armed and parent_pid is not None and os.getppid() != parent_pid:
        os._exit(FORCED_EXIT_CODE)  # orphaned already, before the kernel was asked
    return armed
