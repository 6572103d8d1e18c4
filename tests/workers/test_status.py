"""`billing-sync status` against the real services: what it reports, and when it exits 1."""
from __future__ import annotations

import io
from datetime import timedelta

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from billing_sync.models import make_session_factory, utcnow
from billing_sync.models.tables import DeadLetter, OutboxMessage, ProcessedMessage, SyncCursor
from billing_sync.workers.status import collect_status, print_status

CLOSED = "http://127.0.0.1:1"


def run(settings) -> tuple[int, str]:
    out = io.StringIO()
    code = print_status(settings, out=out)
    return code, out.getvalue()


def line(output: str, name: str) -> str:
    return next(row for row in output.splitlines() if f"  {name}" in row)


def test_embedded_defaults_are_all_in_process_and_healthy(make_settings, sqlite_url):
    code, output = run(make_settings(database_url=sqlite_url))
    assert code == 0, output
    assert line(output, "database").startswith("ok") and "(head)" in line(output, "database")
    assert "embedded" in line(output, "broker") and "memory://" in line(output, "event bus")
    assert "emulator" in line(output, "stripe")


def test_reports_backlog_dead_letters_ledger_cursors_and_queue_depths(make_settings, pg_url, pg_engine, redis_url,
                                                                     unique_prefix):
    sessions = make_session_factory(pg_engine)
    with sessions() as session, session.begin():
        session.add_all([
            OutboxMessage(event_id="e1", type="billing.entitlements.changed", subject="t1", data={},
                          created_at=utcnow() - timedelta(seconds=42)),
            OutboxMessage(event_id="e2", type="billing.entitlements.changed", subject="t1", data={}),
            OutboxMessage(event_id="e3", type="billing.entitlements.changed", subject="t1", data={},
                          published_at=utcnow()),
            DeadLetter(source="apply_command", body="{}", reason="invalid"),
            ProcessedMessage(id="evt_1", kind="stripe_event", type="customer.updated"),
            SyncCursor(name="events_seen", value="1790000000"),
        ])
    broker = RedisBroker(url=redis_url, namespace=unique_prefix)
    broker.declare_queue("billing")
    broker.enqueue(dramatiq.Message(queue_name="billing", actor_name="noop", args=(), kwargs={}, options={}))

    settings = make_settings(database_url=pg_url, broker_url=redis_url, stripe_api_base=CLOSED,
                             queue_prefix=unique_prefix)
    code, output = run(settings)
    assert "2 unpublished, oldest 4" in line(output, "outbox")
    assert line(output, "dead letters").split()[3] == "1"
    assert "1 processed messages" in line(output, "ledger")
    assert "1790000000" in line(output, "cursor events_seen")
    assert "1 queued or in flight, 0 dead-lettered" in line(output, "queue billing")
    assert line(output, "broker").startswith("ok") and line(output, "event bus").startswith("ok")
    # Stripe unreachable is essential: exit 1, and it says what is down.
    assert code == 1 and "DOWN: stripe" in output


def test_rabbitmq_and_an_unreachable_event_bus(make_settings, sqlite_url, amqp_url):
    checks = {c.name: c for c in collect_status(make_settings(
        database_url=sqlite_url, broker_url=amqp_url, events_url="redis://127.0.0.1:1/0"))}
    assert checks["broker"].state == "ok" and "***" in checks["broker"].detail  # no password shown
    assert checks["event bus"].state == "FAIL" and checks["event bus"].failed


def test_an_unmigrated_database_fails(make_settings, tmp_path):
    code, output = run(make_settings(database_url=f"sqlite:///{tmp_path}/fresh.db"))
    assert code == 1
    assert "not migrated" in line(output, "database") and "DOWN: database" in output
