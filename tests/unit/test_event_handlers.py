"""Stripe event handlers against the FakeGateway and a SQLite unit of work."""
from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import select

from billing_sync.errors import TransientError
from billing_sync.handlers.reconcile import reconcile_tenant
from billing_sync.models import (
    EntitlementSnapshot,
    OutboxMessage,
    ProcessedMessage,
    Subscription,
    Tenant,
)

from contexts import event_received, received
from fakes import FakeWorld


class World(FakeWorld):
    """FakeWorld with helpers to arrange tenants, deliver events and read the results."""

    def product_of(self, plan: str) -> str:
        return self.prices[plan]["product"]

    def tenant_on(self, tenant_id: str, plan: str = "pro", quantity: int = 1, **kw) -> tuple[dict, dict]:
        customer = self.gw.add_customer(tenant_id, email=f"{tenant_id}@example.com")
        sub = self.gw.add_subscription(customer["id"], self.prices[plan]["id"], quantity=quantity, **kw)
        return customer, sub

    def deliver(self, event: dict, *, after_s: float = 1) -> str:
        """The ingress receives `event` now (+after_s) and a worker handles it."""
        self.clock.advance(seconds=after_s)
        return self.bus.handle(event_received(self.bus, event, self.clock()))

    def snapshot(self, tenant_id: str) -> dict | None:
        with self.bus.uow_factory() as uow:
            snap = uow.session.get(EntitlementSnapshot, tenant_id)
            if snap is None:
                return None
            return {"version": snap.version, "plan": snap.plan, "status": snap.status,
                    "features": list(snap.features), "limits": dict(snap.limits), "period_end": snap.period_end}

    def outbox(self, tenant_id: str | None = None, type: str = "billing.entitlements.changed") -> list[dict]:
        """The queued events of one type (the billing page's own are tested in test_billing_mirror.py)."""
        with self.bus.uow_factory() as uow:
            query = select(OutboxMessage).where(OutboxMessage.type == type).order_by(OutboxMessage.id)
            if tenant_id:
                query = query.where(OutboxMessage.subject == tenant_id)
            return [row.data for row in uow.session.execute(query).scalars()]

    def ledger(self) -> dict[str, str]:
        with self.bus.uow_factory() as uow:
            return {row.id: row.outcome for row in uow.session.execute(select(ProcessedMessage)).scalars()}

    def subscription_row(self, sub_id: str) -> dict:
        with self.bus.uow_factory() as uow:
            row = uow.session.get(Subscription, sub_id)
            return {"status": row.status, "past_due_since": row.past_due_since,
                    "items": [(i.price_lookup_key, i.quantity) for i in row.items]}


@pytest.fixture
def world(sqlite_engine, make_settings):
    return World(sqlite_engine, make_settings())


def test_subscription_event_applies_stripe_state_and_publishes_once(world):
    customer, sub = world.tenant_on("t1", "pro", quantity=3)
    event = world.gw.add_event("customer.subscription.created", sub)

    assert world.deliver(event) == "applied"
    snap = world.snapshot("t1")
    assert (snap["version"], snap["plan"], snap["status"]) == (1, "pro", "active")
    assert snap["limits"]["seats"] == 3
    with world.bus.uow_factory() as uow:
        tenant = uow.session.get(Tenant, "t1")
        assert (tenant.stripe_customer_id, tenant.email) == (customer["id"], "t1@example.com")

    # A redelivery changes nothing and publishes nothing.
    assert world.deliver(event) == "duplicate"
    assert len(world.outbox("t1")) == 1
    assert world.ledger() == {event["id"]: "applied"}


def test_handler_trusts_stripe_not_the_payload(world):
    _, sub = world.tenant_on("t1", "starter")
    stale_payload = world.gw.add_event("customer.subscription.updated", sub)
    world.gw.set_item(sub["id"], price="enterprise_monthly", quantity=4)  # changed since the event
    world.deliver(stale_payload)
    snap = world.snapshot("t1")
    assert (snap["plan"], snap["limits"]["seats"]) == ("enterprise", 4)


