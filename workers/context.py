"""The Context that actors run handlers with: one per process.

Dramatiq calls actors with the message only, so the dependencies (engine, Stripe gateway,
catalog) come from here. A worker process builds its Context lazily on the first message —
after Dramatiq has forked it, so no database connection is shared across processes. The
one-process fleet (`up`) and tests install theirs with `set_context`.
"""
from __future__ import annotations

import threading

from ..bootstrap import Context

_context: Context | None = None
_lock = threading.Lock()


def get_context() -> Context:
    """The process's Context, built from the environment's settings on first use."""
    global _context
    ctx = _context
    if ctx is not None:
        return ctx
    with _lock:  # several worker threads may take their first message at once
        if _context is None:
            from ..bootstrap import build_context

            _context = build_context()
        return _context


def set_context(ctx: Context | None) -> None:
    """Install `ctx` for every actor of this process (None: build from settings again)."""
    global _context
    with _lock:
        _context = ctx
