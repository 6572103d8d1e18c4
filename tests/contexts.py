"""Building Contexts for handler tests: a controllable clock and a Context over a given engine.

Used by unit tests (with fakes.FakeGateway and SQLite) and integration tests (PostgreSQL).
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Callable

from billing_sync.bootstrap import Context
from billing_sync.config.catalog import load_catalog
from billing_sync.config.settings import DEFAULT_CATALOG
from billing_sync.models import UnitOfWork, make_session_factory

START = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)


class Clock:
    """`ctx.now` for tests: stands still until told to move, so time-based rules are exact."""

    def __init__(self, start: datetime = START):
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta) -> datetime:
        self.current += timedelta(**delta)
        return self.current


def make_context(settings, engine, bms, clock) -> Context:
    sessions = make_session_factory(engine)
    return Context(settings=settings, engine=engine, uow=lambda: UnitOfWork(sessions), bms=bms,
                   catalog=load_catalog(DEFAULT_CATALOG), now=clock)


def wait_until(check: Callable[[], object], timeout: float = 10.0, what: str = "condition",
               interval: float = 0.02):
    """Poll `check` until it returns something truthy (and return that); fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def message(event: dict, received_at: datetime) -> dict:
    """What the ingress enqueues for the worker."""
    return {"event": event, "received_at": received_at.isoformat()}