def _scenario(world) -> list[dict]:
    """Sign-up on starter, upgrade to pro with 2 seats, schedule cancellation: three events."""
    _, sub = world.tenant_on("t1", "starter")
    events = [world.gw.add_event("customer.subscription.created", sub)]
    world.gw.set_item(sub["id"], price="pro_monthly", quantity=2)
    events.append(world.gw.add_event("customer.subscription.updated", world.gw.subscriptions[sub["id"]]))
    world.gw.set_subscription(sub["id"], cancel_at_period_end=True)
    events.append(world.gw.add_event("customer.subscription.updated", world.gw.subscriptions[sub["id"]]))
    return events


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_events_out_of_order_and_twice_give_the_same_final_state(world, sqlite_engine, make_settings, tmp_path, seed):
    in_order = _scenario(world)
    for event in in_order:
        world.deliver(event)
    expected = world.snapshot("t1")

    # A second, independent database receiving the same events shuffled and each twice.
    from billing_sync.models import make_engine
    from billing_sync.models.migrate import upgrade

    url = f"sqlite:///{tmp_path}/other-{seed}.db"
    upgrade(url)
    other = World(make_engine(url), make_settings(database_url=url))
    shuffled = _scenario(other) * 2
    random.Random(seed).shuffle(shuffled)
    outcomes = [other.deliver(event) for event in shuffled]

    got = other.snapshot("t1")
    assert {k: v for k, v in got.items() if k != "version"} == {k: v for k, v in expected.items() if k != "version"}
    assert got["plan"] == "pro" and got["limits"]["seats"] == 2
    assert sorted(outcomes) == ["applied"] * 3 + ["duplicate"] * 3
    versions = [e["version"] for e in other.outbox("t1")]
    assert versions == sorted(set(versions))  # strictly increasing, no repeats


def test_an_older_event_arriving_late_does_not_roll_back(world):
    _, sub = world.tenant_on("t1", "starter")
    old = world.gw.add_event("customer.subscription.created", sub)
    world.gw.set_item(sub["id"], price="pro_monthly")
    new = world.gw.add_event("customer.subscription.updated", world.gw.subscriptions[sub["id"]])
    world.deliver(new)
    world.deliver(old)  # received later: re-reads, and Stripe says pro
    assert world.snapshot("t1")["plan"] == "pro"
    assert [e["plan"] for e in world.outbox("t1")] == ["pro"]


def test_events_received_together_cost_one_read(world):
    _, sub = world.tenant_on("t1", "pro")
    world.deliver(world.gw.add_event("customer.subscription.created", sub))
    world.gw.set_item(sub["id"], quantity=5)
    first = world.gw.add_event("customer.subscription.updated", world.gw.subscriptions[sub["id"]])
    world.gw.set_subscription(sub["id"], cancel_at_period_end=True)
    second = world.gw.add_event("customer.subscription.updated", world.gw.subscriptions[sub["id"]])
    world.gw.reset_calls()

    received = world.clock.advance(seconds=1)  # both reach the ingress now
    world.clock.advance(seconds=1)  # and a worker takes them a moment later
    assert world.bus.handle(event_received(world.bus, first, received)) == "applied"
    assert world.bus.handle(event_received(world.bus, second, received)) == "applied"
    assert world.gw.count("retrieve_subscription") == 1
    snap = world.snapshot("t1")
    assert snap["limits"]["seats"] == 5 and snap["version"] == 2
    assert world.subscription_row(sub["id"])["items"] == [("pro_monthly", 5)]

    # An event received after our last read is read again.
    world.gw.set_item(sub["id"], quantity=6)
    world.deliver(world.gw.add_event("customer.subscription.updated", world.gw.subscriptions[sub["id"]]))
    assert world.gw.count("retrieve_subscription") == 2
    assert world.snapshot("t1")["limits"]["seats"] == 6


