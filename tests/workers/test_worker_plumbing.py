"""Actor plumbing on real Redis and PostgreSQL: retries with capped backoff for transient errors
only, dead letters on final failure, `billing-sync dlq` list / replay / purge."""
from __future__ import annotations

import io
import json
import uuid

import pytest
from sqlalchemy import select

from billing_sync.errors import PermanentError, TransientError, UnknownTenant
from billing_sync.models import make_session_factory
from billing_sync.models.tables import DeadLetter
from billing_sync.ops import dead_letters
from billing_sync.workers.actors import declare_actors

from contexts import wait_until


def event_message(event_id: str | None = None) -> dict:
    event = {"id": event_id or f"evt_{uuid.uuid4().hex[:12]}", "object": "event", "type": "invoice.paid",
             "data": {"object": {"id": "in_1"}}}
    return {"event": event, "received_at": "2026-11-23T10:00:00+00:00"}


def is_event_of(received, message: dict) -> bool:
    """True when the stand-in handler `received` the event of `message`, as the actor parsed it."""
    return (received.id, received.received_at.isoformat()) == (message["event"]["id"], message["received_at"])


def command(command_id: str | None = None) -> dict:
    return {"specversion": "1.0", "id": command_id or f"cmd-{uuid.uuid4().hex[:8]}", "source": "tests",
            "type": "billing.subscription.change", "subject": "tenant-1",
            "data": {"tenant_id": "tenant-1", "plan": "pro"}}


def dead_letter_rows(bus) -> list[DeadLetter]:
    with make_session_factory(bus.engine)() as session:
        return list(session.execute(select(DeadLetter).order_by(DeadLetter.id)).scalars())


def record_delays(monkeypatch, broker) -> list:
    """The delay of every enqueue the Retries middleware makes."""
    delays = []
    original = broker.enqueue

    def enqueue(message, *, delay=None):
        if delay is not None:
            delays.append(delay)
        return original(message, delay=delay)

    monkeypatch.setattr(broker, "enqueue", enqueue)
    return delays


def test_success_is_processed_once_and_not_dead_lettered(plumbing, handlers):
    broker, bus, _ = plumbing()
    message = event_message()
    declare_actors(broker, bus.settings.queue_prefix).process_stripe_event.send(message)
    wait_until(lambda: handlers.event.calls)
    [(received, received_uow_factory)] = handlers.event.calls
    assert is_event_of(received, message) and received_uow_factory is bus.uow_factory
    assert dead_letter_rows(bus) == []


def test_transient_errors_retry_with_capped_backoff_then_dead_letter(plumbing, handlers, monkeypatch):
    broker, bus, _ = plumbing(max_retries=5, min_backoff_ms=20, max_backoff_ms=50)
    delays = record_delays(monkeypatch, broker)
    handlers.event.raise_(TransientError("stripe 503, key sk_test_abcdefgh12345 in message"))
    message = event_message()
    broker.get_actor("process_stripe_event").send(message)

    [row] = wait_until(lambda: dead_letter_rows(bus))
    assert len(handlers.event.calls) == 6  # the first attempt and max_retries retries
    assert len(delays) == 5
    # Dramatiq's exponential backoff (jittered) is capped: 20 ms doubling would reach 320+ ms.
    assert all(10 <= d <= 50 for d in delays), delays
    assert row.source == "process_stripe_event"
    assert row.message_id == message["event"]["id"]
    assert json.loads(row.body) == {"args": [message], "kwargs": {}}
    assert row.reason == "bms_unavailable"
    assert "gave up after 6 attempts" in row.detail
    assert "sk_test_abcdefgh12345" not in row.detail and "[redacted]" in row.detail


def test_transient_error_that_clears_is_applied_without_dead_letter(plumbing, handlers):
    broker, bus, _ = plumbing()
    handlers.event.raise_(TransientError("blip"), times=2)
    broker.get_actor("process_stripe_event").send(event_message())
    wait_until(lambda: len(handlers.event.calls) == 3)
    assert dead_letter_rows(bus) == []


def test_database_outage_is_transient(plumbing, handlers):
    from sqlalchemy.exc import OperationalError

    broker, bus, _ = plumbing(max_retries=2)
    handlers.event.raise_(OperationalError("SELECT 1", {}, Exception("server closed the connection")))
    broker.get_actor("process_stripe_event").send(event_message())
    [row] = wait_until(lambda: dead_letter_rows(bus))
    assert len(handlers.event.calls) == 3
    assert row.reason == "unavailable"


@pytest.mark.parametrize("error, reason", [
    (PermanentError("bad input"), "invalid"),
    (UnknownTenant("no such tenant"), "unknown_tenant"),
    (KeyError("a bug"), "internal_error"),
])
def test_permanent_errors_and_bugs_are_not_retried(plumbing, handlers, monkeypatch, error, reason):
    broker, bus, _ = plumbing()
    delays = record_delays(monkeypatch, broker)
    handlers.event.raise_(error)
    broker.get_actor("process_stripe_event").send(event_message())
    [row] = wait_until(lambda: dead_letter_rows(bus))
    assert len(handlers.event.calls) == 1
    assert delays == []
    assert row.reason == reason


