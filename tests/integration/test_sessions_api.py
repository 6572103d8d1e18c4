"""The self-serve session endpoints on real PostgreSQL, through the real gateway and the Stripe
emulator (playing the customer with its controls): checkout, portal and setup-intent sessions,
Idempotency-Key replays that survive a restart, the change preview and a change billed at the
preview's price, and the bad input the edge refuses."""
from __future__ import annotations

import json
import urllib.request
import uuid

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from billing_sync.bms.gateway import StripeGateway
from billing_sync.client import command_envelope
from billing_sync.handlers.command_dispatch import handle_command
from billing_sync.ingress.sessions_api import routes
from billing_sync.models import utcnow

from contexts import make_bus

AUTH = {"Authorization": "Bearer svc-token"}
CHECKOUT = {"plan": "pro", "seats": 2, "success_url": "https://app.test/billing/ok?session={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://app.test/billing"}


@pytest.fixture
def ctx(emulator, pg_url, pg_engine, make_settings):
    """The bus the ingress gets (named ctx here: what the tests read through it)."""
    settings = make_settings(database_url=pg_url, stripe_api_base=emulator.url, stripe_api_key="sk_test_sessions",
                             api_tokens="svc-token")
    return make_bus(settings, pg_engine, StripeGateway("sk_test_sessions", api_base=emulator.url), utcnow)


@pytest.fixture
def client(ctx):
    with TestClient(Starlette(routes=routes(ctx))) as test_client:
        yield test_client


