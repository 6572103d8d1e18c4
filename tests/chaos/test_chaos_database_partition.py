"""A network partition between the fleet and PostgreSQL while Stripe keeps changing: the ingress
keeps accepting (it needs only the broker), the workers retry with capped backoff, the relay
waits, and once the path is back everything converges to Stripe's final state with one
entitlements event per real change and nothing dead-lettered. The fleet reaches the shared
PostgreSQL only through a TcpProxy that the test cuts; the database itself stays up."""
from __future__ import annotations

import time

import pytest

from chaos_helpers import (
    SECRET,
    entitlement_changes,
    processed_outcomes,
    query,
    via_proxy,
    wait_until,
)

OUTAGE_S = 4.0

pytestmark = pytest.mark.slow  # CI runs these; the quick run (-m "not slow") skips them


@pytest.fixture(scope="module")
def fleet(make_fleet, chaos_db, pg_proxy, shared_bus_url):
    # 30 retries capped at 500 ms: well over the outage, so retries, not dead letters, cover it.
    fleet = make_fleet(database_url=via_proxy(chaos_db, pg_proxy.port), broker_url=shared_bus_url,
                       BILLING_MAX_RETRIES="30", BILLING_MAX_BACKOFF_MS="500")
    fleet.emulator.add_webhook_endpoint(f"{fleet.ingress_url}/webhooks/stripe", SECRET)
    return fleet


@pytest.fixture
def partition(pg_proxy):
    yield pg_proxy
    pg_proxy.restore()


def test_changes_made_during_a_database_partition_converge_once_it_heals(fleet, events, partition, chaos_db):
    emulator = fleet.emulator
    tenant = fleet.new_tenant("partition")
    _, sub = fleet.staff_signup(tenant, "starter", quantity=1)
    events.wait_for(lambda e: e["data"].get("tenant_id") == tenant and e["data"].get("plan") == "starter",
                    timeout=15)
    assert emulator.wait_for_deliveries_idle(10)
    # Let the signup settle completely before the cut: its invoice and card events commit their
    # own billing.account.changed, possibly after the entitlements event waited for above, and
    # one relayed after the mark would look like something applied during the partition.
    delivered = {d["event"] for d in emulator.deliveries if d["status"] == 200}
    wait_until(lambda: all(processed_outcomes(fleet, i) for i in delivered), 15, "the signup processed")
    wait_until(lambda: query(chaos_db, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == [(0,)],
               15, "the signup's events relayed")
    item = sub["items"].data[0].id
    seen_before = len(emulator.events())

    partition.cut()
    cut_at = time.monotonic()
    mark = events.mark()
    for params in ({"items": [{"id": item, "quantity": 3}]},
                   {"items": [{"id": item, "price": fleet.price("pro")}]},
                   {"items": [{"id": item, "quantity": 4}]}):
        fleet.stripe.v1.subscriptions.update(sub.id, params=params)
    changed_ids = {e["id"] for e in emulator.events()[seen_before:]
                   if e["type"] == "customer.subscription.updated" and e["data"]["object"]["id"] == sub.id}
    assert len(changed_ids) == 3
    # Stripe's deliveries are all acknowledged: the ingress needs the broker, not the database.
    assert emulator.wait_for_deliveries_idle(10)
    assert {d["status"] for d in emulator.deliveries if d["event"] in changed_ids} == {200}
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - cut_at)))
    assert not [e for e in events.events[mark:] if e["data"].get("tenant_id") == tenant], \
        "something was applied while the database was unreachable"
    partition.restore()

    events.wait_for(lambda e: e["data"].get("tenant_id") == tenant and e["data"].get("plan") == "pro"
                    and e["data"]["limits"].get("seats") == 4, timeout=30, since=mark)
    wait_until(lambda: all(processed_outcomes(fleet, i) for i in changed_ids), 10, "every change processed")
    time.sleep(0.5)  # let anything late run through the workers and the relay

    worker_log = (fleet.tmp / "worker.log").read_text(errors="replace")
    assert "message.retrying" in worker_log  # the outage was felt, and retried, not skipped
    changes = entitlement_changes(events, tenant)
    versions = [e["data"]["version"] for e in changes]
    assert versions == sorted(set(versions)), f"versions repeat or go back: {versions}"
    states = [(e["data"]["plan"], e["data"]["limits"].get("seats")) for e in changes]
    assert len(states) == len(set(states)), f"an event without a real change: {states}"
    assert states[-1] == ("pro", 4)
    final = fleet.api.get(f"/v1/tenants/{tenant}/entitlements").json()
    assert (final["plan"], final["limits"]["seats"], final["version"]) == ("pro", 4, versions[-1])
    stripe_sub = fleet.stripe.v1.subscriptions.retrieve(sub.id)
    assert stripe_sub["items"].data[0].quantity == 4
    assert query(chaos_db, "SELECT count(*) FROM dead_letters") == [(0,)]
    assert query(chaos_db, "SELECT count(*) FROM processed_messages WHERE id = ANY(%s)", list(changed_ids)) == [(3,)]
    assert query(chaos_db, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == [(0,)]
