"""`billing-sync status` against the real services: what it reports, and when it exits 1."""
from __future__ import annotations

import io
from datetime import timedelta

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from billing_sync.models import make_engine, make_session_factory, utcnow
from billing_sync.models.tables import DeadLetter, OutboxMessage, ProcessedMessage, SyncCursor
from billing_sync.ops.status import collect_status, print_status

CLOSED = "http://127.0.0.1:1"


def run(settings) -> tuple[int, str]:
    out = io.StringIO()
    code = print_status(settings, out=out)
    return code, out.getvalue()


def line(output: str, name: str) -> str:
    return next(row for row in output.splitlines() if f"  {name}" in row)


def test_embedded_defaults_with_nothing_running_are_not_reported_reachable(make_settings, sqlite_url):
    code, output = run(make_settings(database_url=sqlite_url))
    assert code == 1, output
    assert "all essential services reachable" not in output
    assert line(output, "database").startswith("ok") and "(head)" in line(output, "database")
    assert line(output, "catalog").startswith("ok") and "4 plans" in line(output, "catalog")
    for name, word in (("broker", "embedded"), ("event bus", "memory://"), ("stripe", "emulator")):
        assert line(output, name).startswith("skip") and word in line(output, name), output
    assert "NOT CHECKED: broker, event bus, stripe" in output


def test_the_bridge_queue_is_found_when_bound_and_empty(make_settings, sqlite_url, redis_url, amqp_url, unique_prefix):
    from billing_sync.config import bus

    for url in (redis_url, amqp_url):
        settings = make_settings(database_url=sqlite_url, broker_url=url, queue_prefix=unique_prefix,
                                 stripe_api_base=CLOSED)
        name = f"queue {unique_prefix}.bridge.commands"
        assert "not bound" in line(run(settings)[1], name)
        with bus.connect(url) as conn:
            bus.declare_topology(conn, unique_prefix)
        try:
            assert "bound, 0 commands waiting" in line(run(settings)[1], name)
        finally:
            with bus.connect(url) as conn:
                bus.commands_queue(unique_prefix)(conn.default_channel).delete()
                bus.commands_exchange(unique_prefix)(conn.default_channel).delete()
                bus.events_exchange(unique_prefix)(conn.default_channel).delete()


def test_an_invalid_catalog_fails(make_settings, sqlite_url, tmp_path):
    broken = tmp_path / "catalog.yaml"
    broken.write_text("free_plan: free\ndefault_plan: nope\nplans: {}\n")
    code, output = run(make_settings(database_url=sqlite_url, catalog=broken))
    assert code == 1 and line(output, "catalog").startswith("FAIL") and "DOWN: catalog" in output


def test_a_key_of_another_stripe_account_fails(make_settings, sqlite_url):
    from billing_sync_emulator.server import EmulatorServer

    with make_session_factory(make_engine(sqlite_url))() as session, session.begin():
        session.add(SyncCursor(name="stripe.account", value="acct_pinned"))
    with EmulatorServer(account_id="acct_other") as emulator:
        code, output = run(make_settings(database_url=sqlite_url, stripe_api_base=emulator.url))
    assert code == 1 and "acct_other" in line(output, "stripe") and "acct_pinned" in line(output, "stripe")


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
