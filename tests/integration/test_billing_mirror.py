"""The billing page's mirror and read API (issue 9) on PostgreSQL, with the Stripe emulator as
Stripe: the events it emits are handed to the handlers (as the workers would), then the read
API is asked through Starlette's TestClient over a Context that has no Stripe at all."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from billing_sync.bms.catalog_sync import ensure_catalog
from billing_sync.bms.gateway import StripeGateway
from billing_sync.handlers.billing_account import refresh_billing_document
from billing_sync.handlers.expiring_cards import announce_expiring_cards
from billing_sync.handlers.reconcile import reconcile_tenant
from billing_sync.handlers.sweep import sweep
from billing_sync.ingress import billing_api, plans_api, read_api
from billing_sync.models import BillingAccount, Invoice, OutboxMessage, utcnow
from billing_sync_emulator.server import EmulatorServer

from contexts import Clock, NoStripe, event_received, make_bus

TOKEN = "svc-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class World:
    def __init__(self, pg_engine, make_settings):
        self.emulator = EmulatorServer(seed=3).start()
        self.gw = StripeGateway("sk_test_mirror", api_base=self.emulator.url)
        self.settings = make_settings(database_url=str(pg_engine.url), api_tokens=TOKEN)
        self.bus = make_bus(self.settings, pg_engine, self.gw, utcnow)
        self.api_clock = Clock(utcnow())
        self.api_bus = make_bus(self.settings, pg_engine, NoStripe(), self.api_clock)
        ensure_catalog(self.gw, self.bus.catalog)
        self.stripe = self.gw.client
        self.delivered: set[str] = set()
        app = Starlette(routes=[*read_api.routes(self.api_bus), *billing_api.routes(self.api_bus),
                                *plans_api.routes(self.api_bus)])
        self.api = TestClient(app)

    def price(self, plan: str) -> str:
        return self.gw.find_price_by_lookup_key(f"{plan}_monthly")["id"]

    def signup(self, tenant: str, plan: str = "pro", pm: str = "pm_card_visa", quantity: int = 2, **params):
        customer = self.stripe.v1.customers.create(params={
            "name": f"Tenant {tenant}", "email": f"{tenant}@example.test", "metadata": {"tenant_id": tenant},
            "payment_method": pm, "invoice_settings": {"default_payment_method": pm}})
        sub = self.stripe.v1.subscriptions.create(params={
            "customer": customer.id, "items": [{"price": self.price(plan), "quantity": quantity}], **params})
        return customer, sub

    def deliver(self, *, again: bool = False) -> list[str]:
        """Hand every emitted event (oldest first) not yet handed over to its handler."""
        outcomes = []
        for event in self.emulator.events():
            if event["id"] in self.delivered and not again:
                continue
            self.delivered.add(event["id"])
            outcomes.append(self.bus.handle(event_received(self.bus, event, utcnow())))
        return outcomes

    def outbox(self, type_: str, tenant: str) -> list[dict]:
        with self.bus.uow_factory() as uow:
            rows = uow.session.execute(select(OutboxMessage).where(
                OutboxMessage.type == type_, OutboxMessage.subject == tenant).order_by(OutboxMessage.id)).scalars()
            return [row.data for row in rows]

    def billing(self, tenant: str, headers=AUTH):
        return self.api.get(f"/v1/tenants/{tenant}/billing", headers=headers)


@pytest.fixture
def world(pg_engine, make_settings):
    w = World(pg_engine, make_settings)
    yield w
    w.emulator.stop()


def test_signup_mirrors_customer_card_subscription_and_paid_invoice_once(world):
    customer, sub = world.signup("acme")
    world.deliver()

    body = world.billing("acme").json()
    assert body["customer"] == {"name": "Tenant acme", "email": "acme@example.test", "address": None, "tax_ids": []}
    assert body["subscription"]["id"] == sub.id
    assert (body["subscription"]["plan"], body["subscription"]["seats"], body["subscription"]["status"]) == (
        "pro", 2, "active")
    assert body["subscription"]["cancel_at_period_end"] is False
    assert body["payment_method"] == {"type": "card", "brand": "visa", "last4": "4242", "exp_month": 12,
                                      "exp_year": 2034, "status": "valid"}
    assert body["actions"] == {"change_plan": True, "cancel": True, "resume": False, "update_payment_method": True}
    assert body["version"] >= 1

    invoices = world.api.get("/v1/tenants/acme/invoices", headers=AUTH).json()
    assert invoices["has_more"] is False
    [invoice] = invoices["data"]
    assert (invoice["status"], invoice["amount_paid"], invoice["currency"]) == ("paid", 9800, "usd")
    assert set(invoice) == {"id", "number", "status", "amount_due", "amount_paid", "currency", "period_start",
                            "period_end", "created", "hosted_invoice_url", "invoice_pdf"}
    [paid] = world.outbox("billing.invoice.paid", "acme")
    assert paid["invoice_id"] == invoice["id"]

    # Every event again (a redelivery, a catch-up): nothing new is published, the version stays.
    before = len(world.outbox("billing.account.changed", "acme"))
    assert set(world.deliver(again=True)) == {"duplicate"}  # every event, the ignored ones too
    assert len(world.outbox("billing.account.changed", "acme")) == before
    assert world.billing("acme").json()["version"] == body["version"]


def test_etag_and_if_none_match(world):
    world.signup("etag")
    world.deliver()
    first = world.billing("etag")
    etag = first.headers["ETag"]
    assert etag.startswith('"etag-b') and etag.endswith('-valid"')
    assert world.api.get("/v1/tenants/etag/billing", headers={**AUTH, "If-None-Match": etag}).status_code == 304

    # Support staff change the plan's seats: a new version, a new ETag, one billing.account.changed more.
    customer_id = world.gw.find_customer_for_tenant("etag")["id"]
    sub = world.stripe.v1.subscriptions.list(params={"customer": customer_id}).data[0]
    world.stripe.v1.subscriptions.update(sub.id, params={"items": [{"id": sub["items"].data[0].id, "quantity": 5}]})
    world.deliver()
    second = world.api.get("/v1/tenants/etag/billing", headers={**AUTH, "If-None-Match": etag})
    assert second.status_code == 200 and second.json()["subscription"]["seats"] == 5
    assert second.json()["version"] > first.json()["version"]
    changed = world.outbox("billing.account.changed", "etag")
    assert changed[-1]["version"] == second.json()["version"]


def test_payment_failure_is_announced_from_the_reread_invoice(world):
    clock = world.stripe.v1.test_helpers.test_clocks.create(params={"frozen_time": int(utcnow().timestamp())})
    customer = world.stripe.v1.customers.create(params={
        "metadata": {"tenant_id": "dunned"}, "test_clock": clock.id, "payment_method": "pm_card_visa",
        "invoice_settings": {"default_payment_method": "pm_card_visa"}})
    sub = world.stripe.v1.subscriptions.create(params={"customer": customer.id,
                                                       "items": [{"price": world.price("pro")}]})
    failing = "pm_card_chargeCustomerFail"
    world.stripe.v1.customers.update(customer.id, params={
        "payment_method": failing, "invoice_settings": {"default_payment_method": failing}})
    period_end = sub["items"].data[0].current_period_end
    world.stripe.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": period_end + 60})
    world.emulator.wait_for_clock(clock.id)
    world.deliver()

    [failed] = world.outbox("billing.payment.failed", "dunned")
    assert failed["attempt_count"] == 1
    assert failed["next_payment_attempt"] is not None  # from the re-read invoice, not the event's copy
    body = world.billing("dunned").json()
    assert body["subscription"]["status"] == "past_due"
    assert body["payment_method"]["last4"] == "0341"


def test_invoice_pages_newest_first_with_a_cursor_and_validated_parameters(world):
    customer, _ = world.signup("pages")
    for plan in ("starter", "enterprise"):
        world.stripe.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": world.price(plan)}]})
    world.deliver()
    everything = world.api.get("/v1/tenants/pages/invoices", headers=AUTH).json()["data"]
    assert len(everything) == 3
    assert [i["created"] for i in everything] == sorted((i["created"] for i in everything), reverse=True)

    first = world.api.get("/v1/tenants/pages/invoices?limit=2", headers=AUTH).json()
    assert first["has_more"] is True and [i["id"] for i in first["data"]] == [i["id"] for i in everything[:2]]
    rest = world.api.get(f"/v1/tenants/pages/invoices?limit=2&starting_after={first['data'][-1]['id']}",
                         headers=AUTH).json()
    assert rest["has_more"] is False and [i["id"] for i in rest["data"]] == [everything[2]["id"]]

    for query, param in (("limit=0", "limit"), ("limit=101", "limit"), ("limit=x", "limit"), ("limit=-1", "limit"),
                         ("starting_after=in_nope", "starting_after"), ("starting_after=a%00b", "starting_after"),
                         ("limt=2", "limt"), ("limit=1&limit=2", "limit")):
        response = world.api.get(f"/v1/tenants/pages/invoices?{query}", headers=AUTH)
        assert response.status_code == 400, query
        assert response.json()["param"] == param
    assert world.api.get("/v1/tenants/nobody/invoices", headers=AUTH).status_code == 404


def test_detached_card_shows_missing_and_unknown_tenant_is_404(world):
    customer, _ = world.signup("nocard")
    world.deliver()
    pm = world.stripe.v1.customers.retrieve(customer.id).invoice_settings.default_payment_method
    world.stripe.v1.payment_methods.detach(pm)
    world.deliver()
    body = world.billing("nocard").json()
    assert body["payment_method"] == {"status": "missing"}
    assert world.billing("nobody").status_code == 404
    assert world.billing("bad%00id").status_code == 400


def test_a_new_default_card_set_in_the_dashboard_shows_up(world):
    customer, _ = world.signup("newcard")
    world.deliver()
    world.stripe.v1.customers.update(customer.id, params={
        "payment_method": "pm_card_mastercard", "invoice_settings": {"default_payment_method": "pm_card_mastercard"}})
    world.deliver()
    assert world.billing("newcard").json()["payment_method"]["brand"] == "mastercard"


def test_cancel_at_period_end_offers_resume_and_trial_will_end_is_announced(world):
    clock = world.stripe.v1.test_helpers.test_clocks.create(params={"frozen_time": int(utcnow().timestamp())})
    customer = world.stripe.v1.customers.create(params={"metadata": {"tenant_id": "trial"}, "test_clock": clock.id})
    sub = world.stripe.v1.subscriptions.create(params={
        "customer": customer.id, "items": [{"price": world.price("pro")}], "trial_period_days": 10})
    world.stripe.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": sub.trial_end - 2 * 86400})
    world.emulator.wait_for_clock(clock.id)
    world.stripe.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    world.deliver()
    # The subscription lives in test-clock time; the announcement checks the trial end is ahead.
    will_end = world.outbox("billing.trial.will_end", "trial")
    assert [e["subscription_id"] for e in will_end] == [sub.id]
    assert will_end[0]["has_payment_method"] is False
    body = world.billing("trial").json()
    assert body["subscription"]["status"] == "trialing" and body["subscription"]["cancel_at_period_end"] is True
    assert body["actions"] == {"change_plan": True, "cancel": False, "resume": True, "update_payment_method": True}
    assert body["payment_method"] == {"status": "missing"}
    assert body["subscription"]["trial_end"] is not None


def test_expiring_card_is_announced_once_per_card(world):
    world.signup("expiring")
    world.deliver()
    # The card expires at the end of this month: "expiring" on any day of it.
    later = world.bus.replace(now=lambda: utcnow() + timedelta(days=5))
    world.api_clock.advance(days=5)
    this_month = utcnow()
    with world.bus.uow_factory() as uow:  # as a payment_method.updated would, once Stripe's card updater moved it
        tenant = uow.tenants.lock("expiring")
        account = uow.session.get(BillingAccount, "expiring")
        account.payment_method = {**account.payment_method, "exp_month": this_month.month,
                                  "exp_year": this_month.year}
        assert refresh_billing_document(uow, tenant, catalog=world.bus.catalog, cause="test")
        uow.commit()
    assert world.billing("expiring").json()["payment_method"]["status"] == "expiring"
    assert later.call(announce_expiring_cards) == 1
    assert later.call(announce_expiring_cards) == 0  # once per card
    [event] = world.outbox("billing.payment_method.expiring", "expiring")
    assert (event["last4"], event["exp_month"], event["exp_year"]) == ("4242", this_month.month, this_month.year)
    world.api_clock.advance(days=40)
    assert world.billing("expiring").json()["payment_method"]["status"] == "expired"


def test_reconcile_repairs_the_mirror_without_webhooks(world):
    customer, _ = world.signup("drift")  # no event delivered at all
    result = world.bus.call(reconcile_tenant, "drift")
    assert result["found"]
    body = world.billing("drift").json()
    assert body["payment_method"]["last4"] == "4242" and body["subscription"]["plan"] == "pro"
    assert len(world.api.get("/v1/tenants/drift/invoices", headers=AUTH).json()["data"]) == 1
    # History found by a sweep is not announced as news.
    assert world.outbox("billing.invoice.paid", "drift") == []
    with world.bus.uow_factory() as uow:
        uow.session.query(Invoice).filter(Invoice.tenant_id == "drift").delete()
        uow.commit()
    report = world.bus.call(sweep)
    assert report["errors"] == 0
    assert len(world.api.get("/v1/tenants/drift/invoices", headers=AUTH).json()["data"]) == 1


def test_plans_carry_live_prices_and_the_change_for_a_tenant(world):
    assert world.api.get("/v1/plans", headers=AUTH).json()["data"][1]["price"]["live"] is False  # not yet mirrored
    world.signup("shopper", plan="pro")
    world.deliver()
    price = world.gw.find_price_by_lookup_key("starter_monthly")
    world.stripe.v1.prices.update(price["id"], params={"metadata": {"touched": "1"}})  # a price.updated event
    world.deliver()
    plans = {p["key"]: p for p in world.api.get("/v1/plans?tenant_id=shopper", headers=AUTH).json()["data"]}
    assert plans["starter"]["price"] == {"id": price["id"], "lookup_key": "starter_monthly", "amount": 1900,
                                         "currency": "usd", "interval": "month", "interval_count": 1,
                                         "trial_days": None, "live": True}
    assert plans["free"]["price"] is None and "dashboard" in plans["free"]["features"]
    assert {k: p["change"] for k, p in plans.items()} == {
        "free": "downgrade", "starter": "downgrade", "pro": "current", "enterprise": "upgrade"}
    assert "change" not in world.api.get("/v1/plans", headers=AUTH).json()["data"][0]
    assert world.api.get("/v1/plans?tenant_id=a%00b", headers=AUTH).status_code == 400
    assert world.api.get("/v1/plans?plan=x", headers=AUTH).status_code == 400
    assert world.api.get("/v1/plans").status_code == 401


def test_a_first_payment_confirmed_in_app_shows_its_card_when_the_events_arrive_together(world):
    """The card confirmed for an incomplete subscription is saved on the subscription. Its events
    (payment_method.attached, invoice.paid, customer.subscription.updated, …) arriving at once, the
    customer is read fresh by the first handler; the subscription's handler must still read the
    card the re-read subscription now names (it skipped it as fresh once)."""
    customer = world.stripe.v1.customers.create(params={"metadata": {"tenant_id": "inapp"}})
    sub = world.stripe.v1.subscriptions.create(params={
        "customer": customer.id, "items": [{"price": world.price("pro")}], "payment_behavior": "default_incomplete",
        "payment_settings": {"save_default_payment_method": "on_subscription"},
        "expand": ["latest_invoice.confirmation_secret"]})
    world.deliver()
    body = world.billing("inapp").json()
    secret = sub.latest_invoice.confirmation_secret.client_secret
    assert body["pending_payment"]["client_secret"] == secret and body["payment_method"] == {"status": "missing"}

    world.stripe.v1.payment_intents.confirm(secret.split("_secret_")[0], params={"payment_method": "pm_card_visa"})
    arrived = utcnow()
    for event in [e for e in world.emulator.events() if e["id"] not in world.delivered]:
        world.delivered.add(event["id"])
        world.bus.handle(event_received(world.bus, event, arrived))
    body = world.billing("inapp").json()
    assert body["subscription"]["status"] == "active" and body["pending_payment"] is None
    assert body["payment_method"]["last4"] == "4242" and body["payment_method"]["status"] == "valid"