def test_version_bumps_only_on_a_real_change(world):
    _, sub = world.tenant_on("t1", "pro")
    world.deliver(world.gw.add_event("customer.subscription.created", sub))
    world.gw.set_subscription(sub["id"], metadata={"note": "irrelevant"})
    updated = world.gw.add_event("customer.subscription.updated", world.gw.subscriptions[sub["id"]])
    assert world.deliver(updated) == "applied"
    assert world.snapshot("t1")["version"] == 1
    world.gw.set_item(sub["id"], quantity=2)
    world.deliver(world.gw.add_event("customer.subscription.updated", world.gw.subscriptions[sub["id"]]))
    assert world.snapshot("t1")["version"] == 2
    assert [e["version"] for e in world.outbox("t1")] == [1, 2]


def _invoice(sub: dict, status: str = "open") -> dict:
    """An invoice in the API 2026-10-28 shape: its subscription under parent.subscription_details."""
    return {"id": f"in_{sub['id']}_{status}", "object": "invoice", "customer": sub["customer"], "status": status,
            "subscription": None,
            "parent": {"type": "subscription_details", "quote_details": None,
                       "subscription_details": {"metadata": {}, "subscription": sub["id"]}}}


def test_past_due_keeps_the_plan_for_the_grace_period_then_free_tier(world):
    _, sub = world.tenant_on("t1", "pro")
    world.deliver(world.gw.add_event("customer.subscription.created", sub))

    world.gw.set_subscription(sub["id"], status="past_due")
    assert world.deliver(world.gw.add_event("invoice.payment_failed", _invoice(sub))) == "applied"
    went_past_due = world.clock()
    snap = world.snapshot("t1")
    assert (snap["plan"], snap["status"], snap["version"]) == ("pro", "past_due", 2)
    assert world.subscription_row(sub["id"])["past_due_since"] == went_past_due

    # A later event does not restart the grace period.
    world.clock.advance(days=3)
    world.deliver(world.gw.add_event("customer.subscription.updated", world.gw.subscriptions[sub["id"]]))
    assert world.subscription_row(sub["id"])["past_due_since"] == went_past_due

    grace = timedelta(days=world.bus.catalog.past_due_grace_days)
    world.clock.current = went_past_due + grace - timedelta(seconds=5)
    world.bus.call(reconcile_tenant, "t1")
    assert world.snapshot("t1")["plan"] == "pro"
    world.clock.advance(seconds=10)  # grace over: the sweep's reconcile applies the time rule
    report = world.bus.call(reconcile_tenant, "t1")
    snap = world.snapshot("t1")
    assert report["entitlements_changed"] and (snap["plan"], snap["status"], snap["version"]) == ("free", "past_due", 3)
    assert snap["features"] == ["dashboard"]

    world.gw.set_subscription(sub["id"], status="active")  # the customer pays
    world.deliver(world.gw.add_event("invoice.paid", _invoice(sub, "paid")))
    snap = world.snapshot("t1")
    assert (snap["plan"], snap["status"], snap["version"]) == ("pro", "active", 4)
    assert world.subscription_row(sub["id"])["past_due_since"] is None


def test_product_feature_change_reaches_every_tenant_on_it(world):
    for tenant_id in ("a", "b", "c"):
        _, sub = world.tenant_on(tenant_id, "pro")
        world.deliver(world.gw.add_event("customer.subscription.created", sub))
    _, other = world.tenant_on("s", "starter")
    world.deliver(world.gw.add_event("customer.subscription.created", other))
    before = len(world.outbox())

    product_id = world.product_of("pro")
    world.gw.product_features[product_id] = ["sandbox"]
    world.gw.products[product_id]["metadata"]["features"] = "beta_ui"
    event = world.gw.add_event("product.updated", world.gw.products[product_id])
    assert world.deliver(event) == "applied"

    for tenant_id in ("a", "b", "c"):
        snap = world.snapshot(tenant_id)
        assert {"sandbox", "beta_ui"} <= set(snap["features"]) and snap["version"] == 2
    assert world.snapshot("s")["version"] == 1
    assert len(world.outbox()) == before + 3
    assert world.deliver(event) == "duplicate"
    assert len(world.outbox()) == before + 3


