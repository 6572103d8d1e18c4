"""Fixtures for the actor-plumbing tests: a real Redis broker under a unique namespace, the real
actors and middleware on it, in-process workers, and stand-in handlers.

The handlers (written separately) are replaced by small recorders routed by a bus of the test's
own (`FakeHandlers.routes()`): these tests are about what the worker does around a handler —
retries, dead letters, replay — not about the handlers. The recorders get the message's own
values and the bus's unit-of-work factory, as a handler would.
"""
from __future__ import annotations

import threading
import time

import pytest

from billing_sync.bootstrap import bootstrap
from billing_sync.handlers.messagebus import Bus
from billing_sync.handlers.messages import (
    CommandFailed,
    CommandReceived,
    MessageFailed,
    ReconcileRequested,
    StripeEventReceived,
)
from billing_sync.handlers.worker_messages import keep_dead_letter


class Handler:
    """A stand-in handler: records each call, then follows its script (raise, or return)."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.times: list[float] = []
        self.behaviour = lambda *args, **kwargs: "applied"
        self._lock = threading.Lock()

    def __call__(self, *args, **kwargs):
        with self._lock:
            self.calls.append(args)
            self.times.append(time.monotonic())
        return self.behaviour(*args, **kwargs)

    def raise_(self, exc: BaseException, times: int | None = None) -> None:
        """Raise `exc` on every call (or on the first `times` calls, then succeed)."""
        budget = {"left": times}

        def behaviour(*_args, **_kwargs):
            if budget["left"] is None or budget["left"] > 0:
                if budget["left"] is not None:
                    budget["left"] -= 1
                raise exc
            return "applied"

        self.behaviour = behaviour


class FakeHandlers:
    def __init__(self):
        self.event = Handler()
        self.command = Handler()
        self.reconcile = Handler()
        self.failed_commands: list[tuple] = []

    def command_failed(self, message: CommandFailed, *, uow_factory) -> None:
        """Like the real one: the failure, and its dead letter, recorded together."""
        failure = message.failure
        self.failed_commands.append((message.envelope, failure.reason, failure.detail))
        keep_dead_letter(failure, uow_factory=uow_factory)

    def routes(self) -> dict:
        """The bus routes of these stand-ins; a failed message's dead letter is the real one."""
        return {
            StripeEventReceived: lambda m, *, uow_factory: self.event(m.event, uow_factory),
            CommandReceived: lambda m, *, uow_factory: self.command(m.envelope, uow_factory),
            ReconcileRequested: lambda m, *, uow_factory: self.reconcile(m.tenant_id, uow_factory, cause=m.cause),
            MessageFailed: keep_dead_letter,
            CommandFailed: self.command_failed,
        }

    def bus(self, settings, engine) -> Bus:
        """A bus with the real dependencies for `settings` over `engine` that routes to these."""
        real = bootstrap(settings, engine=engine)
        return Bus(self.routes(), real.dependencies, engine=engine)


@pytest.fixture
def handlers():
    return FakeHandlers()


@pytest.fixture
def own_redis_url(redis_url):
    """The test Redis, but database 13: `redis_url` (db 15) is flushed whenever any pytest session
    starts, which would wipe these tests' queues and heartbeats if another session runs alongside.
    Every key here is under the test's unique prefix and deleted afterwards."""
    return redis_url.rsplit("/", 1)[0] + "/13"


@pytest.fixture
def worker_settings(make_settings, own_redis_url, pg_url, unique_prefix):
    def build(**overrides):
        values = dict(broker_url=own_redis_url, database_url=pg_url, queue_prefix=unique_prefix, max_retries=3,
                      min_backoff_ms=20, max_backoff_ms=50, heartbeat_timeout_ms=2000)
        values.update(overrides)
        return make_settings(**values)

    return build


@pytest.fixture
def redis_cleanup(own_redis_url, unique_prefix):
    import redis

    yield
    client = redis.Redis.from_url(own_redis_url)
    for key in client.scan_iter(match=f"{unique_prefix}:*"):
        client.delete(key)
    client.close()


@pytest.fixture
def plumbing(worker_settings, pg_engine, handlers, redis_cleanup):
    """`fleet()` → (broker, bus, workers): real actors on real Redis, their bus on PostgreSQL
    routing to the stand-in handlers."""
    from billing_sync.workers.broker import make_broker
    from billing_sync.workers.worker import InProcessWorkers

    started = []

    def start(**overrides):
        settings = worker_settings(**overrides)
        bus = handlers.bus(settings, pg_engine)
        broker = make_broker(settings, bus=bus)
        workers = InProcessWorkers(broker, threads=2, idle_poll_ms=50).start()
        started.append((broker, workers))
        return broker, bus, workers

    yield start
    for broker, workers in started:
        workers.stop()
        broker.close()


