"""The demo's self-serve story (issue 9): a pricing page, a checkout, the success page's sync, the
billing page, a card update in the portal and the invoice list, all from billing-sync's read API.

The Checkout and Customer Portal sessions are made in Stripe directly here, as a product backend
would through billing-sync's session endpoints (`POST /v1/tenants/{id}/checkout-sessions`,
`…/portal-sessions`); the emulator's `/_emulator/…` controls play the customer on Stripe's pages.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import httpx
import stripe

STEP_TIMEOUT_S = 15.0


def self_serve_steps(step: Callable[[str, Callable[[], str]], None], api: httpx.Client,
                     dashboard: stripe.StripeClient, emulator_url: str) -> None:
    """Run the story's steps through `step(title, fn)` (the demo's timeline)."""
    tenant = f"initech-{uuid.uuid4().hex[:4]}"
    customer_box: dict[str, str] = {}
    emulator = httpx.Client(base_url=emulator_url)

    def billing_when(check: Callable[[dict], bool]) -> dict:
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while True:
            response = api.get(f"/v1/tenants/{tenant}/billing")
            if response.status_code == 200 and check(response.json()):
                return response.json()
            assert time.monotonic() < deadline, f"billing never matched: {response.text[:300]}"
            time.sleep(0.1)

    def pricing_page() -> str:
        plans = api.get("/v1/plans").raise_for_status().json()["data"]
        priced = [f"{p['key']} {p['price']['amount'] / 100:.0f} {p['price']['currency']}/{p['price']['interval']}"
                  for p in plans if p["price"]]
        assert priced, plans
        return "plans: " + ", ".join(priced)

    def checkout() -> str:
        customer = dashboard.v1.customers.create(params={"name": "Initech", "metadata": {"tenant_id": tenant}})
        customer_box["id"] = customer.id
        price = dashboard.v1.prices.list(params={"lookup_keys": ["pro_monthly"]}).data[0]
        session = dashboard.v1.checkout.sessions.create(params={
            "mode": "subscription", "customer": customer.id, "client_reference_id": tenant,
            "metadata": {"tenant_id": tenant}, "line_items": [{"price": price.id, "quantity": 3}],
            "success_url": "https://app.example/billing/success", "cancel_url": "https://app.example/pricing"})
        emulator.post(f"/_emulator/checkout_sessions/{session.id}/complete",
                      json={"payment_method": "pm_card_visa"}).raise_for_status()
        return f"checkout {session.id[:14]}… paid with pm_card_visa by the emulated customer"

    def success_page() -> str:
        synced = api.post(f"/v1/tenants/{tenant}/sync").raise_for_status().json()
        assert synced["entitlements"]["plan"] == "pro", synced
        return (f"sync: plan {synced['entitlements']['plan']}, "
                f"subscription {synced['billing']['subscription']['status']}, no webhook needed")

    def billing_page() -> str:
        body = billing_when(lambda b: b["payment_method"]["status"] == "valid")
        card, upcoming = body["payment_method"], body["upcoming_invoice"]
        due = f"{upcoming['amount_due'] / 100:.2f} {upcoming['currency']} on {upcoming['date'][:10]}" if upcoming \
            else "none yet"
        return f"{card['brand']} •••• {card['last4']} ({card['status']}), seats {body['subscription']['seats']}, " \
               f"upcoming invoice {due}, v{body['version']}"

    def card_update() -> str:
        session = dashboard.v1.billing_portal.sessions.create(params={
            "customer": customer_box["id"], "return_url": "https://app.example/billing",
            "flow_data": {"type": "payment_method_update"}})
        emulator.post(f"/_emulator/billing_portal_sessions/{session.id}/update_payment_method",
                      json={"payment_method": "pm_card_mastercard"}).raise_for_status()
        body = billing_when(lambda b: b["payment_method"].get("brand") == "mastercard")
        return f"portal: the card is now {body['payment_method']['brand']} •••• {body['payment_method']['last4']}"

    def invoice_list() -> str:
        invoices = api.get(f"/v1/tenants/{tenant}/invoices?limit=5").raise_for_status().json()["data"]
        assert invoices, "no invoice listed"
        newest = invoices[0]
        amount = f"{newest['amount_paid'] / 100:.2f} {newest['currency']}"
        return f"{len(invoices)} invoice(s); newest {newest['status']} {amount}"

    try:
        step("pricing page from GET /v1/plans", pricing_page)
        step("a new tenant checks out (Stripe Checkout)", checkout)
        step("the success page syncs", success_page)
        step("the billing page shows the card and the upcoming invoice", billing_page)
        step("the tenant updates the card in the Customer Portal", card_update)
        step("the invoice list", invoice_list)
    finally:
        emulator.close()
