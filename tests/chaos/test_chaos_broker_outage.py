"""The broker (Redis) dies under a running ingress and worker: no webhook is acknowledged without
a durable enqueue, Stripe's retries carry the change across the outage, and the same processes
recover on their own once Redis is back on the same port. The shared Redis is never touched:
the fleet's broker is a private `redis-server`; billing.events stays on the shared Redis so the
product's view (the EventWatcher) is not part of the outage. The RabbitMQ case cuts a TcpProxy
between the fleet and the shared RabbitMQ instead of stopping it."""
from __future__ import annotations

import httpx
import pytest

from chaos_helpers import (
    SECRET,
    entitlement_changes,
    post_webhook,
    processed_outcomes,
    query,
    stripe_event_for,
    wait_until,
)

pytestmark = pytest.mark.slow  # CI runs these; the quick run (-m "not slow") skips them


@pytest.fixture(scope="module")
def fleet(make_fleet, chaos_db, own_redis, shared_bus_url):
    return make_fleet(database_url=chaos_db, broker_url=own_redis.url, BILLING_EVENTS_URL=shared_bus_url,
                      BILLING_MAX_RETRIES="20")


@pytest.fixture
def webhooks_to_ingress(fleet):
    """The emulator delivers to the ingress during the test, and to nobody after it."""
    endpoint = fleet.emulator.add_webhook_endpoint(f"{fleet.ingress_url}/webhooks/stripe", SECRET)
    yield endpoint
    fleet.stripe.v1.webhook_endpoints.update(endpoint["id"], params={"disabled": True})


@pytest.fixture
def outage(own_redis):
    """Kill the fleet's Redis for the test's outage; make sure it is back afterwards."""
    yield own_redis
    if not own_redis.running:
        own_redis.start()


def _ready(fleet) -> int:
    return httpx.get(f"{fleet.ingress_url}/readyz", timeout=15).status_code


def test_webhook_gets_503_while_redis_is_down_and_200_once_it_is_back(fleet, events, outage, chaos_db):
    tenant = fleet.new_tenant("outage")
    _, sub = fleet.staff_signup(tenant, "pro")  # no endpoint: we deliver by hand below
    event = stripe_event_for(fleet.emulator, "customer.subscription.created", sub.id)
    ingress = fleet.procs["ingress"]

    outage.kill()
    refused = post_webhook(fleet.ingress_url, event, SECRET)
    assert refused.status_code == 503, refused.text
    assert _ready(fleet) == 503
    assert processed_outcomes(fleet, event["id"]) == []

    outage.start()  # same port, empty (no persistence): nothing was acknowledged, so nothing lost
    accepted = post_webhook(fleet.ingress_url, event, SECRET)
    assert accepted.status_code == 200, accepted.text
    assert ingress.poll() is None and fleet.procs["ingress"] is ingress  # the same process recovered
    assert _ready(fleet) == 200

    # The worker, which saw Redis vanish under it, reconnects and applies the event once.
    changed = events.wait_for(lambda e: e["type"] == "billing.entitlements.changed"
                              and e["data"].get("tenant_id") == tenant, timeout=20)
    assert changed["data"]["plan"] == "pro" and changed["data"]["cause"] == event["id"]
    wait_until(lambda: processed_outcomes(fleet, event["id"]), 5, "the worker's log line")
    assert processed_outcomes(fleet, event["id"]) == ["applied"]  # exactly one message was enqueued
    assert query(chaos_db, "SELECT outcome FROM processed_messages WHERE id = %s", event["id"]) == [("applied",)]
    assert [e["data"]["plan"] for e in entitlement_changes(events, tenant)] == ["pro"]
    assert fleet.api.get(f"/v1/tenants/{tenant}/entitlements").json()["plan"] == "pro"


