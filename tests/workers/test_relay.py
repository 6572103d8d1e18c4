"""The outbox relay against the real event buses (memory://, Redis, RabbitMQ) and real databases:
every committed row reaches a bound consumer exactly once, as a CloudEvent, in id order."""
from __future__ import annotations

import queue as queue_module
import threading
import time
import uuid
from datetime import timedelta

import pytest
from kombu import Connection, Queue
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from billing_sync.bootstrap import bootstrap
from billing_sync.config.bus import EVENTS_EXCHANGE, connect
from billing_sync.models import make_session_factory, utcnow
from billing_sync.models.tables import OutboxMessage
from billing_sync.workers.relay import PublishFailed, Relay

CLOSED_PORT_URLS = {"redis": "redis://127.0.0.1:1/0", "rabbitmq": "amqp://guest:guest@127.0.0.1:1//"}


@pytest.fixture
def bound_queue(unique_prefix):
    """Declares a consumer's durable queue bound to billing.events with `#` (before anything is
    published, as a real consumer must) on a given bus; deletes it afterwards."""
    declared = []

    def declare(url: str) -> Queue:
        q = Queue(f"{unique_prefix}.events", EVENTS_EXCHANGE, routing_key="#", durable=True)
        with connect(url) as conn:
            q(conn.default_channel).declare()
        declared.append((url, q))
        return q

    yield declare
    for url, q in declared:
        with connect(url) as conn:
            bound = q(conn.default_channel)
            bound.declare()  # kombu's Redis emulation forgets bindings it did not declare itself
            bound.delete()


@pytest.fixture
def events_queue(bus_url, bound_queue):
    return bound_queue(bus_url)


def drain(url: str, q: Queue, rows: list[OutboxMessage], timeout: float = 10.0) -> list:
    """Every message of `rows` on the queue (duplicates included): wait for them all, then make
    sure nothing more of them comes. The bus is shared with other test runs, so messages whose
    CloudEvents id is not one of `rows` are someone else's and are skipped."""
    ours, expected, got = {row.event_id for row in rows}, len(rows), []
    deadline = time.monotonic() + timeout
    with Connection(url) as conn, conn.SimpleQueue(q) as simple:
        while time.monotonic() < deadline:
            try:
                message = simple.get(timeout=0.3 if len(got) >= expected else 1.0)
            except queue_module.Empty:
                if len(got) >= expected:
                    break
                continue
            message.ack()
            if message.decode()["id"] in ours:
                got.append(message)
    return got


def add_rows(engine, subjects: list[str | None], type: str = "billing.entitlements.changed") -> list[OutboxMessage]:
    sessions = make_session_factory(engine)
    rows = []
    with sessions() as session, session.begin():
        for n, subject in enumerate(subjects):
            row = OutboxMessage(event_id=str(uuid.uuid4()), type=type, subject=subject,
                                data={"tenant_id": subject, "version": n + 1, "plan": "pro"})
            session.add(row)
            rows.append(row)
    return sorted(rows, key=lambda r: r.id)


def unpublished(engine) -> int:
    with make_session_factory(engine)() as session:
        query = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.published_at.is_(None))
        return session.scalar(query)


@pytest.fixture
def pg_ctx(pg_engine, make_settings):
    return bootstrap(make_settings(relay_poll_interval_s=0.05), engine=pg_engine)


def test_every_row_is_published_once_as_a_cloudevent_in_id_order(pg_ctx, bus_url, events_queue):
    rows = add_rows(pg_ctx.engine, [f"t{n % 3}" for n in range(7)])
    rows += add_rows(pg_ctx.engine, ["t9"], type="billing.command.completed")

    published_before = REGISTRY.get_sample_value(
        "billing_outbox_published_total", {"type": "billing.entitlements.changed"}) or 0
    relay = Relay(pg_ctx, bus_url)
    assert relay.publish_pending(batch=5) == 5  # batches in id order
    assert relay.publish_pending(batch=5) == 3
    assert relay.publish_pending(batch=5) == 0
    relay.close()

    messages = drain(bus_url, events_queue, rows)
    assert [m.decode()["id"] for m in messages] == [r.event_id for r in rows]
    for message, row in zip(messages, rows, strict=True):
        event = message.decode()
        assert message.content_type == "application/cloudevents+json"
        assert message.properties["message_id"] == row.event_id
        assert message.delivery_info["routing_key"] == row.type.removeprefix("billing.")
        assert event["specversion"] == "1.0" and event["source"] == "billing-sync"
        assert event["type"] == row.type and event["subject"] == row.subject and event["data"] == row.data
        assert event["time"].endswith("Z")
    assert unpublished(pg_ctx.engine) == 0
    assert REGISTRY.get_sample_value("billing_outbox_published_total",
                                     {"type": "billing.entitlements.changed"}) == published_before + 7


