"""When webhooks never arrive (the endpoint was down longer than Stripe kept retrying) the
scheduler's catch-up lists Stripe's events and repairs the tenant; when the local copy drifts
from Stripe (a bad manual edit, a restored backup), `billing-sync reconcile --tenant` repairs it
and `--dry-run` only reports it."""
from __future__ import annotations

import json
import subprocess

import pytest

from chaos_helpers import SECRET, entitlement_changes, query, wait_until
from fleet_processes import BIN, free_port

pytestmark = pytest.mark.slow  # CI runs these; the quick run (-m "not slow") skips them


@pytest.fixture(scope="module")
def fleet(make_fleet, chaos_db, shared_bus_url):
    fleet = make_fleet(database_url=chaos_db, broker_url=shared_bus_url,
                       roles=("ingress", "worker", "relay", "scheduler"), BILLING_CATCH_UP_INTERVAL_S="1")
    # Stripe's endpoint points at a port nobody listens on, and gives up quickly.
    emulator = fleet.emulator
    emulator.faults.webhook_retry_backoff_s = 0.05
    emulator.faults.webhook_max_attempts = 2
    emulator.add_webhook_endpoint(f"http://127.0.0.1:{free_port()}/webhooks/stripe", SECRET)
    return fleet


def _reconcile(fleet, *args: str) -> tuple[int, dict]:
    done = subprocess.run([str(BIN), "reconcile", "--json", *args], env=fleet.env, capture_output=True, text=True,
                          timeout=60)
    return done.returncode, json.loads(done.stdout)


def _converged(fleet, events, tenant: str, plan: str, timeout: float = 20) -> dict:
    return events.wait_for(lambda e: e["data"].get("tenant_id") == tenant and e["data"].get("plan") == plan,
                           timeout=timeout)


def test_catch_up_repairs_changes_whose_webhooks_stripe_gave_up_on(fleet, events, chaos_db):
    emulator = fleet.emulator
    tenant = fleet.new_tenant("missed")
    _, sub = fleet.staff_signup(tenant, "starter")
    fleet.stripe.v1.subscriptions.update(sub.id, params={
        "items": [{"id": sub["items"].data[0].id, "price": fleet.price("pro")}]})
    ids = {e["id"] for e in emulator.events() if e["data"]["object"].get("id") == sub.id}

    assert emulator.wait_for_deliveries_idle(10)
    attempts = [d for d in emulator.deliveries if d["event"] in ids]
    assert attempts and all(d["status"] is None for d in attempts)  # not one webhook got through

    changed = _converged(fleet, events, tenant, "pro")
    assert "sso" in changed["data"]["features"]
    wait_until(lambda: query(chaos_db, "SELECT count(*) FROM processed_messages WHERE id = ANY(%s)",
                             list(ids)) == [(len(ids),)], 10, "every missed event in the ledger")
    changes = entitlement_changes(events, tenant)
    versions = [e["data"]["version"] for e in changes]
    assert versions == sorted(set(versions)) and changes[-1]["data"]["plan"] == "pro", versions
    snapshot = fleet.api.get(f"/v1/tenants/{tenant}/entitlements").json()
    assert (snapshot["plan"], snapshot["version"]) == ("pro", versions[-1])
    assert query(chaos_db, "SELECT count(*) FROM dead_letters") == [(0,)]
    assert "reconcile.catch_up" in (fleet.tmp / "scheduler.log").read_text()


def test_reconcile_repairs_a_corrupted_local_copy_and_dry_run_only_reports_it(fleet, events, chaos_db):
    tenant = fleet.new_tenant("drift")
    _, sub = fleet.staff_signup(tenant, "pro")
    good = _converged(fleet, events, tenant, "pro")["data"]
    # Let catch-up bring in every event first (invoices etc.): a late one would re-derive the
    # tenant from the corrupted rows below and race with the reconcile under test.
    ids = [e["id"] for e in fleet.emulator.events()]
    wait_until(lambda: query(chaos_db, "SELECT count(*) FROM processed_messages WHERE id = ANY(%s)", ids)
               == [(len(ids),)], 15, "every Stripe event in the ledger")
    assert query(chaos_db, "SELECT version FROM entitlement_snapshots WHERE tenant_id = %s",
                 tenant) == [(good["version"],)]

    # Someone "fixes" the tenant by hand: the subscription looks canceled, the plan free.
    query(chaos_db, "UPDATE subscriptions SET status = 'canceled' WHERE id = %s", sub.id)
    query(chaos_db, "UPDATE entitlement_snapshots SET plan = 'free', features = '[]' WHERE tenant_id = %s", tenant)
    corrupted = [("canceled", "free", good["version"])]
    state_sql = ("SELECT s.status, e.plan, e.version FROM subscriptions s "
                 "JOIN entitlement_snapshots e ON e.tenant_id = s.tenant_id WHERE s.id = %s")
    mark = events.mark()

    code, report = _reconcile(fleet, "--tenant", tenant, "--dry-run")
    assert code == 0
    assert report["dry_run"] is True and report["drift"] == [f"{sub.id} changed"]
    assert report["entitlements_changed"] is True
    assert query(chaos_db, state_sql, sub.id) == corrupted  # reported, not repaired

    code, report = _reconcile(fleet, "--tenant", tenant)
    assert code == 0
    assert report["dry_run"] is False and report["drift"] == [f"{sub.id} changed"]
    assert report["entitlements_changed"] is True and report["version"] == good["version"] + 1
    assert query(chaos_db, state_sql, sub.id) == [("active", "pro", good["version"] + 1)]
    repaired = events.wait_for(lambda e: e["type"] == "billing.entitlements.changed"
                               and e["data"].get("tenant_id") == tenant, timeout=10, since=mark)
    assert repaired["data"]["cause"] == "reconcile" and repaired["data"]["version"] == good["version"] + 1
    assert repaired["data"]["features"] == good["features"] and repaired["data"]["plan"] == "pro"

    code, report = _reconcile(fleet, "--tenant", tenant)  # nothing left to repair
    assert code == 0 and report["drift"] == [] and report["entitlements_changed"] is False
    assert [e["data"]["version"] for e in entitlement_changes(events, tenant)][-1] == good["version"] + 1