def new_tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def act(emulator, path: str, body: dict) -> dict:
    request = urllib.request.Request(f"{emulator.url}{path}", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def tenant_customers(ctx, tenant: str) -> list[dict]:
    page = ctx.gateway._call(ctx.gateway.client.v1.customers.search, {"query": f"metadata['tenant_id']:'{tenant}'"})
    return page["data"]


def checkout(client, tenant: str, key: str | None = None, **body) -> object:
    headers = {**AUTH, **({"Idempotency-Key": key} if key else {})}
    return client.post(f"/v1/tenants/{tenant}/checkout-sessions", json={**CHECKOUT, **body}, headers=headers)


def test_checkout_for_a_new_tenant_creates_its_customer_and_completes_into_a_subscription(client, ctx, emulator):
    tenant = new_tenant()
    response = checkout(client, tenant)
    assert response.status_code == 201, response.text
    answer = response.json()
    assert set(answer) == {"id", "url", "expires_at"} and answer["url"].startswith("https://checkout.stripe.com/")
    (customer,) = tenant_customers(ctx, tenant)
    session = ctx.gateway.client.v1.checkout.sessions.retrieve(answer["id"])
    assert session.customer == customer["id"] and session.client_reference_id == tenant
    assert session.metadata["tenant_id"] == tenant and session.success_url == CHECKOUT["success_url"]
    done = act(emulator, f"/_emulator/checkout_sessions/{answer['id']}/complete", {"payment_method": "pm_card_visa"})
    sub = ctx.gateway.subscription(done["subscription"])
    assert sub.status == "active" and sub.items[0].quantity == 2 and sub.items[0].lookup_key == "pro_monthly"
    assert ctx.gateway.retrieve_subscription(sub.id)["metadata"]["tenant_id"] == tenant
    again = checkout(client, tenant)                                  # subscribed now: change it instead
    assert again.status_code == 409 and again.json()["error"] == "already_subscribed"


def test_a_repeat_with_the_same_key_returns_the_first_answer_even_after_a_restart(ctx, client, emulator):
    tenant = new_tenant()
    first = checkout(client, tenant, key="checkout-1")
    assert first.status_code == 201
    with TestClient(Starlette(routes=routes(ctx))) as restarted:    # a new process, the same database
        repeat = checkout(restarted, tenant, key="checkout-1")
    assert (repeat.status_code, repeat.json()) == (201, first.json())
    sessions = ctx.gateway.client.v1.checkout.sessions.list(params={"customer": tenant_customers(ctx, tenant)[0]["id"]})
    assert [s.id for s in sessions.data] == [first.json()["id"]]      # one session in Stripe
    other = checkout(client, tenant, key="checkout-1", seats=5)
    assert other.status_code == 409 and other.json()["error"] == "idempotency_key_reused"
    assert checkout(client, tenant, key="checkout-2").json()["id"] != first.json()["id"]


def test_checkout_reuses_the_provisioned_customer(client, ctx):
    tenant = new_tenant()
    envelope = command_envelope("billing.tenant.provisioned", tenant,
                                {"name": "Acme", "email": f"{tenant}@example.test", "plan": "free"})
    assert ctx.call(handle_command, envelope) == "completed"
    assert checkout(client, tenant).status_code == 201
    (customer,) = tenant_customers(ctx, tenant)
    assert customer["name"] == "Acme"


def test_portal_sessions_and_the_customer_in_the_portal(client, ctx, emulator):
    tenant = new_tenant()
    path = f"/v1/tenants/{tenant}/portal-sessions"
    body = {"return_url": "https://app.test/billing"}
    assert client.post(path, json=body, headers=AUTH).status_code == 404          # no customer yet
    session_id = checkout(client, tenant).json()["id"]
    cancel = client.post(path, json={**body, "flow": "subscription_cancel"}, headers=AUTH)
    assert cancel.status_code == 409 and cancel.json()["error"] == "no_live_subscription"
    act(emulator, f"/_emulator/checkout_sessions/{session_id}/complete", {"payment_method": "pm_card_visa"})
    for flow in (None, "payment_method_update", "subscription_update", "subscription_cancel"):
        response = client.post(path, json={**body, **({"flow": flow} if flow else {})}, headers=AUTH)
        assert response.status_code == 201, response.text
        assert set(response.json()) == {"id", "url"} and response.json()["url"].startswith("https://billing.stripe.com/")
    sub = act(emulator, f"/_emulator/billing_portal_sessions/{response.json()['id']}/cancel_subscription",
              {"at_period_end": True})
    assert sub["cancel_at_period_end"] is True


def test_a_setup_intent_for_a_card_collected_in_app(client, ctx):
    tenant = new_tenant()
    response = client.post(f"/v1/tenants/{tenant}/setup-intents", json={}, headers={**AUTH, "Idempotency-Key": "s1"})
    assert response.status_code == 201 and set(response.json()) == {"client_secret"}
    secret = response.json()["client_secret"]
    intent_id = secret.split("_secret_")[0]
    confirmed = ctx.gateway.client.v1.setup_intents.confirm(intent_id, params={"payment_method": "pm_card_visa"})
    assert confirmed.status == "succeeded" and confirmed.customer == tenant_customers(ctx, tenant)[0]["id"]
    repeat = client.post(f"/v1/tenants/{tenant}/setup-intents", headers={**AUTH, "Idempotency-Key": "s1"})
    assert repeat.json() == {"client_secret": secret}


def test_the_preview_is_what_the_change_costs(client, ctx, emulator):
    tenant = new_tenant()
    session_id = checkout(client, tenant, seats=1).json()["id"]
    act(emulator, f"/_emulator/checkout_sessions/{session_id}/complete", {"payment_method": "pm_card_visa"})
    response = client.get(f"/v1/tenants/{tenant}/preview", params={"seats": "3"}, headers=AUTH)
    assert response.status_code == 200, response.text
    quote = response.json()
    assert quote["seats"] == 3 and quote["currency"] == "usd" and quote["proration_amount"] > 0
    assert quote["amount_due"] == quote["proration_amount"] + 3 * 4900
    envelope = command_envelope("billing.subscription.change", tenant,
                                {"seats": 3, "proration_date": quote["proration_date"]})
    assert ctx.call(handle_command, envelope) == "completed"
    sub = ctx.gateway.live_subscriptions(tenant_customers(ctx, tenant)[0]["id"])[0]
    upcoming = ctx.gateway.upcoming_invoice(sub)
    assert upcoming.amount_due == quote["amount_due"]                  # the charge equals the preview
    upgrade = client.get(f"/v1/tenants/{tenant}/preview", params={"plan": "enterprise"}, headers=AUTH).json()
    assert upgrade["plan"] == "enterprise" and upgrade["seats"] == 3 and upgrade["proration_amount"] > 0
    unknown = client.get(f"/v1/tenants/{tenant}/preview", params={"plan": "platinum"}, headers=AUTH)
    assert unknown.status_code == 400 and unknown.json()["error"] == "unknown_plan"
    assert client.get(f"/v1/tenants/{new_tenant()}/preview", params={"seats": "2"}, headers=AUTH).status_code == 404


@pytest.mark.parametrize("path, body, field", [
    ("checkout-sessions", {**CHECKOUT, "plan": ""}, "plan"),
    ("checkout-sessions", {**CHECKOUT, "seats": "2"}, "seats"),
    ("checkout-sessions", {**CHECKOUT, "seats": 0}, "seats"),
    ("checkout-sessions", {**CHECKOUT, "trial_days": 731}, "trial_days"),
    ("checkout-sessions", {**CHECKOUT, "success_url": "javascript:alert(1)"}, "success_url"),
    ("checkout-sessions", {**CHECKOUT, "cancel_url": "https://app.test/\n"}, "cancel_url"),
    ("checkout-sessions", {**CHECKOUT, "coupon": "FREE"}, "coupon"),
    ("checkout-sessions", {k: v for k, v in CHECKOUT.items() if k != "success_url"}, "success_url"),
    ("portal-sessions", {"return_url": "https://app.test", "flow": "refund"}, "flow"),
    ("portal-sessions", {}, "return_url"),
    ("setup-intents", {"usage": "on_session"}, "usage"),
])
def test_bad_bodies_are_400_naming_the_field(client, path, body, field):
    response = client.post(f"/v1/tenants/{new_tenant()}/{path}", json=body, headers=AUTH)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert response.json()["detail"].startswith(field)


@pytest.mark.parametrize("raw", [b"[1]", b"{", b'{"plan": NaN}', "\ufeff{}".encode(), b"x" * 20000])
def test_bodies_that_are_not_strict_json_objects_are_400(client, raw):
    response = client.post(f"/v1/tenants/{new_tenant()}/checkout-sessions", content=raw, headers=AUTH)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_tokens_tenant_ids_keys_plans_and_queries_are_checked_first(client):
    tenant = new_tenant()
    assert checkout(client, tenant, key=None).status_code == 201
    no_auth = client.post(f"/v1/tenants/{tenant}/checkout-sessions", json=CHECKOUT)
    assert no_auth.status_code == 401
    assert client.post("/v1/tenants/bad%20id/checkout-sessions", json=CHECKOUT, headers=AUTH).status_code == 400
    bad_key = checkout(client, tenant, key="has space")
    assert bad_key.status_code == 400 and bad_key.json()["detail"].startswith("Idempotency-Key")
    unknown = checkout(client, new_tenant(), plan="platinum")
    assert unknown.status_code == 400 and unknown.json()["error"] == "unknown_plan"
    free = checkout(client, new_tenant(), plan="free")
    assert free.status_code == 400 and free.json()["error"] == "invalid"
    for params in ({}, {"seats": "many"}, {"seats": "0"}, {"plan": "pro", "extra": "1"}):
        response = client.get(f"/v1/tenants/{tenant}/preview", params=params, headers=AUTH)
        assert response.status_code == 400 and response.json()["error"] == "invalid_request", params
