"""The `BillingGateway` contract (bms/port.py), run against both implementations the handlers meet:
the unit tests' fake Stripe (tests/fakes.py) and the real adapter (`StripeGateway`, the SDK) over
the emulator. A behaviour the command handlers rely on that the fake gets wrong fails here, so the
unit tests cannot drift from Stripe unnoticed."""
from __future__ import annotations

import time

import pytest

from billing_sync.bms.gateway import StripeGateway
from billing_sync.bms.port import BillingGateway, CustomerView, SubscriptionView
from billing_sync.errors import NotFound, PaymentFailed, PermanentError

from fakes import FakeGateway


@pytest.fixture(params=["fake", "emulator"])
def gateway(request) -> BillingGateway:
    if request.param == "fake":
        return FakeGateway()
    return StripeGateway("sk_test_contract", api_base=request.getfixturevalue("emulator").url)


@pytest.fixture
def prices(gateway) -> dict[str, str]:
    """Two monthly prices, by lookup_key → price id."""
    product = gateway.create_product({"name": "Pro", "metadata": {"plan": "pro"}}, idempotency_key="c:product")
    ids = {}
    for lookup_key, amount in (("pro_monthly", 4900), ("team_monthly", 9900)):
        ids[lookup_key] = gateway.create_price(
            {"product": product["id"], "unit_amount": amount, "currency": "usd", "recurring": {"interval": "month"},
             "lookup_key": lookup_key}, idempotency_key=f"c:price:{lookup_key}")["id"]
    return ids


def new_customer(gateway, tenant_id: str, payment_method: str | None = "pm_card_visa") -> CustomerView:
    request = gateway.new_customer_request(tenant_id=tenant_id, name=f"Tenant {tenant_id}", email=None,
                                           payment_method=payment_method, test_clock=None)
    return gateway.create_customer_from(request, idempotency_key=f"{tenant_id}:customer")


def subscribed(gateway, prices, tenant_id: str = "t-sub", quantity: int = 2) -> SubscriptionView:
    customer = new_customer(gateway, tenant_id)
    return gateway.start_subscription(customer.id, tenant_id=tenant_id, price_id=prices["pro_monthly"],
                                      quantity=quantity, trial_days=None, fail_if_payment_fails=True,
                                      idempotency_key=f"{tenant_id}:subscription")


def test_the_account_id(gateway, request):
    account_id = gateway.stripe_account_id()
    expected = "acct_fake" if isinstance(gateway, FakeGateway) else request.getfixturevalue("emulator").account_id
    assert account_id == expected and account_id.startswith("acct_")


def test_customers_are_created_once_and_found_by_id_and_by_tenant(gateway):
    customer = new_customer(gateway, "t-1")
    assert customer.tenant_id == "t-1" and customer.has_payment_method and customer.test_clock is None
    assert new_customer(gateway, "t-1") == customer                      # the same key replays the answer
    assert gateway.customer(customer.id) == customer
    assert gateway.find_customer_by_tenant("t-1") == customer
    assert gateway.find_customer_by_tenant("t-nobody") is None
    assert gateway.customer("cus_missing000000") is None
    assert new_customer(gateway, "t-2", payment_method=None).has_payment_method is False


def test_a_declined_card_creates_no_customer(gateway):
    with pytest.raises(PaymentFailed) as err:
        new_customer(gateway, "t-declined", payment_method="pm_card_chargeDeclined")
    assert err.value.reason == "card_declined"
    assert gateway.find_customer_by_tenant("t-declined") is None


def test_customer_details_update_and_a_gone_customer_is_not_found(gateway):
    customer = new_customer(gateway, "t-3")
    gateway.update_customer_details(customer.id, name="New name", email="t3@example.test",
                                    address={"country": "DE"}, idempotency_key="t-3:update")
    assert gateway.retrieve_customer(customer.id)["name"] == "New name"
    with pytest.raises(NotFound):
        gateway.update_customer_details("cus_missing000000", name="x", idempotency_key="t-3:update-missing")


def test_a_subscription_starts_on_a_price_and_is_read_back_alike(gateway, prices):
    sub = subscribed(gateway, prices, quantity=3)
    assert sub.status == "active" and not sub.ended and not sub.cancel_scheduled
    (item,) = sub.items
    assert (item.price_id, item.lookup_key, item.quantity, item.metered) == (prices["pro_monthly"], "pro_monthly", 3,
                                                                               False)
    assert item.current_period_start < item.current_period_end
    assert gateway.subscription(sub.id) == sub
    assert gateway.live_subscriptions(sub.customer) == [sub]
    assert gateway.subscriptions_newest_first(sub.customer) == [sub]
    assert gateway.subscription("sub_missing000000") is None


