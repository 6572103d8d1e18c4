"""Fixtures for the actor-plumbing tests: a real Redis broker under a unique namespace, the real
actors and middleware on it, in-process workers, and stand-in handler modules.

The handlers (written separately) are replaced by small recorders installed in `sys.modules`:
these tests are about what the worker does around a handler — retries, dead letters, replay —
not about the handlers. The actors import their handler at call time, so they find these.
"""
from __future__ import annotations

import sys
import threading
import time
import types

import pytest

from billing_sync.bootstrap import build_context
from billing_sync.workers.middleware import record_dead_letter

HANDLER_MODULES = {
    "billing_sync.handlers.event_dispatch": "handle_stripe_event",
    "billing_sync.handlers.command_dispatch": "handle_command",
    "billing_sync.handlers.reconcile": "reconcile_tenant",
}


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

    def fail_command(self, envelope, reason, detail, ctx, *, raw_body=None, dead_letter_source=None):
        """Like the real one: the failure, and the dead letter when asked for, recorded together."""
        self.failed_commands.append((envelope, reason, detail))
        if dead_letter_source is not None:
            record_dead_letter(ctx, source=dead_letter_source, message_id=envelope["id"], body=raw_body,
                               reason=reason, detail=detail)
        return "failed"


@pytest.fixture
def handlers(monkeypatch):
    fakes = FakeHandlers()
    for name, function in HANDLER_MODULES.items():
        module = types.ModuleType(name)
        setattr(module, function, {"handle_stripe_event": fakes.event, "handle_command": fakes.command,
                                   "reconcile_tenant": fakes.reconcile}[function])
        if name.endswith("command_dispatch"):
            module.fail_command = fakes.fail_command
        monkeypatch.setitem(sys.modules, name, module)
    return fakes


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
    """`fleet()` → (broker, ctx, workers): real actors on real Redis, a Context on PostgreSQL."""
    from billing_sync.workers.broker import make_broker
    from billing_sync.workers.context import set_context
    from billing_sync.workers.worker import InProcessWorkers

    started = []

    def start(**overrides):
        settings = worker_settings(**overrides)
        ctx = build_context(settings, engine=pg_engine)
        set_context(ctx)
        broker = make_broker(settings)
        workers = InProcessWorkers(broker, threads=2, idle_poll_ms=50).start()
        started.append((broker, workers))
        return broker, ctx, workers

    yield start
    for broker, workers in started:
        workers.stop()
        broker.close()
    set_context(None)


