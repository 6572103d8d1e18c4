"""reconcile_tenant, sweep and catch_up against the FakeGateway and SQLite."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from billing_sync.errors import TransientError
from billing_sync.handlers.catch_up import CATCH_UP_OVERLAP_S, EVENTS_CURSOR, catch_up
from billing_sync.handlers.reconcile import reconcile_tenant
from billing_sync.handlers.sweep import SWEEP_CURSOR, sweep
from billing_sync.models import OutboxMessage, SyncCursor, Tenant

from contexts import received
from test_event_handlers import World


@pytest.fixture
def world(sqlite_engine, make_settings):
    return World(sqlite_engine, make_settings())


def test_reconcile_repairs_drift_that_no_webhook_announced(world):
    customer, sub = world.tenant_on("t1", "starter")
    world.deliver(world.gw.add_event("customer.subscription.created", sub))
    # Changes in Stripe whose webhooks were lost:
    world.gw.set_item(sub["id"], price="pro_monthly", quantity=4)
    world.gw.set_active_entitlements(customer["id"], ["analytics"])

    report = world.bus.call(reconcile_tenant, "t1")
    assert report["found"] and report["entitlements_changed"] and report["version"] == 2
    assert any(sub["id"] in line for line in report["drift"])
    assert any("stripe features" in line for line in report["drift"])
    snap = world.snapshot("t1")
    assert snap["plan"] == "pro" and snap["limits"]["seats"] == 4 and "analytics" in snap["features"]
    assert world.outbox("t1")[-1]["cause"] == "reconcile"

    again = world.bus.call(reconcile_tenant, "t1")  # nothing left to repair
    assert again["drift"] == [] and not again["entitlements_changed"] and again["version"] == 2


def test_reconcile_dry_run_reports_but_writes_nothing(world):
    _, sub = world.tenant_on("t1", "starter")
    world.deliver(world.gw.add_event("customer.subscription.created", sub))
    world.gw.set_item(sub["id"], price="pro_monthly")
    report = world.bus.call(reconcile_tenant, "t1", dry_run=True)
    assert report["drift"] and report["entitlements_changed"] and report["version"] == 2
    assert world.snapshot("t1")["plan"] == "starter" and world.snapshot("t1")["version"] == 1
    assert len(world.outbox("t1")) == 1


def test_reconcile_finds_the_customer_of_a_tenant_never_seen(world):
    world.tenant_on("new", "enterprise", quantity=2)
    report = world.bus.call(reconcile_tenant, "new")
    assert report["found"] and report["version"] == 1
    assert world.snapshot("new")["plan"] == "enterprise"


def test_reconcile_of_an_unknown_tenant_creates_nothing(world):
    report = world.bus.call(reconcile_tenant, "ghost")
    assert report["found"] is False
    with world.bus.uow_factory() as uow:
        assert uow.session.get(Tenant, "ghost") is None


def test_reconcile_applies_a_subscription_gone_from_stripe(world):
    _, sub = world.tenant_on("t1", "pro")
    world.deliver(world.gw.add_event("customer.subscription.created", sub))
    del world.gw.subscriptions[sub["id"]]
    world.bus.call(reconcile_tenant, "t1")
    assert world.subscription_row(sub["id"])["status"] == "canceled"
    assert world.snapshot("t1")["plan"] == "free"


def test_sweep_reconciles_every_tenant_and_reports_counts(world):
    for tenant_id, plan in [("a", "pro"), ("b", "starter"), ("c", "enterprise")]:
        world.tenant_on(tenant_id, plan)
    world.gw.add_customer(None)  # not ours: no tenant_id
    # A tenant we know whose customer was deleted in Stripe.
    gone, gone_sub = world.tenant_on("gone", "pro")
    world.deliver(world.gw.add_event("customer.subscription.created", gone_sub))
    del world.gw.customers[gone["id"]]
    world.gw.subscriptions[gone_sub["id"]]["status"] = "canceled"
    world.gw.reset_calls()

    report = world.bus.call(sweep)
    assert report["customers"] == 4 and report["subscriptions"] == 4 and report["products"] == 3
    assert report["tenants"] == 4 and report["missing_in_stripe"] == 1 and report["errors"] == 0
    assert report["entitlements_changed"] == 4
    assert [world.snapshot(t)["plan"] for t in ("a", "b", "c", "gone")] == ["pro", "starter", "enterprise", "free"]
    # Listed once, not re-read per tenant.
    assert world.gw.count("list_customers") == 1 and world.gw.count("retrieve_subscription") == 0
    with world.bus.uow_factory() as uow:
        assert uow.session.get(SyncCursor, SWEEP_CURSOR) is not None

    assert world.bus.call(sweep)["entitlements_changed"] == 0  # converged


def test_sweep_counts_failures_and_does_not_claim_success(world):
    world.tenant_on("a", "pro")
    world.tenant_on("b", "pro")
    world.gw.fail_next("list_active_entitlement_keys", TransientError("429"))
    report = world.bus.call(sweep)
    assert report["errors"] == 1 and len(report["failed"]) == 1 and report["tenants"] == 2
    with world.bus.uow_factory() as uow:
        assert uow.session.get(SyncCursor, SWEEP_CURSOR) is None


def test_sweep_dry_run_writes_nothing(world):
    world.tenant_on("a", "pro")
    report = world.bus.call(sweep, dry_run=True)
    assert report["entitlements_changed"] == 1
    assert world.snapshot("a") is None


def test_catch_up_enqueues_missed_events_once_and_advances_the_cursor(world):
    _, sub = world.tenant_on("t1", "pro")
    handled = world.gw.add_event("customer.subscription.created", sub)
    world.deliver(handled)
    world.clock.advance(seconds=5)
    missed = world.gw.add_event("customer.subscription.updated", sub)
    queue: list[dict] = []

    assert world.bus.call(catch_up, queue.append) == 1
    assert [m["event"]["id"] for m in queue] == [missed["id"]]
    assert queue[0]["received_at"] == world.clock().isoformat()
    with world.bus.uow_factory() as uow:
        assert uow.session.get(SyncCursor, EVENTS_CURSOR).value == str(missed["created"])

    # The enqueued event is processed; the next pass looks back only by the overlap.
    for m in queue:
        world.bus.handle(received(world.bus, m))
    world.gw.reset_calls()
    assert world.bus.call(catch_up, queue.append) == 0
    assert world.gw.calls[:2] == [("retrieve_account", ()),  # the account pin, then the listing
                                  ("list_events", (missed["created"] - CATCH_UP_OVERLAP_S, ()))]


def test_catch_up_keeps_the_cursor_when_enqueueing_fails(world):
    _, sub = world.tenant_on("t1", "pro")
    world.gw.add_event("customer.subscription.created", sub)

    def broken(_message):
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        world.bus.call(catch_up, broken)
    with world.bus.uow_factory() as uow:
        assert uow.session.get(SyncCursor, EVENTS_CURSOR) is None
    queue: list[dict] = []
    assert world.bus.call(catch_up, queue.append) == 1


def test_reconcile_cause_is_recorded(world):
    world.tenant_on("t1", "pro")
    world.bus.call(reconcile_tenant, "t1", cause="cmd_123")
    with world.bus.uow_factory() as uow:
        rows = uow.session.execute(select(OutboxMessage)).scalars().all()
        assert [row.data["cause"] for row in rows] == ["cmd_123"] * 2  # entitlements and the billing document
        assert sorted(row.type for row in rows) == ["billing.account.changed", "billing.entitlements.changed"]


def test_refresh_due_applies_time_rules_without_stripe(world):
    from billing_sync.handlers.lapses import refresh_due

    _, lapsing = world.tenant_on("grace", "pro")
    _, ending = world.tenant_on("ending", "pro", period_end=world.gw.now_ts() + 3600)
    _, fine = world.tenant_on("fine", "pro")
    for sub in (lapsing, ending, fine):
        world.deliver(world.gw.add_event("customer.subscription.created", sub))
    world.gw.set_subscription(lapsing["id"], status="past_due")
    world.deliver(world.gw.add_event("customer.subscription.updated", lapsing))
    world.gw.set_subscription(ending["id"], cancel_at_period_end=True)
    world.deliver(world.gw.add_event("customer.subscription.updated", ending))
    world.gw.reset_calls()

    assert world.bus.call(refresh_due) == 0  # nothing lapsed yet
    world.clock.advance(days=world.bus.catalog.past_due_grace_days, seconds=1)
    assert world.bus.call(refresh_due) == 2
    assert world.gw.calls == []  # the database alone
    assert [world.snapshot(t)["plan"] for t in ("grace", "ending", "fine")] == ["free", "free", "pro"]
    assert world.outbox("grace")[-1]["cause"] == "schedule"
    assert world.bus.call(refresh_due) == 0  # already applied: no second event


def test_catch_up_hands_unusable_listed_events_to_the_worker_once_and_keeps_going(world):
    """GET /v1/events is outside the ingress: an event there that breaks the Stripe event check
    (here: no id, a numeric id, a NUL in the id) must not stop the catch-up for everyone. It goes to
    the worker (which fails it as invalid with one dead letter) in the pass that first lists it."""
    _, sub = world.tenant_on("t1", "pro")
    missed = world.gw.add_event("customer.subscription.updated", sub)
    for hostile in ({"id": None}, {"id": 5}, {"id": "evt_a\x00b"}):
        world.gw.add_event("customer.subscription.updated", sub)
        event = world.gw.events[-1]  # as "Stripe" lists it
        event.update(hostile)
        if hostile["id"] is None:
            del event["id"]
    queue: list[dict] = []

    assert world.bus.call(catch_up, queue.append) == 4
    assert missed["id"] in [m["event"].get("id") for m in queue]
    world.clock.advance(seconds=5)
    queue.clear()
    assert world.bus.call(catch_up, queue.append) == 1  # the usable one again (not processed yet), no others
    assert [m["event"]["id"] for m in queue] == [missed["id"]]


def test_sweep_and_catch_up_report_their_progress_through_the_bus(world):
    """What the CLI's bars draw (cli/output.progress_stages): each stage's count, and its total when known."""
    from billing_sync.handlers.messages import CatchUpDue, SweepDue

    _, sub_a = world.tenant_on("a", "pro")
    world.tenant_on("b", "starter")
    seen: list[tuple[str, int, int | None]] = []
    world.bus.replace(progress=lambda stage, done, total: seen.append((stage, done, total))).handle(SweepDue())
    assert ("Stripe customers listed", 2, None) in seen and ("Stripe subscriptions listed", 2, None) in seen
    reconciled = [(done, total) for stage, done, total in seen if stage == "tenants reconciled"]
    assert reconciled == [(0, 2), (1, 2), (2, 2)]

    seen.clear()
    world.clock.advance(seconds=5)
    world.gw.add_event("customer.subscription.updated", sub_a)
    queue: list[dict] = []
    bus = world.bus.replace(progress=lambda stage, done, total: seen.append((stage, done, total)),
                            enqueue_stripe_event=queue.append)
    assert bus.handle(CatchUpDue()) == len(queue) >= 1
    assert seen[-1] == ("events enqueued", len(queue), len(queue))