def test_a_trial_needs_no_payment_method(gateway, prices):
    customer = new_customer(gateway, "t-trial", payment_method=None)
    sub = gateway.start_subscription(customer.id, tenant_id="t-trial", price_id=prices["pro_monthly"], quantity=1,
                                     trial_days=14, fail_if_payment_fails=False, idempotency_key="t-trial:sub")
    assert sub.status == "trialing"


def test_cancellation_is_scheduled_and_unscheduled(gateway, prices):
    sub = subscribed(gateway, prices)
    scheduled = gateway.schedule_cancel(sub, idempotency_key="c:schedule")
    assert scheduled.cancel_at_period_end and scheduled.cancel_scheduled and scheduled.status == "active"
    assert scheduled.decision_basis() != sub.decision_basis()
    resumed = gateway.unschedule_cancel(scheduled, idempotency_key="c:unschedule")
    assert not resumed.cancel_at_period_end and resumed.cancel_at is None and not resumed.cancel_scheduled
    assert gateway.subscription(sub.id).decision_basis() == resumed.decision_basis()


def test_a_cancellation_at_a_set_time_is_unscheduled_too(gateway, prices):
    sub = subscribed(gateway, prices)
    at = sub.items[0].current_period_end - 86400
    set_at = gateway.update_subscription(sub.id, {"cancel_at": at}, idempotency_key="c:cancel-at")  # staff
    scheduled = gateway.subscription(sub.id)
    assert set_at["cancel_at"] == at and scheduled.cancel_at == at and scheduled.cancel_scheduled
    resumed = gateway.unschedule_cancel(scheduled, idempotency_key="c:unschedule-at")
    assert resumed.cancel_at is None and not resumed.cancel_scheduled


def test_a_plan_change_moves_the_item_and_resumes(gateway, prices):
    sub = gateway.schedule_cancel(subscribed(gateway, prices), idempotency_key="c:schedule")
    changed = gateway.change_plan(sub, sub.items[0], price_id=prices["team_monthly"], quantity=5,
                                  unschedule_cancel=True, idempotency_key="c:change")
    (item,) = changed.items
    assert (item.id, item.price_id, item.lookup_key, item.quantity) == (sub.items[0].id, prices["team_monthly"],
                                                                        "team_monthly", 5)
    assert not changed.cancel_scheduled
    seats_only = gateway.change_plan(changed, item, price_id=None, quantity=7, unschedule_cancel=True,
                                     idempotency_key="c:change")  # another decision, so another request
    assert (seats_only.items[0].price_id, seats_only.items[0].quantity) == (prices["team_monthly"], 7)


def test_cancel_now_ends_it_and_an_ended_subscription_refuses_writes(gateway, prices):
    sub = subscribed(gateway, prices)
    canceled = gateway.cancel_now(sub, idempotency_key="c:cancel")
    assert canceled.status == "canceled" and canceled.ended
    assert gateway.live_subscriptions(sub.customer) == []
    assert [s.id for s in gateway.subscriptions_newest_first(sub.customer)] == [sub.id]
    with pytest.raises(NotFound):
        gateway.cancel_now(canceled, idempotency_key="c:cancel-again")
    with pytest.raises(PermanentError):
        gateway.change_plan(canceled, canceled.items[0], price_id=None, quantity=4, unschedule_cancel=True,
                            idempotency_key="c:change-ended")


def test_newest_subscription_first(gateway, prices):
    first = subscribed(gateway, prices, tenant_id="t-two")
    gateway.cancel_now(first, idempotency_key="c:cancel-first")
    while int(time.time()) <= first.created:  # `created` has whole seconds
        time.sleep(0.05)
    second = gateway.start_subscription(first.customer, tenant_id="t-two", price_id=prices["team_monthly"],
                                        quantity=1, trial_days=None, fail_if_payment_fails=True,
                                        idempotency_key="t-two:second")
    assert [s.id for s in gateway.subscriptions_newest_first(first.customer)] == [second.id, first.id]
    assert [s.id for s in gateway.live_subscriptions(first.customer)] == [second.id]


