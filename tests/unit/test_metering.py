"""Metering by window (handlers/metering.py) against the FakeGateway and SQLite: one meter event
per tenant, meter and minute, late usage as the window's next event, crashes at every step
neither losing nor double-counting, a duplicate identifier taken as delivered, and `reconcile
--usage` (handlers/meter_reconcile.py) reporting and repairing what Stripe lacks."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from billing_sync.bms.catalog_sync import ensure_catalog
from billing_sync.client import command_envelope
from billing_sync.errors import PermanentError, TransientError
from billing_sync.handlers import metering
from billing_sync.handlers.command_dispatch import handle_command
from billing_sync.handlers.meter_reconcile import reconcile_usage
from billing_sync.handlers.metering import window_identifier, window_start
from billing_sync.models import MeterDelivery, UnitOfWork, UsageCounter

from fakes import FakeWorld

MINUTE = timedelta(minutes=1)


class World(FakeWorld):
    def __init__(self, engine, settings):
        super().__init__(engine, settings)
        ensure_catalog(self.gw, self.bus.catalog)   # the catalog's meters, as `catalog sync` makes them

    def command(self, type: str, tenant: str, data: dict) -> None:
        envelope = command_envelope(type, tenant, data, id=str(uuid.uuid4()))
        assert self.bus.call(handle_command, envelope) == "completed"

    def provision(self, tenant: str) -> None:
        self.command("billing.tenant.provisioned", tenant, {"name": "Acme", "email": f"{tenant}@example.test",
                                                            "plan": "starter", "payment_method": "pm_card_visa"})

    def usage(self, tenant: str, quantity: int, at, meter: str = "api_calls") -> None:
        self.command("billing.usage.recorded", tenant, {"meter": meter, "quantity": quantity,
                                                        "timestamp": int(at.timestamp())})

    def flush(self) -> dict:
        return self.bus.call(metering.flush)

    def stripe_total(self, tenant: str | None = None) -> float:
        customers = {c["id"] for c in self.gw.customers.values()
                     if tenant is None or c["metadata"].get("tenant_id") == tenant}
        return sum(float(e["payload"]["value"]) for e in self.gw.meter_events
                   if e["payload"]["stripe_customer_id"] in customers)

    def deliveries(self) -> list[MeterDelivery]:
        with self.bus.uow_factory() as uow:
            rows = list(uow.session.execute(select(MeterDelivery).order_by(MeterDelivery.window_start,
                                                                           MeterDelivery.seq)).scalars())
            uow.session.expunge_all()
            return rows


@pytest.fixture
def world(sqlite_engine, make_settings):
    return World(sqlite_engine, make_settings(meter_settle_s=5))


def test_a_minute_of_usage_is_one_meter_event_once_the_window_closed(world):
    world.provision("t1")
    world.provision("t2")
    start = window_start(world.clock())
    for second in range(0, 60, 3):
        world.usage("t1", 2, start + timedelta(seconds=second))
        world.usage("t2", 1, start + timedelta(seconds=second))
    world.clock.current = start + MINUTE + timedelta(seconds=4)   # closed, but not settled yet
    assert world.flush()["claimed"] == 0 and world.gw.meter_events == []
    world.clock.advance(seconds=1)
    assert world.flush() == {"claimed": 2, "sent": 2, "duplicate": 0, "refused": 0}
    events = {e["payload"]["stripe_customer_id"]: e for e in world.gw.meter_events}
    assert len(events) == 2 and world.stripe_total("t1") == 40 and world.stripe_total("t2") == 20
    (t1_customer,) = [c["id"] for c in world.gw.customers.values() if c["metadata"]["tenant_id"] == "t1"]
    assert events[t1_customer]["identifier"] == window_identifier("t1", "api_calls", start)
    assert events[t1_customer]["timestamp"] == int(start.timestamp())
    assert world.flush() == {"claimed": 0, "sent": 0, "duplicate": 0, "refused": 0}   # flushed once


def test_usage_arriving_after_its_window_was_sent_is_that_windows_next_event(world):
    world.provision("t1")
    start = window_start(world.clock())
    world.usage("t1", 5, start)
    world.clock.current = start + 2 * MINUTE
    world.flush()
    world.usage("t1", 7, start + timedelta(seconds=30))     # back-dated into the sent window
    world.flush()
    assert [(d.seq, d.quantity, d.state) for d in world.deliveries()] == [(0, 5, "sent"), (1, 7, "sent")]
    assert [e["identifier"] for e in world.gw.meter_events] == [window_identifier("t1", "api_calls", start),
                                                                 window_identifier("t1", "api_calls", start, 1)]
    assert world.stripe_total() == 12


def test_a_flusher_dying_after_stripe_took_the_event_sends_it_again_as_the_same_event(world, monkeypatch):
    world.provision("t1")
    start = window_start(world.clock())
    world.usage("t1", 9, start)
    world.clock.current = start + 2 * MINUTE
    real = world.gw.create_meter_event

    def send_then_die(params, *, idempotency_key):
        real(params, idempotency_key=idempotency_key)
        raise TransientError("connection reset after Stripe took the event")

    monkeypatch.setattr(world.gw, "create_meter_event", send_then_die)
    with pytest.raises(TransientError):
        world.flush()
    assert [d.state for d in world.deliveries()] == ["pending"]
    monkeypatch.setattr(world.gw, "create_meter_event", real)
    world.gw.idempotency.clear()   # the key is gone (Stripe keeps keys 24 h): only the identifier dedups
    assert world.flush() == {"claimed": 0, "sent": 0, "duplicate": 1, "refused": 0}
    assert [d.state for d in world.deliveries()] == ["sent"] and world.stripe_total() == 9


def test_a_claim_that_does_not_commit_claims_nothing(world, monkeypatch):
    world.provision("t1")
    start = window_start(world.clock())
    world.usage("t1", 4, start)
    world.clock.current = start + 2 * MINUTE

    def die(*args, **kwargs):
        raise TransientError("killed before the claim committed")

    monkeypatch.setattr(UnitOfWork, "commit", die)
    with pytest.raises(TransientError):
        metering.claim_due(uow_factory=world.bus.uow_factory, catalog=world.bus.catalog, now=world.clock,
                           settings=world.bus.settings)
    monkeypatch.undo()
    with world.bus.uow_factory() as uow:
        assert [(c.used, c.metered) for c in uow.session.execute(select(UsageCounter)).scalars()] == [(4, 0)]
    assert world.flush()["sent"] == 1 and world.stripe_total() == 4


def test_quotas_that_are_no_meter_are_settled_without_a_stripe_call(world):
    world.provision("t1")
    start = window_start(world.clock())
    with world.bus.uow_factory() as uow:
        uow.quotas.add_second("t1", "projects", start, 3)
        uow.commit()
    world.clock.current = start + 2 * MINUTE
    assert world.flush()["claimed"] == 0 and world.gw.meter_events == []
    with world.bus.uow_factory() as uow:
        assert [(c.used, c.metered) for c in uow.session.execute(select(UsageCounter)).scalars()] == [(3, 3)]


def test_an_event_stripe_refuses_is_marked_and_the_others_go_on(world, monkeypatch):
    world.provision("t1")
    world.provision("t2")
    start = window_start(world.clock())
    world.usage("t1", 1, start)
    world.usage("t2", 2, start)
    world.clock.current = start + 2 * MINUTE
    world.gw.fail_next("create_meter_event", PermanentError("Timestamp must be within the past 35 calendar days"))
    assert world.flush() == {"claimed": 2, "sent": 1, "duplicate": 0, "refused": 1}
    refused = [d for d in world.deliveries() if d.state == "refused"]
    assert len(refused) == 1 and "35 calendar days" in refused[0].detail


def test_reconcile_reports_what_stripe_lacks_and_repairs_it_once(world):
    world.provision("t1")
    start = window_start(world.clock())
    for minute in range(3):
        world.usage("t1", 10, start + minute * MINUTE)
    world.clock.current = start + 4 * MINUTE
    world.flush()
    world.usage("t1", 1, start + 3 * MINUTE)            # in flight: claimed by the next flush
    lost = world.gw.meter_events.pop(1)                 # Stripe lost the second minute's event
    assert float(lost["payload"]["value"]) == 10
    until = start + 4 * MINUTE
    report = world.bus.call(reconcile_usage, start, until)
    assert report["checked"] == 1 and report["errors"] == []
    (row,) = report["drifted"]
    assert (row["local"], row["stripe"], row["in_flight"], row["drift"]) == (31, 20.0, 1, 10)
    assert world.bus.call(reconcile_usage, start, until, repair=True)["repairs_queued"] == 1
    assert world.bus.call(reconcile_usage, start, until, repair=True)["drifted"] == []   # queued: in flight
    world.clock.advance(seconds=10)
    world.flush()
    assert world.stripe_total() == 31
    assert world.bus.call(reconcile_usage, start, until)["drifted"] == []


def test_reconcile_wants_a_whole_minute(world):
    from billing_sync.errors import InvalidMessage

    at = window_start(world.clock())
    with pytest.raises(InvalidMessage):
        world.bus.call(reconcile_usage, at, at + timedelta(seconds=59))


def test_the_operator_command_prints_the_drift_and_exits_1_until_it_is_repaired(world):
    import io
    import json

    from billing_sync.ops.jobs import run_usage_reconcile

    world.provision("t1")
    start = window_start(world.clock())
    world.usage("t1", 6, start)
    world.clock.current = start + 2 * MINUTE
    world.flush()
    world.gw.meter_events.clear()                        # Stripe lost it
    out = io.StringIO()
    assert run_usage_reconcile(start, start + 2 * MINUTE, bus=world.bus, out=out) == 1
    report, line = out.getvalue().splitlines()
    assert json.loads(report)["drifted"][0]["drift"] == 6 and "t1  api_calls  local 6  stripe 0" in line
    assert run_usage_reconcile(start, start + 2 * MINUTE, repair=True, bus=world.bus, out=io.StringIO()) == 0
    world.flush()
    assert run_usage_reconcile(start, start + 2 * MINUTE, bus=world.bus, out=io.StringIO()) == 0


@pytest.mark.parametrize("args", [["reconcile", "--repair"], ["reconcile", "--since", "2026-12-01"],
                                  ["reconcile", "--usage", "--dry-run"]])
def test_usage_options_without_usage_or_with_the_sweeps_are_a_configuration_error(args):
    from click.testing import CliRunner

    from billing_sync.cli import main

    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "--usage" in result.output and "Traceback" not in result.output
