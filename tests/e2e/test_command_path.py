"""Issue 4, end to end: product commands on billing.commands are applied to Stripe exactly once,
each ends in one outcome event, and the change comes back as entitlements like any other."""
from __future__ import annotations

import threading
import time
import uuid

import pytest
from kombu import Producer

from billing_sync.client import publish_command
from billing_sync.config import bus


def _send(fleet, type: str, tenant: str, data: dict, id: str | None = None) -> str:
    return publish_command(fleet.env["BILLING_BROKER_URL"], type, tenant, {"tenant_id": tenant, **data}, id=id,
                           queue_prefix=fleet.env["BILLING_QUEUE_PREFIX"])  # kept even if the bridge is not up yet


def _outcome(events, command_id: str, timeout: float = 15) -> dict:
    return events.wait_for(lambda e: e["type"].startswith("billing.command.")
                           and e["data"].get("command_id") == command_id, timeout=timeout)


def _customers(fleet, tenant: str) -> list:
    return fleet.stripe.v1.customers.search(params={"query": f"metadata['tenant_id']:'{tenant}'"}).data


def _subscriptions(fleet, tenant: str) -> list:
    (customer,) = _customers(fleet, tenant)
    return fleet.stripe.v1.subscriptions.list(params={"customer": customer.id, "status": "all"}).data


def _provision(fleet, events, tenant: str, **data) -> dict:
    payload = {"name": "Acme", "email": f"{tenant}@example.test", "plan": "starter",
               "payment_method": "pm_card_visa", **data}
    done = _outcome(events, _send(fleet, "billing.tenant.provisioned", tenant, payload))
    assert done["type"] == "billing.command.completed", done
    return done


def _entitled(events, tenant: str, since: int, **expected) -> dict:
    """The first entitlements event for `tenant` after position `since` that has `expected`."""
    def match(e):
        d = e["data"]
        return (e["type"] == "billing.entitlements.changed" and d.get("tenant_id") == tenant
                and all(d.get(k) == v if k != "seats" else d["limits"].get("seats") == v for k, v in expected.items()))
    return events.wait_for(match, since=since)


def test_every_command_type_reaches_stripe_and_reports_its_outcome(fleet, events):
    tenant = fleet.new_tenant("cmd")
    mark = events.mark()
    done = _provision(fleet, events, tenant, seats=2, trial_days=14)
    (customer,) = _customers(fleet, tenant)
    (sub,) = _subscriptions(fleet, tenant)
    assert sub.status == "trialing" and sub["items"].data[0].quantity == 2
    assert done["data"]["tenant_id"] == tenant
    _entitled(events, tenant, mark, plan="starter", status="trialing")

    ok = _outcome(events, _send(fleet, "billing.tenant.updated", tenant, {"name": "Acme GmbH"}))
    assert ok["type"] == "billing.command.completed"
    assert fleet.stripe.v1.customers.retrieve(customer.id).name == "Acme GmbH"

    mark = events.mark()
    _outcome(events, _send(fleet, "billing.subscription.change", tenant, {"plan": "pro", "seats": 6}))
    (sub,) = _subscriptions(fleet, tenant)
    assert sub["items"].data[0].price.lookup_key == "pro_monthly" and sub["items"].data[0].quantity == 6
    _entitled(events, tenant, mark, plan="pro", seats=6)

    _outcome(events, _send(fleet, "billing.subscription.cancel", tenant, {"at_period_end": True}))
    assert _subscriptions(fleet, tenant)[0].cancel_at_period_end is True
    _outcome(events, _send(fleet, "billing.subscription.resume", tenant, {}))
    assert _subscriptions(fleet, tenant)[0].cancel_at_period_end is False

    _outcome(events, _send(fleet, "billing.usage.recorded", tenant,
                           {"meter": "api_calls", "quantity": 42, "timestamp": int(time.time())}))
    check = fleet.api.get(f"/v1/tenants/{tenant}/entitlements/api_calls").json()
    assert check["used"] == 42 and check["remaining"] == check["limit"] - 42

    mark = events.mark()
    _outcome(events, _send(fleet, "billing.subscription.cancel", tenant, {"at_period_end": False}))
    assert _subscriptions(fleet, tenant)[0].status == "canceled"
    _entitled(events, tenant, mark, plan="free")

    # A change on a canceled subscription replaces it.
    mark = events.mark()
    _outcome(events, _send(fleet, "billing.subscription.change", tenant, {"plan": "starter"}))
    subs = _subscriptions(fleet, tenant)
    assert sorted(s.status for s in subs) == ["active", "canceled"]
    _entitled(events, tenant, mark, plan="starter", status="active")

    mark = events.mark()
    deleted = _outcome(events, _send(fleet, "billing.tenant.deleted", tenant, {}))
    assert deleted["type"] == "billing.command.completed"
    assert all(s.status == "canceled" for s in _subscriptions(fleet, tenant))
    _entitled(events, tenant, mark, plan="free")