def test_price_event_follows_a_moved_lookup_key(world):
    _, sub = world.tenant_on("t1", "pro")
    world.deliver(world.gw.add_event("customer.subscription.created", sub))
    price_id = world.prices["pro"]["id"]
    world.gw.prices[price_id]["lookup_key"] = None  # lookup_key moved away: price unknown to the catalog
    world.deliver(world.gw.add_event("price.updated", world.gw.prices[price_id]))
    # Plan still known through the product's metadata `plan` (seed_catalog sets it).
    assert world.snapshot("t1")["plan"] == "pro"
    assert world.subscription_row(sub["id"])["items"] == [(None, 1)]


def test_customer_without_tenant_id_is_ignored(world):
    customer = world.gw.add_customer(None)
    event = world.gw.add_event("customer.created", customer)
    assert world.deliver(event) == "ignored"
    assert world.ledger() == {event["id"]: "ignored"}
    assert world.deliver(event) == "duplicate"
    assert world.outbox() == []


def test_customer_events_mirror_the_customer_and_a_deletion_means_free_tier(world):
    customer, sub = world.tenant_on("t1", "pro")
    assert world.deliver(world.gw.add_event("customer.created", customer)) == "applied"
    assert world.snapshot("t1")["plan"] == "free"  # first sight: customer, no subscription mirrored yet
    world.deliver(world.gw.add_event("customer.subscription.created", sub))
    assert world.snapshot("t1")["plan"] == "pro"

    world.gw.customers[customer["id"]]["name"] = "Acme"
    world.deliver(world.gw.add_event("customer.updated", world.gw.customers[customer["id"]]))
    with world.bus.uow_factory() as uow:
        assert uow.session.get(Tenant, "t1").name == "Acme"

    del world.gw.customers[customer["id"]]
    world.gw.subscriptions[sub["id"]]["status"] = "canceled"
    world.deliver(world.gw.add_event("customer.deleted", customer))
    snap = world.snapshot("t1")
    assert (snap["plan"], snap["status"]) == ("free", "canceled")
    with world.bus.uow_factory() as uow:
        assert uow.session.get(Tenant, "t1").stripe_customer_id is None


def test_deleted_subscription_is_applied_as_canceled(world):
    _, sub = world.tenant_on("t1", "pro")
    world.deliver(world.gw.add_event("customer.subscription.created", sub))
    del world.gw.subscriptions[sub["id"]]
    world.deliver(world.gw.add_event("customer.subscription.deleted", sub))
    assert world.subscription_row(sub["id"])["status"] == "canceled"
    assert world.snapshot("t1")["plan"] == "free"


def test_active_entitlement_summary_adds_stripe_features(world):
    customer, sub = world.tenant_on("t1", "pro")
    world.deliver(world.gw.add_event("customer.subscription.created", sub))
    world.gw.set_active_entitlements(customer["id"], ["analytics", "sso"])
    summary = {"object": "entitlements.active_entitlement_summary", "customer": customer["id"],
               "entitlements": {"object": "list", "data": [], "has_more": True, "url": "/v1/x"}, "livemode": False}
    world.deliver(world.gw.add_event("entitlements.active_entitlement_summary.updated", summary))
    assert "analytics" in world.snapshot("t1")["features"]
    assert world.snapshot("t1")["version"] == 2


