"""Issue 9, end to end on real processes: a checkout session asked of the ingress, completed by the
emulated customer, reaches the tenant's entitlements through the webhook path; a declined card
changes nothing; a 3-D Secure payment counts once the customer confirms it."""
from __future__ import annotations

import httpx

CHECKOUT = {"plan": "pro", "seats": 2, "success_url": "https://app.test/billing/done",
            "cancel_url": "https://app.test/billing"}


def _start(fleet, tenant: str, key: str) -> dict:
    response = fleet.api.post(f"/v1/tenants/{tenant}/checkout-sessions", json=CHECKOUT,
                              headers={"Idempotency-Key": key})
    assert response.status_code == 201, response.text
    return response.json()


def _pay(fleet, session_id: str, card: str) -> httpx.Response:
    return httpx.post(f"{fleet.emulator.url}/_emulator/checkout_sessions/{session_id}/complete",
                      json={"payment_method": card}, timeout=10)


def _pro(events, tenant: str):
    return events.wait_for(lambda e: e["type"] == "billing.entitlements.changed"
                           and e["data"]["tenant_id"] == tenant and e["data"]["plan"] == "pro", timeout=10)


def test_a_completed_checkout_reaches_entitlements(fleet, events):
    tenant = fleet.new_tenant()
    session = _start(fleet, tenant, "first")
    assert _start(fleet, tenant, "first") == session                 # a repeat: the first answer
    assert _pay(fleet, session["id"], "pm_card_visa").status_code == 200
    changed = _pro(events, tenant)
    assert changed["data"]["status"] == "active" and changed["data"]["limits"]["seats"] == 2
    assert fleet.api.get(f"/v1/tenants/{tenant}/entitlements").json()["plan"] == "pro"


def test_a_declined_checkout_changes_nothing_and_3d_secure_counts_once_confirmed(fleet, events):
    tenant = fleet.new_tenant()
    session = _start(fleet, tenant, "try")
    declined = _pay(fleet, session["id"], "pm_card_chargeDeclined")
    assert declined.status_code == 402 and declined.json()["error"]["code"] == "card_declined"
    paying = _pay(fleet, session["id"], "pm_card_authenticationRequired")
    assert paying.status_code == 200 and paying.json()["status"] == "open"   # waits for the customer
    sub = fleet.stripe.v1.subscriptions.retrieve(paying.json()["subscription"])
    assert sub.status == "incomplete"
    (intent,) = fleet.stripe.v1.payment_intents.list(params={"customer": sub.customer}).data
    fleet.stripe.v1.payment_intents.confirm(intent.id)               # the customer passes 3-D Secure
    assert _pro(events, tenant)["data"]["status"] == "active"