def test_a_command_delivered_twice_is_applied_once(fleet, events):
    tenant = fleet.new_tenant("dup")
    command_id = str(uuid.uuid4())
    data = {"name": "Dup", "email": "dup@example.test", "plan": "starter", "payment_method": "pm_card_visa"}
    _send(fleet, "billing.tenant.provisioned", tenant, data, id=command_id)
    _outcome(events, command_id)
    _send(fleet, "billing.tenant.provisioned", tenant, data, id=command_id)
    time.sleep(1.0)
    outcomes = [e for e in events.events if e["data"].get("command_id") == command_id]
    assert len(outcomes) == 1
    assert len(_customers(fleet, tenant)) == 1 and len(_subscriptions(fleet, tenant)) == 1


def test_card_declined_and_unknown_plan_fail_with_reasons(fleet, events):
    declined = _outcome(events, _send(fleet, "billing.tenant.provisioned", fleet.new_tenant("dec"), {
        "name": "D", "email": "d@example.test", "plan": "pro", "payment_method": "pm_card_chargeDeclined"}))
    assert (declined["type"], declined["data"]["reason"]) == ("billing.command.failed", "card_declined")
    unknown = _outcome(events, _send(fleet, "billing.tenant.provisioned", fleet.new_tenant("unk"), {
        "name": "U", "email": "u@example.test", "plan": "platinum"}))
    assert (unknown["type"], unknown["data"]["reason"]) == ("billing.command.failed", "unknown_plan")
    nobody = _outcome(events, _send(fleet, "billing.subscription.change", fleet.new_tenant("nobody"), {"seats": 2}))
    assert (nobody["type"], nobody["data"]["reason"]) == ("billing.command.failed", "unknown_tenant")


def test_malformed_commands_fail_as_invalid_and_the_bridge_keeps_consuming(fleet, events):
    bad_id = f"cmd-bad-{uuid.uuid4().hex[:8]}"
    with bus.connect(fleet.env["BILLING_BROKER_URL"]) as conn:
        # The fleet is up once the ingress is; the bridge may not have bound its queue yet, and
        # an exchange drops what no queue is bound to: declare it, as `billing-sync bus declare` does.
        bus.declare_topology(conn, fleet.env["BILLING_QUEUE_PREFIX"])
        exchange = bus.commands_exchange(fleet.env["BILLING_QUEUE_PREFIX"])
        producer = Producer(conn.default_channel, exchange=exchange)
        producer.publish(b"{not json", routing_key="tenant.provisioned", content_type="application/json",
                         content_encoding="utf-8", declare=[exchange])
        producer.publish({"specversion": "1.0", "id": bad_id, "source": "test",
                          "type": "billing.subscription.change", "subject": "x", "data": {"seats": "many"}},
                         routing_key="subscription.change", serializer="json")
    bad = _outcome(events, bad_id)
    assert (bad["type"], bad["data"]["reason"]) == ("billing.command.failed", "invalid")
    events.wait_for(lambda e: e["type"] == "billing.command.failed" and e["data"].get("reason") == "invalid"
                    and e["data"].get("command_id") is None)
    _provision(fleet, events, fleet.new_tenant("after"))  # the bridge is still consuming


def test_concurrent_in_app_and_dashboard_changes_converge_on_stripe(fleet, events):
    tenant = fleet.new_tenant("race")
    _provision(fleet, events, tenant, seats=1)
    (sub,) = _subscriptions(fleet, tenant)
    staff = threading.Thread(target=lambda: fleet.stripe.v1.subscriptions.update(
        sub.id, params={"items": [{"id": sub["items"].data[0].id, "quantity": 9}]}))
    staff.start()
    command_id = _send(fleet, "billing.subscription.change", tenant, {"seats": 7})
    staff.join()
    _outcome(events, command_id)
    fleet.emulator.wait_for_deliveries_idle(10)
    final_quantity = _subscriptions(fleet, tenant)[0]["items"].data[0].quantity
    deadline = time.monotonic() + 20
    while True:
        snapshot = fleet.api.get(f"/v1/tenants/{tenant}/entitlements").json()
        if snapshot.get("limits", {}).get("seats") == final_quantity or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert snapshot["limits"]["seats"] == final_quantity
    last = _entitled(events, tenant, 0, version=snapshot["version"])
    assert last["data"]["limits"]["seats"] == final_quantity
    newer = [e for e in events.events if e["type"] == "billing.entitlements.changed"
             and e["data"]["tenant_id"] == tenant and e["data"]["version"] > snapshot["version"]]
    assert newer == [], "entitlements moved on after converging"


@pytest.mark.slow
def test_worker_killed_between_stripe_calls_leaves_one_set_of_objects(fleet, events):
    """A crash mid-command: the redelivered command reuses its idempotency keys."""
    tenant = fleet.new_tenant("crash")
    fleet.emulator.faults.latency_ms = 400
    try:
        command_id = _send(fleet, "billing.tenant.provisioned", tenant, {
            "name": "Crash", "email": "c@example.test", "plan": "starter", "payment_method": "pm_card_visa"})
        deadline = time.monotonic() + 15
        while not _customers(fleet, tenant):
            assert time.monotonic() < deadline, "customer never created"
            time.sleep(0.05)
        fleet.kill("worker")  # its Dramatiq processes too: they hold the command
        fleet.start("worker", "--processes", "1", "--threads", "4")
        done = _outcome(events, command_id, timeout=40)
    finally:
        fleet.emulator.faults.latency_ms = 0
    assert done["type"] == "billing.command.completed"
    assert len(_customers(fleet, tenant)) == 1 and len(_subscriptions(fleet, tenant)) == 1