def test_invoice_without_subscription_is_mirrored_and_reads_no_subscription(world):
    """A one-off invoice is on the billing page's list (issue 9); it has no subscription to read."""
    from billing_sync.models import Invoice

    customer, _ = world.tenant_on("t1", "pro")
    invoice = {"id": "in_1", "object": "invoice", "customer": customer["id"], "subscription": None, "parent": None,
               "status": "paid", "amount_due": 500, "amount_paid": 500, "currency": "usd", "created": 1_700_000_000}
    world.gw.invoice_objects["in_1"] = invoice
    assert world.deliver(world.gw.add_event("invoice.paid", invoice)) == "applied"
    assert world.gw.count("retrieve_subscription") == 0
    with world.bus.uow_factory() as uow:
        row = uow.session.get(Invoice, "in_1")
        assert (row.status, row.amount_paid) == ("paid", 500)


def test_a_second_customer_claiming_the_tenant_is_ignored(world):
    _, sub = world.tenant_on("t1", "pro")
    world.deliver(world.gw.add_event("customer.subscription.created", sub))
    impostor = world.gw.add_customer("t1")
    assert world.deliver(world.gw.add_event("customer.created", impostor)) == "ignored"
    assert world.snapshot("t1")["plan"] == "pro"


def test_transient_stripe_error_leaves_no_trace_and_a_retry_succeeds(world):
    _, sub = world.tenant_on("t1", "pro")
    event = world.gw.add_event("customer.subscription.created", sub)
    world.gw.fail_next("retrieve_subscription", TransientError("429"))
    with pytest.raises(TransientError):
        world.deliver(event)
    assert world.ledger() == {} and world.outbox() == []
    assert world.deliver(event) == "applied"
    assert world.snapshot("t1")["plan"] == "pro"


def test_an_unreachable_database_is_a_transient_failure(make_settings, tmp_path):
    from sqlalchemy import create_engine

    world = World(create_engine(f"sqlite:///{tmp_path}/no-such-dir/billing.db"), make_settings())
    _, sub = world.tenant_on("t1", "pro")
    product = world.gw.retrieve_product(world.product_of("pro"))
    for event in (world.gw.add_event("customer.subscription.updated", sub),
                  world.gw.add_event("product.updated", product)):
        with pytest.raises(TransientError, match="database unavailable"):
            world.deliver(event)


def test_dispatch_routes_and_ignores_unknown_types(world):

    _, sub = world.tenant_on("t1", "pro")
    assert world.deliver(world.gw.add_event("customer.subscription.created", sub)) == "applied"
    unknown = world.gw.add_event("radar.early_fraud_warning.created", {"id": "issfr_1", "object": "x"})
    assert world.deliver(unknown) == "ignored"
    assert world.ledger()[unknown["id"]] == "ignored"
    assert world.deliver(unknown) == "duplicate"


def test_a_message_that_is_not_an_event_is_rejected_before_the_bus(world):
    from billing_sync.errors import InvalidMessage

    with pytest.raises(InvalidMessage):
        received(world.bus, {"event": {"no": "id"}})


def test_feature_detached_from_a_product_reaches_tenants_through_their_summaries(world):
    """Stripe has no product-feature events: it sends each customer's entitlement summary."""
    product_id = world.product_of("pro")
    world.gw.product_features[product_id] = ["sandbox"]
    summaries = []
    for tenant_id in ("a", "b"):
        customer, sub = world.tenant_on(tenant_id, "pro")
        world.gw.set_active_entitlements(customer["id"], ["sandbox"])
        world.deliver(world.gw.add_event("customer.subscription.created", sub))
        assert "sandbox" in world.snapshot(tenant_id)["features"]
        summaries.append({"object": "entitlements.active_entitlement_summary", "customer": customer["id"],
                          "entitlements": {"object": "list", "data": [], "has_more": False, "url": "/v1/x"}})

    world.gw.product_features[product_id] = []  # detached in the dashboard
    for summary in summaries:
        world.gw.set_active_entitlements(summary["customer"], [])
    events = [world.gw.add_event("entitlements.active_entitlement_summary.updated", s) for s in summaries]
    world.gw.reset_calls()
    received = world.clock.advance(seconds=1)
    world.clock.advance(seconds=1)
    for event in events:
        assert world.bus.handle(event_received(world.bus, event, received)) == "applied"
    for tenant_id in ("a", "b"):
        assert "sandbox" not in world.snapshot(tenant_id)["features"]
        assert world.snapshot(tenant_id)["version"] == 2
    assert world.gw.count("retrieve_product") == 1  # one read for both tenants' summaries