def test_failed_command_reports_billing_command_failed_once(plumbing, handlers):
    broker, bus, _ = plumbing(max_retries=1)
    handlers.command.raise_(TransientError("stripe unreachable"))
    envelope = command()
    broker.get_actor("apply_command").send(envelope)
    [row] = wait_until(lambda: dead_letter_rows(bus))
    assert len(handlers.command.calls) == 2
    assert row.source == "apply_command" and row.message_id == envelope["id"]
    [(failed_envelope, failed_reason, detail)] = handlers.failed_commands
    assert failed_envelope == envelope and failed_reason == "bms_unavailable"
    assert "stripe unreachable" in detail


def test_invalid_message_is_dead_lettered_without_calling_the_handler(plumbing, handlers):
    broker, bus, _ = plumbing()
    broker.get_actor("process_stripe_event").send({"not": "an event"})
    [row] = wait_until(lambda: dead_letter_rows(bus))
    assert handlers.event.calls == []
    assert row.reason == "invalid" and row.message_id is None


def test_dlq_list_replay_and_purge(plumbing, handlers):
    broker, bus, _ = plumbing()
    handlers.event.raise_(PermanentError("stripe said no"))
    handlers.reconcile.raise_(PermanentError("nope"))
    message = event_message()
    broker.get_actor("process_stripe_event").send(message)
    broker.get_actor("reconcile_tenant").send("tenant-9", "sweep")
    event_row, reconcile_row = wait_until(lambda: (rows := dead_letter_rows(bus)) and len(rows) == 2 and rows)
    if event_row.source != "process_stripe_event":
        event_row, reconcile_row = reconcile_row, event_row
    assert reconcile_row.message_id == "tenant-9"

    out = io.StringIO()
    assert dead_letters.list_dead_letters(limit=10, bus=bus, out=out) == 2
    listing = out.getvalue()
    assert message["event"]["id"] in listing and "reconcile_tenant" in listing and "invalid" in listing

    # The cause is fixed: a replay sends the same message to its actor, which now succeeds.
    handlers.event.behaviour = lambda *args: "applied"
    out = io.StringIO()
    assert dead_letters.replay([event_row.id], bus=bus, broker=broker, out=out) == 0
    wait_until(lambda: len(handlers.event.calls) == 2)
    assert is_event_of(handlers.event.calls[1][0], message)
    rows = {row.id: row for row in dead_letter_rows(bus)}
    assert rows[event_row.id].replayed_at is not None
    assert rows[reconcile_row.id].replayed_at is None

    # --all replays what has not been replayed yet; a second failure is a new dead letter.
    assert dead_letters.replay([], replay_all=True, bus=bus, broker=broker, out=io.StringIO()) == 0
    wait_until(lambda: len(dead_letter_rows(bus)) == 3)
    assert len(handlers.reconcile.calls) == 2

    assert dead_letters.replay([999_999], bus=bus, broker=broker, out=io.StringIO()) == 1
    assert dead_letters.purge([event_row.id], bus=bus, out=io.StringIO()) == 0
    assert event_row.id not in {row.id for row in dead_letter_rows(bus)}
    assert dead_letters.purge([999_999], bus=bus, out=io.StringIO()) == 1
    assert dead_letters.purge([], purge_all=True, bus=bus, out=io.StringIO()) == 0
    assert dead_letter_rows(bus) == []


def test_actor_metrics_count_outcomes(plumbing, handlers):
    from prometheus_client import REGISTRY

    def value(name: str, **labels) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    broker, bus, _ = plumbing(max_retries=1)
    before = (value("billing_actor_messages_processed_total", actor="reconcile_tenant"),
              value("billing_actor_messages_retried_total", actor="reconcile_tenant"),
              value("billing_actor_messages_failed_total", actor="reconcile_tenant", reason="bms_unavailable"))
    broker.get_actor("reconcile_tenant").send("tenant-1", "test")
    wait_until(lambda: handlers.reconcile.calls)
    handlers.reconcile.raise_(TransientError("down"))
    broker.get_actor("reconcile_tenant").send("tenant-2", "test")
    wait_until(lambda: dead_letter_rows(bus))
    after = (value("billing_actor_messages_processed_total", actor="reconcile_tenant"),
             value("billing_actor_messages_retried_total", actor="reconcile_tenant"),
             value("billing_actor_messages_failed_total", actor="reconcile_tenant", reason="bms_unavailable"))
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]


def test_rabbitmq_worker_retries_then_applies(worker_settings, pg_engine, handlers, amqp_url, unique_prefix):
    """The same plumbing on RabbitMQ (publisher confirms, delay queue for the backoff)."""
    import pika

    from billing_sync.workers.broker import make_broker, pika_url
    from billing_sync.workers.worker import InProcessWorkers

    settings = worker_settings(broker_url=amqp_url)
    bus = handlers.bus(settings, pg_engine)
    broker = make_broker(settings, bus=bus)
    workers = InProcessWorkers(broker, threads=2, idle_poll_ms=50).start()
    try:
        handlers.event.raise_(TransientError("blip"), times=2)
        message = event_message()
        broker.get_actor("process_stripe_event").send(message)
        wait_until(lambda: len(handlers.event.calls) == 3, timeout=15)
        assert all(is_event_of(call[0], message) for call in handlers.event.calls)
        assert dead_letter_rows(bus) == []
    finally:
        workers.stop()
        broker.close()
        connection = pika.BlockingConnection(pika.URLParameters(pika_url(amqp_url)))
        channel = connection.channel()
        for queue in ("stripe-events", "commands", "reconcile"):
            for suffix in ("", ".DQ", ".XQ"):
                channel.queue_delete(f"{unique_prefix}.{queue}{suffix}")
        connection.close()