def test_stripe_retries_carry_a_dashboard_upgrade_across_the_outage(fleet, events, outage, webhooks_to_ingress,
                                                                   chaos_db):
    emulator = fleet.emulator
    tenant = fleet.new_tenant("retry")
    _, sub = fleet.staff_signup(tenant, "starter")
    events.wait_for(lambda e: e["data"].get("tenant_id") == tenant and e["data"].get("plan") == "starter",
                    timeout=15)
    emulator.wait_for_deliveries_idle(10)

    emulator.faults.webhook_retry_backoff_s = 0.3
    emulator.faults.webhook_retry_max_backoff_s = 1.0
    emulator.faults.webhook_max_attempts = 30
    try:
        outage.kill()
        fleet.stripe.v1.subscriptions.update(sub.id, params={
            "items": [{"id": sub["items"].data[0].id, "price": fleet.price("pro")}]})
        upgrade = stripe_event_for(emulator, "customer.subscription.updated", sub.id)

        def attempts():
            return [d for d in emulator.deliveries if d["event"] == upgrade["id"]]

        wait_until(lambda: len([d for d in attempts() if d["status"] == 503]) >= 2, 15,
                   "two refused deliveries of the upgrade")
        outage.start()

        changed = events.wait_for(lambda e: e["data"].get("tenant_id") == tenant and e["data"].get("plan") == "pro",
                                  timeout=20)
        assert emulator.wait_for_deliveries_idle(15)
    finally:
        emulator.faults.webhook_retry_backoff_s = 0.5
        emulator.faults.webhook_retry_max_backoff_s = 30.0
        emulator.faults.webhook_max_attempts = 8

    statuses = [d["status"] for d in attempts()]
    assert statuses[0] == 503 and statuses[-1] == 200 and statuses.count(200) == 1, statuses
    assert set(statuses) <= {503, 200}, statuses  # refused fast, never a 2xx without an enqueue
    assert "sso" in changed["data"]["features"]
    wait_until(lambda: processed_outcomes(fleet, upgrade["id"]), 5, "the worker's log line")
    assert processed_outcomes(fleet, upgrade["id"]) == ["applied"]
    plans = [e["data"]["plan"] for e in entitlement_changes(events, tenant)]
    versions = [e["data"]["version"] for e in entitlement_changes(events, tenant)]
    # (a first "free" may come from customer.created, before the subscription existed)
    assert plans[-2:] == ["starter", "pro"] and plans.count("pro") == 1, plans
    assert versions == sorted(set(versions)), versions
    snapshot = fleet.api.get(f"/v1/tenants/{tenant}/entitlements").json()
    assert (snapshot["plan"], snapshot["version"]) == ("pro", versions[-1])
    assert query(chaos_db, "SELECT count(*) FROM dead_letters") == [(0,)]


# -- RabbitMQ: a partition rather than a dead server --------------------------------------------


@pytest.fixture(scope="module")
def rabbit_proxy(stack, amqp_url):
    from urllib.parse import urlsplit

    from proxy import TcpProxy

    target = urlsplit(amqp_url)
    proxy = TcpProxy(target.hostname, target.port or 5672).start()
    stack.callback(proxy.close)
    return proxy


@pytest.fixture(scope="module")
def rabbit_fleet(make_fleet, chaos_db, rabbit_proxy, shared_bus_url):
    return make_fleet(database_url=chaos_db, broker_url=f"amqp://guest:guest@127.0.0.1:{rabbit_proxy.port}/%2F",
                      BILLING_EVENTS_URL=shared_bus_url, BILLING_MAX_RETRIES="20")


def test_rabbitmq_partition_at_the_ingress_gives_503_then_the_delivery_is_applied_once(
        rabbit_fleet, rabbit_proxy, events, chaos_db):
    fleet = rabbit_fleet
    tenant = fleet.new_tenant("amqp")
    customer, sub = fleet.staff_signup(tenant, "enterprise")
    event = stripe_event_for(fleet.emulator, "customer.subscription.created", sub.id)
    ingress = fleet.procs["ingress"]
    # A first delivery, so the ingress holds live connections for the partition to break.
    first = stripe_event_for(fleet.emulator, "customer.created", customer.id)
    assert post_webhook(fleet.ingress_url, first, SECRET).status_code == 200
    wait_until(lambda: processed_outcomes(fleet, first["id"]), 15, "the first event processed")

    rabbit_proxy.cut()
    try:
        refused = post_webhook(fleet.ingress_url, event, SECRET)
        assert refused.status_code == 503, refused.text
    finally:
        rabbit_proxy.restore()
    accepted = post_webhook(fleet.ingress_url, event, SECRET)
    assert accepted.status_code == 200, accepted.text
    assert ingress.poll() is None

    changed = events.wait_for(lambda e: e["type"] == "billing.entitlements.changed"
                              and e["data"].get("tenant_id") == tenant
                              and e["data"].get("plan") == "enterprise", timeout=30)
    assert changed["data"]["cause"] == event["id"]
    wait_until(lambda: processed_outcomes(fleet, event["id"]), 5, "the worker's log line")
    assert processed_outcomes(fleet, event["id"]) == ["applied"]
    assert [e["data"]["plan"] for e in entitlement_changes(events, tenant)][-1:] == ["enterprise"]
    assert query(chaos_db, "SELECT count(*) FROM processed_messages WHERE id IN (%s, %s)",
                 first["id"], event["id"]) == [(2,)]