# -- freshness: when a copy counts as newer than an event -----------------------------------------

def _change_during_the_read(world, sub_id: str, quantity: int) -> dict:
    """Make the next subscription read slow (1 s each side of Stripe's answer) and let staff change
    the quantity after Stripe answered; returns the change's event and when it reached the ingress."""
    original = world.gw.retrieve_subscription
    during: dict = {}

    def slow_read(subscription_id):
        world.clock.advance(seconds=1)
        answer = original(subscription_id)
        world.gw.retrieve_subscription = original
        world.gw.set_item(sub_id, quantity=quantity)
        during["event"] = world.gw.add_event("customer.subscription.updated", world.gw.subscriptions[sub_id])
        during["received_at"] = world.clock()  # the ingress takes it while our read is still under way
        world.clock.advance(seconds=1)
        return answer

    world.gw.retrieve_subscription = slow_read
    return during


def test_an_event_received_during_a_read_is_read_again(world):
    _, sub = world.tenant_on("t1", "pro", quantity=2)
    during = _change_during_the_read(world, sub["id"], quantity=7)
    world.deliver(world.gw.add_event("customer.subscription.created", sub))
    assert world.snapshot("t1")["limits"]["seats"] == 2  # what Stripe said when it answered

    world.clock.advance(seconds=1)
    assert world.bus.handle(event_received(world.bus, during["event"], during["received_at"])) == "applied"
    assert world.snapshot("t1")["limits"]["seats"] == 7
    assert world.subscription_row(sub["id"])["items"] == [("pro_monthly", 7)]


def test_a_worker_clock_slightly_ahead_of_the_ingress_does_not_skip_an_event(world):
    _, sub = world.tenant_on("t1", "pro", quantity=2)
    world.deliver(world.gw.add_event("customer.subscription.created", sub))
    read_at = world.clock()  # the worker's clock; the ingress's runs 0.3 s behind it
    world.gw.set_item(sub["id"], quantity=4)  # changed just after our read...
    event = world.gw.add_event("customer.subscription.updated", world.gw.subscriptions[sub["id"]])
    received_at = read_at - timedelta(seconds=0.2)  # ...and stamped by the slow ingress clock

    world.clock.advance(seconds=1)
    assert world.bus.handle(event_received(world.bus, event, received_at)) == "applied"
    assert world.snapshot("t1")["limits"]["seats"] == 4


def test_an_event_received_after_the_sweep_listed_stripe_is_read_again(world):
    """The sweep lists everything first and applies it later: the copies are stamped with the
    time of the listing, not of the apply, so a change made in between is not skipped."""
    from billing_sync.handlers.sweep import sweep

    _, sub = world.tenant_on("t1", "pro", quantity=2)
    world.deliver(world.gw.add_event("customer.subscription.created", sub))
    real = world.gw.list_subscriptions
    during: dict = {}

    def list_then_staff_change(**kw):
        listed = list(real(**kw))
        world.gw.list_subscriptions = real
        world.clock.advance(seconds=1)
        world.gw.set_item(sub["id"], quantity=9)
        during["event"] = world.gw.add_event("customer.subscription.updated", world.gw.subscriptions[sub["id"]])
        during["received_at"] = world.clock()
        world.clock.advance(seconds=2)  # the sweep applies what it listed a while later
        return iter(listed)

    world.gw.list_subscriptions = list_then_staff_change
    assert world.bus.call(sweep)["errors"] == 0
    assert world.snapshot("t1")["limits"]["seats"] == 2  # what the listing said

    world.clock.advance(seconds=1)
    assert world.bus.handle(event_received(world.bus, during["event"], during["received_at"])) == "applied"
    assert world.snapshot("t1")["limits"]["seats"] == 9