def test_prices_by_lookup_key_meter_events_and_test_clocks(gateway, prices):
    assert gateway.price_id_for_lookup_key("pro_monthly") == prices["pro_monthly"]
    assert gateway.price_id_for_lookup_key("nope") is None
    gateway.create_meter({"display_name": "API calls", "event_name": "api_calls",
                          "default_aggregation": {"formula": "sum"}}, idempotency_key="c:meter")
    customer = new_customer(gateway, "t-usage")
    for _ in range(2):  # a retried command repeats its request; Stripe keeps one event
        gateway.record_meter_event(event_name="api_calls", customer_id=customer.id, value=3, identifier="cmd-1",
                                   timestamp=customer.created, idempotency_key="cmd-1:meter_event")
    assert gateway.start_test_clock(1_767_225_600, "tenant t-usage", idempotency_key="c:clock").startswith("clock_")


def test_a_duplicate_meter_event_identifier_counts_as_delivered_and_once(gateway):
    meter = gateway.create_meter({"display_name": "Calls", "event_name": "calls",
                                  "default_aggregation": {"formula": "sum"}}, idempotency_key="c:calls")
    assert gateway.meter_id("calls") == meter["id"] and gateway.meter_id("nothing") is None
    customer = new_customer(gateway, "t-dup")
    minute = customer.created // 60 * 60

    def send(idempotency_key: str, value: int = 7) -> bool:
        return gateway.record_meter_event(event_name="calls", customer_id=customer.id, value=value,
                                          identifier="usage:calls:1:t-dup", timestamp=minute,
                                          idempotency_key=idempotency_key)

    assert send("k-1") is True
    assert send("k-1") is True          # the same request under its key: Stripe replays the first answer
    assert send("k-2") is False         # the identifier under a new key: Stripe refuses, delivered anyway
    assert send("k-3", value=99) is False
    (summary,) = gateway.meter_event_summaries(meter["id"], customer.id, minute, minute + 60)
    assert summary.value == 7.0


def test_an_event_reads_by_id_as_it_is_listed_and_an_unknown_one_is_none(gateway):
    customer = new_customer(gateway, "t-event")
    if isinstance(gateway, FakeGateway):  # the fake sends no events of its own
        gateway.add_event("customer.created", gateway.retrieve_customer(customer.id))
    listed = [e for e in gateway.events_since(0) if e["data"]["object"].get("id") == customer.id]
    assert listed
    read = gateway.event(listed[0]["id"])
    assert read is not None
    assert (read["id"], read["type"], read["data"]["object"]["id"]) == (listed[0]["id"], listed[0]["type"], customer.id)
    assert gateway.event("evt_doesnotexist") is None


def test_meter_event_summaries_aggregate_by_window_oldest_first(gateway):
    meter = gateway.create_meter({"display_name": "Tokens", "event_name": "tokens",
                                  "default_aggregation": {"formula": "sum"}}, idempotency_key="c:tokens")
    customer, other = new_customer(gateway, "t-tokens"), new_customer(gateway, "t-other")
    hour = customer.created // 3600 * 3600
    for identifier, who, timestamp, value in (("a", customer, hour - 3600, 3), ("b", customer, hour - 1, 4),
                                              ("c", customer, customer.created, 5), ("d", other, hour, 100)):
        gateway.record_meter_event(event_name="tokens", customer_id=who.id, value=value, identifier=identifier,
                                   timestamp=timestamp, idempotency_key=f"{identifier}:meter_event")
    hourly = gateway.meter_event_summaries(meter["id"], customer.id, hour - 3600, hour + 3600, window="hour")
    assert [(s.start, s.end, s.value) for s in hourly] == [(hour - 3600, hour, 7.0), (hour, hour + 3600, 5.0)]
    (whole,) = gateway.meter_event_summaries(meter["id"], customer.id, hour - 3600, hour + 3600)
    assert whole.value == 12.0
    with pytest.raises(PermanentError):   # Stripe wants hour boundaries when grouping by hour
        gateway.meter_event_summaries(meter["id"], customer.id, hour - 60, hour + 3600, window="hour")


# -- the reads the Stripe-event handlers and the reconciler make ----------------------------------


def attach_feature(gateway, product_id: str, lookup_key: str) -> None:
    """Arrange: an Entitlements feature attached to the product (the fake keeps lookup_keys)."""
    if isinstance(gateway, FakeGateway):
        gateway.product_features.setdefault(product_id, []).append(lookup_key)
        return
    feature = gateway.client.v1.entitlements.features.create(params={"name": lookup_key, "lookup_key": lookup_key})
    gateway.client.v1.products.features.create(product_id, params={"entitlement_feature": feature.id})


