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
                           and e["data"]["tenant_id"] == tenant and e["data"]["plan"] == "pro",
                           timeout=30)  # a loaded machine's first webhooks to a new fleet take their time


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


def _billing_when(fleet, tenant: str, check, timeout: float = 15.0) -> dict:
    from contexts import wait_until

    def ready():
        response = fleet.api.get(f"/v1/tenants/{tenant}/billing")
        return response.json() if response.status_code == 200 and check(response.json()) else None
    return wait_until(ready, timeout=timeout, what=f"billing of {tenant}")


def _control(fleet, path: str, body: dict) -> dict:
    response = httpx.post(f"{fleet.emulator.url}/_emulator/{path}", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_portal_sessions_update_the_card_and_cancel_through_the_webhook_path(fleet):
    tenant = fleet.new_tenant("portal")
    fleet.staff_signup(tenant, "starter")
    _billing_when(fleet, tenant, lambda b: b["payment_method"].get("last4") == "4242")

    card = fleet.api.post(f"/v1/tenants/{tenant}/portal-sessions",
                          json={"return_url": "https://app.test/billing", "flow": "payment_method_update"})
    assert card.status_code == 201 and card.json()["url"].startswith("https://"), card.text
    _control(fleet, f"billing_portal_sessions/{card.json()['id']}/update_payment_method",
             {"payment_method": "pm_card_mastercard"})
    body = _billing_when(fleet, tenant, lambda b: b["payment_method"].get("last4") == "4444")
    assert body["payment_method"]["brand"] == "mastercard" and body["payment_method"]["status"] == "valid"

    cancel = fleet.api.post(f"/v1/tenants/{tenant}/portal-sessions",
                            json={"return_url": "https://app.test/billing", "flow": "subscription_cancel"})
    assert cancel.status_code == 201, cancel.text
    _control(fleet, f"billing_portal_sessions/{cancel.json()['id']}/cancel_subscription", {"at_period_end": True})
    body = _billing_when(fleet, tenant, lambda b: b["subscription"]["cancel_at_period_end"])
    assert body["actions"]["resume"] is True and body["actions"]["cancel"] is False


def test_a_setup_intent_confirmed_with_stripe_makes_the_card_the_default(fleet):
    tenant = fleet.new_tenant("seti")
    answer = fleet.api.post(f"/v1/tenants/{tenant}/setup-intents", json={}, headers={"Idempotency-Key": "card-1"})
    assert answer.status_code == 201, answer.text
    secret = answer.json()["client_secret"]
    intent_id = secret.split("_secret_")[0]
    confirmed = fleet.stripe.v1.setup_intents.confirm(intent_id, params={"payment_method": "pm_card_visa"})
    assert confirmed.status == "succeeded"                      # what Stripe.js does in the browser
    body = _billing_when(fleet, tenant, lambda b: b["payment_method"].get("last4") == "4242")
    assert body["payment_method"]["status"] == "valid" and body["actions"]["update_payment_method"] is True


def test_a_change_sent_with_the_previews_proration_date_costs_what_the_preview_said(fleet, events):
    from billing_sync.client import publish_command

    tenant = fleet.new_tenant("preview")
    fleet.staff_signup(tenant, "starter")
    _billing_when(fleet, tenant, lambda b: b["subscription"] is not None and b["upcoming_invoice"] is not None)
    preview = fleet.api.get(f"/v1/tenants/{tenant}/preview?plan=pro&seats=2")
    assert preview.status_code == 200, preview.text
    quoted = preview.json()
    assert quoted["plan"] == "pro" and quoted["seats"] == 2 and quoted["amount_due"] > 0
    command_id = publish_command(fleet.env["BILLING_BROKER_URL"], "billing.subscription.change", tenant,
                                 {"tenant_id": tenant, "plan": "pro", "seats": 2,
                                  "proration_date": quoted["proration_date"]},
                                 queue_prefix=fleet.env["BILLING_QUEUE_PREFIX"])
    done = events.wait_for(lambda e: e["type"].startswith("billing.command.")
                           and e["data"].get("command_id") == command_id, timeout=15)
    assert done["type"] == "billing.command.completed", done
    body = _billing_when(fleet, tenant, lambda b: b["subscription"]["plan"] == "pro" and b["subscription"]["seats"] == 2
                         and (b["upcoming_invoice"] or {}).get("amount_due") == quoted["amount_due"])
    assert body["upcoming_invoice"]["currency"] == quoted["currency"]


def _provision_in_app(fleet, events, tenant: str) -> dict:
    from billing_sync.client import publish_command

    command_id = publish_command(fleet.env["BILLING_BROKER_URL"], "billing.tenant.provisioned", tenant,
                                 {"tenant_id": tenant, "name": "Acme", "email": f"{tenant}@example.test",
                                  "plan": "pro", "first_payment": "in_app"},
                                 queue_prefix=fleet.env["BILLING_QUEUE_PREFIX"])
    done = events.wait_for(lambda e: e["type"].startswith("billing.command.")
                           and e["data"].get("command_id") == command_id, timeout=15)
    assert done["type"] == "billing.command.completed", done
    return done["data"]


def test_a_paid_plan_without_a_card_waits_for_the_first_payment_confirmed_in_app(fleet, events):
    """No card and no trial: `first_payment: in_app` instead of `payment_required`. Nothing is
    granted until the customer confirms the payment with Stripe's own API (3-D Secure here)."""
    tenant = fleet.new_tenant("sca")
    done = _provision_in_app(fleet, events, tenant)
    assert done["subscription_status"] == "incomplete"
    secret = done["pending_payment"]["client_secret"]
    body = _billing_when(fleet, tenant, lambda b: b["pending_payment"] is not None)
    assert body["subscription"]["status"] == "incomplete" and body["pending_payment"]["client_secret"] == secret
    assert body["pending_payment"]["amount_due"] == 4900 and body["payment_method"] == {"status": "missing"}
    assert fleet.api.get(f"/v1/tenants/{tenant}/entitlements").json()["plan"] == "free"

    intent = secret.split("_secret_")[0]                              # what Stripe.js does in the browser
    asked = fleet.stripe.v1.payment_intents.confirm(intent, params={
        "payment_method": "pm_card_authenticationRequired", "client_secret": secret})
    assert asked.status == "requires_action"
    assert fleet.stripe.v1.payment_intents.confirm(intent).status == "succeeded"   # 3-D Secure passed
    assert _pro(events, tenant)["data"]["status"] == "active"
    body = _billing_when(fleet, tenant, lambda b: b["subscription"]["status"] == "active"
                         and b["payment_method"].get("last4") == "3184")
    assert body["pending_payment"] is None and body["actions"]["cancel"] is True


def test_an_unconfirmed_first_payment_expires_after_23_hours(fleet, events):
    tenant = fleet.new_tenant("sca-exp")
    done = _provision_in_app(fleet, events, tenant)
    assert done["test_clock"] and done["pending_payment"]                  # BILLING_STRIPE_TEST_CLOCKS=true
    _billing_when(fleet, tenant, lambda b: b["pending_payment"] is not None)
    clock = fleet.stripe.v1.test_helpers.test_clocks.retrieve(done["test_clock"])
    fleet.stripe.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": clock.frozen_time + 86400})
    body = _billing_when(fleet, tenant, lambda b: b["subscription"]["status"] == "incomplete_expired")
    assert body["pending_payment"] is None and body["actions"]["change_plan"] is False
    assert fleet.api.get(f"/v1/tenants/{tenant}/entitlements").json()["plan"] == "free"
