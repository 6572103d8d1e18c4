"""Money under chaos, on real processes: usage recorded while Stripe's webhooks are held back
(the ingress is down) is counted in the subscription's real period once they arrive, and
`subscription.cancel` commands racing support staff's cancellations in the dashboard all
complete. The fleet's broker and bus are the shared Redis (database 12)."""
from __future__ import annotations

import contextlib
import threading
import time

import pytest

from billing_sync.client import publish_command

from chaos_helpers import SECRET, log_records

pytestmark = pytest.mark.slow  # CI runs these; the quick run (-m "not slow") skips them


@pytest.fixture(scope="module")
def fleet(make_fleet, chaos_db, shared_bus_url):
    fleet = make_fleet(database_url=chaos_db, broker_url=shared_bus_url,
                       roles=("ingress", "worker", "bridge", "relay"))
    emulator = fleet.emulator
    emulator.faults.webhook_retry_backoff_s = 0.5  # Stripe retries for days; here every half second
    emulator.faults.webhook_retry_max_backoff_s = 1
    emulator.faults.webhook_max_attempts = 200
    endpoint = emulator.add_webhook_endpoint(f"{fleet.ingress_url}/webhooks/stripe", SECRET)
    yield fleet
    fleet.stripe.v1.webhook_endpoints.update(endpoint["id"], params={"disabled": True})


def _send(fleet, type: str, tenant: str, data: dict) -> str:
    return publish_command(fleet.env["BILLING_BROKER_URL"], type, tenant, data,
                           queue_prefix=fleet.env["BILLING_QUEUE_PREFIX"])


def _outcome(events, command_id: str, timeout: float = 30) -> dict:
    return events.wait_for(lambda e: e["type"].startswith("billing.command.")
                           and e["data"].get("command_id") == command_id, timeout=timeout)


def _provision(fleet, events, tenant: str, plan: str = "pro") -> dict:
    done = _outcome(events, _send(fleet, "billing.tenant.provisioned", tenant, {
        "name": tenant, "email": f"{tenant}@example.test", "plan": plan, "payment_method": "pm_card_visa"}))
    assert done["type"] == "billing.command.completed", done
    return done["data"]


def test_usage_recorded_while_webhooks_are_held_back_counts_in_the_right_period(fleet, events):
    tenant = fleet.new_tenant("usage")
    fleet.stop("ingress")  # Stripe's webhooks now fail and are retried
    try:
        _provision(fleet, events, tenant)
        usage = _outcome(events, _send(fleet, "billing.usage.recorded", tenant, {
            "meter": "api_calls", "quantity": 100, "timestamp": int(time.time())}))
        assert (usage["type"], usage["data"]["used"]) == ("billing.command.completed", 100), usage
    finally:
        fleet.start("ingress", "--port", str(fleet.port))
        fleet.wait_healthy()

    events.wait_for(lambda e: e["type"] == "billing.entitlements.changed"
                    and e["data"].get("tenant_id") == tenant and e["data"].get("plan") == "pro", timeout=30)
    check = fleet.api.get(f"/v1/tenants/{tenant}/entitlements/api_calls").json()
    assert (check["used"], check["remaining"]) == (100, check["limit"] - 100), check
    later = _outcome(events, _send(fleet, "billing.usage.recorded", tenant, {
        "meter": "api_calls", "quantity": 1, "timestamp": int(time.time())}))
    assert later["data"]["used"] == 101


def test_cancels_racing_dashboard_cancels_all_complete(fleet, events):
    """Staff cancel each tenant's subscription in the dashboard a little after the tenant's
    cancel command was published, the delay stepping through 0 to 1.8 s; Stripe answers slowly
    (300 ms a request), so some staff cancels land between the command's read and its write.
    None of the commands may fail, and the race must really have happened."""
    delays = [round(0.15 * i, 2) for i in range(13)]
    tenants = [fleet.new_tenant("race") for _ in delays]
    subs = {tenant: _provision(fleet, events, tenant, plan="starter")["subscription_id"] for tenant in tenants}

    def staff_cancel(sub_id: str, delay: float) -> None:
        time.sleep(delay)
        with contextlib.suppress(Exception):  # the command was first: staff find it canceled already
            fleet.stripe.v1.subscriptions.cancel(sub_id)

    fleet.emulator.faults.latency_ms = 300
    outcomes = {}
    try:
        for i, (tenant, delay) in enumerate(zip(tenants, delays, strict=True)):
            command_id = _send(fleet, "billing.subscription.cancel", tenant, {"at_period_end": i % 2 == 1})
            staff = threading.Thread(target=staff_cancel, args=(subs[tenant], delay))
            staff.start()
            outcomes[tenant] = _outcome(events, command_id, timeout=60)
            staff.join(30)
    finally:
        fleet.emulator.faults.latency_ms = 0

    failed = {t: o["data"] for t, o in outcomes.items() if o["type"] != "billing.command.completed"}
    assert not failed, failed
    for tenant in tenants:
        assert fleet.stripe.v1.subscriptions.retrieve(subs[tenant]).status == "canceled"
    raced = {r.get("tenant_id") for r in log_records(fleet.tmp / "worker.log") if r.get("event") == "command.redecide"}
    assert raced & set(tenants), "no command met a dashboard cancel between its read and its write"