def test_a_customer_reads_with_its_details_and_an_id_that_breaks_the_rule_names_no_tenant(gateway):
    customer = new_customer(gateway, "t-details")
    assert (customer.name, customer.email) == ("Tenant t-details", None)
    gateway.update_customer_details(customer.id, email="billing@t-details.test", idempotency_key="t-details:e")
    assert gateway.customer(customer.id).email == "billing@t-details.test"
    foreign = gateway.create_customer({"name": "staff", "metadata": {"tenant_id": "not a tenant/id"}},
                                      idempotency_key="c:foreign")
    assert gateway.customer(foreign["id"]).tenant_id is None
    listed = {c.id: c for c in gateway.all_customers()}
    assert listed[customer.id] == gateway.customer(customer.id) and listed[foreign["id"]].tenant_id is None


def test_a_subscription_view_carries_products_periods_and_trial_end(gateway, prices):
    sub = subscribed(gateway, prices)
    (item,) = sub.items
    assert item.product_id == gateway.price(prices["pro_monthly"]).product_id and item.product_id
    assert (sub.period_start, sub.period_end) == (item.current_period_start, item.current_period_end)
    assert sub.trial_end is None
    customer = new_customer(gateway, "t-trial-end", payment_method=None)
    trial = gateway.start_subscription(customer.id, tenant_id="t-trial-end", price_id=prices["pro_monthly"],
                                       quantity=1, trial_days=14, fail_if_payment_fails=False,
                                       idempotency_key="t-trial-end:sub")
    assert trial.trial_end is not None and trial.trial_end > trial.created
    gateway.cancel_now(sub, idempotency_key="c:cancel-listed")
    listed = {s.id: s for s in gateway.all_subscriptions()}
    assert listed[sub.id].ended and listed[trial.id] == gateway.subscription(trial.id)


def test_products_prices_and_features_read_back(gateway, prices):
    price = gateway.price(prices["team_monthly"])
    assert (price.id, price.lookup_key, price.active) == (prices["team_monthly"], "team_monthly", True)
    product = gateway.product(price.product_id)
    assert (product.name, product.active, product.metadata) == ("Pro", True, {"plan": "pro"})
    assert gateway.product("prod_missing000000") is None and gateway.price("price_missing000000") is None
    assert [p.id for p in gateway.all_products()] == [product.id]
    assert gateway.product_feature_keys(product.id) == []
    attach_feature(gateway, product.id, "sso")
    assert gateway.product_feature_keys(product.id) == ["sso"]


def test_active_entitlements_of_a_subscribed_customer(gateway, prices):
    product_id = gateway.price(prices["pro_monthly"]).product_id
    attach_feature(gateway, product_id, "sso")
    attach_feature(gateway, product_id, "audit_log")
    sub = subscribed(gateway, prices, tenant_id="t-ent")
    if isinstance(gateway, FakeGateway):  # the fake keeps them as arranged; Stripe derives them
        gateway.set_active_entitlements(sub.customer, ["sso", "audit_log"])
    assert gateway.active_entitlement_keys(sub.customer) == ["audit_log", "sso"]
    assert gateway.active_entitlement_keys(new_customer(gateway, "t-none").id) == []


# -- self-serve (bms/selfserve_port.py) ---------------------------------------------------------

def attach_card(gateway, customer_id: str, token: str) -> str:
    """A card the customer saved (what a SetupIntent leaves behind): its payment method id."""
    if isinstance(gateway, FakeGateway):
        return gateway.add_payment_method(token, customer=customer_id)["id"]
    return gateway.client.v1.payment_methods.attach(token, params={"customer": customer_id}).id


def test_a_checkout_session_is_made_once_per_key(gateway, prices):
    customer = new_customer(gateway, "t-co", payment_method=None)
    args = dict(tenant_id="t-co", price_id=prices["pro_monthly"], quantity=2, trial_days=None,
                success_url="https://app.test/ok", cancel_url="https://app.test/no", idempotency_key="co:1")
    session = gateway.new_checkout_session(customer.id, **args)
    assert session.id.startswith("cs_test_") and session.status == "open" and session.customer == customer.id
    assert session.url and session.url.startswith("https://checkout.stripe.com/")
    assert session.expires_at > time.time() + 23 * 3600 and session.subscription is None
    assert gateway.new_checkout_session(customer.id, **args) == session


@pytest.mark.parametrize("flow", [None, "payment_method_update", "subscription_cancel", "subscription_update"])
def test_portal_sessions_with_each_flow(gateway, prices, flow):
    sub = subscribed(gateway, prices, tenant_id="t-portal")
    session = gateway.new_portal_session(sub.customer, return_url="https://app.test/billing", flow=flow,
                                            subscription_id=sub.id, idempotency_key=f"portal:{flow}")
    assert session.id.startswith("bps_") and session.url.startswith("https://billing.stripe.com/")


