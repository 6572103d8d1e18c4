"""Building buses for handler tests: a controllable clock and a bus over a given engine.

Used by unit tests (with fakes.FakeGateway and SQLite) and integration tests (PostgreSQL).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from billing_sync.bootstrap import bootstrap
from billing_sync.config.catalog import load_catalog
from billing_sync.config.settings import DEFAULT_CATALOG
from billing_sync.handlers.messagebus import Bus
from billing_sync.handlers.messages import StripeEventReceived
from billing_sync.handlers.stripe_event import parse

START = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


class Clock:
    """The bus's `now` for tests: stands still until told to move, so time-based rules are exact."""

    def __init__(self, start: datetime = START):
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta) -> datetime:
        self.current += timedelta(**delta)
        return self.current


class NoStripe:
    """The gateway of a bus whose test must not reach Stripe: any use fails the test."""

    def __getattr__(self, name: str):
        raise AssertionError(f"this test's bus has no Stripe (gateway.{name})")


class SentCommands(list):
    """A bus's `send_command` in tests: the envelopes it was given, in order."""

    def __call__(self, envelope: dict) -> None:
        self.append(envelope)


def make_bus(settings, engine, gateway, clock, *, send_command: Callable[[dict], None] | None = None) -> Bus:
    """A bus over `engine` with `gateway` as Stripe (None: `NoStripe`), the default catalog and
    `clock`; its command sender records what it sends (`bus.dependencies["send_command"]`)."""
    return bootstrap(settings, engine=engine, gateway=NoStripe() if gateway is None else gateway,
                     catalog=load_catalog(DEFAULT_CATALOG), now=clock,
                     send_command=SentCommands() if send_command is None else send_command)


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


def received(bus: Bus, worker_message: dict) -> StripeEventReceived:
    """What the `process_stripe_event` actor hands `bus` for a worker message: the event parsed
    once (raises InvalidMessage, as the actor does, when it is unusable)."""
    return StripeEventReceived(parse(worker_message, now=bus.now, settings=bus.settings))


def event_received(bus: Bus, event: dict, received_at: datetime) -> StripeEventReceived:
    """`received` for the message the ingress enqueues when it takes `event` at `received_at`."""
    return received(bus, message(event, received_at))
