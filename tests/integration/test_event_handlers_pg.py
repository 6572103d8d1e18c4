"""The Stripe event handlers on real PostgreSQL: row locks, the ledger, concurrent workers.

Stripe itself is stood in for by tests/fakes.FakeGateway (thread-safe enough for this: dict
and list operations under the GIL); what is under test here is the database side.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from billing_sync.handlers.entitlements import refresh_entitlements
from billing_sync.models import (
    EntitlementSnapshot,
    OutboxMessage,
    ProcessedMessage,
    Subscription,
    SubscriptionItem,
    Tenant,
    utcnow,
)

from contexts import Clock, event_received, make_bus
from fakes import FakeGateway

# The entitlement events (the billing page's own, billing.account.changed, are counted elsewhere).
ENTITLEMENTS = OutboxMessage.type == "billing.entitlements.changed"

class SlowGateway(FakeGateway):
    """Stripe reads that take a little while, so that concurrent handlers really overlap."""

    def retrieve_subscription(self, subscription_id):
        time.sleep(0.005)
        return super().retrieve_subscription(subscription_id)


def _bus(pg_engine, make_settings, gw, clock):
    return make_bus(make_settings(database_url=str(pg_engine.url)), pg_engine, gw, clock)


def _count(bus, model, *where) -> int:
    with bus.uow_factory() as uow:
        return uow.session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def test_subscription_event_and_duplicate_on_postgres(pg_engine, make_settings):
    clock = Clock()
    gw = FakeGateway(clock)
    bus = _bus(pg_engine, make_settings, gw, clock)
    prices = gw.seed_catalog(bus.catalog)
    customer = gw.add_customer("t1")
    sub = gw.add_subscription(customer["id"], prices["pro"]["id"], quantity=2)
    event = gw.add_event("customer.subscription.created", sub)

    assert bus.handle(event_received(bus, event, clock.advance(seconds=1))) == "applied"
    assert bus.handle(event_received(bus, event, clock.advance(seconds=1))) == "duplicate"
    assert _count(bus, OutboxMessage, ENTITLEMENTS) == 1
    assert _count(bus, ProcessedMessage) == 1
    with bus.uow_factory() as uow:
        snap = uow.session.get(EntitlementSnapshot, "t1")
        assert (snap.version, snap.plan, snap.limits["seats"]) == (1, "pro", 2)


def test_concurrent_events_for_one_tenant_keep_versions_increasing(pg_engine, make_settings):
    """Two workers take the events of one tenant at the same time, each event delivered twice."""
    gw = SlowGateway()
    bus = _bus(pg_engine, make_settings, gw, utcnow)
    prices = gw.seed_catalog(bus.catalog)
    customer = gw.add_customer("t1")
    sub = gw.add_subscription(customer["id"], prices["starter"]["id"], quantity=1)

    events = []
    lock = threading.Lock()
    stop = threading.Event()

    def dashboard():
        """Support staff changing the seat count while the workers run."""
        for quantity in range(2, 12):
            with lock:
                gw.set_item(sub["id"], quantity=quantity)
                events.append(gw.add_event("customer.subscription.updated", gw.subscriptions[sub["id"]]))
            time.sleep(0.003)
        stop.set()

    outcomes: list[str] = []

    def worker(offset: int):
        done = 0
        while not (stop.is_set() and done >= len(events)):
            if done < len(events):
                event = events[done]
                # Both workers get every event: the second delivery must be a no-op.
                outcomes.append(bus.handle(event_received(bus, event, utcnow())))
                done += 1
            else:
                time.sleep(0.001)

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(dashboard), pool.submit(worker, 0), pool.submit(worker, 1)]
        for future in futures:
            future.result(timeout=60)

    assert outcomes.count("applied") == len(events)  # exactly once each
    assert outcomes.count("duplicate") == len(events)
    with bus.uow_factory() as uow:
        versions = [row.data["version"] for row in
                    uow.session.execute(select(OutboxMessage).where(ENTITLEMENTS).order_by(OutboxMessage.id)).scalars()]
        snap = uow.session.get(EntitlementSnapshot, "t1")
        assert snap.limits["seats"] == 11  # the final Stripe state
        assert snap.version == versions[-1]
    assert versions == list(range(1, len(versions) + 1))  # strictly increasing, no gaps, no repeats
    assert _count(bus, Tenant) == 1 and _count(bus, Subscription) == 1 and _count(bus, SubscriptionItem) == 1
    assert _count(bus, ProcessedMessage) == len(events)


def test_first_sight_of_a_tenant_from_two_workers_at_once(pg_engine, make_settings):
    """Subscription and invoice events of a brand-new tenant race: one tenant row, one version 1."""
    gw = SlowGateway()
    bus = _bus(pg_engine, make_settings, gw, utcnow)
    prices = gw.seed_catalog(bus.catalog)
    customer = gw.add_customer("fresh")
    sub = gw.add_subscription(customer["id"], prices["pro"]["id"])
    sub_event = gw.add_event("customer.subscription.created", sub)
    invoice = {"id": "in_1", "object": "invoice", "customer": customer["id"], "subscription": None,
               "parent": {"type": "subscription_details", "subscription_details": {"subscription": sub["id"]}}}
    invoice_event = gw.add_event("invoice.paid", invoice)
    barrier = threading.Barrier(2)

    def run(event):
        barrier.wait()
        return bus.handle(event_received(bus, event, utcnow()))

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = [pool.submit(run, sub_event), pool.submit(run, invoice_event)]
        assert sorted(f.result(timeout=30) for f in results) == ["applied", "applied"]
    assert _count(bus, Tenant) == 1 and _count(bus, Subscription) == 1
    with bus.uow_factory() as uow:
        rows = uow.session.execute(select(OutboxMessage).where(ENTITLEMENTS)).scalars()
        assert [r.data["version"] for r in rows] == [1]


def test_lock_serializes_writers_of_one_tenant(pg_engine, make_settings):
    """While one transaction holds the tenant lock, another waits for it (and then sees its writes)."""
    clock = Clock()
    bus = _bus(pg_engine, make_settings, FakeGateway(clock), clock)
    holding = threading.Event()
    order: list[str] = []

    def first():
        with bus.uow_factory() as uow:
            tenant = uow.tenants.lock("t1")
            holding.set()
            time.sleep(0.2)
            bus.call(refresh_entitlements, uow, tenant, cause="first")
            order.append("first")
            uow.commit()

    def second():
        holding.wait(5)
        with bus.uow_factory() as uow:
            tenant = uow.tenants.lock("t1")
            order.append("second")
            assert bus.call(refresh_entitlements, uow, tenant, cause="second") is False  # sees v1: no change
            uow.commit()

    with ThreadPoolExecutor(max_workers=2) as pool:
        for f in [pool.submit(first), pool.submit(second)]:
            f.result(timeout=10)
    assert order == ["first", "second"]


def test_product_change_reaches_every_tenant_on_postgres(pg_engine, make_settings):
    clock = Clock()
    gw = FakeGateway(clock)
    bus = _bus(pg_engine, make_settings, gw, clock)
    prices = gw.seed_catalog(bus.catalog)
    tenants = [f"t{i}" for i in range(5)]
    for tenant_id in tenants:
        customer = gw.add_customer(tenant_id)
        sub = gw.add_subscription(customer["id"], prices["enterprise"]["id"])
        event = gw.add_event("customer.subscription.created", sub)
        bus.handle(event_received(bus, event, clock.advance(seconds=1)))
    product_id = prices["enterprise"]["product"]
    gw.product_features[product_id] = ["data_residency"]
    event = gw.add_event("product.updated", gw.products[product_id])
    assert bus.handle(event_received(bus, event, clock.advance(seconds=1))) == "applied"
    assert bus.handle(event_received(bus, event, clock.advance(seconds=1))) == "duplicate"
    with bus.uow_factory() as uow:
        snaps = uow.session.execute(select(EntitlementSnapshot)).scalars().all()
        assert sorted(s.tenant_id for s in snaps if "data_residency" in s.features) == tenants
        assert all(s.version == 2 for s in snaps)
    assert _count(bus, OutboxMessage, ENTITLEMENTS) == 10


def test_tenants_meeting_a_new_product_at_once_do_not_collide(pg_engine, make_settings):
    """Two tenants' handlers both insert the same never-seen Product row concurrently."""
    gw = SlowGateway()
    bus = _bus(pg_engine, make_settings, gw, utcnow)
    prices = gw.seed_catalog(bus.catalog)
    events = []
    for tenant_id in ("a", "b", "c", "d"):
        customer = gw.add_customer(tenant_id)
        sub = gw.add_subscription(customer["id"], prices["pro"]["id"])
        events.append(gw.add_event("customer.subscription.created", sub))
    barrier = threading.Barrier(len(events))

    def run(event):
        barrier.wait()
        return bus.handle(event_received(bus, event, utcnow()))

    with ThreadPoolExecutor(max_workers=len(events)) as pool:
        assert [f.result(timeout=30) for f in [pool.submit(run, e) for e in events]] == ["applied"] * 4
    from billing_sync.models import Product

    assert _count(bus, Product) == 1
    assert _count(bus, EntitlementSnapshot, EntitlementSnapshot.plan == "pro") == 4