def test_a_portal_flow_on_an_ended_subscription_is_invalid(gateway, prices):
    sub = subscribed(gateway, prices, tenant_id="t-portal-ended")
    gateway.cancel_now(sub, idempotency_key="portal:cancel")
    with pytest.raises(PermanentError):
        gateway.new_portal_session(sub.customer, return_url="https://app.test", flow="subscription_cancel",
                                      subscription_id=sub.id, idempotency_key="portal:ended")


def test_a_setup_intent_has_a_client_secret(gateway):
    customer = new_customer(gateway, "t-seti", payment_method=None)
    intent = gateway.new_setup_intent(customer.id, tenant_id="t-seti", idempotency_key="seti:1")
    assert intent.id.startswith("seti_") and intent.client_secret.startswith(intent.id + "_secret_")
    assert intent.status == "requires_payment_method"


def test_a_change_is_previewed_with_its_prorations(gateway, prices):
    sub = subscribed(gateway, prices, tenant_id="t-preview", quantity=2)
    (item,) = sub.items
    upcoming = gateway.upcoming_invoice(sub)
    assert upcoming is not None and upcoming.amount_due == 2 * 4900 and upcoming.proration_amount == 0
    assert upcoming.charged_at == item.current_period_end and upcoming.currency == "usd"
    at = item.current_period_start   # all of the period is left: full credit, full charge
    quote = gateway.preview_change(sub, item, price_id=prices["team_monthly"], quantity=3, proration_date=at)
    assert quote.proration_amount == -2 * 4900 + 3 * 9900
    assert quote.amount_due == quote.proration_amount + 3 * 9900 and quote.proration_date == at
    assert gateway.upcoming_invoice(gateway.schedule_cancel(sub, idempotency_key="preview:cancel")) is None


def test_invoices_newest_first_in_pages(gateway, prices):
    first = subscribed(gateway, prices, tenant_id="t-inv")
    while int(time.time()) <= first.created:  # `created` has whole seconds
        time.sleep(0.05)
    gateway.start_subscription(first.customer, tenant_id="t-inv", price_id=prices["team_monthly"], quantity=1,
                               trial_days=None, fail_if_payment_fails=True, idempotency_key="t-inv:second")
    page, more = gateway.invoices(first.customer, limit=1, starting_after=None)
    assert more and len(page) == 1 and page[0].amount_due == 9900 and page[0].status == "paid"
    rest, more = gateway.invoices(first.customer, limit=10, starting_after=page[0].id)
    assert not more and [i.amount_due for i in rest] == [2 * 4900] and rest[0].subscription == first.id
    assert rest[0].number and rest[0].hosted_invoice_url and rest[0].invoice_pdf and rest[0].currency == "usd"


def test_the_default_card_is_read_and_set(gateway, prices):
    sub = subscribed(gateway, prices, tenant_id="t-card")
    card = gateway.default_payment_method(sub.customer)
    assert card is not None and (card.type, card.brand, card.last4) == ("card", "visa", "4242")
    assert (card.exp_month, card.exp_year) == (12, 2034)
    assert gateway.default_payment_method(new_customer(gateway, "t-nocard", payment_method=None).id) is None
    mastercard = attach_card(gateway, sub.customer, "pm_card_mastercard")
    gateway.set_default_payment_method(sub.customer, mastercard, idempotency_key="card:set")
    assert gateway.default_payment_method(sub.customer).id == mastercard


def test_a_first_payment_left_to_the_customer(gateway, prices):
    """`confirm_in_app`: `incomplete` without a card, nothing charged, and the first payment's
    client secret to confirm; nothing pending for a subscription that was charged."""
    customer = new_customer(gateway, "t-in-app", payment_method=None)
    sub = gateway.start_subscription(customer.id, tenant_id="t-in-app", price_id=prices["team_monthly"], quantity=1,
                                     trial_days=None, fail_if_payment_fails=False, confirm_in_app=True,
                                     idempotency_key="t-in-app:subscription")
    assert sub.status == "incomplete"
    pending = gateway.pending_payment(sub.id)
    assert pending is not None and pending.subscription_id == sub.id
    assert pending.client_secret.startswith("pi_") and "_secret_" in pending.client_secret
    assert (pending.amount_due, pending.currency) == (9900, "usd")
    assert pending.expires_at == sub.created + 23 * 3600
    assert gateway.invoice(pending.invoice_id).status == "open"
    assert gateway.pending_payment(subscribed(gateway, prices).id) is None
    assert gateway.pending_payment("sub_missing") is None