@pytest.mark.parametrize("scheme", ["redis", "rabbitmq"])
def test_rows_stay_unpublished_while_the_bus_is_down_and_go_out_later(pg_ctx, scheme, bound_queue, request):
    bus_url = request.getfixturevalue("redis_url" if scheme == "redis" else "amqp_url")
    events_queue = bound_queue(bus_url)
    rows = add_rows(pg_ctx.engine, ["t1", "t2", "t1"])

    broken = Relay(pg_ctx, CLOSED_PORT_URLS[scheme])
    with pytest.raises(PublishFailed):
        broken.publish_pending()
    assert unpublished(pg_ctx.engine) == 3

    good = Relay(pg_ctx, bus_url)
    assert good.publish_pending() == 3
    good.close()
    messages = drain(bus_url, events_queue, rows)
    assert [m.decode()["id"] for m in messages] == [r.event_id for r in rows]
    assert unpublished(pg_ctx.engine) == 0


def test_a_failure_mid_batch_keeps_the_confirmed_prefix_and_retries_the_rest(pg_ctx, bound_queue, monkeypatch):
    bus_url = "memory://"
    events_queue = bound_queue(bus_url)
    rows = add_rows(pg_ctx.engine, ["t1"] * 5)
    relay = Relay(pg_ctx, bus_url)
    real_publish, calls = Relay._publish, []

    def flaky(self, producer, row):
        calls.append(row.id)
        if len(calls) == 3:
            raise ConnectionError("bus went away")
        real_publish(self, producer, row)

    monkeypatch.setattr(Relay, "_publish", flaky)
    with pytest.raises(PublishFailed):
        relay.publish_pending()
    assert unpublished(pg_ctx.engine) == 3  # rows 1-2 confirmed and marked; 3-5 stay
    monkeypatch.setattr(Relay, "_publish", real_publish)
    assert relay.publish_pending() == 3
    messages = drain(bus_url, events_queue, rows)
    assert [m.decode()["id"] for m in messages] == [r.event_id for r in rows]


def test_two_relays_on_postgres_publish_every_row_once_and_keep_tenant_order(pg_ctx, redis_url, bound_queue):
    bus_url = redis_url
    events_queue = bound_queue(bus_url)
    tenants = [f"t{n}" for n in range(12)]
    rows = add_rows(pg_ctx.engine, [tenants[n % len(tenants)] for n in range(600)])
    start = threading.Barrier(2)
    counts = [0, 0]
    errors = []

    def run(slot: int) -> None:
        relay = Relay(pg_ctx, bus_url)
        start.wait()
        try:
            deadline = time.monotonic() + 60  # generous: CI machines are shared and slow at times
            while unpublished(pg_ctx.engine) and time.monotonic() < deadline:
                counts[slot] += relay.publish_pending(batch=25)
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            relay.close()

    threads = [threading.Thread(target=run, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(70)

    assert not errors
    assert sum(counts) == len(rows) and all(counts), counts  # both worked, no row twice
    messages = drain(bus_url, events_queue, rows)
    ids = [m.decode()["id"] for m in messages]
    assert sorted(ids) == sorted(r.event_id for r in rows) and len(set(ids)) == len(rows)
    order = {r.event_id: r.id for r in rows}
    for tenant in tenants:  # one tenant's events never overtake each other
        seen = [order[m.decode()["id"]] for m in messages if m.decode()["subject"] == tenant]
        assert seen == sorted(seen), tenant


def test_run_publishes_new_rows_as_they_commit_and_stops(sqlite_engine, make_settings, bound_queue):
    """Embedded mode: SQLite and the in-process bus."""
    events_queue = bound_queue("memory://")
    bus = bootstrap(make_settings(relay_poll_interval_s=0.05), engine=sqlite_engine)
    relay = Relay(bus)  # embedded settings: memory://
    assert relay.url == "memory://localhost/"
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, kwargs={"stop_event": stop})
    thread.start()
    try:
        first = add_rows(sqlite_engine, ["t1", "t2"])
        time.sleep(0.2)
        second = add_rows(sqlite_engine, ["t1"])
        messages = drain("memory://", events_queue, first + second)
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert [m.decode()["id"] for m in messages] == [r.event_id for r in first + second]
    assert unpublished(sqlite_engine) == 0


def test_lag_is_the_age_of_the_oldest_unpublished_row(pg_ctx):
    relay = Relay(pg_ctx, "memory://")
    assert relay.oldest_unpublished_age_s() == 0.0
    sessions = make_session_factory(pg_ctx.engine)
    with sessions() as session, session.begin():
        session.add(OutboxMessage(event_id="e-old", type="billing.entitlements.changed", subject="t1", data={},
                                  created_at=utcnow() - timedelta(seconds=90)))
    assert 89 < relay.oldest_unpublished_age_s() < 120
    assert 89 < REGISTRY.get_sample_value("billing_outbox_lag_seconds") < 120


def test_run_keeps_rows_while_the_bus_is_down_and_stops_promptly_while_backing_off(pg_ctx):
    add_rows(pg_ctx.engine, ["t1", "t2"])
    relay = Relay(pg_ctx, CLOSED_PORT_URLS["redis"])
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, kwargs={"stop_event": stop})
    thread.start()
    time.sleep(0.5)  # a few failed passes and backoffs
    stop.set()
    thread.join(2)
    assert not thread.is_alive()
    assert unpublished(pg_ctx.engine) == 2
